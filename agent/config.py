"""Load and validate the YAML configuration: the only module that knows the file's shape.

The file is a Butler config (root key ``Butler``): the agent reads ``configQRS``, ``cert``,
``influxDb`` and ``qlikSenseLicense`` exactly as Butler documents them, ignores every other
Butler section, and keeps its own additions under ``Butler.licenseAgent``. Validation is done
by pydantic models; :func:`load_config` turns every problem into one :class:`ConfigError` that
lists all of them, each with the key path, the bad value and what is expected.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from agent.config_yaml import YamlError, read_yaml_file
from agent.schedule import SUPPORTED_FORMS, ScheduleError, parse_frequency

ENV_VAR = "LICENSE_AGENT_CONFIG"
DEFAULT_CONFIG = "config.yaml"


class ConfigError(Exception):
    """A mistake in the configuration. ``problems`` lists every one found, one line each."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{len(problems)} configuration {noun}{where}:\n{lines}")


def _resolve_optional_path(value: Any, info: ValidationInfo) -> Any:
    """A path from the file, taken from the config file's folder; empty means "not set"."""
    if isinstance(value, str) and value.strip():
        return resolve_path(value, info.context)
    return value or None


#: An optional path in the config, resolved against the config file's folder.
OptionalPath = Annotated[Path | None, BeforeValidator(_resolve_optional_path)]

# --------------------------------------------------------------------------- building blocks


def _branches(annotation: Any) -> list[Any]:
    """The types a field takes: the branches of a union, else the annotation itself."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [b for arg in typing.get_args(annotation) for b in _branches(arg)]
    return [annotation]


def _is_number(branch: Any) -> bool:
    if typing.get_origin(branch) is Literal:
        return all(type(a) in (int, float) for a in typing.get_args(branch))
    return branch in (int, float)


class _Checked(BaseModel):
    """Checks every section shares."""

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # pydantic reads true as 1: `releaseThresholdDays: true` must not become one day.
        if not isinstance(value, bool) or info.field_name is None:
            return value
        field = cls.model_fields.get(info.field_name)
        branches = _branches(field.annotation) if field is not None else []
        if any(map(_is_number, branches)) and not any(b in (bool, Any) for b in branches):
            text = " or text" if str in branches else ""
            raise ValueError(f"expected a number{text}, not true or false")
        return value


class _Model(_Checked):
    """Base for Butler sections shared with other Butler features: unknown keys are ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class _Strict(_Checked):
    """Base for sections the agent owns: an unknown key is a typo and is reported."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


_FLAG_WORDS = ("yes", "no", "ignore")


def _flag_value(value: Any) -> Any:
    # PyYAML turns unquoted yes/no/true/false into booleans; they still mean Yes/No.
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, str) and value.strip().lower() in _FLAG_WORDS:
        return value.strip().lower()
    raise ValueError("expected Yes, No or Ignore (any case; unquoted yes/no/true/false also work)")


#: Yes / No / Ignore in any case, or the booleans PyYAML makes of unquoted yes/no/true/false.
FlagRule = Annotated[
    Literal["yes", "no", "ignore"],
    BeforeValidator(_flag_value),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "enum": [v for w in _FLAG_WORDS for v in (w.capitalize(), w, w.upper())],
                },
                {"type": "boolean"},
            ],
            "description": "Yes, No or Ignore in any case (true means Yes, false means No)",
        }
    ),
]


def _none_to_list(value: Any) -> Any:
    return [] if value is None else value


def _to_str(value: Any) -> Any:
    # Tag values such as `value: 2026` or `value: true` are meant as text.
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value


Text = Annotated[
    str, BeforeValidator(_to_str), WithJsonSchema({"type": ["string", "number", "boolean"]})
]


class StaticTag(_Strict):
    name: Text = Field(min_length=1)
    value: Text


class TagBlock(_Model):
    static: Annotated[list[StaticTag], BeforeValidator(_none_to_list)] = []


class FeatureInfluxDb(_Strict):
    enable: bool = Field(
        default=False,
        description="Write this feature's data to the InfluxDB of Butler.influxDb"
        " (which must be enabled too)",
    )
    tag: TagBlock = TagBlock()


class FeatureDestination(_Strict):
    influx_db: FeatureInfluxDb = Field(default=FeatureInfluxDb(), alias="influxDb")


def _check_frequency(value: str) -> str:
    try:
        parse_frequency(value)
    except ScheduleError as exc:
        raise ValueError(f"{exc.reason}; supported: {SUPPORTED_FORMS}") from None
    return value


#: A later.js text schedule (``every 6 hours``), checked at load time.
Frequency = Annotated[
    str,
    Field(
        min_length=1,
        description="When to run, in UTC, as later.js text: every N seconds|minutes|hours|days,"
        " at HH:MM, every day at HH:MM, every weekday at HH:MM, on <weekday> at HH:MM."
        " Clock-aligned: 'every 6 hours' runs at 00, 06, 12 and 18 UTC",
        examples=["every 6 hours", "every 24 hours", "at 02:30", "every weekday at 7:00 pm"],
    ),
    AfterValidator(_check_frequency),
]


# --------------------------------------------------------------------------- the feature


class LicenseMonitor(_Strict):
    enable: bool = Field(
        default=False, description="Poll QRS for license usage on the `frequency` schedule"
    )
    frequency: Frequency = "every 6 hours"
    destination: FeatureDestination = FeatureDestination()


class NeverReleaseUser(_Strict):
    user_dir: Text = Field(
        alias="userDir", min_length=1, description="User directory, as in the QMC (INTERNAL)"
    )
    user_id: Text = Field(alias="userId", min_length=1, description="User ID, as in the QMC")


class NeverReleaseCustomProperty(_Strict):
    name: Text = Field(min_length=1)
    value: Text


class NeverRelease(_Strict):
    user: Annotated[list[NeverReleaseUser], BeforeValidator(_none_to_list)] = []
    tag: Annotated[list[Text], BeforeValidator(_none_to_list)] = []
    custom_property: Annotated[list[NeverReleaseCustomProperty], BeforeValidator(_none_to_list)] = (
        Field(default=[], alias="customProperty")
    )
    user_directory: Annotated[list[Text], BeforeValidator(_none_to_list)] = Field(
        default=[], alias="userDirectory"
    )
    inactive: FlagRule = Field(
        default="ignore",
        description="Yes: keep the licenses of users marked Inactive in the QMC; No: keep those"
        " of active users; Ignore: disregard the flag",
    )
    blocked: FlagRule = Field(
        default="ignore",
        description="Yes: keep the licenses of blocked users; No: keep those of users not"
        " blocked; Ignore: disregard the flag",
    )
    removed_externally: FlagRule = Field(
        default="ignore",
        alias="removedExternally",
        description="Yes: keep the licenses of users removed externally; No: keep those of the"
        " others; Ignore: disregard the flag",
    )


class LicenseTypeRelease(_Strict):
    enable: bool = Field(default=False, description="Release allocations of this license type")
    release_threshold_days: int = Field(
        default=30,
        alias="releaseThresholdDays",
        ge=1,
        le=36500,
        description="Days without use after which an allocation is released (QRS quarantines,"
        " rather than frees, allocations used in the last 7 days)",
    )


class LicenseTypes(_Strict):
    analyzer: LicenseTypeRelease = LicenseTypeRelease()
    professional: LicenseTypeRelease = LicenseTypeRelease()

    def enabled(self) -> dict[str, LicenseTypeRelease]:
        """The enabled types, professional first (the order the existing tool uses)."""
        pairs = (("professional", self.professional), ("analyzer", self.analyzer))
        return {name: lt for name, lt in pairs if lt.enable}


_PERCENT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


class MaxReleases(_Strict):
    """The safety limit: a run whose candidates exceed it releases nothing."""

    count: int | None = Field(default=None, ge=0)
    percent: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"count": value}
        if isinstance(value, str):
            m = _PERCENT_RE.match(value)
            if m:
                return {"percent": float(m.group(1))}
            if value.strip().isdigit():
                return {"count": int(value)}
        if isinstance(value, dict | MaxReleases):
            return value
        raise ValueError(
            "expected a number of releases (50), a percentage of the type's allocations"
            " ('10%'), or the keys count and/or percent"
        )

    def limit_for(self, allocated: int) -> int | None:
        """The largest number of releases allowed for a type with ``allocated`` allocations."""
        limits = []
        if self.count is not None:
            limits.append(self.count)
        if self.percent is not None:
            limits.append(int(allocated * self.percent / 100))
        return min(limits) if limits else None


_MAX_RELEASES_SCHEMA: dict[str, Any] = {
    "description": "Safety limit per license type and run: a number (50), a percentage of the"
    " type's allocations ('10%'), or {count, percent} (the smaller wins). A run with more"
    " candidates than the limit for any type releases nothing at all",
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%\s*$"},
        {
            "type": "object",
            "properties": {
                "count": {"type": "integer", "minimum": 0},
                "percent": {"type": "number", "minimum": 0, "maximum": 100},
            },
            "additionalProperties": False,
        },
        {"type": "null"},
    ],
}


class LicenseRelease(_Strict):
    enable: bool = Field(
        default=False, description="Release unused Professional/Analyzer allocations"
    )
    dry_run: bool = Field(
        default=True,
        alias="dryRun",
        description="true: only report what would be released; false: release for real",
    )
    frequency: Frequency = "every 24 hours"
    never_release: NeverRelease = Field(default=NeverRelease(), alias="neverRelease")
    license_type: LicenseTypes = Field(default=LicenseTypes(), alias="licenseType")
    destination: FeatureDestination = FeatureDestination()
    max_releases_per_run: Annotated[MaxReleases | None, WithJsonSchema(_MAX_RELEASES_SCHEMA)] = (
        Field(default=None, alias="maxReleasesPerRun")
    )
    delete_concurrency: int = Field(
        default=4,
        alias="deleteConcurrency",
        ge=1,
        le=64,
        description="Allocations deleted in parallel by one release run",
    )
    plan_max_age_hours: float = Field(
        default=24,
        alias="planMaxAgeHours",
        gt=0,
        le=8760,
        description="release --apply refuses a plan (a dry run's report) older than this",
    )


class ServerLicenseAlert(_Strict):
    #: Log a warning when the site license expires in this many days or fewer.
    threshold_days: int = Field(default=60, alias="thresholdDays", ge=0, le=36500)


class ServerLicenseDestination(_Model):
    # Butler also has mqtt and webhook here; the agent ignores them instead of rejecting them.
    influx_db: FeatureInfluxDb = Field(default=FeatureInfluxDb(), alias="influxDb")


class ServerLicenseMonitor(_Strict):
    """``Butler.qlikSenseLicense.serverLicenseMonitor``: the site license's expiry."""

    enable: bool = False
    frequency: Frequency = "every 24 hours"
    alert: ServerLicenseAlert = ServerLicenseAlert()
    destination: ServerLicenseDestination = ServerLicenseDestination()


class QlikSenseLicense(_Model):
    license_monitor: LicenseMonitor = Field(default=LicenseMonitor(), alias="licenseMonitor")
    license_release: LicenseRelease = Field(default=LicenseRelease(), alias="licenseRelease")
    server_license_monitor: ServerLicenseMonitor = Field(
        default=ServerLicenseMonitor(), alias="serverLicenseMonitor"
    )


# --------------------------------------------------------------------------- connections


class Header(_Strict):
    name: Text = Field(min_length=1)
    value: Text


class Headers(_Model):
    static: Annotated[list[Header], BeforeValidator(_none_to_list)] = []


DEFAULT_QRS_USER = "UserDirectory=INTERNAL; UserId=sa_api"
#: A DNS name or IPv4 address: letters, digits, '-', '_' and dots; no scheme, port or path.
_HOST_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})$")


class ConfigQRS(_Model):
    host: str = Field(
        min_length=1,
        description="Host name of the Sense central node as in its certificate, e.g."
        " sense.example.com",
    )
    port: int = Field(default=4242, ge=1, le=65535, description="QRS port (4242)")
    use_ssl: bool = Field(default=True, alias="useSSL", description="Use HTTPS (true)")
    reject_unauthorized: bool = Field(
        default=True,
        alias="rejectUnauthorized",
        description="Verify the Sense server's certificate against clientCertCA (keep true)",
    )
    headers: Headers = Headers()
    #: Agent additions: seconds to wait for a connection and for an answer.
    connect_timeout: float = Field(default=10.0, alias="connectTimeout", gt=0, le=600)
    read_timeout: float = Field(default=60.0, alias="readTimeout", gt=0, le=3600)
    retries: int = Field(default=4, ge=0, le=20)
    #: Parallel read requests (bulk user fetches).
    concurrency: int = Field(default=4, ge=1, le=64)
    #: Days since last use are counted with this machine's clock: a live release refuses to
    #: run when it differs from QRS's (its Date header) by more than this (agent addition).
    max_clock_skew_minutes: float = Field(
        default=60,
        alias="maxClockSkewMinutes",
        gt=0,
        le=10080,
        description="Largest difference in minutes between this machine's clock and QRS's at"
        " which a live release still runs (60)",
    )

    @field_validator("host")
    @classmethod
    def _host_only(cls, value: str) -> str:
        # A URL or host:port here would pass as a name and fail only at the first connection.
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]  # an IPv6 address in brackets
        try:
            ipaddress.ip_address(text)
            return value.strip()
        except ValueError:
            pass
        if not _HOST_RE.match(text):
            raise ValueError(
                "expected a host name: write the host only, e.g. sense.example.com; the port"
                " goes in configQRS.port"
            )
        return text

    @property
    def base_url(self) -> str:
        scheme = "https" if self.use_ssl else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def qlik_user(self) -> str:
        for header in self.headers.static:
            if header.name.lower() == "x-qlik-user":
                return header.value
        return DEFAULT_QRS_USER


_CERT_HINT = (
    r"found on the Sense server in C:\ProgramData\Qlik\Sense\Repository\Exported Certificates"
    r"\.Local Certificates (or exported in the QMC: Certificates > Export, PEM format)"
)


class Cert(_Model):
    client_cert: Path = Field(alias="clientCert", description=f"Path of client.pem, {_CERT_HINT}")
    client_cert_key: Path = Field(
        alias="clientCertKey", description=f"Path of client_key.pem, {_CERT_HINT}"
    )
    client_cert_ca: Path = Field(
        alias="clientCertCA", description=f"Path of root.pem, {_CERT_HINT}"
    )

    @field_validator("client_cert", "client_cert_key", "client_cert_ca", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.strip():
            return resolve_path(value, info.context)
        return value


class InfluxAuth(_Model):
    enable: bool = False
    username: str = ""
    password: str = ""


class RetentionPolicy(_Model):
    name: str = "autogen"
    duration: str = "0s"


class InfluxDb(_Model):
    enable: bool = Field(default=False, description="Write to InfluxDB")
    version: Literal[1, 2, 3] = Field(
        default=1,
        description="InfluxDB major version: 1 uses dbName (and auth), 2 uses org, bucket and"
        " token, 3 uses database and token",
    )
    host_ip: str = Field(
        default="127.0.0.1", alias="hostIP", min_length=1, description="InfluxDB host"
    )
    host_port: int = Field(
        default=8086, alias="hostPort", ge=1, le=65535, description="InfluxDB port (8086)"
    )
    #: Agent additions: HTTPS and a custom CA file for the InfluxDB server.
    use_https: bool = Field(default=False, alias="useHttps")
    ca_cert: OptionalPath = Field(default=None, alias="caCert")
    verify_tls: bool = Field(default=True, alias="verifyTls")
    timeout: float = Field(default=10.0, gt=0, le=600)
    auth: InfluxAuth = InfluxAuth()
    db_name: str = Field(
        default="senseops", alias="dbName", description="Database (version 1), created if missing"
    )
    retention_policy: RetentionPolicy = Field(default=RetentionPolicy(), alias="retentionPolicy")
    tag: TagBlock = TagBlock()
    org: str = Field(default="", description="Organization (version 2)")
    bucket: str = Field(default="", description="Bucket (version 2)")
    token: str = Field(
        default="",
        description="API token with write access (versions 2 and 3); prefer ${env:INFLUX_TOKEN}",
    )
    database: str = Field(default="", description="Database (version 3)")

    @property
    def url(self) -> str:
        scheme = "https" if self.use_https else "http"
        return f"{scheme}://{self.host_ip}:{self.host_port}"


# --------------------------------------------------------------------------- agent additions


LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")

#: A file the loguru trial below never creates (``delay=True`` opens files on first write).
_TRIAL_LOG = "license-agent-config-check.log"


def _loguru_accepts(expected: str, **settings: Any) -> None:
    """Let loguru itself judge a rotation or retention value, as ``logger.add`` will later."""
    from loguru import logger

    try:
        handler = logger.add(_TRIAL_LOG, delay=True, filter=lambda _record: False, **settings)
    except (ValueError, TypeError):
        raise ValueError(expected) from None
    logger.remove(handler)


class LoggingSettings(_Strict):
    level: Annotated[
        Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] | None,
        WithJsonSchema(
            {
                "anyOf": [
                    {
                        "type": "string",
                        "enum": [v for lv in (*LOG_LEVELS, "WARN") for v in (lv, lv.lower())],
                    },
                    {"type": "null"},
                ],
            }
        ),
    ] = Field(
        default=None,
        description="Log level (any case); default: Butler.logLevel, else INFO."
        " --log-level overrides it",
    )
    file: OptionalPath = Field(
        default=None, description="Also log to this file (relative to the config file's folder)"
    )
    rotation: str | int = Field(
        default="10 MB",
        description="When to start a new log file: a size ('10 MB'), an age ('1 week') or a"
        " time of day ('00:00')",
    )
    retention: str | int = Field(
        default="30 days",
        description="How long to keep rotated files ('30 days'), or how many (10)",
    )
    json_lines: bool = Field(
        default=False,
        alias="json",
        description="Write JSON lines (one object per record) to the file, or to stderr when no"
        " file is set",
    )

    @field_validator("rotation")
    @classmethod
    def _check_rotation(cls, value: str | int) -> str | int:
        _loguru_accepts(
            "expected a size such as '10 MB', an age such as '1 week', or a time of day such"
            " as '00:00'",
            rotation=value,
        )
        return value

    @field_validator("retention")
    @classmethod
    def _check_retention(cls, value: str | int) -> str | int:
        _loguru_accepts(
            "expected an age such as '30 days' or '2 weeks', or a number of files such as 10",
            retention=value,
        )
        return value

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().upper()
            value = "WARNING" if value == "WARN" else value
            if value not in LOG_LEVELS:
                raise ValueError(f"expected one of {', '.join(LOG_LEVELS)} (any case)")
        return value


class PluginSettings(_Strict):
    #: Folders whose ``*.py`` files are loaded as plugins.
    paths: Annotated[list[Path], BeforeValidator(_none_to_list)] = []
    #: Plugin names not to load (built-in or external).
    disable: Annotated[list[str], BeforeValidator(_none_to_list)] = []
    #: Stop with an error when an external plugin fails to load (default: report and go on).
    strict: bool = False
    #: Per-plugin settings, by plugin name; read by the plugin in ``sla_configure``.
    settings: Annotated[dict[str, Any], BeforeValidator(lambda v: {} if v is None else v)] = {}

    @field_validator("paths", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, list):
            return [
                resolve_path(v, info.context) if isinstance(v, str) and v.strip() else v
                for v in value
            ]
        return value


AGENT_FEATURES = ("license_monitor", "license_release", "server_license")


class SqliteDestination(_Strict):
    enable: bool = False
    #: Default: ``license-agent.sqlite`` next to the config file.
    path: OptionalPath = None
    features: list[Literal["license_monitor", "license_release", "server_license"]] = list(
        AGENT_FEATURES
    )


class JsonlDestination(_Strict):
    enable: bool = False
    #: A file, or ``-`` for standard output.
    path: str = "-"
    features: list[Literal["license_monitor", "license_release", "server_license"]] = list(
        AGENT_FEATURES
    )


class PrometheusDestination(_Strict):
    """``Butler.licenseAgent.destinations.prometheus``: serve ``/metrics`` for scraping."""

    enable: bool = False
    #: Address to listen on; loopback by default (set 0.0.0.0 to let a remote Prometheus in).
    host: str = Field(default="127.0.0.1", min_length=1)
    #: TCP port; 0 picks a free port (tests).
    port: int = Field(default=9842, ge=0, le=65535)
    features: list[Literal["license_monitor", "license_release", "server_license"]] = list(
        AGENT_FEATURES
    )


class Destinations(_Model):
    sqlite: SqliteDestination = SqliteDestination()
    jsonl: JsonlDestination = JsonlDestination()
    prometheus: PrometheusDestination = PrometheusDestination()


class OutboxSettings(_Strict):
    """``Butler.licenseAgent.outbox``: the local store of points not yet delivered."""

    #: Rows kept at most (one per destination and point); the oldest monitor points are
    #: dropped first when it is full, release events never.
    max_rows: int = Field(default=100_000, alias="maxRows", ge=100)


class HeartbeatSettings(_Strict):
    """``Butler.licenseAgent.heartbeat``: the file ``license-agent health`` checks."""

    enable: bool = Field(
        default=True,
        description="Write the heartbeat file at start, after every job run and at stop",
    )
    file: OptionalPath = Field(
        default=None,
        description="The heartbeat file (default: heartbeat.json in the state folder)",
    )


_SITE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Keys a site may not override: the jobs and their schedules are shared by all sites.
_SHARED_FEATURE_KEYS = (
    ("licenseMonitor", "enable"),
    ("licenseMonitor", "frequency"),
    ("licenseRelease", "enable"),
    ("licenseRelease", "frequency"),
)


class SiteSettings(_Strict):
    """One entry of ``Butler.licenseAgent.sites``: a Sense site with its own QRS connection,
    certificates, tags and (optionally) its own feature settings."""

    name: str = Field(
        description="The site's name: the value of the `site` tag on its points, in logs and"
        " reports; letters, digits, '.', '_' and '-'",
    )
    config_qrs: ConfigQRS = Field(alias="configQRS")
    cert: Cert
    qlik_sense_license: QlikSenseLicense | None = Field(
        default=None,
        alias="qlikSenseLicense",
        description="Overrides of Butler.qlikSenseLicense for this site, merged key by key"
        " (lists are replaced); enable and frequency are shared by all sites",
    )
    tags: Annotated[list[StaticTag], BeforeValidator(_none_to_list)] = Field(
        default=[], description="Static tags on every point of this site"
    )
    #: The override exactly as written, to merge over the shared block (see AgentConfig.sites).
    override: SkipJsonSchema[dict[str, Any]] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _keep_override(cls, value: Any) -> Any:
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k != "override"}
            raw = value.get("qlikSenseLicense")
            value["override"] = raw if isinstance(raw, dict) else {}
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _SITE_NAME_RE.match(value):
            raise ValueError(
                "expected a short name of letters, digits, '.', '_' and '-' (such as prod or"
                " sense-eu.example.com); it names the site's tag, lock and journal files"
            )
        return value

    @model_validator(mode="after")
    def _shared_keys(self) -> SiteSettings:
        for block, key in _SHARED_FEATURE_KEYS:
            section = self.override.get(block)
            if isinstance(section, dict) and key in section:
                raise ValueError(
                    f"qlikSenseLicense.{block}.{key} cannot differ per site: the jobs and"
                    f" their schedules are shared; set it in Butler.qlikSenseLicense.{block}"
                    " (to not release on a site, set its licenseType.professional.enable and"
                    " analyzer.enable to false)"
                )
        return self


class LicenseAgent(_Model):
    """``Butler.licenseAgent``: everything the agent adds to a Butler config."""

    logging: LoggingSettings = LoggingSettings()
    plugins: PluginSettings = PluginSettings()
    destinations: Destinations = Destinations()
    outbox: OutboxSettings = OutboxSettings()
    #: Folder for the outbox, the release journal and the lock (default: next to the config).
    state_dir: OptionalPath = Field(
        default=None,
        alias="stateDir",
        description="Folder for the outbox, the release journal and the lock (default: the"
        " config file's folder)",
    )
    #: Run each enabled job once when ``license-agent run`` starts.
    run_at_start: bool = Field(
        default=True,
        alias="runAtStart",
        description="Run each enabled job once when `license-agent run` starts",
    )
    heartbeat: HeartbeatSettings = HeartbeatSettings()
    #: Several Sense sites from one agent; when set, Butler.configQRS and cert are not used.
    sites: Annotated[list[SiteSettings], BeforeValidator(_none_to_list)] = Field(
        default=[],
        description="Several Sense sites from one agent, each with its own QRS connection,"
        " certificates and tags; when set, Butler.configQRS and Butler.cert are not used and"
        " every point carries a `site` tag",
    )

    @field_validator("sites")
    @classmethod
    def _unique_sites(cls, value: list[SiteSettings]) -> list[SiteSettings]:
        seen: set[str] = set()
        for site in value:
            # Case-insensitively: the names become file names (locks) on Windows too.
            if site.name.casefold() in seen:
                raise ValueError(f"the site name {site.name!r} is used twice; names must differ")
            seen.add(site.name.casefold())
        return value


# --------------------------------------------------------------------------- root


class Butler(_Model):
    config_qrs: ConfigQRS | None = Field(default=None, alias="configQRS")
    cert: Cert | None = None
    influx_db: InfluxDb = Field(default=InfluxDb(), alias="influxDb")
    qlik_sense_license: QlikSenseLicense = Field(
        default=QlikSenseLicense(), alias="qlikSenseLicense"
    )
    license_agent: LicenseAgent = Field(default=LicenseAgent(), alias="licenseAgent")
    #: Butler's own log level, used when ``licenseAgent.logging.level`` is not set.
    log_level: str | None = Field(
        default=None,
        alias="logLevel",
        description="Butler's log level (error, warn, info, verbose, debug, silly); used when"
        " licenseAgent.logging.level is not set",
    )
    # Cross-section rules (configQRS and cert needed when a QRS feature is on, the InfluxDB
    # keys each version needs) are checked in parse_config, so they are reported together
    # with every other problem instead of only once the rest is valid.


class AgentConfig(_Model):
    butler: Butler = Field(alias="Butler")
    #: Where the config was read from (not part of the file).
    source: SkipJsonSchema[Path | None] = Field(default=None, exclude=True)
    #: Warnings found while loading (ignored keys that look like typos); see config_warnings.
    _load_warnings: tuple[str, ...] = PrivateAttr(default=())
    #: Path values as the user wrote them, by key path, for messages about files.
    _written_paths: dict[str, str] = PrivateAttr(default_factory=dict)
    #: The sites of ``Butler.licenseAgent.sites``, built once (see :meth:`sites`).
    _sites: list[SiteConfig] | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    @property
    def agent(self) -> LicenseAgent:
        return self.butler.license_agent

    @property
    def license_monitor(self) -> LicenseMonitor:
        return self.butler.qlik_sense_license.license_monitor

    @property
    def license_release(self) -> LicenseRelease:
        return self.butler.qlik_sense_license.license_release

    @property
    def server_license_monitor(self) -> ServerLicenseMonitor:
        return self.butler.qlik_sense_license.server_license_monitor

    @property
    def state_dir(self) -> Path:
        return self.agent.state_dir or self.base_dir

    def plugin_settings(self, name: str) -> Mapping[str, Any]:
        return self.agent.plugins.settings.get(name) or {}

    def sites(self) -> list[SiteConfig]:
        """The Sense sites this agent works on: ``Butler.licenseAgent.sites`` when set, else
        the one site of the Butler sections (``configQRS`` and ``cert``).

        Sites from the list carry a ``site`` tag on every point; the single Butler site does
        not, so its series stay exactly those of Butler and existing dashboards.
        """
        if self.agent.sites:
            if self._sites is None:
                self._sites = [self._site(entry) for entry in self.agent.sites]
            return list(self._sites)
        if self.butler.config_qrs is None or self.butler.cert is None:
            return []
        return [
            SiteConfig(
                name=self.butler.config_qrs.host,
                qrs=self.butler.config_qrs,
                cert=self.butler.cert,
                license_monitor=self.license_monitor,
                license_release=self.license_release,
                influx_tags=tuple((t.name, t.value) for t in self.butler.influx_db.tag.static),
            )
        ]

    def _site(self, entry: SiteSettings) -> SiteConfig:
        shared = self.butler.qlik_sense_license
        feature = shared
        if entry.override:
            # Key by key over the shared block (both were validated on their own at load).
            merged = _deep_merge(shared.model_dump(by_alias=True), entry.override)
            feature = QlikSenseLicense.model_validate(merged)
        tags = [(t.name, t.value) for t in self.butler.influx_db.tag.static]
        tags += [(t.name, t.value) for t in entry.tags]
        tags.append(("site", entry.name))
        return SiteConfig(
            name=entry.name,
            qrs=entry.config_qrs,
            cert=entry.cert,
            license_monitor=feature.license_monitor,
            license_release=feature.license_release,
            influx_tags=tuple(tags),
            site_tag=True,
        )


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class SiteConfig(BaseModel):
    """One Sense site: its QRS connection, certificates, feature settings and static tags."""

    model_config = ConfigDict(frozen=True)

    name: str
    qrs: ConfigQRS
    cert: Cert
    license_monitor: LicenseMonitor
    license_release: LicenseRelease
    #: ``Butler.influxDb.tag.static``: applied first, feature tags win on a clash. For a site
    #: of ``Butler.licenseAgent.sites`` also its ``tags`` and ``site=<name>``.
    influx_tags: tuple[tuple[str, str], ...] = ()
    #: Whether every point carries ``site=<name>`` (sites from ``Butler.licenseAgent.sites``).
    site_tag: bool = False

    def static_tags(self, feature: str) -> dict[str, str]:
        block = self.license_monitor if feature == "license_monitor" else self.license_release
        tags = dict(self.influx_tags)
        tags.update((t.name, t.value) for t in block.destination.influx_db.tag.static)
        if self.site_tag:
            tags["site"] = self.name  # reserved: a feature tag cannot move a point to another site
        return tags


# --------------------------------------------------------------------------- loading


_ENV_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def resolve_path(value: str, context: Any) -> Path:
    """A path from the config: relative ones are taken from the config file's folder.

    Windows-style paths (``C:\\ProgramData\\...``) are kept as written on every OS.
    """
    text = value.strip()
    if PureWindowsPath(text).drive and os.name != "nt":
        return Path(text)  # a Windows path on a POSIX host: keep it verbatim
    path = Path(text).expanduser()
    base = (context or {}).get("base_dir") if isinstance(context, Mapping) else None
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return path


def _interpolate(node: Any, path: str, problems: list[str], env: Mapping[str, str]) -> Any:
    """Replace ``${env:NAME}`` in every string; report unset variables by key path."""
    if isinstance(node, dict):
        return {
            k: _interpolate(v, f"{path}.{k}" if path else str(k), problems, env)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", problems, env) for i, v in enumerate(node)]
    if isinstance(node, str) and "${env:" in node:
        for start in re.finditer(r"\$\{env:", node):
            if not _ENV_RE.match(node, start.start()):
                problems.append(
                    f"{path}: '${{env:' must be followed by a variable name and '}}': write"
                    " ${env:NAME} with a name of letters, digits and '_' (one variable, not"
                    " nested)"
                )
                return node  # as written: reported here, not again as an empty value

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                problems.append(
                    f"{path}: environment variable {name} is not set"
                    f" (set it, or write the value in the file instead of ${{env:{name}}})"
                )
                return ""
            return env[name]

        # One pass: a variable's value is used as it is, never read for ${env:} again.
        return _ENV_RE.sub(sub, node)
    return node


def _model_names() -> set[str]:
    names: set[str] = set()
    stack: list[type] = [_Model, _Strict]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            names.add(sub.__name__)
            stack.append(sub)
    return names


#: Branch labels pydantic puts into the location of an error inside a union (``str | int``).
_UNION_TAGS = {"str", "int", "float", "bool", "none", "list", "dict"}


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    models = _model_names()
    for index, item in enumerate(loc):
        if isinstance(item, int):
            parts.append(f"[{item}]")
            continue
        text = str(item)
        if text.startswith(("function-", "literal[", "union[")) or "[" in text:
            continue  # pydantic's internal union/validator branch names
        if index > 0 and (text in _UNION_TAGS or text in models):
            continue  # the branch of a union (``MaxReleases | None``), not a key of the file
        parts.append(("." if parts else "") + text)
    return "".join(parts)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_SECRET_WORDS = ("password", "token", "secret")


def _shown(value: Any, loc: tuple[Any, ...]) -> str:
    """The bad value as the message shows it: secrets hidden, sections summarised."""
    last = str(loc[-1]).lower() if loc else ""
    if any(word in last for word in _SECRET_WORDS):
        return "(hidden)"
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return str(value).lower()  # as written in YAML
    if isinstance(value, dict):
        keys = ", ".join(map(str, list(value)[:5])) + (", ..." if len(value) > 5 else "")
        return f"a section (keys: {keys})" if value else "an empty section"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    return _short(value)


def _expected(err: Mapping[str, Any]) -> str:
    """What the key expects, in the words of a config file rather than of Python types."""
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    simple = {
        "int_parsing": "expected a whole number",
        "int_type": "expected a whole number",
        "int_from_float": "expected a whole number",
        "float_parsing": "expected a number",
        "float_type": "expected a number",
        "bool_parsing": "expected true or false",
        "bool_type": "expected true or false",
        "string_type": "expected text",
        "list_type": "expected a list (lines starting with '- ')",
        "dict_type": "expected a section of 'key: value' lines",
        "model_type": "expected a section of 'key: value' lines",
        "model_attributes_type": "expected a section of 'key: value' lines",
    }
    if kind in simple:
        return simple[kind]
    bounds = {
        "greater_than_equal": (">=", "ge"),
        "greater_than": (">", "gt"),
        "less_than_equal": ("<=", "le"),
        "less_than": ("<", "lt"),
    }
    if kind in bounds:
        sign, key = bounds[kind]
        bound = ctx.get(key)
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"expected a number {sign} {bound}"
    if kind == "string_too_short":
        return "expected a non-empty value"
    if kind in ("literal_error", "enum"):
        return f"expected {ctx.get('expected')}"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]


def format_validation_error(exc: ValidationError, data: Any) -> list[str]:
    """One line per problem: ``key.path: got VALUE; expected ...``. Secrets are not echoed.

    Errors of the branches of one union (``rotation: str | int``) are merged into one line.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    locs: dict[str, tuple[Any, ...]] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        path = _loc_to_path(loc) or "Butler"
        groups.setdefault(path, []).append(err)
        locs.setdefault(path, tuple(x for x in loc if str(x) not in _UNION_TAGS))
    problems = []
    for path, errors in groups.items():
        loc = locs[path]
        kinds = {e.get("type") for e in errors}
        if "extra_forbidden" in kinds:
            problems.append(f"{path}: unknown key; {_did_you_mean(loc, data)}")
            continue
        if "missing" in kinds:
            info = _field_at(loc)
            what = info.description if info is not None and info.description else ""
            what = f"; {what[:1].lower()}{what[1:]}" if what else ""
            problems.append(f"{path}: required key is missing{what}")
            continue
        if kinds & {"model_type", "dict_type"}:
            section = _section_model(loc)
            if section is not None:
                keys = ", ".join(info.alias or name for name, info in section.model_fields.items())
                problems.append(
                    f"{path}: got {_shown(errors[0].get('input'), loc)}; expected a section with"
                    f" the keys {keys}"
                )
                continue
        wanted = list(dict.fromkeys(_expected(e) for e in errors))
        if len(wanted) > 1 and all(w.startswith("expected ") for w in wanted):
            # One line for the branches of a union: "expected text or a whole number".
            wanted = ["expected " + " or ".join(w.removeprefix("expected ") for w in wanted)]
        expected = "; ".join(wanted)
        problems.append(f"{path}: got {_shown(errors[0].get('input'), loc)}; {expected}")
    return problems


def _model_at(loc: tuple[Any, ...]) -> Any:
    """The model class that holds the last key of ``loc`` (``None`` if it cannot be told)."""
    model: Any = AgentConfig
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        info = _field_in(model, item)
        if info is None:
            return None
        model = _unwrap_model(info.annotation)
        if model is None:
            return None
    return model


def _field_in(model: Any, key: Any) -> Any:
    for name, info in (getattr(model, "model_fields", None) or {}).items():
        if key in (name, info.alias):
            return info
    return None


def _section_model(loc: tuple[Any, ...]) -> Any:
    """The model expected at ``loc`` (also for a list item such as ``user[1]``)."""
    while loc and isinstance(loc[-1], int):
        loc = loc[:-1]
    info = _field_at(loc)
    return _unwrap_model(info.annotation) if info is not None else None


def _field_at(loc: tuple[Any, ...]) -> Any:
    model = _model_at(loc)
    return _field_in(model, loc[-1]) if model is not None and loc else None


def _did_you_mean(loc: tuple[Any, ...], data: Any) -> str:
    model = _model_at(loc)
    fields = getattr(model, "model_fields", {}) or {}
    allowed = sorted(info.alias or name for name, info in fields.items())
    close = _close_key(str(loc[-1]), allowed)
    hint = f"did you mean {close!r}? " if close else ""
    return f"{hint}allowed keys here: {', '.join(allowed)}"


def _close_key(key: str, allowed: list[str], cutoff: float = 0.6) -> str | None:
    for candidate in allowed:
        if candidate.lower() == key.lower():
            return candidate  # only the case differs: configQrs for configQRS
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=cutoff)
    return close[0] if close else None


def _unwrap_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _ignored_key_warnings(data: Any) -> list[str]:
    """Unknown keys in the Butler sections the agent shares (where they are ignored, since
    Butler's other features use them) that look like a misspelt key the agent reads."""
    warnings: list[str] = []

    def walk(model: Any, node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        fields = {info.alias or name: info for name, info in model.model_fields.items()}
        for key, value in node.items():
            info = fields.get(key)
            if info is None:
                if model.model_config.get("extra") == "ignore":
                    close = _close_key(str(key), sorted(fields), cutoff=0.8)
                    if close:
                        warnings.append(
                            f"{path}.{key}: unknown key, ignored; did you mean {close!r}?"
                        )
                continue
            sub = _unwrap_model(info.annotation)
            if sub is not None:
                walk(sub, value, f"{path}.{key}")

    if isinstance(data, dict):
        walk(Butler, data.get("Butler"), "Butler")
    return warnings


_BOOL = TypeAdapter(bool)


def _is_true(value: Any) -> bool:
    try:
        return _BOOL.validate_python(value)
    except ValidationError:
        return False  # reported by the model validation


def _get(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _cross_section_problems(data: Any) -> list[str]:
    """Rules that span sections, checked on the raw document so they are reported together
    with every other problem (a model validator would only run once the rest is valid)."""
    butler = _get(data, "Butler")
    if not isinstance(butler, dict):
        return []
    problems = []
    enabled = [
        f"qlikSenseLicense.{name}"
        for name in ("licenseMonitor", "licenseRelease", "serverLicenseMonitor")
        if _is_true(_get(butler, "qlikSenseLicense", name, "enable"))
    ]
    sites = _get(butler, "licenseAgent", "sites")
    if enabled and not (isinstance(sites, list) and sites):
        why = " and ".join(enabled) + (" are" if len(enabled) > 1 else " is") + " enabled"
        if butler.get("configQRS") is None:
            problems.append(
                f"Butler.configQRS: required key is missing; needed because {why}: add host"
                " (the Sense central node), port (4242) and headers.static with X-Qlik-User"
            )
        if butler.get("cert") is None:
            problems.append(
                f"Butler.cert: required key is missing; needed because {why}: add clientCert,"
                " clientCertKey and clientCertCA, the paths of client.pem, client_key.pem and"
                f" root.pem {_CERT_HINT}"
            )
    influx = butler.get("influxDb")
    if isinstance(influx, dict) and _is_true(influx.get("enable")):
        version = influx.get("version", 1)
        needed = {2: ("org", "bucket", "token"), 3: ("database", "token")}.get(version, ())
        what = {
            "org": "the organization that owns the bucket",
            "bucket": "the bucket to write to",
            "database": "the database to write to",
            "token": "an API token with write access; ${env:INFLUX_TOKEN} keeps it out of the file",
        }
        for key in needed:
            value = influx.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                problems.append(
                    f"Butler.influxDb.{key}: required key is missing for InfluxDB version"
                    f" {version}; {what[key]}"
                )
    return problems


#: Keys whose values are paths, for messages that show the path as the user wrote it.
_PATH_KEYS = (
    ("cert", "clientCert"),
    ("cert", "clientCertKey"),
    ("cert", "clientCertCA"),
    ("influxDb", "caCert"),
    ("licenseAgent", "logging", "file"),
    ("licenseAgent", "stateDir"),
    ("licenseAgent", "destinations", "sqlite", "path"),
)


def _written_paths(data: Any) -> dict[str, str]:
    written = {}
    for keys in _PATH_KEYS:
        value = _get(data, "Butler", *keys)
        if isinstance(value, str) and value.strip():
            written["Butler." + ".".join(keys)] = value.strip()
    return written


def parse_config(
    data: Any,
    *,
    source: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Validate an already-parsed YAML document. Raises :class:`ConfigError` with all problems.

    Pure: no file is opened (see :func:`agent.certificates.check_files` for the certificate
    files).
    """
    label = str(source) if source else None
    if not isinstance(data, dict) or "Butler" not in data:
        if data is None:
            found = "an empty document"
        elif isinstance(data, dict):
            found = f"top-level keys {sorted(map(str, data))}"
        else:
            found = _short(data)
        raise ConfigError(
            [f"the root key must be 'Butler' (as in a Butler config file); found {found}"], label
        )
    problems: list[str] = []
    data = _interpolate(data, "", problems, os.environ if env is None else env)
    base_dir = source.parent if source else Path.cwd()
    config: AgentConfig | None = None
    try:
        config = AgentConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems.extend(format_validation_error(exc, data))
    problems.extend(_cross_section_problems(data))
    if problems or config is None:
        raise ConfigError(problems, label)
    config = config.model_copy(update={"source": source})
    config._load_warnings = tuple(_ignored_key_warnings(data))
    config._written_paths = _written_paths(data)
    return config


def load_config(path: str | os.PathLike[str] | None = None) -> AgentConfig:
    """Read and validate a config file (``path``, else ``$LICENSE_AGENT_CONFIG``, else
    ``./config.yaml``). Raises :class:`ConfigError` for every user mistake."""
    chosen = Path(path) if path else Path(os.environ.get(ENV_VAR) or DEFAULT_CONFIG)
    try:
        document = read_yaml_file(chosen)
    except FileNotFoundError:
        raise ConfigError(
            [
                f"config file {chosen} not found; pass --config FILE, set {ENV_VAR},"
                f" or create {DEFAULT_CONFIG} (start from config.example.yaml)"
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read config file {chosen}: {exc}"]) from None
    except YamlError as exc:
        raise ConfigError([f"{chosen}: {problem}" for problem in exc.problems]) from None
    source = chosen.resolve()
    try:
        config = parse_config(document.data, source=source)
    except ConfigError as exc:
        # Repeated keys are reported together with every other problem of the file.
        raise ConfigError(document.problems + exc.problems, exc.source) from None
    if document.problems:
        raise ConfigError(document.problems, str(source))
    return config


# --------------------------------------------------------------------------- after loading


def written_path(config: AgentConfig, key: str, resolved: Path | None) -> str:
    """A path for a message: as the user wrote it, plus the resolved path when they differ."""
    written = config._written_paths.get(key)
    if resolved is None:
        return written or "(not set)"
    if written is None or written == str(resolved):
        return str(resolved)
    return f"{written} (resolved to {resolved})"


def _needs_qrs(config: AgentConfig) -> bool:
    return config.license_monitor.enable or config.license_release.enable


def config_warnings(config: AgentConfig) -> list[str]:
    """Settings that are valid but probably not what the user wants, one sentence each.

    ``config check`` prints them and ``license-agent run`` logs them at start.
    """
    warnings = list(config._load_warnings)
    base = "Butler.qlikSenseLicense"
    release = config.license_release
    if release.enable:
        for name, license_type in release.license_type.enabled().items():
            days = license_type.release_threshold_days
            if days < 7:
                warnings.append(
                    f"{base}.licenseRelease.licenseType.{name}.releaseThresholdDays is {days}:"
                    " under 7 days QRS does not free a removed allocation but quarantines it"
                    " for 7 days after its last use (the user can get it back); use 7 or more"
                    " to free licenses at once"
                )
        if not release.license_type.enabled():
            warnings.append(
                f"{base}.licenseRelease is enabled but no licenseType (professional, analyzer)"
                " has enable: true, so nothing is released"
            )
        if not release.dry_run and release.max_releases_per_run is None:
            warnings.append(
                f"{base}.licenseRelease.maxReleasesPerRun is not set while dryRun is false: no"
                " limit on how many licenses one run may release (e.g. maxReleasesPerRun: 50,"
                " or '10%')"
            )
    for key, feature in (("licenseMonitor", config.license_monitor), ("licenseRelease", release)):
        if not feature.enable:
            continue
        note = parse_frequency(feature.frequency).note
        if note:
            warnings.append(f"{base}.{key}.frequency: {note}")
        if feature.destination.influx_db.enable and not config.butler.influx_db.enable:
            warnings.append(
                f"{base}.{key}.destination.influxDb.enable is true but Butler.influxDb.enable is"
                " false, so nothing is written to InfluxDB"
            )
    if config.license_monitor.enable and not any(
        "license_monitor" in d.features for d in enabled_destinations(config)
    ):
        warnings.append(
            f"{base}.licenseMonitor is enabled but no destination receives its data: enable"
            " licenseMonitor.destination.influxDb (with Butler.influxDb) or a destination under"
            " Butler.licenseAgent.destinations"
        )
    connections = (
        [
            (f"Butler.licenseAgent.sites[{i}]", s.config_qrs)
            for i, s in enumerate(config.agent.sites)
        ]
        if config.agent.sites
        else [("Butler", config.butler.config_qrs)]
    )
    for prefix, qrs in connections:
        if qrs is not None and _needs_qrs(config) and not qrs.use_ssl:
            warnings.append(
                f"{prefix}.configQRS.useSSL is false: requests, the X-Qlik-User header and the"
                " answers cross the network unencrypted, no certificate is used and nothing"
                " proves the server is QRS; QRS listens with TLS on port 4242: set useSSL: true"
            )
        elif qrs is not None and _needs_qrs(config) and not qrs.reject_unauthorized:
            warnings.append(
                f"{prefix}.configQRS.rejectUnauthorized is false: the Sense server's certificate"
                " is not verified, so anyone on the network path could pose as it; set it to"
                f" true ({prefix}.cert.clientCertCA, root.pem, is the CA that signed it)"
            )
    influx = config.butler.influx_db
    if influx.enable and influx.use_https and not influx.verify_tls:
        warnings.append(
            "Butler.influxDb.verifyTls is false: the InfluxDB server's certificate is not"
            " verified; set caCert to the CA file that signed it instead"
        )
    return warnings


@dataclass(frozen=True)
class DestinationSummary:
    """An enabled destination as ``config check`` shows it; no secrets in ``where``."""

    name: str
    where: str
    features: tuple[str, ...]


def enabled_destinations(config: AgentConfig) -> list[DestinationSummary]:
    """The destinations the config enables and which features' data each receives."""
    found = []
    influx = config.butler.influx_db
    if influx.enable:
        features = []
        if config.license_monitor.destination.influx_db.enable:
            features.append("license_monitor")
        if config.license_release.destination.influx_db.enable:
            features.append("license_release")
        server = getattr(config, "server_license_monitor", None)
        if server is not None and server.destination.influx_db.enable:
            features.append("server_license")
        if influx.version == 1:
            detail = f"database {influx.db_name}"
            if influx.auth.enable:
                detail += f", user {influx.auth.username!r}"
        elif influx.version == 2:
            detail = f"org {influx.org}, bucket {influx.bucket}, token set"
        else:
            detail = f"database {influx.database}, token set"
        found.append(
            DestinationSummary(
                "influxDb", f"InfluxDB {influx.version}.x {influx.url}, {detail}", tuple(features)
            )
        )
    destinations = config.agent.destinations
    sqlite = destinations.sqlite
    if sqlite.enable:
        path = sqlite.path or config.base_dir / "license-agent.sqlite"
        where = written_path(config, "Butler.licenseAgent.destinations.sqlite.path", path)
        found.append(DestinationSummary("sqlite", where, tuple(sqlite.features)))
    jsonl = destinations.jsonl
    if jsonl.enable:
        where = "standard output" if jsonl.path == "-" else jsonl.path
        found.append(DestinationSummary("jsonl", where, tuple(jsonl.features)))
    prometheus = getattr(destinations, "prometheus", None)
    if prometheus is not None and prometheus.enable:
        found.append(
            DestinationSummary(
                "prometheus",
                f"http://{prometheus.host}:{prometheus.port}/metrics",
                tuple(prometheus.features),
            )
        )
    return found


#: The JSON Schema shipped for editors; regenerate with ``python -m agent.config_schema``.
SCHEMA_PATH = Path(__file__).parent / "schema" / "config.schema.json"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the config file, generated from the models (aliases as keys)."""
    schema = AgentConfig.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://example.invalid/sense-license-agent/config.schema.json",
        "title": "sense-license-agent configuration (a Butler config file)",
        "description": "Keys the agent reads from a Butler config. Other Butler sections are"
        " allowed and ignored. Generated from agent/config.py; do not edit by hand.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }


__all__ = [
    "AgentConfig",
    "ConfigError",
    "DestinationSummary",
    "ScheduleError",
    "SiteConfig",
    "config_warnings",
    "enabled_destinations",
    "json_schema",
    "load_config",
    "parse_config",
]
