"""The ``license-agent`` command line: argument parsing and human output only.

Each command group lives in its own module with a ``register(subparsers)`` function; the list
in :data:`COMMAND_MODULES` is the one place they are named. Handlers return an exit code:
0 success, 2 usage or configuration error, 1 runtime failure. A user's mistake ends in one
clear message, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from agent import __version__
from agent.cli.common import print_error
from agent.config import ConfigError
from agent.logging import mask_secrets
from agent.text import printable_lines

#: Command modules under ``agent.cli``; each has ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "config_cmd",
    "plugins_cmd",
    "qrs_cmd",
    "monitor_cmd",
    "release_cmd",
    "run_cmd",
    "simulator_cmd",
    "demo_cmd",
    "report_cmd",
    "health_cmd",
    "alert_cmd",
)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--log-level``, accepted by every command."""
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="config file (default: $LICENSE_AGENT_CONFIG, then ./config.yaml)",
    )
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        type=str.upper,
        choices=["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"],
        help="log level (overrides the config)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="license-agent",
        description="Monitor Qlik Sense access licenses and release unused ones, safely.",
    )
    parser.add_argument("--version", action="version", version=f"license-agent {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"agent.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args) or 0)
    except ConfigError as exc:
        print_error(exc)
        if exc.warnings:
            # Shown with the errors: a warning such as "configQrs: unknown key, did you mean
            # configQRS?" is often the cause of an error.
            lines = "\n".join(f"  - {w}" for w in exc.warnings)
            print(f"warnings:\n{lines}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:
        # A bug: the traceback is for us, but its messages may quote a secret or QRS data.
        text = "".join(traceback.format_exception(*sys.exc_info()))
        print(printable_lines(mask_secrets(text)), file=sys.stderr, end="")
        return EXIT_FAILURE
