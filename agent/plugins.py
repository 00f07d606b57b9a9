"""Build the plugin manager: built-ins, entry points, drop-in files, enable and disable.

Built-in plugins are the modules listed in :data:`DEFAULT_PLUGINS`, the one place where the core
names concrete plugins. Loading the config starts here (:func:`load_config`): the file's
``Butler.licenseAgent.plugins`` says which plugins to load, their ``sla_settings`` say which keys
they own, and :mod:`agent.config_load` validates the file against the model
:mod:`agent.config_compose` composes from both. Third-party plugins come from the entry-point
group ``sense_license_agent`` and from ``*.py`` files in the folders of
``Butler.licenseAgent.plugins.paths``. Each external plugin is loaded inside its own
``try``: one that fails is reported by name and the agent carries on (unless ``strict``).

:class:`PluginHost` is the typed facade the rest of the core calls instead of ``pm.hook``:
it calls every implementation separately, validates what comes back (unique names, right
types) and keeps going when one plugin raises, recording the error against its name.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, TypeVar

import pluggy
from loguru import logger

from agent import config_compose, config_load, hookspecs
from agent.config import AgentConfig, ConfigError, PluginSection, PluginSettings, SiteConfig
from agent.models import (
    FEATURE_ALERT,
    AlertBatch,
    Destination,
    LicenseType,
    MetricCollector,
    Point,
    ReleaseRule,
    SettingsSection,
)

ENTRY_POINT_GROUP = "sense_license_agent"
#: Set to 1/true/yes to load no entry-point or drop-in plugins at all.
DISABLE_EXTERNAL_ENV = "LICENSE_AGENT_DISABLE_EXTERNAL_PLUGINS"

#: Every built-in plugin, by role. The only place the core names a concrete plugin.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "plugins.license_types.professional",
    "plugins.license_types.analyzer",
    "plugins.license_types.analyzer_capacity",
    "plugins.license_types.tokens",
    "plugins.license_types.user_access",
    "plugins.filters.user",
    "plugins.filters.tag",
    "plugins.filters.custom_property",
    "plugins.filters.user_directory",
    "plugins.filters.flags",
    "plugins.destinations.influxdb",
    "plugins.destinations.sqlite",
    "plugins.destinations.jsonl",
    "plugins.destinations.prometheus",
    "plugins.monitors.server_license",
    "plugins.alerts.early_warning",
    "plugins.alerts.alert_channels",
)


class PluginLoadError(RuntimeError):
    """An external plugin failed to load while ``strict`` is set."""


@dataclass
class PluginInfo:
    """What ``license-agent plugins`` shows for one plugin."""

    name: str
    source: str  # "built-in", "package NAME VERSION", "file PATH"
    enabled: bool = True
    hooks: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "enabled": self.enabled,
            "hooks": self.hooks,
            "error": self.error,
        }


T = TypeVar("T")


def _truthy(text: str | None) -> bool:
    return (text or "").strip().lower() in {"1", "true", "yes", "on"}


#: The hooks whose results exist only when the config asks for them (see
#: :meth:`PluginHost.switched_on`).
SWITCHED_BY_CONFIG = (
    "sla_destinations",
    "sla_metric_collectors",
    "sla_release_rules",
    "sla_alerts",
    "sla_alert_view",
)


class PluginHost:
    """The plugin manager and a typed facade over its hooks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        #: Errors raised by plugins during registration hooks, by plugin name.
        self.errors: dict[str, str] = {}
        #: The sections of built-in plugins that are disabled: their keys stay known, and
        #: setting them is an error (see agent.config.PluginSection.loaded).
        self.disabled_sections: list[PluginSection] = []

    # ----------------------------------------------------------------- loading

    def _register(self, module: ModuleType | object, name: str, source: str) -> None:
        if name in self.infos:
            raise PluginLoadError(
                f"plugin name {name!r} from {source} is already used by"
                f" {self.infos[name].source}; rename one of them"
            )
        self.pm.register(module, name=name)
        hooks = sorted(caller.name for caller in (self.pm.get_hookcallers(module) or []))
        self.infos[name] = PluginInfo(name=name, source=source, hooks=hooks)

    def load_builtins(self, disabled: Iterable[str] = ()) -> None:
        disabled = set(disabled)
        _check_builtin_package()
        for dotted in DEFAULT_PLUGINS:
            name = dotted.rsplit(".", 1)[-1]
            module = importlib.import_module(dotted)
            if name in disabled:
                self.infos[name] = PluginInfo(name=name, source="built-in", enabled=False)
                declare = getattr(module, "sla_settings", None)
                for section in (declare() or ()) if declare else ():
                    self.disabled_sections.append(PluginSection(name, section, loaded=False))
                continue
            self._register(module, name, "built-in")

    def load_entry_points(self, disabled: Iterable[str] = (), strict: bool = False) -> None:
        disabled = set(disabled)
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = getattr(ep, "dist", None)
            source = f"package {dist.name} {dist.version}" if dist else f"entry point {ep.value}"
            if ep.name in disabled:
                self.infos[ep.name] = PluginInfo(name=ep.name, source=source, enabled=False)
                continue
            self._load_external(ep.name, source, ep.load, strict)

    def load_paths(
        self, folders: Sequence[Path], disabled: Iterable[str] = (), strict: bool = False
    ) -> None:
        disabled = set(disabled)
        for folder in folders:
            if not folder.is_dir():
                self._report(
                    f"folder:{folder}",
                    f"file {folder}",
                    f"plugin folder {folder} does not exist"
                    " (check Butler.licenseAgent.plugins.paths)",
                    strict,
                )
                continue
            for file in sorted(folder.glob("*.py")):
                if file.name.startswith("_"):
                    continue
                name = file.stem
                source = f"file {file}"
                if name in disabled:
                    self.infos[name] = PluginInfo(name=name, source=source, enabled=False)
                    continue
                self._load_external(name, source, lambda f=file: _import_file(f), strict)

    def _load_external(
        self, name: str, source: str, load: Callable[[], object], strict: bool
    ) -> None:
        try:
            plugin = load()
            self._register(plugin, name, source)
        except Exception as exc:  # one broken plugin must not take the agent down
            self._report(name, source, f"{type(exc).__name__}: {exc}", strict)

    def _report(self, name: str, source: str, message: str, strict: bool) -> None:
        if strict:
            raise PluginLoadError(f"plugin {name} ({source}) failed to load: {message}")
        logger.error("plugin {} ({}) failed to load and is skipped: {}", name, source, message)
        key = name if name not in self.infos else f"{name} ({source})"
        self.infos[key] = PluginInfo(name=name, source=source, enabled=False, error=message)

    # ----------------------------------------------------------------- calling

    def _collect(
        self, hook_name: str, expected: type[T], **kwargs: Any
    ) -> tuple[list[tuple[str, T]], dict[str, str]]:
        """Call each implementation of a registration hook on its own; validate results."""
        caller = getattr(self.pm.hook, hook_name)
        results: list[tuple[str, T]] = []
        errors: dict[str, str] = {}
        for impl in caller.get_hookimpls():
            plugin = impl.plugin_name
            try:
                args = self._arguments(impl, kwargs)
                returned = impl.function(**args)
                for item in returned or ():
                    if not isinstance(item, expected):
                        raise TypeError(
                            f"{hook_name} returned {type(item).__name__}, not {expected.__name__}"
                        )
                    results.append((plugin, item))
            except Exception as exc:
                errors[plugin] = f"{type(exc).__name__}: {exc}"
                logger.error("plugin {} failed in {}: {}", plugin, hook_name, errors[plugin])
        seen: dict[str, str] = {}
        unique: list[tuple[str, T]] = []
        for plugin, item in results:
            item_name = getattr(item, "name", "")
            if not item_name:
                errors[plugin] = f"{hook_name} returned an object without a name"
                continue
            if item_name in seen:
                errors[plugin] = (
                    f"{hook_name}: name {item_name!r} is already registered by plugin"
                    f" {seen[item_name]}"
                )
                logger.error("{}", errors[plugin])
                continue
            seen[item_name] = plugin
            unique.append((plugin, item))
        self.errors.update(errors)
        return unique, errors

    def _arguments(self, impl: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments ``impl`` accepts; ``settings`` is its plugin's own."""
        args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
        if "settings" in impl.argnames:
            where = kwargs.get("site") or kwargs.get("config")
            args["settings"] = plugin_settings(where, impl.plugin_name)
        return args

    def settings_sections(self) -> list[PluginSection]:
        """The sections every loaded plugin declares, checked: well-formed paths, and no
        path claimed twice. Raises :class:`~agent.config.ConfigError` naming the plugins."""
        found, errors = [], []
        claimed: dict[str, str] = {}
        for impl in self.pm.hook.sla_settings.get_hookimpls():
            plugin = impl.plugin_name
            try:
                returned = list(impl.function() or ())
            except Exception as exc:
                errors.append(
                    f"plugin {plugin} failed in sla_settings: {type(exc).__name__}: {exc}"
                )
                continue
            for section in returned:
                problem = _section_problem(section)
                if problem is None and section.path in claimed:
                    problem = f"{section.path} is already owned by plugin {claimed[section.path]}"
                if problem:
                    errors.append(f"plugin {plugin}: {problem}")
                    continue
                claimed[section.path] = plugin
                found.append(PluginSection(plugin, section))
        for owned in self.disabled_sections:
            if owned.path in claimed:
                # A disabled built-in's key now read by another plugin: that one owns it.
                continue
            claimed[owned.path] = owned.plugin
            found.append(owned)
        if errors:
            raise ConfigError(errors)
        # Pluggy calls hooks last-registered first; keep the order plugins were loaded in.
        order = {name: i for i, name in enumerate(self.infos)}
        return sorted(found, key=lambda o: order.get(o.plugin, len(order)))

    def license_types(self) -> list[LicenseType]:
        found, _ = self._collect("sla_license_types", LicenseType)
        return [item for _, item in found]

    def metric_collectors(self, config: AgentConfig) -> list[MetricCollector]:
        found, _ = self._collect("sla_metric_collectors", MetricCollector, config=config)
        return [item for _, item in found]

    def release_rules(
        self, config: AgentConfig, site: SiteConfig
    ) -> tuple[list[ReleaseRule], dict[str, str]]:
        """The rules for one site, and the plugins that failed to give theirs.

        A release run must not go ahead when a rule plugin failed: the protection it would
        have given is unknown.
        """
        found, errors = self._collect("sla_release_rules", ReleaseRule, config=config, site=site)
        return [item for _, item in found], errors

    def destinations(self, config: AgentConfig) -> list[Destination]:
        found, _ = self._collect("sla_destinations", Destination, config=config)  # type: ignore[type-abstract]
        return [item for _, item in found]

    def switched_on(self, config: AgentConfig) -> dict[str, bool]:
        """Per plugin: whether ``config`` switches on anything it provides.

        Destinations, metric collectors and release rules exist only when the config asks for
        them (``influxDb.enable``, a ``neverRelease`` list, ...): a plugin that provides only
        such things is on when one of its hooks gives something for this config (for rules: for
        one of its sites). License types and other hooks do not depend on the config, so a
        plugin with one of them is on whenever it is loaded; a disabled or broken one is off.
        """
        given = {p for p, _ in self._collect("sla_destinations", Destination, config=config)[0]}  # type: ignore[type-abstract]
        given |= {
            p for p, _ in self._collect("sla_metric_collectors", MetricCollector, config=config)[0]
        }
        for site in config.sites():
            rules, _ = self._collect("sla_release_rules", ReleaseRule, config=config, site=site)
            given |= {p for p, _ in rules}
        # Alerts are decided per monitor run; whether a plugin will decide any shows in its
        # report view (the built-in one answers when licenseMonitor.alert is enabled). A plugin
        # with alerts but no view cannot tell: it counts as on.
        for impl in self.pm.hook.sla_alert_view.get_hookimpls():
            try:
                if impl.function(config=config) is not None:
                    given.add(impl.plugin_name)
            except Exception as exc:
                logger.error("plugin {} failed in sla_alert_view: {}", impl.plugin_name, exc)
        viewers = {i.plugin_name for i in self.pm.hook.sla_alert_view.get_hookimpls()}
        given |= {i.plugin_name for i in self.pm.hook.sla_alerts.get_hookimpls()} - viewers
        # Declaring settings, or hearing how jobs went, is no service of its own: neither
        # switches a plugin on.
        lifecycle = {
            "sla_settings",
            "sla_configure",
            "sla_startup",
            "sla_shutdown",
            "sla_job_result",
        }
        result = {}
        for name, info in self.infos.items():
            unconditional = set(info.hooks) - lifecycle - set(SWITCHED_BY_CONFIG)
            result[name] = info.enabled and (
                bool(unconditional)
                or name in given
                or not set(info.hooks) & set(SWITCHED_BY_CONFIG)
            )
        return result

    def alerts(
        self,
        config: AgentConfig,
        site: SiteConfig,
        points: Sequence[Point],
        now: Any,
        errors: dict[str, str] | None = None,
    ) -> list[AlertBatch]:
        """Every alert plugin's batch for one monitor run; a plugin that fails is recorded in
        ``errors`` (and logged) and the others go on."""
        batches: list[AlertBatch] = []
        offered = {"config": config, "site": site, "points": points, "now": now}
        for impl in self.pm.hook.sla_alerts.get_hookimpls():
            try:
                batch = impl.function(**self._arguments(impl, offered))
                if batch is None:
                    continue
                if not isinstance(batch, AlertBatch):
                    raise TypeError(f"returned {type(batch).__name__}, not AlertBatch")
                bad = [
                    p
                    for p in batch.points
                    if not isinstance(p, Point) or p.feature != FEATURE_ALERT
                ]
                if bad:
                    raise TypeError("returned a point that is not an alert point")
                batches.append(batch)
            except Exception as exc:
                message = f"{type(exc).__name__}: {exc}"
                logger.error("plugin {} failed in sla_alerts: {}", impl.plugin_name, message)
                self.errors[impl.plugin_name] = message
                if errors is not None:
                    errors[impl.plugin_name] = message
        return batches

    def alert_view(self, config: AgentConfig) -> Any:
        """What the HTML report draws for alerts (:class:`agent.alerts.AlertView`), or None."""
        try:
            return self.pm.hook.sla_alert_view(config=config)
        except Exception as exc:
            logger.error("the alert view for the report failed: {}", exc)
            return None

    def configure(self, config: AgentConfig) -> None:
        # A plugin's ConfigError must reach the user, so configure is not wrapped.
        for impl in self.pm.hook.sla_configure.get_hookimpls():
            impl.function(**self._arguments(impl, {"config": config}))

    def startup(self, config: AgentConfig) -> None:
        self._call_each("sla_startup", config=config)

    def shutdown(self, config: AgentConfig) -> None:
        self._call_each("sla_shutdown", config=config)

    def job_result(
        self,
        *,
        job: str,
        ok: bool,
        finished: datetime,
        qrs_errors: int,
        error: str | None,
        destinations: Sequence[Destination],
    ) -> None:
        """Tell every plugin how a job run went (``sla_job_result``); a failing plugin is
        logged and never breaks the job."""
        self._call_each(
            "sla_job_result",
            job=job,
            ok=ok,
            finished=finished,
            qrs_errors=qrs_errors,
            error=error,
            destinations=destinations,
        )

    def _call_each(self, hook_name: str, **kwargs: Any) -> None:
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                impl.function(**self._arguments(impl, kwargs))
            except Exception as exc:
                logger.error("plugin {} failed in {}: {}", impl.plugin_name, hook_name, exc)


def _import_file(path: Path) -> ModuleType:
    module_name = f"sense_license_agent_dropin_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _check_builtin_package() -> None:
    """Refuse a ``plugins`` package that is not ours (see CONTRIBUTING.md, "Installed import
    names"): the built-ins are imported by that top-level name, which another distribution in
    the same environment could also install."""
    # By name, as the built-ins themselves are imported: the core imports no plugin module.
    plugins = importlib.import_module("plugins")
    ours = Path(__file__).resolve().parent.parent
    found = getattr(plugins, "__file__", None)
    if found is None or Path(found).resolve().parent.parent != ours:
        where = found or ", ".join(getattr(plugins, "__path__", []))
        raise PluginLoadError(
            f"the top-level package 'plugins' comes from {where}, not from this agent ({ours});"
            " another distribution installed a package of that name: install the agent in a"
            " virtual environment of its own (see docs/running.md)"
        )


_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _section_problem(section: Any) -> str | None:
    """Why a declared section cannot be used, or None."""
    if not isinstance(section, SettingsSection):
        return f"sla_settings returned {type(section).__name__}, not SettingsSection"
    path = section.path
    if not isinstance(path, str) or not all(_KEY_RE.match(k) for k in path.split(".")):
        return f"{path!r} is not a dotted key path such as qlikSenseLicense.licenseRelease.x"
    if path.split(".")[0] == "Butler":
        return f"{path}: write the path below Butler, without 'Butler.'"
    return None


def plugin_settings(where: AgentConfig | SiteConfig | None, plugin: str) -> Mapping[str, Any]:
    """The ``settings`` a hook of ``plugin`` receives: each path it declared -> its value,
    per site when ``where`` is a site (read-only; empty without a config)."""
    if where is None:
        return MappingProxyType({})
    config = where if isinstance(where, AgentConfig) else where._shared
    owned = [o.path for o in getattr(config, "plugin_sections", ()) if o.plugin == plugin]
    return MappingProxyType({path: where.settings(path) for path in owned})


def _load(
    host: PluginHost, settings: PluginSettings | None, extra: Sequence[tuple[str, object]]
) -> None:
    disabled = list(settings.disable) if settings else []
    strict = settings.strict if settings else False
    host.load_builtins(disabled)
    if _truthy(os.environ.get(DISABLE_EXTERNAL_ENV)):
        logger.info("external plugins are disabled by {}", DISABLE_EXTERNAL_ENV)
    else:
        host.load_entry_points(disabled, strict)
        if settings:
            host.load_paths(settings.paths, disabled, strict)
    for name, plugin in extra:
        host._register(plugin, name, "embedded")


def parse_config(
    data: Any,
    *,
    source: Path | None = None,
    env: Mapping[str, str] | None = None,
    extra: Sequence[tuple[str, object]] = (),
) -> AgentConfig:
    """Load the plugins a parsed config document enables, then validate the document against
    the core's keys and the settings those plugins declare (:func:`agent.config_load.parse_config`).

    The returned config keeps the plugin host (see :func:`build_plugin_host`). Raises
    :class:`~agent.config.ConfigError` for every mistake, also a plugin that fails to load
    while ``Butler.licenseAgent.plugins.strict`` is set.
    """
    settings = config_load.plugin_loading(data, source=source, env=env)
    host = PluginHost()
    try:
        _load(host, settings, extra)
    except PluginLoadError as exc:
        raise ConfigError([str(exc)], str(source) if source else None) from None
    config = config_load.parse_config(
        data, source=source, env=env, sections=host.settings_sections()
    )
    config._plugin_host = host
    return config


def load_config(
    path: str | os.PathLike[str] | None = None, *, extra: Sequence[tuple[str, object]] = ()
) -> AgentConfig:
    """Read a config file (``path``, else ``$LICENSE_AGENT_CONFIG``, else ``./config.yaml``)
    and validate it with the plugins it enables (see :func:`parse_config`)."""
    source, data, problems = config_load.read_document(path)
    return config_load.with_reading_problems(
        problems, lambda: parse_config(data, source=source, extra=extra)
    )


def build_plugin_host(
    config: AgentConfig | None = None, *, extra: Sequence[tuple[str, object]] = ()
) -> PluginHost:
    """The plugins of ``config``, configured: the host that loaded them with the config (see
    :func:`load_config`), else built-ins, entry points and drop-in files as the config says.

    ``extra`` registers additional ``(name, plugin)`` objects (used by tests and embedding);
    their settings are only known when they were passed to :func:`load_config` too.
    """
    host = getattr(config, "_plugin_host", None) if config is not None and not extra else None
    if host is None:
        host = PluginHost()
        _load(host, config.agent.plugins if config else None, extra)
    if config is not None:
        host.configure(config)
    return host


def builtin_sections() -> list[PluginSection]:
    """The settings sections of the built-in plugins (the shipped JSON Schema's)."""
    host = PluginHost()
    host.load_builtins()
    return host.settings_sections()


def json_schema(config: AgentConfig | None = None) -> dict[str, Any]:
    """The config file's JSON Schema with the settings of ``config``'s plugins (third-party
    ones included), or of the built-in plugins without a config."""
    sections = config.plugin_sections if config is not None else builtin_sections()
    return config_compose.json_schema(sections)
