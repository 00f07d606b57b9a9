"""``license-agent monitor --once``: one license monitor run, shown as a table.

It reads the access type overview once, writes the points to every enabled destination
(through the outbox, so a destination that is down gets them later), prints the overview
(type, total, allocated, used, quarantined, available) and where the points went. The scheduled
monitor runs inside ``license-agent run``; this command is for a first try, a cron job or a
check. Exit codes: 0 when the overview was read (a failing destination is reported and its
points stay pending), 1 when QRS could not be read, 2 for a configuration mistake.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from agent.cli.common import (
    license_table,
    load_config_for,
    print_error,
    safe_text,
    setup_logging_for,
    sites_or_error,
)
from agent.delivery import DeliveryReport
from agent.jobs import run_monitor_job
from agent.logging import mask_secrets
from agent.monitor import MonitorResult
from agent.plugins import build_plugin_host


def register(subparsers: argparse._SubParsersAction) -> None:
    from agent.cli import add_common_options

    parser = subparsers.add_parser(
        "monitor", help="read the license overview once and write it to the destinations"
    )
    add_common_options(parser)
    parser.add_argument(
        "--once",
        action="store_true",
        help="run once now (required; the scheduled monitor runs in `license-agent run`)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.once:
        print(
            "error: `license-agent monitor` runs one monitor pass: add --once"
            " (the scheduled monitor runs in `license-agent run`)",
            file=sys.stderr,
        )
        return 2
    config = load_config_for(args)
    assert config is not None
    setup_logging_for(args, config)
    sites = sites_or_error(config)
    host = build_plugin_host(config)
    try:
        job = run_monitor_job(config, host)
    finally:
        host.shutdown(config)
    if job.config_errors:
        for why in job.config_errors:
            print_error(why)
        return 2
    if job.error:
        print_error(job.error)
        return 1
    urls = {site.name: site.qrs.base_url for site in sites}
    for result in job:
        if result.error:
            print_error(f"{urls.get(result.site, result.site)}: {result.error}")
        elif not args.json:
            print(format_result(result))
    if args.json:
        print(mask_secrets(json.dumps([_to_json(r) for r in job], indent=2)))
    return 1 if any(r.error for r in job) else 0


def format_delivery(report: DeliveryReport | None, destinations: int) -> str:
    if report is None or not destinations:
        return (
            "No destination is enabled: the points were not stored. Enable Butler.influxDb, or"
            " Butler.licenseAgent.destinations.sqlite / jsonl (see the README)."
        )
    lines = ["Destinations:"]
    for dest in report.destinations:
        # A destination's words may quote its server, which may echo the token it was sent.
        name, where = safe_text(dest.name), safe_text(dest.description)
        if dest.ok:
            lines.append(f"  {name}: {dest.written} points written to {where}")
            continue
        lines.append(f"  {name}: FAILED ({where}): {safe_text(dest.error)}")
        if dest.written:
            lines.append(f"      {dest.written} points written")
        if dest.rejected:
            lines.append(f"      {dest.rejected} points refused for good and dropped")
        if dest.pending:
            lines.append(
                f"      {dest.pending} points kept in the outbox; they are sent at the next run"
            )
    if report.dropped:
        lines.append(f"  the outbox was full: {report.dropped} old monitor points were dropped")
    return "\n".join(lines)


def format_result(result: MonitorResult) -> str:
    when = result.time.strftime("%Y-%m-%d %H:%M:%S UTC") if result.time else "?"
    parts = [f"License overview of {result.site} at {when}", "", license_table(result.rows), ""]
    written_to = len(result.delivery.destinations) if result.delivery else 0
    parts.append(format_delivery(result.delivery, written_to))
    for name, error in result.plugin_errors.items():
        parts.append(f"plugin {name} failed: {safe_text(error)}")
    return "\n".join(parts)


def _to_json(result: MonitorResult) -> dict[str, object]:
    return {
        "site": result.site,
        "time": result.time.isoformat() if result.time else None,
        "error": result.error,
        "overview": [asdict(row) for row in result.rows],
        "points": [p.to_dict() for p in result.points],
        "delivery": result.delivery.to_dict() if result.delivery else None,
        "plugin_errors": result.plugin_errors,
    }
