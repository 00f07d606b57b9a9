"""``license-agent plugins``: what is loaded, from where, and which hooks each implements."""

from __future__ import annotations

import argparse
import json

from agent.cli.common import load_config_for, setup_logging_for
from agent.plugins import build_plugin_host


def register(subparsers: argparse._SubParsersAction) -> None:
    from agent.cli import add_common_options

    parser = subparsers.add_parser("plugins", help="list plugins and the hooks they implement")
    add_common_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config_for(args, required=False)
    setup_logging_for(args, config)
    host = build_plugin_host(config)
    infos = sorted(host.infos.values(), key=lambda i: (i.source != "built-in", i.name))
    if args.json:
        print(json.dumps([i.to_dict() for i in infos], indent=2))
        return 0
    rows = [("NAME", "SOURCE", "ENABLED", "HOOKS")]
    for info in infos:
        hooks = ", ".join(info.hooks) if info.enabled else (info.error or "disabled")
        rows.append((info.name, info.source, "yes" if info.enabled else "no", hooks))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    return 0
