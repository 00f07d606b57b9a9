"""One job for one site: what the ``--once`` commands and the scheduler both run.

A run (:func:`agent.monitor.run_monitor`, :func:`agent.release.run_release`) works on a QRS
client it is given and decides; everything around it lives here, once: the site's release lock,
the QRS client, the release journal's recovery, the delivery of the points, the job's result
(:class:`JobRun`, told to plugins through the ``sla_job_result`` hook) and the heartbeat.
``license-agent monitor --once`` and ``release --once`` call :func:`run_monitor_job` and
:func:`run_release_job` and print what they return; ``license-agent run`` schedules the same
functions with :func:`run_agent`. ``release restore`` calls :func:`run_restore_job`, which gives
released allocations back (:func:`agent.restore.run_restore`) with the same pieces. No job function raises for what can go wrong at run time (QRS
down, a lock held, a destination down, a bug in a run): it is logged once and returned.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast, overload

from loguru import logger

from agent.apply import PlannedSet
from agent.config import ConfigError
from agent.delivery import Delivery
from agent.heartbeat import Heartbeat, JobOutcome, heartbeat_enabled, heartbeat_path, job_outcome
from agent.journal import JournalError, ReleaseJournal, SqliteJournal, journaled
from agent.lock import LockBusy, release_lock, site_identity
from agent.models import (
    FEATURE_LICENSE_MONITOR,
    FEATURE_LICENSE_RELEASE,
    UTC,
    MetricCollector,
)
from agent.monitor import MonitorResult, collect, run_monitor
from agent.qrs import QrsCertificateFileError, QrsClient
from agent.release import Progress, ReleaseResult, new_run_id, run_release
from agent.restore import RestoreJournal, RestoreResult, RestoreUsageError, Selection, run_restore
from agent.runs import (
    LoggedRun,
    RunLog,
    record_run,
    release_kind,
    release_run_record,
    started_run,
)
from agent.schedule import Frequency, RunLoop, parse_frequency, scheduled_jobs

if TYPE_CHECKING:
    from agent.config import AgentConfig, SiteConfig
    from agent.plugins import PluginHost

#: The job names destinations see in ``sla_job_result`` (and Prometheus' ``job_name``).
JOB_MONITOR = FEATURE_LICENSE_MONITOR
JOB_RELEASE = FEATURE_LICENSE_RELEASE
JOB_RESTORE = "license_restore"
#: Scheduler names (as in the config and the heartbeat) -> job names.
JOB_NAMES = {"monitor": JOB_MONITOR, "release": JOB_RELEASE}

QrsFactory = Callable[["SiteConfig"], Any]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def open_qrs(site: SiteConfig) -> QrsClient:
    """The QRS client of a site."""
    return QrsClient(site)


# --------------------------------------------------------------------------- a job's result


@dataclass
class JobRun:
    """What one run of a job did on every site of the config.

    It reads as the sequence of per-site results (:class:`agent.monitor.MonitorResult` or
    :class:`agent.release.ReleaseResult`), in site order; sites on which no run happened are in
    :attr:`failures` instead.
    """

    job: str
    #: The config's sites, by name: a site without a result did not run.
    sites: list[str] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    #: site -> why no run happened there (release lock held, QRS client, journal, a bug).
    failures: dict[str, str] = field(default_factory=dict)
    #: Mistakes the user must fix (certificate files): ``--once`` exits 2 for them.
    config_errors: list[str] = field(default_factory=list)
    #: Why the job could not start at all (the outbox cannot be opened), else ``None``.
    error: str | None = None
    #: QRS requests that failed during the job (after their retries), over all sites.
    qrs_errors: int = 0
    started: datetime = field(default_factory=_utc_now)
    finished: datetime | None = None

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return self.results[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def _expected(self) -> list[str]:
        """The sites that should have a result: those where the run did not fail to start."""
        return [s for s in self.sites if s not in self.failures]

    def outcome(self) -> JobOutcome:
        """Whether the job did its work on every site, as the heartbeat records it."""
        if self.error:
            return JobOutcome.failed(self.error)
        judged = job_outcome(self.results, self._expected())
        if not self.failures:
            return judged
        sites = {**judged.sites, **self.failures}
        error = "; ".join(f"{name}: {why}" for name, why in sites.items() if why)
        return JobOutcome(ok=False, error=error, sites=sites)

    @property
    def ok(self) -> bool:
        return self.outcome().ok


def _failed_requests(qrs: Any) -> int:
    # Stand-ins for the client in tests may not count; the real client always does.
    count = getattr(qrs, "failed_requests", 0)
    return count if isinstance(count, int) else 0


@contextlib.contextmanager
def _client(run: JobRun, site: SiteConfig, qrs_factory: QrsFactory) -> Iterator[Any]:
    """The site's QRS client for the length of a run; its failed requests count for the job.

    Yields ``None`` (and records why) when the client cannot be set up.
    """
    try:
        qrs = qrs_factory(site)
    except QrsCertificateFileError as exc:
        run.config_errors.append(str(exc))
        run.failures[site.name] = f"cannot set up the QRS client: {exc}"
        yield None
        return
    except Exception as exc:
        run.failures[site.name] = f"cannot set up the QRS client: {exc}"
        yield None
        return
    try:
        yield qrs
    finally:
        run.qrs_errors += _failed_requests(qrs)
        close = getattr(qrs, "close", None)
        if callable(close):
            close()


def report_job_result(host: PluginHost, run: JobRun, delivery: Delivery | None) -> None:
    """Tell plugins how the job went (the ``sla_job_result`` hook); never raises."""
    outcome = run.outcome()
    host.job_result(
        job=run.job,
        ok=outcome.ok,
        finished=run.finished or _utc_now(),
        qrs_errors=run.qrs_errors,
        error=outcome.error,
        # Only the agent's own delivery has destinations; a bare event sink (tests) has none.
        destinations=list(delivery.destinations) if isinstance(delivery, Delivery) else [],
    )


def _finish(
    run: JobRun,
    host: PluginHost,
    delivery: Delivery | None,
    heartbeat: Heartbeat | None,
    heartbeat_name: str,
) -> JobRun:
    run.finished = _utc_now()
    report_job_result(host, run, delivery)
    if heartbeat is not None:
        heartbeat.record(heartbeat_name, run.outcome(), run.started)
    return run


@contextlib.contextmanager
def _guarded(run: JobRun) -> Iterator[None]:
    """A bug in a job's work fails the job, logged in full, and never reaches the scheduler."""
    try:
        yield
    except Exception as exc:
        run.error = f"the {run.job} job failed: {type(exc).__name__}: {exc}"
        logger.exception("{}", run.error)


@contextlib.contextmanager
def _delivery(
    run: JobRun, config: AgentConfig, host: PluginHost, given: Delivery | None, needed: bool
) -> Iterator[Delivery | None]:
    """``given``, else a delivery opened from the config when ``needed`` and closed after.

    A state folder that cannot be used is the user's mistake: it lands in ``config_errors``
    too (``--once`` exits 2; the scheduler opens its delivery at start, before any job).
    """
    if given is not None or not needed:
        yield given
        return
    try:
        delivery = Delivery.from_config(config, host)
    except Exception as exc:  # the outbox cannot be opened, for example
        if isinstance(exc, ConfigError):
            run.config_errors.extend(exc.problems)
        run.error = f"cannot open the outbox: {exc}"
        logger.error("{} job not started: {}", run.job, run.error)
        yield None
        return
    try:
        yield delivery
    finally:
        delivery.close()


@contextlib.contextmanager
def _locked_client(
    run: JobRun, config: AgentConfig, site: SiteConfig, qrs_factory: QrsFactory, what: str
) -> Iterator[Any]:
    """The site's release lock (one per QRS host and port on this machine), then its QRS
    client (``None``, logged, when it cannot be set up: see :func:`_client`)."""
    identity = site_identity(site.qrs.host, site.qrs.port)
    with (
        release_lock(config.state_dir, site.name, identity),
        _client(run, site, qrs_factory) as qrs,
    ):
        if qrs is None:
            logger.error("{} on {}: {}", what, site.name, run.failures[site.name])
        yield qrs


@contextlib.contextmanager
def _site_failures(run: JobRun, site: SiteConfig, what: str) -> Iterator[None]:
    """What stops the run on one site is recorded for the job and logged once, never raised:
    the other sites still run and the scheduler stays alive."""
    try:
        yield
    except (LockBusy, JournalError) as exc:
        run.failures[site.name] = str(exc)
        logger.error("{} on {} not started: {}", what, site.name, exc)
    except ConfigError as exc:  # the state folder cannot hold the journal, for example
        run.config_errors.extend(exc.problems)
        run.failures[site.name] = str(exc)
        logger.error("{} on {} not started: {}", what, site.name, exc)
    except Exception as exc:  # a bug: log it fully
        run.failures[site.name] = f"the run failed: {type(exc).__name__}: {exc}"
        logger.exception("{} on {} failed: {}", what, site.name, exc)


# --------------------------------------------------------------------------- the release job


def run_release_job(
    config: AgentConfig,
    host: PluginHost,
    delivery: Delivery | None = None,
    *,
    dry_run: bool | None = None,
    now: datetime | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    qrs_factory: QrsFactory = open_qrs,
    journal: ReleaseJournal | None = None,
    heartbeat: Heartbeat | None = None,
    planned: Mapping[str, PlannedSet] | None = None,
) -> JobRun:
    """One release run per site, each under the site's release lock. Never raises.

    A live run first settles what an interrupted one left in the site's release journal
    (:mod:`agent.journal`; ``journal`` replaces it, for tests). With ``delivery`` ``None`` a
    delivery is opened from the config when some site may release, and closed after.

    :param dry_run: ``True`` forces a dry run; ``None`` takes each site's ``dryRun``.
    :param now: the moment thresholds are measured from (dry runs).
    :param should_stop: asked before each DELETE (see :func:`agent.release.run_release`).
    :param planned: a reviewed plan per site name (``--apply``; see :mod:`agent.plan`).
    """
    sites = config.sites()
    run = JobRun(JOB_RELEASE, sites=[s.name for s in sites])
    live = [s for s in sites if not (dry_run or s.license_release.dry_run)]
    with _delivery(run, config, host, delivery, needed=bool(live)) as sink:
        with _guarded(run):
            for site in sites if run.error is None else ():
                result = _release_site(
                    run, config, host, site, sink, dry_run, now, progress, should_stop,
                    qrs_factory, journal, planned.get(site.name) if planned else None,
                )  # fmt: skip
                if result is not None:
                    run.results.append(result)
                    _log_release(result)
        return _finish(run, host, sink, heartbeat, "release")


def _release_site(
    run: JobRun,
    config: AgentConfig,
    host: PluginHost,
    site: SiteConfig,
    delivery: Delivery | None,
    dry_run: bool | None,
    now: datetime | None,
    progress: Progress | None,
    should_stop: Callable[[], bool] | None,
    qrs_factory: QrsFactory,
    journal: ReleaseJournal | None,
    planned: PlannedSet | None,
) -> ReleaseResult | None:
    dry = bool(dry_run or site.license_release.dry_run)
    with (
        _site_failures(run, site, "release run"),
        _locked_client(run, config, site, qrs_factory, "release run") as qrs,
    ):
        if qrs is None:
            return None
        # Logged when it starts, under the lock: a run killed before it ends is still listed
        # by `release runs` (as interrupted), so its id can be given to `release restore`.
        kind = release_kind(dry, planned is not None)
        logged = LoggedRun(config.state_dir, started_run(new_run_id(), site.name, kind, _utc_now()))
        logged.start()
        # A dry run deletes nothing: no journal (a real run settles it later).
        settle = (
            contextlib.nullcontext((journal, delivery))
            if dry
            else journaled(config, site, qrs, delivery, journal)
        )
        with settle as (site_journal, sink):
            result = run_release(
                config,
                site,
                host,
                qrs,
                dry_run=True if dry else None,
                delivery=sink,
                journal=site_journal,
                now=now,
                progress=progress,
                should_stop=should_stop,
                run_id=logged.run.run_id,
                planned=planned,
            )
        # Still under the lock: `release runs` never sees the lock free and the row running.
        logged.finish(release_run_record(result))
        return result
    return None


def _log_release(result: ReleaseResult) -> None:
    if result.limit_tripped:
        logger.error(
            "release job on {} stopped by the safety limit: {}", result.site, result.aborted
        )
    elif not result.ok:
        logger.error(
            "release job on {} needs attention: {}",
            result.site,
            result.aborted or "; ".join(result.errors) or "some deletes failed (see the log)",
        )


# --------------------------------------------------------------------------- the restore job


@dataclass
class RestoreJobRun(JobRun):
    """A restore on every site of the config; its results are :class:`RestoreResult` s."""

    #: site -> why the selection names nothing there (``--run`` of a run on another site). Not
    #: a failure while some site had something to restore; a usage mistake when none had.
    nothing_selected: dict[str, str] = field(default_factory=dict)

    def _expected(self) -> list[str]:
        return [s for s in super()._expected() if s not in self.nothing_selected]

    def outcome(self) -> JobOutcome:
        if self.nothing_selected and not (self.results or self.failures or self.error):
            return JobOutcome.failed("; ".join(self.nothing_selected.values()))
        return super().outcome()


def run_restore_job(
    config: AgentConfig,
    host: PluginHost,
    selection: Selection,
    *,
    dry_run: bool = False,
    delivery: Delivery | None = None,
    qrs_factory: QrsFactory = open_qrs,
) -> RestoreJobRun:
    """Give the selected releases back on every site, each under the site's release lock.
    Never raises (see :func:`agent.restore.run_restore` for what a restore does).

    A restore first settles what an interrupted release run left in the site's release
    journal, as a release run does: an allocation whose DELETE a killed run sent is then
    selectable under that run's id, in a dry restore too (which asks QRS, records what it
    shows and sends nothing). With ``delivery`` ``None`` a live restore opens one from the
    config and closes it after.

    The job's result goes to plugins (``sla_job_result``, job ``license_restore``); there is
    no heartbeat entry: a restore is an admin's one-off command, not a job of
    ``license-agent run``, whose schedule the heartbeat describes. A mistake the user must fix
    (certificate files, the state folder) stops the restore before the next site.
    """
    sites = config.sites()
    run = RestoreJobRun(JOB_RESTORE, sites=[s.name for s in sites])
    with _delivery(run, config, host, delivery, needed=not dry_run) as sink:
        with _guarded(run):
            for site in sites if run.error is None else ():
                if run.config_errors:
                    break
                result = _restore_site(run, config, site, selection, sink, dry_run, qrs_factory)
                if result is not None:
                    run.results.append(result)
                    record_run(config.state_dir, result.run_record())
        return _finish(run, host, sink, None, "restore")


def _restore_site(
    run: RestoreJobRun,
    config: AgentConfig,
    site: SiteConfig,
    selection: Selection,
    delivery: Delivery | None,
    dry_run: bool,
    qrs_factory: QrsFactory,
) -> RestoreResult | None:
    with (
        _site_failures(run, site, "restore"),
        _locked_client(run, config, site, qrs_factory, "restore") as qrs,
    ):
        if qrs is None:
            return None
        with (
            _release_journal(config, site, qrs, None if dry_run else delivery) as released,
            RestoreJournal.for_site(config.state_dir, site.name) as journal,
            RunLog.for_site(config.state_dir, site.name) as log,
        ):
            # A release run still `running` in the log died (this restore holds the lock).
            with contextlib.suppress(JournalError):
                log.settle(site.name)
            try:
                return run_restore(
                    site,
                    qrs,
                    released,
                    journal,
                    selection,
                    dry_run=dry_run,
                    delivery=delivery,
                    known_run=log.get,
                )
            except RestoreUsageError as exc:
                run.nothing_selected[site.name] = str(exc)
    return None


@contextlib.contextmanager
def _release_journal(
    config: AgentConfig, site: SiteConfig, qrs: Any, delivery: Delivery | None
) -> Iterator[SqliteJournal]:
    """The site's release journal for a restore, settled first: what QRS shows of DELETEs an
    interrupted run sent is recorded, and their release events go to ``delivery`` (a dry
    restore has none: they wait for the next live run)."""
    with journaled(config, site, qrs, delivery) as (journal, _sink):
        yield cast(SqliteJournal, journal)  # journaled() opens a SqliteJournal when given none


# --------------------------------------------------------------------------- the monitor jobs


def run_monitor_job(
    config: AgentConfig,
    host: PluginHost,
    delivery: Delivery | None = None,
    *,
    qrs_factory: QrsFactory = open_qrs,
    collectors: Sequence[MetricCollector] | None = None,
    heartbeat: Heartbeat | None = None,
) -> JobRun:
    """One monitor run per site. Never raises.

    A failed run logs one line (QRS unreachable for hours means one line per run, not a
    flood). With ``delivery`` ``None`` a delivery is opened from the config and closed after.
    ``collectors`` limits the metric collectors run (default: all).
    """
    sites = config.sites()
    run = JobRun(JOB_MONITOR, sites=[s.name for s in sites])
    with _delivery(run, config, host, delivery, needed=True) as sink:
        with _guarded(run):
            for site in sites if run.error is None else ():
                with _client(run, site, qrs_factory) as qrs:
                    if qrs is None:
                        result = MonitorResult(site=site.name, error=run.failures.pop(site.name))
                    else:
                        result = run_monitor(
                            site, qrs, host, sink, config=config, collectors=collectors
                        )
                run.results.append(result)
                _log_monitor(result)
        return _finish(run, host, sink, heartbeat, "monitor")


def _log_monitor(result: MonitorResult) -> None:
    if result.error:
        logger.error("license monitor run for {} failed: {}", result.site, result.error)
        return
    failed = [d.name for d in result.delivery.destinations if not d.ok] if result.delivery else []
    logger.info(
        "license monitor: {} points for {}{}",
        len(result.points),
        result.site,
        f"; not yet delivered to {', '.join(failed)}" if failed else "",
    )


def run_collector_job(
    config: AgentConfig,
    host: PluginHost,
    delivery: Delivery | None,
    collector: MetricCollector,
    *,
    qrs_factory: QrsFactory = open_qrs,
    heartbeat: Heartbeat | None = None,
) -> JobRun:
    """Run one metric collector with its own schedule (the site license) on every site.

    Never raises; a failure logs one line per site and run, as the monitor job does.
    """
    sites = config.sites()
    run = JobRun(collector.name, sites=[s.name for s in sites])
    with _delivery(run, config, host, delivery, needed=True) as sink:
        with _guarded(run):
            for site in sites if run.error is None else ():
                result = MonitorResult(site=site.name)
                with _client(run, site, qrs_factory) as qrs:
                    if qrs is None:
                        result.error = run.failures.pop(site.name)
                    else:
                        result.time = _utc_now()
                        result.points = collect(
                            collector, qrs, result.time, site, result.plugin_errors
                        )
                        if result.plugin_errors:
                            result.error = result.plugin_errors[collector.name]
                        elif result.points and sink is not None:
                            result.delivery = sink.deliver(result.points)
                if result.error:
                    logger.error(
                        "{} run for {} failed: {}", collector.name, site.name, result.error
                    )
                run.results.append(result)
        return _finish(run, host, sink, heartbeat, collector.name)


# --------------------------------------------------------------------------- the schedule


def jobs_from_config(config: AgentConfig) -> list[tuple[str, Frequency]]:
    """The scheduled jobs the config enables, in run order: ``("monitor", ...)``, ``("release", ...)``."""
    return scheduled_jobs(
        {
            "monitor": config.license_monitor.frequency if config.license_monitor.enable else None,
            "release": config.license_release.frequency if config.license_release.enable else None,
        }
    )


class NothingToRun(ValueError):
    """The config enables no job; the message names the keys that would."""


@dataclass(frozen=True)
class ScheduledJob:
    """One job of ``license-agent run``: its name (as in the heartbeat), when it runs, and for
    a metric collector with a schedule of its own, that collector."""

    name: str
    frequency: Frequency
    collector: MetricCollector | None = None


def plan_jobs(config: AgentConfig, host: PluginHost) -> list[ScheduledJob]:
    """Every job the config enables, in run order. Raises :class:`NothingToRun` for none.

    Collectors with a schedule of their own (the site license) get a job each; the others run
    with every monitor run.
    """
    planned = [ScheduledJob(name, frequency) for name, frequency in jobs_from_config(config)]
    for collector in host.metric_collectors(config):
        if collector.frequency:
            planned.append(
                ScheduledJob(collector.name, parse_frequency(collector.frequency), collector)
            )
    if not planned:
        raise NothingToRun(
            "Butler.qlikSenseLicense: no job is enabled, so there is nothing to run; set"
            " licenseMonitor.enable, licenseRelease.enable and/or"
            " serverLicenseMonitor.enable to true"
        )
    return planned


def _job_function(
    job: ScheduledJob,
    config: AgentConfig,
    host: PluginHost,
    delivery: Delivery,
    loop: RunLoop,
    heartbeat: Heartbeat | None,
) -> Callable[[], JobRun]:
    if job.collector is not None:
        collector = job.collector

        def run_collector() -> JobRun:
            return run_collector_job(config, host, delivery, collector, heartbeat=heartbeat)

        return run_collector
    if job.name == "monitor":
        with_monitor = [c for c in host.metric_collectors(config) if not c.frequency]

        def run_monitor() -> JobRun:
            return run_monitor_job(
                config, host, delivery, collectors=with_monitor, heartbeat=heartbeat
            )

        return run_monitor

    def run_release() -> JobRun:
        # A graceful stop sends no further DELETE; those in flight finish.
        return run_release_job(
            config, host, delivery, should_stop=lambda: loop.stopping, heartbeat=heartbeat
        )

    return run_release


def run_agent(config: AgentConfig, host: PluginHost, loop: RunLoop) -> None:
    """Run every enabled job on its schedule until ``loop`` stops (``license-agent run``).

    One delivery serves the agent's whole life: destinations that serve (Prometheus) stay up
    and keep their counters, and what the outbox holds is sent before the first run and again
    before stopping. The heartbeat file (``license-agent health``) records each run. Raises
    :class:`NothingToRun`, before anything starts, when the config enables no job.
    """
    planned = plan_jobs(config, host)
    delivery = Delivery.from_config(config, host)
    heartbeat = Heartbeat(heartbeat_path(config)) if heartbeat_enabled(config) else None
    try:
        for job in planned:
            function = _job_function(job, config, host, delivery, loop, heartbeat)
            loop.add_job(job.name, job.frequency, function)
        if heartbeat is not None:
            heartbeat.started({job.name: job.frequency.text for job in planned})
        host.startup(config)
        delivery.flush_pending("at start")
        loop.run()
        delivery.flush_pending("before stopping")
    finally:
        delivery.close()
        host.shutdown(config)
        if heartbeat is not None:
            heartbeat.stopped()


__all__ = [
    "JOB_MONITOR",
    "JOB_NAMES",
    "JOB_RELEASE",
    "JOB_RESTORE",
    "JobRun",
    "RestoreJobRun",
    "NothingToRun",
    "jobs_from_config",
    "open_qrs",
    "ScheduledJob",
    "plan_jobs",
    "report_job_result",
    "run_agent",
    "run_collector_job",
    "run_monitor_job",
    "run_release_job",
    "run_restore_job",
]
