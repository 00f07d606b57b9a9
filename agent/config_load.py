"""Reading a config file and validating it: every problem reported at once.

:func:`read_document` reads the YAML (``--config``, ``$LICENSE_AGENT_CONFIG`` or
``./config.yaml``); :func:`parse_config` replaces ``${env:NAME}``, validates the document
against the model composed for the loaded plugins (:mod:`agent.config_compose`) and adds the
rules pydantic cannot check alone (keys that span sections, keys of disabled plugins), then
raises one :class:`~agent.config.ConfigError` listing all of them, each with the key path, the
bad value and what is expected. :func:`agent.plugins.load_config` is the entry point that also
loads the plugins the file enables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from agent.config import (
    CERT_HINT,
    AgentConfig,
    Butler,
    ConfigError,
    PluginSection,
    PluginSettings,
    PluginSlot,
)
from agent.config_compose import SectionError, compose_model
from agent.config_errors import (
    close_key,
    field_in,
    format_validation_error,
    ignored_key_warnings,
    near_miss,
    short,
)
from agent.config_yaml import YamlError, read_yaml_file

#: The config file when none is given: ``$LICENSE_AGENT_CONFIG``, else ``./config.yaml``.
ENV_VAR = "LICENSE_AGENT_CONFIG"
DEFAULT_CONFIG = "config.yaml"

_ENV_RE = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


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
        known = [info.alias or name for name, info in Butler.model_fields.items()]
        if butler.get("configQRS") is None:
            hint = near_miss("configQRS", butler, known)
            problems.append(
                f"Butler.configQRS: required key is missing{hint}; needed because {why}: add host"
                " (the Sense central node), port (4242) and headers.static with X-Qlik-User"
            )
        if butler.get("cert") is None:
            hint = near_miss("cert", butler, known)
            problems.append(
                f"Butler.cert: required key is missing{hint}; needed because {why}: add clientCert,"
                " clientCertKey and clientCertCA, the paths of client.pem, client_key.pem and"
                f" root.pem {CERT_HINT}"
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
    sections: Sequence[PluginSection] = (),
) -> AgentConfig:
    """Validate an already-parsed YAML document. Raises :class:`ConfigError` with all problems.

    ``sections`` are the settings the loaded plugins declared (see
    :func:`agent.plugins.parse_config`, which loads the plugins the file enables and passes
    them); without them only the core's keys are known. Pure: no file is opened (see
    :func:`agent.certificates.check_files` for the certificate files).
    """
    label = str(source) if source else None
    if not isinstance(data, dict) or "Butler" not in data:
        if data is None:
            found = "an empty document"
        elif isinstance(data, dict):
            found = f"top-level keys {sorted(map(str, data))}"
            close = close_key("Butler", [str(k) for k in data], cutoff=0.75)
            if close:
                found += f" (did you mean 'Butler' for {close!r}?)"
        else:
            found = short(data)
        raise ConfigError(
            [f"the root key must be 'Butler' (as in a Butler config file); found {found}"], label
        )
    problems: list[str] = []
    data = _interpolate(data, "", problems, os.environ if env is None else env)
    base_dir = source.parent if source else Path.cwd()
    try:
        model = compose_model(tuple(sections))
    except SectionError as exc:
        raise ConfigError([f"a plugin's settings cannot be placed: {exc}"], label) from None
    config: AgentConfig | None = None
    try:
        config = model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems.extend(
            format_validation_error(
                exc, data, model, unknown_key_hint=_unknown_key_hint(sections), top="Butler"
            )
        )
    problems.extend(_cross_section_problems(data))
    problems.extend(_plugin_section_problems(data, sections))
    warnings = ignored_key_warnings(data, model) + _unused_shared_sections(data, sections)
    if problems or config is None:
        raise ConfigError(problems, label, warnings=warnings)
    config = config.model_copy(update={"source": source})
    config._load_warnings = tuple(warnings)
    config._written_paths = _written_paths(data)
    config._sections = tuple(sections)
    return config


#: The sections whose keys belong to plugins: an unknown key there is a plugin that is not
#: loaded (or a typo), and the message says so.
def _unknown_key_hint(sections: Sequence[PluginSection]) -> Callable[[tuple[Any, ...], Any], str]:
    def hint(loc: tuple[Any, ...], model: Any) -> str:
        if not isinstance(model, type) or not issubclass(model, PluginSlot):
            return ""
        return (
            "no loaded plugin reads it (is the plugin that owns it installed, and not in"
            " Butler.licenseAgent.plugins.disable? `license-agent plugins` lists them); "
        )

    return hint


def read_document(path: str | os.PathLike[str] | None = None) -> tuple[Path, Any, list[str]]:
    """The config file's path (``path``, else ``$LICENSE_AGENT_CONFIG``, else
    ``./config.yaml``), its parsed YAML, and the problems found while reading it (repeated
    keys), to report together with every other problem. Raises :class:`ConfigError`."""
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
    return chosen.resolve(), document.data, list(document.problems)


def with_reading_problems(problems: Sequence[str], parse: Callable[[], AgentConfig]) -> AgentConfig:
    """``parse()``, with the problems found while reading the file reported together with
    those of the validation (repeated keys are reported with every other problem)."""
    try:
        config = parse()
    except ConfigError as exc:
        raise ConfigError([*problems, *exc.problems], exc.source, warnings=exc.warnings) from None
    if problems:
        raise ConfigError(list(problems), str(config.source) if config.source else None)
    return config


def load_config(
    path: str | os.PathLike[str] | None = None, *, sections: Sequence[PluginSection] = ()
) -> AgentConfig:
    """Read and validate a config file with the core's keys and ``sections`` (use
    :func:`agent.plugins.load_config` to get the sections of the plugins the file enables)."""
    source, data, problems = read_document(path)
    return with_reading_problems(
        problems, lambda: parse_config(data, source=source, sections=sections)
    )


def plugin_loading(
    data: Any, *, source: Path | None = None, env: Mapping[str, str] | None = None
) -> PluginSettings:
    """``Butler.licenseAgent.plugins`` alone: which plugins to load, before the rest of the
    file can be validated (its model depends on them). Mistakes here give the defaults; the
    full validation reports them."""
    raw = _get(data, "Butler", "licenseAgent", "plugins")
    if not isinstance(raw, dict):
        return PluginSettings()
    raw = _interpolate(raw, "", [], os.environ if env is None else env)
    base_dir = source.parent if source else Path.cwd()
    try:
        return PluginSettings.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError:
        return PluginSettings()


def _is_off(value: Any, owned: PluginSection) -> bool:
    """Whether a raw value leaves a plugin's section switched off: empty, ``Ignore`` (the
    flag rules), or a section whose ``enable`` is false (also by default)."""
    if value is None or value is False or value == [] or value == {}:
        return True
    if isinstance(value, str):
        return value.strip().lower() == "ignore"
    if isinstance(value, dict):
        if "enable" in value:
            return not _is_true(value["enable"])
        model = owned.section.model
        info = field_in(model, "enable") if isinstance(model, type) else None
        return info is not None and info.default is False
    return False


def _unused_shared_sections(data: Any, sections: Sequence[PluginSection]) -> list[str]:
    """Butler's shared sections that are switched on while the agent's plugin for them is
    disabled: fine (Butler reads them), but the admin should know the agent does not."""
    return [
        f"Butler.{owned.path}: not used by the agent, its plugin {owned.plugin} is disabled in"
        " Butler.licenseAgent.plugins.disable (Butler's own features still read it)"
        for owned in sections
        if not owned.loaded
        and owned.section.shared_with_butler
        and not _is_off(_get(data, "Butler", *owned.path.split(".")), owned)
    ]


def _plugin_section_problems(data: Any, sections: Sequence[PluginSection]) -> list[str]:
    """Keys of plugins that are disabled, and keys a site overrides that it may not."""
    problems = []
    sites = _get(data, "Butler", "licenseAgent", "sites")
    sites = sites if isinstance(sites, list) else []
    for owned in sections:
        keys = owned.path.split(".")
        places = [(f"Butler.{owned.path}", _get(data, "Butler", *keys))]
        if keys[0] == "qlikSenseLicense":
            for i, site in enumerate(sites):
                at = f"Butler.licenseAgent.sites[{i}].{owned.path}"
                value = _get(site, *keys)
                if value is not None and not owned.section.per_site and owned.loaded:
                    problems.append(
                        f"{at}: cannot differ per site (plugin {owned.plugin} reads it once for"
                        f" every site); set it in Butler.{owned.path}"
                    )
                places.append((at, value))
        if owned.loaded or owned.section.shared_with_butler:
            continue
        for at, value in places:
            if not _is_off(value, owned):
                problems.append(
                    f"{at} is set, but its plugin {owned.plugin} is disabled in"
                    " Butler.licenseAgent.plugins.disable, so nothing would read it (a rule"
                    " would be skipped); enable the plugin, or remove the key"
                )
    return problems


def written_path(config: AgentConfig, key: str, resolved: Path | None) -> str:
    """A path for a message: as the user wrote it, plus the resolved path when they differ."""
    written = config._written_paths.get(key)
    if resolved is None:
        return written or "(not set)"
    if written is None or written == str(resolved):
        return str(resolved)
    return f"{written} (resolved to {resolved})"
