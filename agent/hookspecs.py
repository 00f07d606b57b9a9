"""Every hook of sense-license-agent, documented: the first page a plugin author reads.

Plugins implement these with the ``hookimpl`` marker::

    from agent.hookspecs import hookimpl

    @hookimpl
    def sla_release_rules(config):
        return [ReleaseRule(name="vip", judge=...)]

Rules of the house (taken from pytest, pluggy, datasette and conda):

* Every hook starts with ``sla_`` and is called with keyword arguments, so an implementation
  may accept fewer arguments than the spec lists; new arguments never break old plugins.
* Registration hooks (``sla_license_types``, ``sla_release_rules``, ``sla_destinations``,
  ``sla_metric_collectors``) return small immutable objects from :mod:`agent.models`. The core
  validates their names, rejects duplicates and calls their callables itself, each inside its
  own error handling: one broken plugin can neither stop nor influence another.
* No result depends on plugin order. Release rules are *vetoes*: every rule is consulted and
  any veto keeps the allocation (collect-all, never ``firstresult``).
* Returning ``None`` from any hook means "no opinion / nothing to add".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.models import Destination, LicenseType, MetricCollector, ReleaseRule

PROJECT = "sense_license_agent"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------- lifecycle


@hookspec
def sla_configure(config: AgentConfig) -> None:
    """Called once, after the config was loaded and validated, before any registration hook.

    A plugin reads its own settings here (``config.plugin_settings(name)``) and may raise
    :class:`agent.config.ConfigError` to report a mistake in them; the agent then stops with
    that message and exit code 2.

    :param config: the validated configuration of the whole agent.
    :return: ``None`` (the return value is ignored).
    """


@hookspec
def sla_startup(config: AgentConfig) -> None:
    """Called when a long-running agent (``license-agent run``) starts its schedule.

    Use it to open servers or connections that live as long as the agent (a metrics
    endpoint, for example). Not called by one-shot commands.

    :param config: the validated configuration.
    :return: ``None`` (ignored).
    """


@hookspec
def sla_shutdown(config: AgentConfig) -> None:
    """Called once when the agent stops (also after one-shot commands), to release resources.

    :param config: the validated configuration.
    :return: ``None`` (ignored).
    """


# --------------------------------------------------------------------------- license types


@hookspec
def sla_license_types() -> Sequence[LicenseType] | None:
    """Register license types: their ``license_type`` tag value and how to read them.

    Each :class:`agent.models.LicenseType` says how the ``/qrs/license/accesstypeoverview``
    JSON maps to the fields of its ``qlik_sense_license`` point, and (for releasable types)
    which QRS resource lists and deletes its allocations. Names must be unique across plugins.

    :return: a list of license types, or ``None`` to register none.
    """


@hookspec
def sla_metric_collectors(config: AgentConfig) -> Sequence[MetricCollector] | None:
    """Register extra collectors of points (the site license, for example).

    A collector's ``collect(qrs=..., now=..., site=...)`` returns points; it is called inside
    its own error handling, so a failing collector never stops the license overview. Without
    a ``frequency`` it runs with every monitor run; with one it gets its own scheduled job.

    :param config: the validated configuration, to decide whether the collector is enabled.
    :return: a list of collectors, or ``None`` when this plugin has none enabled.
    """


# --------------------------------------------------------------------------- release decisions


@hookspec
def sla_release_rules(config: AgentConfig, site: Any) -> Sequence[ReleaseRule] | None:
    """Register neverRelease rules for one release run.

    A :class:`agent.models.ReleaseRule` has a ``judge(candidates)`` callable that receives
    *all* candidates of a license type at once (one call per rule and type, not per
    allocation) and returns a mapping ``allocation id -> reason`` for each candidate it
    protects. Every rule is consulted; any veto keeps the allocation and every reason is
    recorded. If ``judge`` raises, every candidate of that batch is kept with the error as
    the reason.

    :param config: the validated configuration.
    :param site: the :class:`agent.config.SiteConfig` of the site being released, whose
        ``license_release.never_release`` holds the built-in rules' settings.
    :return: the rules this plugin enables for that site, or ``None`` for none (for example
        when its config list is empty).
    """


# --------------------------------------------------------------------------- destinations


@hookspec
def sla_destinations(config: AgentConfig) -> Sequence[Destination] | None:
    """Register destinations: named objects that receive license points and release events.

    A :class:`agent.models.Destination` has a unique ``name``, the set of ``features``
    (``license_monitor``, ``license_release``, ``server_license``) it is enabled for, and
    ``write(points)``, ``describe()`` and ``close()``. The core calls ``write`` inside its
    own error handling and through the durable outbox, so a failing destination never stops
    another, and what it failed to write is delivered later. ``write`` must raise
    :class:`agent.models.DestinationError` (optionally naming the failed points) when it did
    not write everything, and must be idempotent.

    :param config: the validated configuration, to decide whether the destination is enabled.
    :return: the destinations this plugin enables, or ``None`` for none.
    """
