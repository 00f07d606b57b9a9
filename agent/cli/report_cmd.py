"""``license-agent report``: the SQLite license history as a self-contained HTML page.

The history is the file of the ``sqlite`` destination: ``--db FILE``, else the config's
``destinations.sqlite.path`` when a config is found, else ``./license-agent.sqlite``. The
latest release run's decisions come from ``--decisions FILE``, else from
``release-report.json`` (the name ``release --once --report`` writes by default) next to the
history, else in the current folder; the command says when it found none. See
:mod:`agent.htmlreport`.
Exit codes: 0 written (also for an empty history: the page says so), 1 cannot read or write,
2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.alerts import AlertView
from agent.cli.common import load_config_for, print_error
from agent.htmlreport import ReportError, build_report
from agent.models import DEFAULT_REPORT_FILE
from agent.plugins import build_plugin_host

DEFAULT_DB = "license-agent.sqlite"


def register(subparsers: argparse._SubParsersAction) -> None:
    from agent.cli import add_common_options

    parser = subparsers.add_parser(
        "report",
        help="write an HTML report (charts) from the SQLite license history",
        description=(
            "Draw license usage over time per type, releases per day and the latest release"
            " run's decisions into one HTML file that needs no network and no JavaScript."
        ),
    )
    add_common_options(parser)
    parser.add_argument(
        "--db",
        type=Path,
        metavar="FILE",
        help="the SQLite history (default: the config's destinations.sqlite.path, else"
        f" ./{DEFAULT_DB})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("report.html"),
        metavar="FILE",
        help="the HTML file to write (default: ./report.html)",
    )
    parser.add_argument(
        "--decisions",
        type=Path,
        metavar="FILE",
        help="a decision report of `release --once --report [FILE]` (default:"
        f" {DEFAULT_REPORT_FILE} next to the history, else in the current folder)",
    )
    parser.add_argument(
        "--site", default="", help="the site name to show for history without a site tag"
    )
    parser.set_defaults(handler=run)


def _default_db(args: argparse.Namespace) -> tuple[Path, str, AlertView | None]:
    """The history file, a site name and what the alert plugins draw, from the config when
    there is one."""
    config = load_config_for(args, required=False)
    if config is None:
        return Path(DEFAULT_DB), "", None
    sites = config.sites()
    site = sites[0].name if len(sites) == 1 else ""
    sqlite = config.settings("licenseAgent.destinations.sqlite")
    if (sqlite is None or not sqlite.enable) and args.db is None:
        print(
            "note: the config does not enable the sqlite destination"
            " (Butler.licenseAgent.destinations.sqlite.enable), so the history may be empty",
            file=sys.stderr,
        )
    alerts = build_plugin_host(config).alert_view(config)
    return (sqlite and sqlite.path) or config.state_dir / DEFAULT_DB, site, alerts


def run(args: argparse.Namespace) -> int:
    alerts = None
    if args.db is not None and not args.config:
        db, site = args.db, ""  # a stray ./config.yaml must not matter when --db says it all
    else:
        db, site, alerts = _default_db(args)
        db = args.db or db
    decisions = args.decisions
    if decisions is None:
        found = (db.parent / DEFAULT_REPORT_FILE, Path(DEFAULT_REPORT_FILE))
        decisions = next((path for path in found if path.is_file()), None)
    if not db.is_file():
        print(
            f"error: {db}: no such file. The history is written by the sqlite destination"
            " (Butler.licenseAgent.destinations.sqlite.enable: true) during monitor runs;"
            " pass its file with --db, or try `license-agent demo`",
            file=sys.stderr,
        )
        return 2
    try:
        summary = build_report(db, args.out, decisions, site=args.site or site, alerts=alerts)
    except ReportError as exc:
        print_error(exc)
        return 1
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    runs = f"{summary.runs:,} monitor run{'s' if summary.runs != 1 else ''}"
    released = f"{summary.releases:,} release{'s' if summary.releases != 1 else ''}"
    with_decisions = f", decisions from {decisions}" if decisions else ""
    print(f"report written to {args.out} ({runs}, {released}{with_decisions})")
    if decisions is None:
        print(
            f"note: no release decisions: no {DEFAULT_REPORT_FILE} beside the history"
            f" ({db.parent}) or in the current folder. `license-agent release --once --dry-run"
            " --report` writes one; pass another file with --decisions",
            file=sys.stderr,
        )
    elif not summary.decision_count:
        print(
            f"note: {decisions} holds no release decisions (the run listed no allocation)",
            file=sys.stderr,
        )
    return 0
