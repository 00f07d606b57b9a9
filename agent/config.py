"""The models of the config file: the only module that knows the file's shape.

The file is a Butler config (root key ``Butler``): the agent reads ``configQRS``, ``cert``,
``influxDb`` and ``qlikSenseLicense`` exactly as Butler documents them, ignores every other
Butler section, and keeps its own additions under ``Butler.licenseAgent``. The pydantic models
here hold the core's keys, the bases plugins build their settings on (``SettingsModel``,
``ButlerSection``, ``OptionalList``, ...) and the validated result (:class:`AgentConfig`, one
:class:`SiteConfig` per Sense site). :mod:`agent.config_compose` adds the sections plugins
declare to these models; :mod:`agent.config_load` reads a file and reports every problem at once
as one :class:`ConfigError`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from agent.models import SettingsSection
from agent.schedule import SUPPORTED_FORMS, ScheduleError, parse_frequency


class ConfigError(Exception):
    """A mistake in the configuration. ``problems`` lists every one found, one line each."""

    def __init__(
        self, problems: list[str], source: str | None = None, *, warnings: Sequence[str] = ()
    ) -> None:
        self.problems = problems
        self.source = source
        #: Warnings found beside the problems (shown with them: they often explain them).
        self.warnings = list(warnings)
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"{len(problems)} configuration {noun}{where}:\n{lines}")


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


#: The base of a plugin's settings model for a section the agent owns (unknown keys are typos).
SettingsModel = _Strict
#: The base of a plugin's settings model for a section Butler shares (unknown keys ignored).
ButlerSection = _Model


class PluginSlot(_Checked):
    """Base for sections whose keys belong to plugins (``neverRelease``, ``licenseType``,
    ``licenseAgent.destinations``, a feature's ``destination``): each plugin adds its key with
    ``sla_settings``, and an unknown key is a plugin that is not loaded, or a typo."""

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


#: ``list[X]`` where an empty YAML value (``tag:``) means an empty list: ``OptionalList[str]``.
class _OptionalList:
    def __getitem__(self, item: Any) -> Any:
        return Annotated[list[item], BeforeValidator(_none_to_list)]


OptionalList = _OptionalList()


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


class FeatureDestination(PluginSlot):
    """A feature's ``destination``: Butler's ``influxDb`` (the influxdb plugin) and others."""


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


class NeverRelease(PluginSlot):
    """``licenseRelease.neverRelease``: one key per rule plugin (``user``, ``tag``, ...)."""


class LicenseTypeRelease(_Strict):
    """The release settings every releasable license type has; a license-type plugin
    declares ``licenseRelease.licenseType.<name>`` with this model or a subclass of it."""

    enable: bool = Field(default=False, description="Release allocations of this license type")
    release_threshold_days: int = Field(
        default=30,
        alias="releaseThresholdDays",
        ge=1,
        le=36500,
        description="Days without use after which an allocation is released (QRS quarantines,"
        " rather than frees, allocations used in the last 7 days)",
    )


class LicenseTypes(PluginSlot):
    """``licenseRelease.licenseType``: one key per license-type plugin that can release."""

    def enabled(self) -> dict[str, Any]:
        """The enabled types by key, in the order the plugins are loaded (professional first,
        the order the existing tool uses)."""
        found = {}
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value is not None and getattr(value, "enable", False):
                found[info.alias or name] = value
        return found


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


class QlikSenseLicense(_Model):
    license_monitor: LicenseMonitor = Field(default=LicenseMonitor(), alias="licenseMonitor")
    license_release: LicenseRelease = Field(default=LicenseRelease(), alias="licenseRelease")


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


#: Where the certificate files are found; also in the message for a missing `cert` section.
CERT_HINT = (
    r"found on the Sense server in C:\ProgramData\Qlik\Sense\Repository\Exported Certificates"
    r"\.Local Certificates (or exported in the QMC: Certificates > Export, PEM format)"
)


class Cert(_Model):
    client_cert: Path = Field(alias="clientCert", description=f"Path of client.pem, {CERT_HINT}")
    client_cert_key: Path = Field(
        alias="clientCertKey", description=f"Path of client_key.pem, {CERT_HINT}"
    )
    client_cert_ca: Path = Field(alias="clientCertCA", description=f"Path of root.pem, {CERT_HINT}")

    @field_validator("client_cert", "client_cert_key", "client_cert_ca", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.strip():
            return resolve_path(value, info.context)
        return value


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
#: Which features' points a destination of ``licenseAgent.destinations`` receives.
Features = Annotated[
    list[Literal["license_monitor", "license_release", "server_license"]],
    Field(description="The features whose points it receives"),
]


class Destinations(PluginSlot):
    """``licenseAgent.destinations``: one key per destination plugin (``sqlite``, ...)."""


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
    #: The plugin sections the model was composed from (see compose_model).
    _sections: tuple[PluginSection, ...] = PrivateAttr(default=())
    #: The plugin host that loaded those plugins, when the config was loaded through it.
    _plugin_host: Any = PrivateAttr(default=None)

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
    def state_dir(self) -> Path:
        return self.agent.state_dir or self.base_dir

    def plugin_settings(self, name: str) -> Mapping[str, Any]:
        """``Butler.licenseAgent.plugins.settings.<name>``: free-form settings by plugin name
        (kept for older plugins; a plugin should declare a section with ``sla_settings``)."""
        return self.agent.plugins.settings.get(name) or {}

    def settings(self, path: str) -> Any:
        """The validated value at ``path`` (dotted, below ``Butler``, as users write it), or
        ``None`` when the key is absent from the file or its plugin is disabled. A path no
        section has raises ``KeyError``."""
        if path in self._disabled_paths():
            return None
        return settings_at(self.butler, path)

    def setting_paths(self) -> set[str]:
        """The paths of the sections of the loaded plugins."""
        return {o.path for o in self._sections if o.loaded}

    def _disabled_paths(self) -> set[str]:
        return {o.path for o in self._sections if not o.loaded}

    @property
    def plugin_sections(self) -> tuple[PluginSection, ...]:
        """The sections of the loaded plugins this config was validated with."""
        return self._sections

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
        site = SiteConfig(
            name=self.butler.config_qrs.host,
            qrs=self.butler.config_qrs,
            cert=self.butler.cert,
            license_monitor=self.license_monitor,
            license_release=self.license_release,
            qlik_sense_license=self.butler.qlik_sense_license,
            influx_tags=_static_tags(self.settings("influxDb")),
        )
        site._shared = self
        return [site]

    def _site(self, entry: SiteSettings) -> SiteConfig:
        shared = self.butler.qlik_sense_license
        feature = shared
        if entry.override:
            # Key by key over the shared block (both were validated on their own at load).
            # Only what the file sets: settings(path) tells absent keys from defaults.
            merged = _deep_merge(
                shared.model_dump(by_alias=True, exclude_unset=True), entry.override
            )
            feature = type(shared).model_validate(merged)
        tags = list(_static_tags(self.settings("influxDb")))
        tags += [(t.name, t.value) for t in entry.tags]
        tags.append(("site", entry.name))
        site = SiteConfig(
            name=entry.name,
            qrs=entry.config_qrs,
            cert=entry.cert,
            license_monitor=feature.license_monitor,
            license_release=feature.license_release,
            qlik_sense_license=feature,
            influx_tags=tuple(tags),
            site_tag=True,
        )
        site._shared = self
        return site


def _static_tags(block: Any) -> tuple[tuple[str, str], ...]:
    """Butler's ``tag.static`` list of a section (``influxDb``, a feature's
    ``destination.influxDb``): the tags Butler puts on every point of that scope."""
    static = getattr(getattr(block, "tag", None), "static", None) or ()
    return tuple((t.name, t.value) for t in static)


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
    #: The site's ``qlikSenseLicense`` block: the shared one with the site's overrides.
    qlik_sense_license: Any = None
    #: ``Butler.influxDb.tag.static``: applied first, feature tags win on a clash. For a site
    #: of ``Butler.licenseAgent.sites`` also its ``tags`` and ``site=<name>``.
    influx_tags: tuple[tuple[str, str], ...] = ()
    #: Whether every point carries ``site=<name>`` (sites from ``Butler.licenseAgent.sites``).
    site_tag: bool = False
    #: The whole config, for the keys a site cannot override.
    _shared: Any = PrivateAttr(default=None)

    def settings(self, path: str) -> Any:
        """The validated value at ``path`` for this site, or ``None`` when the key is absent.

        Keys below ``qlikSenseLicense`` are this site's (the shared block with the site's
        overrides); the others are the file's, which a site cannot override.
        """
        head, _, rest = path.partition(".")
        if head == "qlikSenseLicense" and self.qlik_sense_license is not None:
            return settings_at(self.qlik_sense_license, rest) if rest else self.qlik_sense_license
        return self._shared.settings(path) if self._shared is not None else None

    def static_tags(self, feature: str) -> dict[str, str]:
        key = "licenseMonitor" if feature == "license_monitor" else "licenseRelease"
        tags = dict(self.influx_tags)
        # Butler keeps a feature's tags in its destination.influxDb block; they go on the
        # feature's points for every destination.
        tags.update(_static_tags(self.settings(f"qlikSenseLicense.{key}.destination.influxDb")))
        if self.site_tag:
            tags["site"] = self.name  # reserved: a feature tag cannot move a point to another site
        return tags


# --------------------------------------------------------------------------- plugin sections
# What a config was composed from (agent.config_compose builds the model) and how a value is
# read by its path: here, because AgentConfig and SiteConfig keep and read them.


@dataclass(frozen=True)
class PluginSection:
    """A :class:`~agent.models.SettingsSection` and the plugin that declared it.

    ``loaded`` is false for a built-in plugin that ``Butler.licenseAgent.plugins.disable``
    turns off: its keys are still known (so the file can keep them switched off), but setting
    them is an error, since no plugin would read them.
    """

    plugin: str
    section: SettingsSection
    loaded: bool = True

    @property
    def path(self) -> str:
        return self.section.path


def settings_at(block: Any, path: str) -> Any:
    """The value at the dotted alias ``path`` below the model instance ``block``, or ``None``
    when a key on the way is absent from the file (a section's defaults are not "set")."""
    node = block
    for key in path.split("."):
        if not isinstance(node, BaseModel):
            return None  # an empty section, or one of a disabled plugin (kept as written)
        name = _attribute_names(type(node)).get(key)
        if name is None:
            raise KeyError(f"no section {path!r} in the config (is its plugin loaded?)")
        if name not in node.model_fields_set:
            return None
        node = getattr(node, name)
    return node


@lru_cache(maxsize=512)
def _attribute_names(model: type[BaseModel]) -> dict[str, str]:
    names = {}
    for name, info in model.model_fields.items():
        names[info.alias or name] = name
    return names


__all__ = [
    "AgentConfig",
    "ConfigError",
    "ScheduleError",
    "SiteConfig",
]
