"""Build the plugin manager: built-ins, entry points, drop-in files, enable and disable.

Built-in plugins are the modules listed in :data:`DEFAULT_PLUGINS`, the one place where the core
names concrete plugins. Third-party plugins come from the entry-point group
``sense_license_agent`` and from ``*.py`` files in the folders of
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
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy
from loguru import logger

from agent import hookspecs
from agent.models import Destination, LicenseType, MetricCollector, ReleaseRule

if TYPE_CHECKING:
    from agent.config import AgentConfig, SiteConfig

ENTRY_POINT_GROUP = "sense_license_agent"
#: Set to 1/true/yes to load no entry-point or drop-in plugins at all.
DISABLE_EXTERNAL_ENV = "LICENSE_AGENT_DISABLE_EXTERNAL_PLUGINS"

#: Every built-in plugin, by role. The only place the core names a concrete plugin.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "plugins.license_types.professional",
    "plugins.license_types.analyzer",
    "plugins.license_types.analyzer_capacity",
    "plugins.license_types.tokens",
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
SWITCHED_BY_CONFIG = ("sla_destinations", "sla_metric_collectors", "sla_release_rules")


class PluginHost:
    """The plugin manager and a typed facade over its hooks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        #: Errors raised by plugins during registration hooks, by plugin name.
        self.errors: dict[str, str] = {}

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
        for dotted in DEFAULT_PLUGINS:
            name = dotted.rsplit(".", 1)[-1]
            if name in disabled:
                self.infos[name] = PluginInfo(name=name, source="built-in", enabled=False)
                continue
            self._register(importlib.import_module(dotted), name, "built-in")

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
                args = {k: kwargs[k] for k in impl.argnames if k in kwargs}
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
        lifecycle = {"sla_configure", "sla_startup", "sla_shutdown"}
        result = {}
        for name, info in self.infos.items():
            unconditional = set(info.hooks) - lifecycle - set(SWITCHED_BY_CONFIG)
            result[name] = info.enabled and (
                bool(unconditional)
                or name in given
                or not set(info.hooks) & set(SWITCHED_BY_CONFIG)
            )
        return result

    def configure(self, config: AgentConfig) -> None:
        # A plugin's ConfigError must reach the user, so configure is not wrapped.
        self.pm.hook.sla_configure(config=config)

    def startup(self, config: AgentConfig) -> None:
        self._call_each("sla_startup", config=config)

    def shutdown(self, config: AgentConfig) -> None:
        self._call_each("sla_shutdown", config=config)

    def _call_each(self, hook_name: str, **kwargs: Any) -> None:
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            try:
                impl.function(**{k: kwargs[k] for k in impl.argnames if k in kwargs})
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


def build_plugin_host(
    config: AgentConfig | None = None, *, extra: Sequence[tuple[str, object]] = ()
) -> PluginHost:
    """Load built-ins, entry points and drop-in files as the config says, then configure.

    ``extra`` registers additional ``(name, plugin)`` objects (used by tests and embedding).
    """
    settings = config.agent.plugins if config else None
    disabled = list(settings.disable) if settings else []
    strict = settings.strict if settings else False
    host = PluginHost()
    host.load_builtins(disabled)
    if _truthy(os.environ.get(DISABLE_EXTERNAL_ENV)):
        logger.info("external plugins are disabled by {}", DISABLE_EXTERNAL_ENV)
    else:
        host.load_entry_points(disabled, strict)
        if settings:
            host.load_paths(settings.paths, disabled, strict)
    for name, plugin in extra:
        host._register(plugin, name, "embedded")
    if config is not None:
        host.configure(config)
    return host
