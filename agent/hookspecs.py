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

A plugin owns its settings: ``sla_settings`` declares the key paths of the Butler file it reads
and a pydantic model (or a type) for each. The core composes the file's model from the loaded
plugins, so the JSON Schema, the error messages and ``config check`` cover them, and a key whose
plugin is disabled or not installed is an error, never silently ignored. A hook then receives
its own settings, validated and typed, as the ``settings`` argument: a read-only mapping from
each path the plugin declared to its value (``None`` when the key is absent from the file). In
``sla_release_rules`` the values are those of the site being released (a site of
``Butler.licenseAgent.sites`` may override keys below ``qlikSenseLicense``); elsewhere they are
the file's shared values. ``config.settings(path)`` and ``site.settings(path)`` read any path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from datetime import datetime

    from agent.alerts import AlertView
    from agent.config import AgentConfig
    from agent.models import (
        AlertBatch,
        Destination,
        LicenseType,
        MetricCollector,
        Point,
        ReleaseRule,
        SettingsSection,
    )

PROJECT = "sense_license_agent"

#: What a hook's ``settings`` argument is: each path its plugin declared -> the validated value
#: (``None`` when absent). Read-only.
Settings = Mapping[str, Any]

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------- settings


@hookspec
def sla_settings() -> Sequence[SettingsSection] | None:
    """Declare the parts of the config file this plugin owns, and their models.

    Called when the plugins are loaded, before the config file is validated. Each
    :class:`agent.models.SettingsSection` names a dotted key path below ``Butler`` (as users
    write it) and the pydantic model or type of the value there. The path's parent must be a
    section the core or another loaded plugin defines (``qlikSenseLicense.licenseRelease.
    neverRelease``, ``...licenseType``, ``licenseAgent.destinations``, ``Butler`` itself, ...).
    Two plugins may not claim one path, and a plugin may not claim a key of the core: the host
    reports both as errors of the plugin.

    :return: the sections this plugin owns, or ``None`` for none.
    """


# --------------------------------------------------------------------------- lifecycle


@hookspec
def sla_configure(config: AgentConfig, settings: Settings) -> None:
    """Called once, after the config was loaded and validated, before any registration hook.

    A plugin may check its settings here beyond what its model can say, and raise
    :class:`agent.config.ConfigError` to report a mistake; the agent then stops with that
    message and exit code 2.

    :param config: the validated configuration of the whole agent.
    :param settings: this plugin's own settings (path -> validated value or ``None``).
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
    A releasable type's settings are ``qlikSenseLicense.licenseRelease.licenseType.<name>``,
    which the plugin declares with ``sla_settings`` (model :class:`agent.config.
    LicenseTypeRelease` or a subclass); the release run reads them under the type's name.

    :return: a list of license types, or ``None`` to register none.
    """


@hookspec
def sla_metric_collectors(
    config: AgentConfig, settings: Settings
) -> Sequence[MetricCollector] | None:
    """Register extra collectors of points (the site license, for example).

    A collector's ``collect(qrs=..., now=..., site=...)`` returns points; it is called inside
    its own error handling, so a failing collector never stops the license overview. Without
    a ``frequency`` it runs with every monitor run; with one it gets its own scheduled job.

    :param config: the validated configuration.
    :param settings: this plugin's own settings (path -> validated value or ``None``), to
        decide whether the collector is enabled.
    :return: a list of collectors, or ``None`` when this plugin has none enabled.
    """


# --------------------------------------------------------------------------- alerts


@hookspec
def sla_alerts(
    config: AgentConfig, site: Any, points: Sequence[Point], now: datetime
) -> AlertBatch | None:
    """Decide the alerts of one monitor run (early warning before licenses run out).

    Called after a monitor run of one site read the license overview and ran its collectors,
    before the points are delivered. The returned :class:`agent.models.AlertBatch` holds alert
    points (:meth:`agent.alerts.Alert.to_point`, feature ``alert``); they go through the
    durable outbox to every destination enabled for the ``alert`` feature (the alert
    channels). Its ``commit`` is called once they are stored in the outbox: save what you
    sent there, not before. An implementation that raises is reported as a failed plugin of
    the run; the other plugins' alerts and the run's points are delivered all the same.

    :param config: the validated configuration.
    :param site: the :class:`agent.config.SiteConfig` of the site that was read.
    :param points: every point of the run (``qlik_sense_license`` per type, collectors').
    :param now: the time of the run's points (UTC).
    :return: an :class:`agent.models.AlertBatch`, or ``None`` when there is nothing to say.
    """


@hookspec(firstresult=True)
def sla_alert_view(config: AgentConfig) -> AlertView | None:
    """What the HTML report draws for alerts: the thresholds and forecast lines on the usage
    charts, and the alerts active now. The first plugin that answers wins (the built-in
    early-warning plugin answers when ``licenseMonitor.alert`` is enabled).

    :param config: the validated configuration.
    :return: an :class:`agent.alerts.AlertView`, or ``None`` for nothing to draw.
    """


# --------------------------------------------------------------------------- release decisions


@hookspec
def sla_release_rules(
    config: AgentConfig, site: Any, settings: Settings
) -> Sequence[ReleaseRule] | None:
    """Register neverRelease rules for one release run.

    A :class:`agent.models.ReleaseRule` has a ``judge(candidates)`` callable that receives
    *all* candidates of a license type at once (one call per rule and type, not per
    allocation) and returns a mapping ``allocation id -> reason`` for each candidate it
    protects. Every rule is consulted; any veto keeps the allocation and every reason is
    recorded. If ``judge`` raises, every candidate of that batch is kept with the error as
    the reason.

    :param config: the validated configuration.
    :param site: the :class:`agent.config.SiteConfig` of the site being released.
    :param settings: this plugin's own settings for that site (path -> validated value, or
        ``None`` when the key is absent); a rule reads its ``neverRelease`` key here.
    :return: the rules this plugin enables for that site, or ``None`` for none (for example
        when its config list is empty).
    """


# --------------------------------------------------------------------------- destinations


@hookspec
def sla_destinations(config: AgentConfig, settings: Settings) -> Sequence[Destination] | None:
    """Register destinations: named objects that receive license points and release events.

    A :class:`agent.models.Destination` has a unique ``name``, the set of ``features``
    (``license_monitor``, ``license_release``, ``server_license``) it is enabled for, and
    ``write(points)``, ``describe()`` and ``close()``. The core calls ``write`` inside its
    own error handling and through the durable outbox, so a failing destination never stops
    another, and what it failed to write is delivered later. ``write`` must raise
    :class:`agent.models.DestinationError` (optionally naming the failed points) when it did
    not write everything, and must be idempotent.

    :param config: the validated configuration.
    :param settings: this plugin's own settings (path -> validated value or ``None``), to
        decide whether the destination is enabled.
    :return: the destinations this plugin enables, or ``None`` for none.
    """


# --------------------------------------------------------------------------- the agent's health


@hookspec
def sla_job_result(
    job: str,
    ok: bool,
    finished: datetime,
    qrs_errors: int,
    error: str | None,
    destinations: Sequence[Destination],
) -> None:
    """Called after every job run, scheduled or ``--once``: how it went.

    Plugins that track the agent's health use it; the Prometheus destination turns it into
    ``license_agent_job_runs_total``, ``license_agent_last_success_timestamp_seconds`` and
    ``license_agent_qrs_errors_total``. Each implementation is called in its own error handling:
    one that raises is logged and never breaks the job.

    :param job: ``license_monitor``, ``license_release``, ``license_restore`` (``release
        restore``, never scheduled), or the name of a metric collector with its own schedule
        (``server_license``).
    :param ok: whether the run did its work on every site (what the heartbeat records).
    :param finished: when the run finished (an aware UTC datetime).
    :param qrs_errors: QRS requests that failed during the run, after their retries, counted
        by the QRS client over every site.
    :param error: why the run failed, or ``None`` when it succeeded.
    :param destinations: the agent's live destinations, so a destination plugin can update its
        own (``isinstance`` on its class).
    :return: ``None`` (ignored).
    """
