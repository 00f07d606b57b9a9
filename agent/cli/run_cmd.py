"""``license-agent run``: run the enabled jobs on their schedules until stopped.

The monitor job runs on ``licenseMonitor.frequency`` and the release job on
``licenseRelease.frequency``, each once at start unless ``Butler.licenseAgent.runAtStart`` is
false. SIGINT, SIGTERM (and SIGBREAK on Windows) ask for a graceful stop: no new run starts,
running ones finish, the command exits 0. A second signal aborts at once.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from types import FrameType
from typing import Any

from loguru import logger

from agent.certificates import check_files
from agent.cli.common import load_config_for, print_error, setup_logging_for
from agent.config import AgentConfig, ConfigError
from agent.config_warnings import config_warnings
from agent.delivery import Delivery
from agent.heartbeat import Heartbeat, heartbeat_enabled, heartbeat_path, timed_job
from agent.jobs import jobs_from_config
from agent.monitor import run_collector_job
from agent.plugins import PluginHost, build_plugin_host
from agent.schedule import RunLoop, parse_frequency

#: Job name -> (module, function); each function is called as ``function(config, host)``.
JOB_TARGETS: dict[str, tuple[str, str]] = {
    "monitor": ("agent.monitor", "run_monitor_job"),
    "release": ("agent.release", "run_release_job"),
}


class JobUnavailable(RuntimeError):
    """The function a job calls is missing from this installation."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from agent.cli import add_common_options

    parser = subparsers.add_parser(
        "run", help="run the enabled monitor and release jobs on their schedules until stopped"
    )
    add_common_options(parser)
    parser.set_defaults(handler=run)


def resolve_job(name: str) -> Callable[..., Any]:
    """Import the function behind job ``name`` (lazily: the job modules are heavy)."""
    module_name, function_name = JOB_TARGETS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise JobUnavailable(
            f"the {name} job needs {module_name}.{function_name}, but {module_name} cannot be"
            f" imported ({exc}); reinstall sense-license-agent"
        ) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise JobUnavailable(
            f"the {name} job needs {module_name}.{function_name}, which this installation"
            " does not have; reinstall sense-license-agent"
        )
    return function


#: The job names destinations see in ``record_job_result`` (and Prometheus' ``job_name``).
JOB_FEATURES = {"monitor": "license_monitor", "release": "license_release"}


def _job(
    name: str,
    config: AgentConfig,
    host: PluginHost,
    delivery: Any,
    should_stop: Callable[[], bool] | None = None,
    *,
    function: Callable[..., Any] | None = None,
    **options: Any,
) -> Callable[[], Any]:
    """The callable the run loop runs for job ``name``: ``function`` (default: the job's own
    function) with the options it accepts, its outcome reported to health-tracking
    destinations."""

    def call() -> Any:
        results = None
        ok = False
        try:
            target = function or resolve_job(name)
            accepted = inspect.signature(target).parameters
            # A job that can stop part-way (the release: no new DELETE once stopping) is told.
            extra = {k: v for k, v in options.items() if k in accepted}
            if should_stop is not None and "should_stop" in accepted:
                extra["should_stop"] = should_stop
            results = target(config, host, delivery, **extra)
            ok = bool(results) and all(getattr(r, "ok", True) for r in results)
            return results
        finally:
            report_job_result(delivery, JOB_FEATURES.get(name, name), ok)

    call.__name__ = f"{name}_job"
    return call


def report_job_result(delivery: Any, job: str, ok: bool) -> None:
    """Tell destinations that track the agent's health (Prometheus) how a job went."""
    finished = datetime.now(timezone.utc)
    for destination in getattr(delivery, "destinations", ()):
        record = getattr(destination, "record_job_result", None)
        if not callable(record):
            continue
        try:
            record(job=job, ok=ok, finished=finished, qrs_errors=0 if ok else 1)
        except Exception as exc:  # a health gauge must never break a job
            logger.warning(
                "destination {} could not record the {} job: {}", destination.name, job, exc
            )


def run(args: argparse.Namespace) -> int:
    config = load_config_for(args)
    assert config is not None
    setup_logging_for(args, config)
    problems = check_files(config)
    if problems:
        raise ConfigError(problems, str(config.source) if config.source else None)
    for warning in config_warnings(config):
        logger.warning("{}", warning)
    host = build_plugin_host(config)
    # Collectors with a schedule of their own (the site license) get a job each; the others
    # run with every monitor run.
    collectors = host.metric_collectors(config)
    own_schedule = {c.name: c for c in collectors if c.frequency}
    with_monitor = [c for c in collectors if not c.frequency]
    builtin_jobs = jobs_from_config(config)
    jobs = builtin_jobs + [(c.name, parse_frequency(c.frequency)) for c in own_schedule.values()]
    if not jobs:
        raise ConfigError(
            [
                "Butler.qlikSenseLicense: no job is enabled, so there is nothing to run; set"
                " licenseMonitor.enable, licenseRelease.enable and/or"
                " serverLicenseMonitor.enable to true"
            ],
            str(config.source) if config.source else None,
        )
    try:
        for name, _ in builtin_jobs:
            resolve_job(name)  # fail now, clearly, rather than at every scheduled run
    except JobUnavailable as exc:
        print_error(exc)
        return 1
    # One delivery for the agent's life: destinations that serve (Prometheus) stay up and
    # keep their counters, and pending outbox rows are sent before the first run.
    delivery = Delivery.from_config(config, host)
    loop = RunLoop(run_at_start=config.agent.run_at_start)
    # The heartbeat file tells a monitoring system (`license-agent health`) how each job went.
    heartbeat = Heartbeat(heartbeat_path(config)) if heartbeat_enabled(config) else None
    for name, frequency in jobs:
        if name in own_schedule:
            job = _job(
                name,
                config,
                host,
                delivery,
                function=run_collector_job,
                collector=own_schedule[name],
            )
        else:
            job = _job(
                name,
                config,
                host,
                delivery,
                lambda: loop.stopping,
                collectors=with_monitor,
            )
        if heartbeat is not None:
            job = timed_job(name, job, heartbeat, lambda: [s.name for s in config.sites()])
        loop.add_job(name, frequency, job)
    if heartbeat is not None:
        heartbeat.started({name: frequency.text for name, frequency in jobs})
    host.startup(config)
    try:
        _flush(delivery, "at start")
        with stop_on_signals(loop):
            loop.run()
        _flush(delivery, "before stopping")
    finally:
        delivery.close()
        host.shutdown(config)
        if heartbeat is not None:
            heartbeat.stopped()
    return 0


def _flush(delivery: Delivery, when: str) -> None:
    """Send what the outbox holds; never raises (a destination down is logged by delivery)."""
    try:
        if delivery.outbox.count():
            report = delivery.flush()
            logger.info(
                "outbox {}: {}",
                when,
                ", ".join(
                    f"{d.name}: {d.written} sent, {d.pending} pending" for d in report.destinations
                )
                or "nothing to send",
            )
    except Exception as exc:
        logger.error("could not flush the outbox {}: {}", when, exc)


@contextmanager
def stop_on_signals(loop: RunLoop) -> Iterator[None]:
    """SIGINT/SIGTERM (and SIGBREAK on Windows) stop ``loop`` gracefully; a second one aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (embedding, tests)
        return
    names = ["SIGINT", "SIGTERM", "SIGBREAK"]  # SIGBREAK: Ctrl+Break on Windows only
    signals = [getattr(signal, name) for name in names if hasattr(signal, name)]

    def handler(signum: int, _frame: FrameType | None) -> None:
        if loop.stopping:
            raise KeyboardInterrupt  # second signal: do not wait for running jobs
        logger.info(
            "{} received: stopping after the running jobs finish (send it again to abort)",
            signal.Signals(signum).name,
        )
        loop.stop()

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
