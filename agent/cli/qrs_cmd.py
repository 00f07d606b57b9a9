"""``license-agent qrs check``: connect to QRS with the configured settings and say how it went.

It prints what the connection protects (TLS, whether the server certificate is verified), the
server version (``/qrs/about``), how this machine's clock compares with QRS's (the release's
clock check) and the license overview in the same table as ``monitor --once``; or one clear
diagnosis (which certificate file, which host and port, which account) and exits 1. Config
mistakes, including certificate files that are missing, swapped, expired or not PEM (the same
diagnosis ``config check`` gives), exit 2.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone
from typing import Any

from agent.certificates import connection_security
from agent.cli.common import (
    license_table,
    load_config_for,
    print_error,
    safe_text,
    setup_logging_for,
    sites_or_error,
)
from agent.clockskew import ServerClock, check_clock, describe
from agent.config import SiteConfig
from agent.monitor import overview_rows
from agent.plugins import PluginHost, build_plugin_host
from agent.qrs import QrsCertificateFileError, QrsClient, QrsError


def register(subparsers: argparse._SubParsersAction) -> None:
    from agent.cli import add_common_options

    parser = subparsers.add_parser("qrs", help="talk to the Qlik Sense Repository Service")
    commands = parser.add_subparsers(dest="qrs_command", metavar="SUBCOMMAND")
    check = commands.add_parser(
        "check",
        help="connect with the configured certificates; print the version and license overview",
    )
    add_common_options(check)
    check.add_argument("--json", action="store_true", help="print the raw answers as JSON")
    check.set_defaults(handler=run_check)
    parser.set_defaults(handler=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def run_check(args: argparse.Namespace) -> int:
    config = load_config_for(args)
    assert config is not None
    setup_logging_for(args, config)
    sites = sites_or_error(config)
    host = build_plugin_host(config)
    codes = []
    documents = []
    try:
        # Several sites (Butler.licenseAgent.sites): each is checked, one failing does not hide
        # the others; the exit code is the worst.
        for index, site in enumerate(sites):
            if len(sites) > 1 and not args.json:
                print(("\n" if index else "") + f"== site {site.name}")
            code, document = _check_site(site, host, args)
            codes.append(code)
            if document is not None:
                documents.append({"site": site.name, **document} if len(sites) > 1 else document)
    finally:
        host.shutdown(config)
    if args.json and documents:
        print(json.dumps(documents if len(sites) > 1 else documents[0], indent=2))
    return max(codes)


def _check_site(
    site: SiteConfig, host: PluginHost, args: argparse.Namespace
) -> tuple[int, dict[str, Any] | None]:
    try:
        client = QrsClient(site)
    except QrsCertificateFileError as exc:
        print_error(exc)
        return 2, None
    with client:
        try:
            about = client.about()
            overview = client.access_type_overview()
        except QrsError as exc:
            print_error(f"cannot use QRS at {site.qrs.base_url}: {exc}")
            return 1, None
        reading = client.server_clock()
    if args.json:
        return 0, {"about": about, "accessTypeOverview": overview}
    print(
        f"QRS {site.qrs.base_url} as '{client.qlik_user}': connected"
        f" ({connection_security(site.qrs)})"
    )
    version = safe_text(about.get("buildVersion") or "unknown", 80)
    built = f" (built {safe_text(about['buildDate'], 80)})" if about.get("buildDate") else ""
    print(f"Qlik Sense repository version {version}{built}")
    print(clock_line(reading, site))
    print()
    rows = overview_rows(overview, host.license_types(), datetime.now(timezone.utc))
    print(license_table(rows))
    return 0, None


def clock_line(reading: ServerClock | None, site: SiteConfig) -> str:
    """How this machine's clock compares with QRS's; beyond the bound it says what a live
    release will do (the check is the release run's, :func:`agent.clockskew.check_clock`)."""
    bound = timedelta(minutes=site.qrs.max_clock_skew_minutes)
    check = check_clock(reading, bound)
    if check.problem is not None:
        return f"Clock: WARNING: {check.problem}; a live release refuses to run until it is fixed"
    skew = check.skew or timedelta(0)
    if abs(skew) < timedelta(seconds=1):
        where = "agrees with QRS's"  # to the second
    else:
        side = "ahead of" if skew > timedelta(0) else "behind"
        where = f"is {describe(skew)} {side} QRS's"
    minutes = bound.total_seconds() / 60
    return f"Clock: this machine's clock {where} (configQRS.maxClockSkewMinutes: {minutes:g})"
