"""Load and validate the YAML configuration: the only module that knows the file's shape.

The file is a Butler config (root key ``Butler``): the agent reads ``configQRS``, ``cert``,
``influxDb`` and ``qlikSenseLicense`` exactly as Butler documents them, ignores every other
Butler section, and keeps its own additions under ``Butler.licenseAgent``. Validation is done
by pydantic models; :func:`load_config` turns every problem into one :class:`ConfigError` that
lists all of them, each with the key path, the bad value and what is expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path, PureWindowsPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.schedule import ScheduleError, parse_frequency

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


# --------------------------------------------------------------------------- building blocks


class _Model(BaseModel):
    """Base for Butler sections shared with other Butler features: unknown keys are ignored."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class _Strict(BaseModel):
    """Base for sections the agent owns: an unknown key is a typo and is reported."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


def _flag_value(value: Any) -> Any:
    # PyYAML turns unquoted yes/no/true/false into booleans; they still mean Yes/No.
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, str):
        return value.strip().lower()
    return value


#: Yes / No / Ignore in any case, or the booleans PyYAML makes of unquoted yes/no/true/false.
FlagRule = Annotated[Literal["yes", "no", "ignore"], BeforeValidator(_flag_value)]


def _none_to_list(value: Any) -> Any:
    return [] if value is None else value


def _to_str(value: Any) -> Any:
    # Tag values such as `value: 2026` or `value: true` are meant as text.
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_to_str)]


class StaticTag(_Strict):
    name: Text = Field(min_length=1)
    value: Text


class TagBlock(_Model):
    static: Annotated[list[StaticTag], BeforeValidator(_none_to_list)] = []


class FeatureInfluxDb(_Strict):
    enable: bool = False
    tag: TagBlock = TagBlock()


class FeatureDestination(_Strict):
    influx_db: FeatureInfluxDb = Field(default=FeatureInfluxDb(), alias="influxDb")


def _check_frequency(value: str) -> str:
    parse_frequency(value)  # raises ScheduleError (a ValueError) with the supported forms
    return value


#: A later.js text schedule (``every 6 hours``), checked at load time.
Frequency = Annotated[str, Field(min_length=1), AfterValidator(_check_frequency)]


# --------------------------------------------------------------------------- the feature


class LicenseMonitor(_Strict):
    enable: bool = False
    frequency: Frequency = "every 6 hours"
    destination: FeatureDestination = FeatureDestination()


class NeverReleaseUser(_Strict):
    user_dir: Text = Field(alias="userDir", min_length=1)
    user_id: Text = Field(alias="userId", min_length=1)


class NeverReleaseCustomProperty(_Strict):
    name: Text = Field(min_length=1)
    value: Text


class NeverRelease(_Strict):
    user: Annotated[list[NeverReleaseUser], BeforeValidator(_none_to_list)] = []
    tag: Annotated[list[Text], BeforeValidator(_none_to_list)] = []
    custom_property: Annotated[
        list[NeverReleaseCustomProperty], BeforeValidator(_none_to_list)
    ] = Field(default=[], alias="customProperty")
    user_directory: Annotated[list[Text], BeforeValidator(_none_to_list)] = Field(
        default=[], alias="userDirectory"
    )
    inactive: FlagRule = "ignore"
    blocked: FlagRule = "ignore"
    removed_externally: FlagRule = Field(default="ignore", alias="removedExternally")


class LicenseTypeRelease(_Strict):
    enable: bool = False
    release_threshold_days: int = Field(default=30, alias="releaseThresholdDays", ge=1, le=36500)


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
        if isinstance(value, bool):
            return value  # let pydantic report it
        if isinstance(value, int):
            return {"count": value}
        if isinstance(value, str):
            m = _PERCENT_RE.match(value)
            if m:
                return {"percent": float(m.group(1))}
            if value.strip().isdigit():
                return {"count": int(value)}
        return value

    def limit_for(self, allocated: int) -> int | None:
        """The largest number of releases allowed for a type with ``allocated`` allocations."""
        limits = []
        if self.count is not None:
            limits.append(self.count)
        if self.percent is not None:
            limits.append(int(allocated * self.percent / 100))
        return min(limits) if limits else None


class LicenseRelease(_Strict):
    enable: bool = False
    dry_run: bool = Field(default=True, alias="dryRun")
    frequency: Frequency = "every 24 hours"
    never_release: NeverRelease = Field(default=NeverRelease(), alias="neverRelease")
    license_type: LicenseTypes = Field(default=LicenseTypes(), alias="licenseType")
    destination: FeatureDestination = FeatureDestination()
    max_releases_per_run: MaxReleases | None = Field(default=None, alias="maxReleasesPerRun")
    delete_concurrency: int = Field(default=4, alias="deleteConcurrency", ge=1, le=64)


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


class ConfigQRS(_Model):
    host: str = Field(min_length=1)
    port: int = Field(default=4242, ge=1, le=65535)
    use_ssl: bool = Field(default=True, alias="useSSL")
    reject_unauthorized: bool = Field(default=True, alias="rejectUnauthorized")
    headers: Headers = Headers()
    #: Agent additions: seconds to wait for a connection and for an answer.
    connect_timeout: float = Field(default=10.0, alias="connectTimeout", gt=0, le=600)
    read_timeout: float = Field(default=60.0, alias="readTimeout", gt=0, le=3600)
    retries: int = Field(default=4, ge=0, le=20)
    #: Parallel read requests (bulk user fetches).
    concurrency: int = Field(default=4, ge=1, le=64)

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


class Cert(_Model):
    client_cert: Path = Field(alias="clientCert")
    client_cert_key: Path = Field(alias="clientCertKey")
    client_cert_ca: Path = Field(alias="clientCertCA")

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
    enable: bool = False
    version: Literal[1, 2, 3] = 1
    host_ip: str = Field(default="127.0.0.1", alias="hostIP", min_length=1)
    host_port: int = Field(default=8086, alias="hostPort", ge=1, le=65535)
    #: Agent additions: HTTPS and a custom CA file for the InfluxDB server.
    use_https: bool = Field(default=False, alias="useHttps")
    ca_cert: Path | None = Field(default=None, alias="caCert")
    verify_tls: bool = Field(default=True, alias="verifyTls")
    timeout: float = Field(default=10.0, gt=0, le=600)
    auth: InfluxAuth = InfluxAuth()
    db_name: str = Field(default="senseops", alias="dbName")
    retention_policy: RetentionPolicy = Field(default=RetentionPolicy(), alias="retentionPolicy")
    tag: TagBlock = TagBlock()
    org: str = ""
    bucket: str = ""
    token: str = ""
    database: str = ""

    @field_validator("ca_cert", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.strip():
            return resolve_path(value, info.context)
        return value or None

    @property
    def url(self) -> str:
        scheme = "https" if self.use_https else "http"
        return f"{scheme}://{self.host_ip}:{self.host_port}"


# --------------------------------------------------------------------------- agent additions


class LoggingSettings(_Strict):
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] | None = (
        None
    )
    file: Path | None = None
    rotation: str = "10 MB"
    retention: str = "30 days"
    json_lines: bool = Field(default=False, alias="json")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().upper()
            return "WARNING" if value == "WARN" else value
        return value

    @field_validator("file", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.strip():
            return resolve_path(value, info.context)
        return value or None


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
    path: Path | None = None
    features: list[Literal["license_monitor", "license_release", "server_license"]] = list(
        AGENT_FEATURES
    )

    @field_validator("path", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.strip():
            return resolve_path(value, info.context)
        return value or None


class JsonlDestination(_Strict):
    enable: bool = False
    #: A file, or ``-`` for standard output.
    path: str = "-"
    features: list[Literal["license_monitor", "license_release", "server_license"]] = list(
        AGENT_FEATURES
    )


class Destinations(_Model):
    sqlite: SqliteDestination = SqliteDestination()
    jsonl: JsonlDestination = JsonlDestination()


class LicenseAgent(_Model):
    """``Butler.licenseAgent``: everything the agent adds to a Butler config."""

    logging: LoggingSettings = LoggingSettings()
    plugins: PluginSettings = PluginSettings()
    destinations: Destinations = Destinations()
    #: Folder for the outbox, the release journal and the lock (default: next to the config).
    state_dir: Path | None = Field(default=None, alias="stateDir")
    #: Run each enabled job once when ``license-agent run`` starts.
    run_at_start: bool = Field(default=True, alias="runAtStart")

    @field_validator("state_dir", mode="before")
    @classmethod
    def _resolve(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value.strip():
            return resolve_path(value, info.context)
        return value or None


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
    log_level: str | None = Field(default=None, alias="logLevel")

    @model_validator(mode="after")
    def _needs_qrs(self) -> Butler:
        feature = self.qlik_sense_license
        if feature.license_monitor.enable or feature.license_release.enable:
            missing = [
                key
                for key, value in (("Butler.configQRS", self.config_qrs), ("Butler.cert", self.cert))
                if value is None
            ]
            if missing:
                raise ValueError(
                    f"{' and '.join(missing)} must be set when licenseMonitor or licenseRelease"
                    " is enabled: the agent needs the QRS host and the exported certificates"
                )
        return self


class AgentConfig(_Model):
    butler: Butler = Field(alias="Butler")
    #: Where the config was read from (not part of the file).
    source: Path | None = Field(default=None, exclude=True)

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
        return self.agent.plugins.settings.get(name) or {}

    def sites(self) -> list[SiteConfig]:
        """The Sense sites this agent works on (one, from the Butler sections)."""
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


class SiteConfig(BaseModel):
    """One Sense site: its QRS connection, certificates, feature settings and static tags."""

    model_config = ConfigDict(frozen=True)

    name: str
    qrs: ConfigQRS
    cert: Cert
    license_monitor: LicenseMonitor
    license_release: LicenseRelease
    #: ``Butler.influxDb.tag.static``: applied first, feature tags win on a clash.
    influx_tags: tuple[tuple[str, str], ...] = ()

    def static_tags(self, feature: str) -> dict[str, str]:
        block = self.license_monitor if feature == "license_monitor" else self.license_release
        tags = dict(self.influx_tags)
        tags.update((t.name, t.value) for t in block.destination.influx_db.tag.static)
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
        return {k: _interpolate(v, f"{path}.{k}" if path else str(k), problems, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{path}[{i}]", problems, env) for i, v in enumerate(node)]
    if isinstance(node, str) and "${env:" in node:

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                problems.append(
                    f"{path}: environment variable {name} is not set"
                    f" (set it, or write the value in the file instead of ${{env:{name}}})"
                )
                return ""
            return env[name]

        return _ENV_RE.sub(sub, node)
    return node


def _loc_to_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif str(item).startswith(("function-", "literal[", "union[")) or "[" in str(item):
            continue  # pydantic's internal union/validator branch names
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_SECRET_KEYS = {"password", "token", "value"}


def format_validation_error(exc: ValidationError, data: Any) -> list[str]:
    """One line per problem: ``key.path: got VALUE; expected ...``. Secrets are not echoed."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        path = _loc_to_path(loc) or "Butler"
        msg = err.get("msg", "invalid")
        kind = err.get("type", "")
        last = str(loc[-1]) if loc else ""
        if kind == "extra_forbidden":
            problems.append(f"{path}: unknown key; {_did_you_mean(loc, data)}")
            continue
        if kind == "missing":
            problems.append(f"{path}: required key is missing")
            continue
        value = err.get("input")
        shown = "(hidden)" if last in {"password", "token"} else _short(value)
        msg = msg.removeprefix("Value error, ")
        problems.append(f"{path}: got {shown}; {msg[0].lower() + msg[1:] if msg else msg}")
    return problems


def _did_you_mean(loc: tuple[Any, ...], data: Any) -> str:
    import difflib

    # Find the model that rejected the key to list the keys it accepts.
    model: Any = AgentConfig
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields:
            break
        found = None
        for name, info in fields.items():
            if item in (name, info.alias):
                found = info.annotation
                break
        if found is None:
            break
        model = _unwrap_model(found)
    fields = getattr(model, "model_fields", {}) or {}
    allowed = sorted(info.alias or name for name, info in fields.items())
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"{hint}allowed keys here: {', '.join(allowed)}"


def _unwrap_model(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def parse_config(
    data: Any,
    *,
    source: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> AgentConfig:
    """Validate an already-parsed YAML document. Raises :class:`ConfigError` with all problems."""
    label = str(source) if source else None
    if not isinstance(data, dict) or "Butler" not in data:
        found = f"top-level keys {sorted(map(str, data))}" if isinstance(data, dict) else _short(data)
        raise ConfigError(
            [f"the root key must be 'Butler' (as in a Butler config file); found {found}"], label
        )
    problems: list[str] = []
    data = _interpolate(data, "", problems, os.environ if env is None else env)
    base_dir = source.parent if source else Path.cwd()
    try:
        config = AgentConfig.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems.extend(format_validation_error(exc, data))
        raise ConfigError(problems, label) from None
    if problems:
        raise ConfigError(problems, label)
    return config.model_copy(update={"source": source})


def load_config(path: str | os.PathLike[str] | None = None) -> AgentConfig:
    """Read and validate a config file (``path``, else ``$LICENSE_AGENT_CONFIG``, else
    ``./config.yaml``). Raises :class:`ConfigError` for every user mistake."""
    chosen = Path(path) if path else Path(os.environ.get(ENV_VAR) or DEFAULT_CONFIG)
    try:
        text = chosen.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            [
                f"config file {chosen} not found; pass --config FILE, set {ENV_VAR},"
                f" or create {DEFAULT_CONFIG} (start from config.example.yaml)"
            ]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read config file {chosen}: {exc}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            [f"{chosen}: not valid YAML{where}: {problem} (check indentation and quoting)"]
        ) from None
    return parse_config(data, source=chosen.resolve())


__all__ = [
    "AgentConfig",
    "ConfigError",
    "ScheduleError",
    "SiteConfig",
    "load_config",
    "parse_config",
]
