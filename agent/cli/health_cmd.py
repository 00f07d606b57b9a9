"""``license-agent health``: exit 0 when the running agent does its job, 1 when it does not.

It reads the heartbeat file ``license-agent run`` keeps (see :mod:`agent.heartbeat`) and
checks that the latest run of every job succeeded and recently enough: by default within twice
its schedule's period plus 10 minutes, or within ``--max-age``. A failed latest run is unhealthy
(``--fail-on-error``, which once asked for that, is still accepted and changes nothing). For monitoring systems (Nagios,
Zabbix, a Windows scheduled task, a systemd timer): one line per job on stdout, and the exit
code. Exit codes: 0 healthy, 1 unhealthy or no heartbeat, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

from agent.cli.common import load_config_for, safe_text
from agent.heartbeat import (
    HeartbeatError,
    check_health,
    heartbeat_path,
    parse_duration,
    read_heartbeat,
)
from agent.models import UTC


def register(subparsers: argparse._SubParsersAction) -> None:
    from agent.cli import add_common_options

    parser = subparsers.add_parser(
        "health",
        help="check the running agent's heartbeat: exit 0 if healthy, 1 if not",
        description=(
            "Read the heartbeat file of `license-agent run` and check that every job had a"
            " successful run recently enough. For monitoring systems."
        ),
    )
    add_common_options(parser)
    parser.add_argument(
        "--file",
        type=Path,
        metavar="FILE",
        help="the heartbeat file (default: Butler.licenseAgent.heartbeat.file, else"
        " heartbeat.json in the state folder)",
    )
    parser.add_argument(
        "--max-age",
        metavar="DURATION",
        help="the oldest acceptable last success of each job, e.g. 2h, 90m, 1d (default: twice"
        " the job's schedule period plus 10 minutes)",
    )
    parser.add_argument(
        "--fail-on-error",
        action="store_true",
        help="accepted for existing scripts; a failed latest run is always unhealthy now",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    max_age = None
    if args.max_age:
        try:
            max_age = parse_duration(args.max_age)
        except ValueError as exc:
            print(f"error: --max-age: {exc}", file=sys.stderr)
            return 2
    path = args.file
    if path is None:
        config = load_config_for(args)
        assert config is not None
        path = heartbeat_path(config)
    try:
        document = read_heartbeat(path)
    except HeartbeatError as exc:
        if args.json:
            print(json.dumps({"ok": False, "problems": [str(exc)], "jobs": []}, indent=2))
        else:
            print(f"UNHEALTHY: {safe_text(exc)}")
        return 1
    health = check_health(document, datetime.now(UTC), max_age)
    if args.json:
        print(json.dumps({**health.to_dict(), "file": str(path)}, indent=2))
    else:
        status = "OK" if health.ok else "UNHEALTHY"
        version = document.get("version", "?")
        host = safe_text(document.get("host", "?"), 200)
        print(f"{status}: license-agent {safe_text(version, 40)} on {host} ({path})")
        # The heartbeat holds the runs' errors, which may quote QRS's answers.
        for problem in health.problems:
            print(f"  ! {safe_text(problem)}")
        for job in health.jobs:
            print(
                f"  {'ok  ' if job.ok else 'FAIL'} {safe_text(job.job)}: {safe_text(job.message)}"
            )
    return 0 if health.ok else 1
