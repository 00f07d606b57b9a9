"""``license-agent run``: run the enabled jobs on their schedules until stopped.

The monitor job runs on ``licenseMonitor.frequency`` and the release job on
``licenseRelease.frequency``, each once at start unless ``Butler.licenseAgent.runAtStart`` is
false. SIGINT, SIGTERM (and SIGBREAK on Windows) ask for a graceful stop: no new run starts,
running ones finish, the command exits 0. A second signal aborts at once.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from loguru import logger

from agent.certificates import check_files
from agent.cli.common import load_config_for, setup_logging_for
from agent.config import ConfigError
from agent.config_warnings import config_warnings
from agent.jobs import NothingToRun, run_agent
from agent.plugins import build_plugin_host
from agent.schedule import RunLoop


def register(subparsers: argparse._SubParsersAction) -> None:
    from agent.cli import add_common_options

    parser = subparsers.add_parser(
        "run", help="run the enabled monitor and release jobs on their schedules until stopped"
    )
    add_common_options(parser)
    parser.set_defaults(handler=run)


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
    loop = RunLoop(run_at_start=config.agent.run_at_start)
    try:
        with stop_on_signals(loop):
            run_agent(config, host, loop)
    except NothingToRun as exc:
        raise ConfigError([str(exc)], str(config.source) if config.source else None) from None
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
        # No logging here: the main thread may be inside a log line (see stop_from_signal).
        if loop.stopping:
            raise KeyboardInterrupt  # second signal: do not wait for running jobs
        loop.stop_from_signal(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
