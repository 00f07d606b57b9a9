"""``license-agent run``: run the enabled jobs on their schedules until stopped.

The monitor job runs on ``licenseMonitor.frequency`` and the release job on
``licenseRelease.frequency``, each once at start unless ``Butler.licenseAgent.runAtStart`` is
false. SIGINT, SIGTERM (and SIGBREAK on Windows) ask for a graceful stop: no new run starts,
running ones finish, the command exits 0. A second signal aborts at once.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from loguru import logger

from agent.cli.common import load_config_for, setup_logging_for
from agent.config import AgentConfig, ConfigError, check_files, config_warnings
from agent.plugins import PluginHost, build_plugin_host
from agent.schedule import RunLoop, jobs_from_config

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


def _job(name: str, config: AgentConfig, host: PluginHost) -> Callable[[], Any]:
    def call() -> Any:
        return resolve_job(name)(config, host)

    call.__name__ = f"{name}_job"
    return call


def run(args: argparse.Namespace) -> int:
    config = load_config_for(args)
    assert config is not None
    setup_logging_for(args, config)
    problems = check_files(config)
    if problems:
        raise ConfigError(problems, str(config.source) if config.source else None)
    for warning in config_warnings(config):
        logger.warning("{}", warning)
    jobs = jobs_from_config(config)
    if not jobs:
        raise ConfigError(
            [
                "Butler.qlikSenseLicense: no job is enabled, so there is nothing to run; set"
                " licenseMonitor.enable and/or licenseRelease.enable to true"
            ],
            str(config.source) if config.source else None,
        )
    try:
        for name, _ in jobs:
            resolve_job(name)  # fail now, clearly, rather than at every scheduled run
    except JobUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    host = build_plugin_host(config)
    loop = RunLoop(run_at_start=config.agent.run_at_start)
    for name, frequency in jobs:
        loop.add_job(name, frequency, _job(name, config, host))
    host.startup(config)
    try:
        with stop_on_signals(loop):
            loop.run()
    finally:
        host.shutdown(config)
    return 0


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
