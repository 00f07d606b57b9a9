"""``license-agent qrs check``: connect to QRS with the configured settings and say how it went.

It prints the server version (``/qrs/about``) and the license overview, or one clear diagnosis
(which certificate file, which host and port, which account) and exits 1. Config mistakes,
including certificate paths that point nowhere, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from agent.cli.common import load_config_for, setup_logging_for, sites_or_error
from agent.qrs import QrsCertificateFileError, QrsClient, QrsError

#: (label, overview block) for the table; other blocks are shown only when enabled.
_SEAT_TYPES = (("professional", "professionalAccess"), ("analyzer", "analyzerAccess"))
_SEAT_COLUMNS = ("total", "allocated", "used", "quarantined", "excess", "available")


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
    codes = []
    documents = []
    # Several sites (Butler.licenseAgent.sites): each is checked, one failing does not hide
    # the others; the exit code is the worst.
    for index, site in enumerate(sites):
        if len(sites) > 1 and not args.json:
            print(("\n" if index else "") + f"== site {site.name}")
        code, document = _check_site(site, args)
        codes.append(code)
        if document is not None:
            documents.append({"site": site.name, **document} if len(sites) > 1 else document)
    if args.json and documents:
        print(json.dumps(documents if len(sites) > 1 else documents[0], indent=2))
    return max(codes)


def _check_site(site: Any, args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    try:
        client = QrsClient(site)
    except QrsCertificateFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2, None
    with client:
        try:
            about = client.about()
            overview = client.access_type_overview()
        except QrsError as exc:
            print(f"error: cannot use QRS at {site.qrs.base_url}: {exc}", file=sys.stderr)
            return 1, None
    if args.json:
        return 0, {"about": about, "accessTypeOverview": overview}
    print(f"QRS {site.qrs.base_url} as '{client.qlik_user}': connected")
    version = about.get("buildVersion") or "unknown"
    built = f" (built {about['buildDate']})" if about.get("buildDate") else ""
    print(f"Qlik Sense repository version {version}{built}")
    print()
    print(format_overview(overview))
    return 0, None


def format_overview(overview: Mapping[str, Any]) -> str:
    """The overview as a table; missing blocks or keys (older Sense versions) show as ``-``."""
    header = ("TYPE", *(c.upper() for c in _SEAT_COLUMNS))
    rows: list[tuple[str, ...]] = [header]
    notes: list[str] = []
    for label, key in _SEAT_TYPES:
        block = overview.get(key)
        if not isinstance(block, Mapping):
            notes.append(f"{label}: not reported by this QRS")
            continue
        if block.get("enabled") is False:
            notes.append(f"{label}: not enabled on this site")
        rows.append((label, *(_number(block.get(c)) for c in _SEAT_COLUMNS)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        )
        for row in rows
    ]
    capacity = overview.get("analyzerTimeAccess")
    if isinstance(capacity, Mapping) and capacity.get("enabled"):
        lines.append(
            "analyzer capacity: "
            f"{_number(capacity.get('allocatedMinutes'))} minutes allocated, "
            f"{_number(capacity.get('usedMinutes'))} used"
        )
    if overview.get("tokensEnabled"):
        lines.append(
            f"tokens: {_number(overview.get('totalTokens'))} total,"
            f" {_number(overview.get('availableTokens'))} available"
        )
    lines.extend(notes)
    return "\n".join(lines)


def _number(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
