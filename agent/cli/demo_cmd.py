"""``license-agent demo``: 60 days of history of a simulated site, today's monitor and dry-run
release, then the HTML report.

No Qlik Sense server and no database are needed; see :mod:`agent.demo`. Exit codes: 0 when
every step ran, 1 when one failed (its own message says why), 2 when the folder cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.cli import main
from agent.cli.common import print_error
from agent.demo import DEFAULT_DIR, DEFAULT_USERS, DemoError, run_demo


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="try the agent on a simulated Sense site: no server or database needed",
        description=(
            "Start the bundled QRS simulator, write a config into DIR, build 60 simulated days"
            " of history (monitor runs into SQLite, daily releases on the simulated site), then"
            " run today's license monitor and dry-run release, print their tables, and write the"
            " decision report and the HTML report. Nothing outside DIR is touched."
        ),
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help="working folder for the config, history and reports (default: ./demo)",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=DEFAULT_USERS,
        help=f"users of the simulated site (default: {DEFAULT_USERS})",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the generated site (default: 1)"
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="afterwards, run the schedule (`license-agent run`) on the simulator until Ctrl+C",
    )
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        type=str.upper,
        default="WARNING",
        choices=["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"],
        help="log level of the monitor and release steps (default: WARNING)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.users <= 200_000:
        print("error: --users must be between 1 and 200000", file=sys.stderr)
        return 2
    try:
        return run_demo(
            args.dir,
            users=args.users,
            seed=args.seed,
            keep_running=args.keep_running,
            log_level=args.log_level,
            run_command=main,
        )
    except DemoError as exc:
        print_error(exc)
        return 2
