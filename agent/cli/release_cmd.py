"""``license-agent release --once``: one release run, with a summary, an explanation, a report.

Exit codes: 0 when the run did everything it set out to do (a dry run over the safety limit
too: it lists everything that qualifies); 1 when a rule plugin failed, a listing failed (it
could not see the whole picture), or some DELETEs failed; 2 for configuration and usage
mistakes; 3 when the safety limit stopped a live run (it released nothing).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from loguru import logger

from agent.cli.common import load_config_for, print_error, setup_logging_for, sites_or_error
from agent.config import ConfigError
from agent.config_warnings import config_warnings
from agent.models import DEFAULT_REPORT_FILE, UTC, QrsDataError, parse_qrs_time


def register(subparsers: argparse._SubParsersAction) -> None:
    from agent.cli import add_common_options

    parser = subparsers.add_parser(
        "release",
        help="release Professional/Analyzer allocations unused for too long (one run)",
        description=(
            "Run the license release once: list allocations past their threshold, apply every"
            " neverRelease rule, check the safety limit, then delete (or with --dry-run only"
            " report) what nothing protects."
        ),
    )
    add_common_options(parser)
    parser.add_argument(
        "--once",
        action="store_true",
        help="run once now (required; the scheduled job runs inside `license-agent run`)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="decide everything, delete nothing, send no release event (also: dryRun: true)",
    )
    parser.add_argument(
        "--report",
        metavar="FILE",
        nargs="?",
        const=DEFAULT_REPORT_FILE,
        help="write every decision as JSON to FILE (default: ./release-report.json, where"
        " `license-agent report` looks for it)",
    )
    parser.add_argument(
        "--explain", action="store_true", help="print one row per allocation with its reasons"
    )
    parser.add_argument(
        "--apply",
        metavar="PLAN",
        help="release only what this plan (a dry run's --report file) lists as would_release"
        " and what still qualifies now; the safety limit does not apply to a reviewed plan",
    )
    parser.add_argument(
        "--now",
        metavar="TIMESTAMP",
        help="with --dry-run: measure thresholds from this UTC time (e.g. 2026-06-01T00:00:00Z)",
    )
    parser.set_defaults(handler=run)

    commands = parser.add_subparsers(dest="release_command", metavar="{restore,runs}")
    restore = commands.add_parser(
        "restore",
        help="give released allocations back to the same users (undo a release)",
        description=(
            "Allocate again what a release run took away (POST /qrs/license/<type>, the QMC's"
            " Allocate). Within QRS's 7-day quarantine the same allocation is reinstated without"
            " using a license; later a new one needs an available license. Select with --run,"
            " --user and/or --since (all must match)."
        ),
    )
    add_common_options(restore)
    restore.add_argument("--run", metavar="ID", help="the release run to undo (see `release runs`)")
    restore.add_argument("--user", metavar="DIR\\ID", help="only this user's allocations")
    restore.add_argument(
        "--since", metavar="DATE", help="only releases at or after this UTC date or time"
    )
    restore.add_argument(
        "--dry-run", action="store_true", help="show what would be restored; change nothing"
    )
    restore.add_argument("--report", metavar="FILE", help="write every decision as JSON to FILE")
    restore.set_defaults(handler=run_restore_command)

    runs = commands.add_parser(
        "runs",
        help="list recent release, dry-run, apply and restore runs with their ids and counts",
    )
    add_common_options(runs)
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    runs.add_argument(
        "--limit", type=int, default=20, metavar="N", help="how many runs per site (20)"
    )
    runs.set_defaults(handler=list_runs_command)


class TerminalProgress:
    """Progress on one stderr line, redrawn at most ten times a second; only on a terminal."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.last = 0.0
        self.shown = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done not in (0, total) and now - self.last < 0.1:
            return
        self.last = now
        text = f"{stage}: {done}/{total}" if total else stage
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _parse_now(text: str) -> datetime:
    try:
        value = parse_qrs_time(text)
    except QrsDataError:
        value = None
    if value is None:
        raise ConfigError([f"--now: {text!r} is not a timestamp like 2026-06-01T00:00:00Z"])
    return value


def worst_code(*codes: int) -> int:
    """The exit code of several sites: 1 (needs attention) over 3 (safety limit) over 0."""
    return 1 if 1 in codes else max(codes)


def run(args: argparse.Namespace) -> int:
    if not args.once:
        print(
            "error: `license-agent release` runs once: add --once (the scheduled release job"
            " runs inside `license-agent run`)",
            file=sys.stderr,
        )
        return 2
    config = load_config_for(args)
    assert config is not None
    setup_logging_for(args, config)
    for warning in config_warnings(config):
        logger.warning("{}", warning)
    release = config.license_release
    dry_run = bool(args.dry_run or release.dry_run)
    now = None
    if args.now:
        if not dry_run:
            raise ConfigError(["--now is only allowed with --dry-run (or dryRun: true)"])
        now = _parse_now(args.now)
    if args.apply and dry_run:
        raise ConfigError(
            [
                "--apply releases for real: it cannot be combined with --dry-run or dryRun: true"
                " (set Butler.qlikSenseLicense.licenseRelease.dryRun: false to apply a plan)"
            ]
        )
    if args.apply:
        # A site's own dryRun: true would make the apply a dry run there, silently.
        dry_sites = [
            f"--apply releases for real, but Butler.licenseAgent.sites[{index}]"
            f".qlikSenseLicense.licenseRelease.dryRun is true (site {site.name}): set it to"
            " false (or remove it) to apply a plan there"
            for index, site in enumerate(config.sites() if config.agent.sites else [])
            if site.license_release.dry_run
        ]
        if dry_sites:
            raise ConfigError(dry_sites)
    if not release.enable and not dry_run:
        raise ConfigError(
            [
                "Butler.qlikSenseLicense.licenseRelease.enable is false: set it to true to"
                " release licenses, or add --dry-run to see what would be released"
            ]
        )
    if not release.license_type.enabled():
        raise ConfigError(
            [
                "Butler.qlikSenseLicense.licenseRelease.licenseType: no license type is enabled;"
                " set professional.enable and/or analyzer.enable to true"
            ]
        )
    sites_or_error(config)

    from agent.jobs import run_release_job
    from agent.plugins import build_plugin_host
    from agent.report import print_result, write_report

    host = build_plugin_host(config)
    planned: dict[str, Any] | None = None
    if args.apply:
        from agent.plan import PlanError, plans_for_sites

        try:
            planned = plans_for_sites(Path(args.apply), config, host, datetime.now(UTC))
        except PlanError as exc:
            host.shutdown(config)
            raise ConfigError([str(exc)]) from None
    progress = TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    try:
        job = run_release_job(
            config,
            host,
            dry_run=args.dry_run or None,
            now=now,
            progress=progress,
            planned=planned,
        )
    finally:
        if progress is not None:
            progress.clear()
        host.shutdown(config)
    if job.config_errors:
        raise ConfigError(job.config_errors)
    problems = ([job.error] if job.error else []) + list(job.failures.values())
    for why in problems:
        print_error(why)
    for result in job:
        print_result(result, explain=args.explain)
    if args.report and job.results:
        write_report(job.results, Path(args.report))
        print(f"report written to {args.report}")
    return worst_code(1 if problems else 0, *(result.exit_code for result in job))


def _parse_since(text: str) -> datetime:
    candidate = f"{text}T00:00:00Z" if len(text) == 10 else text
    try:
        return _parse_now(candidate)
    except ConfigError:
        raise ConfigError(
            [f"--since: {text!r} is not a date like 2026-06-01 or a time like 2026-06-01T08:00:00Z"]
        ) from None


def run_restore_command(args: argparse.Namespace) -> int:
    """``license-agent release restore``: give released allocations back."""
    from agent.restore import RestoreUsageError, Selection

    config = load_config_for(args)
    assert config is not None
    setup_logging_for(args, config)
    since = _parse_since(args.since) if args.since else None
    try:
        selection = Selection(args.run, args.user, since)
    except RestoreUsageError as exc:
        raise ConfigError([str(exc)]) from None
    sites_or_error(config)

    from agent.jobs import run_restore_job
    from agent.plugins import build_plugin_host
    from agent.report import print_restore, write_documents

    host = build_plugin_host(config)
    try:
        job = run_restore_job(config, host, selection, dry_run=args.dry_run)
    finally:
        host.shutdown(config)
    for result in job:
        print_restore(result)
    if job.config_errors:
        raise ConfigError(job.config_errors)
    problems = ([job.error] if job.error else []) + list(job.failures.values())
    for why in problems:
        print_error(why)
    if job.nothing_selected and not job.results and not problems:
        raise ConfigError(list(job.nothing_selected.values()))
    if args.report and job.results:
        write_documents([r.to_document() for r in job.results], Path(args.report))
        print(f"report written to {args.report}")
    return max([1 if problems else 0, *(result.exit_code for result in job)])


def list_runs_command(args: argparse.Namespace) -> int:
    """``license-agent release runs``: recent runs per site, newest first."""
    import json

    from agent.report import runs_table
    from agent.runs import recent_runs
    from agent.text import json_safe

    config = load_config_for(args)
    assert config is not None
    records = []
    for site in sites_or_error(config):
        records.extend(recent_runs(config.state_dir, site.name, max(1, args.limit)))
    if args.json:
        print(json_safe(json.dumps([r.to_dict() for r in records], indent=2, ensure_ascii=False)))
    else:
        print(runs_table(records))
    return 0
