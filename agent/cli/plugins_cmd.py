"""``license-agent plugins``: what is loaded, from where, whether the config switches it on, and
which hooks each implements."""

from __future__ import annotations

import argparse
import json

from agent.cli.common import load_config_for, setup_logging_for
from agent.plugins import build_plugin_host, parse_config


def register(subparsers: argparse._SubParsersAction) -> None:
    from agent.cli import add_common_options

    parser = subparsers.add_parser(
        "plugins",
        help="list plugins, whether the config switches them on, and their hooks",
        description=(
            "ENABLED is 'yes' when the plugin is loaded and the config switches on what it"
            " provides (a destination's enable, a neverRelease list, ...); 'off' when it is"
            " loaded but the config leaves it off; 'no' when it is disabled or failed to load."
            " Without a config file, the defaults (everything optional off) are shown."
        ),
    )
    add_common_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config_for(args, required=False)
    setup_logging_for(args, config)
    host = build_plugin_host(config)
    on = host.switched_on(config if config is not None else parse_config({"Butler": {}}))
    infos = sorted(host.infos.values(), key=lambda i: (i.source != "built-in", i.name))
    if args.json:
        print(
            json.dumps(
                [{**i.to_dict(), "switched_on": on.get(i.name, False)} for i in infos], indent=2
            )
        )
        return 0
    rows = [("NAME", "SOURCE", "ENABLED", "HOOKS")]
    for info in infos:
        hooks = ", ".join(info.hooks) if info.enabled else (info.error or "disabled")
        enabled = "no" if not info.enabled else "yes" if on.get(info.name) else "off"
        rows.append((info.name, info.source, enabled, hooks))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    return 0
