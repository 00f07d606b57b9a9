"""``license-agent alert test [--channel NAME]``: send a test message to each alert channel."""

from __future__ import annotations

import argparse
from datetime import datetime

from agent.alerts import send_test_alerts
from agent.cli.common import load_config_for, setup_logging_for
from agent.config import ConfigError
from agent.logging import mask_secrets
from agent.models import FEATURE_ALERT, UTC
from agent.plugins import build_plugin_host


def register(subparsers: argparse._SubParsersAction) -> None:
    from agent.cli import add_common_options

    parser = subparsers.add_parser("alert", help="alert channels (test them)")
    commands = parser.add_subparsers(dest="alert_command", metavar="COMMAND")
    test = commands.add_parser("test", help="send a test message to each configured channel")
    add_common_options(test)
    test.add_argument("--channel", metavar="NAME", help="only this channel (e.g. mqtt, teams)")
    test.set_defaults(handler=run_test)


def run_test(args: argparse.Namespace) -> int:
    config = load_config_for(args)
    setup_logging_for(args, config)
    host = build_plugin_host(config)
    channels = [d for d in host.destinations(config) if FEATURE_ALERT in d.features]
    names = [c.name for c in channels]
    if not channels:
        raise ConfigError(
            [
                "no alert channel is configured: enable one under"
                " Butler.qlikSenseLicense.licenseMonitor.alert.destination (mqtt, webhook,"
                " teams, slack, email) or Butler's serverLicenseMonitor.destination.mqtt /"
                " .webhook"
            ]
        )
    if args.channel:
        if args.channel not in names:
            raise ConfigError(
                [
                    f"--channel {args.channel!r}: no such alert channel is configured;"
                    f" configured: {', '.join(names)}"
                ]
            )
        channels = [c for c in channels if c.name == args.channel]
    try:
        results = send_test_alerts(channels, datetime.now(UTC))
    finally:
        for channel in channels:
            channel.close()
    width = max(len(r.channel) for r in results)
    for result in results:
        verdict = "sent" if result.ok else "FAILED"
        detail = "" if result.ok else f": {mask_secrets(result.message)}"
        print(f"{result.channel.ljust(width)}  {verdict}  {result.where}{detail}")
    return 0 if all(r.ok for r in results) else 1
