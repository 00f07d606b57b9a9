"""The release run report: the JSON document ``--report FILE`` writes, and the console tables.

Both are made from :class:`agent.release.ReleaseResult` and nothing else, so what the console
shows, what the file holds and what the run did cannot disagree. The JSON document is::

    {"run": {"id", "site", "started", "finished", "now", "dry_run", "thresholds", "counts",
             "aborted", "limit_note", "errors", "events"},
     "decisions": [{"license_type", "allocation_id", "user_directory", "user_id", "user_name",
                    "last_used", "days_since_last_use", "decision", "reasons": [...]}, ...],
     "plan": {...}}   # dry runs only: what makes the report a plan (agent.plan)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from agent.logging import mask_secrets
from agent.models import AllocationDecision, Decision, format_qrs_time
from agent.plan import plan_block
from agent.release import ReleaseResult
from agent.restore import RestoreResult
from agent.runs import RunRecord
from agent.text import CELL_WIDTH, printable

#: The order decisions are listed in: what changed first, then what was kept and why.
DECISION_ORDER = {
    d: i
    for i, d in enumerate(
        (
            Decision.RELEASED,
            Decision.QUARANTINED,
            Decision.WOULD_RELEASE,
            Decision.FAILED,
            Decision.ALREADY_GONE,
            Decision.KEPT,
            Decision.SKIPPED_QUARANTINED,
            Decision.NOT_ELIGIBLE,
        )
    )
}


def sorted_decisions(
    decisions: Sequence[AllocationDecision], type_order: Sequence[str] = ()
) -> list[AllocationDecision]:
    """Decisions in a stable, readable order: by type (run order), decision, then owner."""
    rank = {name: i for i, name in enumerate(type_order)}
    return sorted(
        decisions,
        key=lambda d: (
            rank.get(d.allocation.license_type, len(rank)),
            d.allocation.license_type,
            DECISION_ORDER.get(d.decision, 99),
            d.allocation.owner.casefold(),
            d.allocation.id,
        ),
    )


def _type_order(result: ReleaseResult) -> list[str]:
    return [t.license_type for t in result.types]


def report_document(result: ReleaseResult) -> dict[str, Any]:
    """The JSON report of one run."""
    return {
        "run": {
            "id": result.run_id,
            "site": result.site,
            "started": format_qrs_time(result.started),
            "finished": format_qrs_time(result.finished) if result.finished else None,
            "now": format_qrs_time(result.now),
            "dry_run": result.dry_run,
            "plan_applied": result.plan_applied,
            "thresholds": result.thresholds(),
            "counts": result.counts(),
            "aborted": mask_secrets(result.aborted) if result.aborted else result.aborted,
            "limit_note": result.limit_note,
            "errors": [mask_secrets(e) for e in result.errors],
            "events": len(result.events),
        },
        "decisions": [d.to_dict() for d in sorted_decisions(result.decisions, _type_order(result))],
        **({"plan": plan} if (plan := plan_block(result)) else {}),
    }


def write_report(results: Sequence[ReleaseResult], path: Path) -> None:
    """Write the report file: one run's document, or a list of them for several sites.

    Written to a temporary file and renamed, so a reader never sees half a report.
    """
    write_documents([report_document(r) for r in results], path)


def write_documents(documents: Sequence[dict[str, Any]], path: Path) -> None:
    """Write one JSON document, or a list of several, atomically (temporary file + rename)."""
    payload: Any = documents[0] if len(documents) == 1 else list(documents)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- console

#: The REASONS column of ``--explain`` is cut to this many characters.
REASONS_WIDTH = 200


def format_table(rows: Sequence[Sequence[str]], numeric: Sequence[bool] | None = None) -> str:
    """Plain aligned columns; the first row is the header. Numeric columns align right."""
    if not rows:
        return ""
    # Cells may hold QRS data: a newline or an escape sequence there must not act on the
    # terminal nor break the table's lines.
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = numeric or [False] * len(widths)
    lines = []
    for row in rows:
        cells = [
            str(cell).rjust(widths[i]) if numeric[i] else str(cell).ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def summary_text(result: ReleaseResult) -> str:
    """The per-type summary of a run, and how many allocations each rule kept."""
    mode = "dry run: nothing was deleted" if result.dry_run else "releasing"
    lines = [
        f"License release on {result.site} ({mode}), thresholds measured from"
        f" {format_qrs_time(result.now)}" + (f", run {result.run_id}" if result.run_id else "")
    ]
    done_label = "WOULD RELEASE" if result.dry_run else "RELEASED"
    header = [
        "LICENSE TYPE",
        "THRESHOLD",
        "CONSIDERED",
        "ELIGIBLE",
        "KEPT",
        done_label,
        "QUARANTINED",
        "FAILED",
        "ALREADY GONE",
        "SKIPPED QUARANTINED",
        "NOT ELIGIBLE",
    ]
    rows = [header]
    for t in result.types:
        c = t.counts()
        done = c[Decision.WOULD_RELEASE.value] if result.dry_run else c[Decision.RELEASED.value]
        rows.append(
            [
                t.license_type,
                f"{t.settings.threshold_days} d",
                str(c["considered"]),
                str(c["eligible"]),
                str(c[Decision.KEPT.value]),
                str(done),
                str(c[Decision.QUARANTINED.value]),
                str(c[Decision.FAILED.value]),
                str(c[Decision.ALREADY_GONE.value]),
                str(c[Decision.SKIPPED_QUARANTINED.value]),
                str(c[Decision.NOT_ELIGIBLE.value]),
            ]
        )
    lines.append(format_table(rows, [False] + [True] * (len(header) - 1)))
    by_rule = {t.license_type: t.kept_by_rule() for t in result.types}
    names = sorted({name for counts in by_rule.values() for name in counts})
    if names:
        types = [t.license_type for t in result.types]
        rule_rows = [["KEPT BY", *types]]
        rule_rows += [[name, *(str(by_rule[t].get(name, 0)) for t in types)] for name in names]
        lines.append("")
        lines.append(format_table(rule_rows, [False] + [True] * len(types)))
        lines.append("(an allocation kept by several rules counts once under each)")
    for t in result.types:
        if t.error:
            lines.append(f"! {t.license_type}: {printable(t.error)}")
    if result.limit_note:
        lines.append(f"Safety limit: {result.limit_note}")
    if result.aborted:
        lines.append(f"! run stopped: {printable(result.aborted)}")
    for error in result.errors:
        if not any(error == t.error for t in result.types):
            lines.append(f"! {printable(error)}")
    return "\n".join(lines)


def explain_text(result: ReleaseResult) -> str:
    """One row per allocation the run considered, with every reason."""
    rows = [["LICENSE TYPE", "DECISION", "USER", "NAME", "LAST USED", "DAYS", "REASONS"]]
    for d in sorted_decisions(result.decisions, _type_order(result)):
        a = d.allocation
        last_used = format_qrs_time(a.last_used)[:10] if a.last_used else "never"
        owner = a.owner + (" (deleted)" if a.user is None else "")
        reasons = "; ".join(f"{r.rule}: {r.reason}" for r in d.reasons)
        # Cut so one long name cannot widen every row (a 10 MB name made a 52 MB table);
        # the JSON report keeps the whole value.
        rows.append(
            [
                printable(a.license_type, CELL_WIDTH),
                d.decision.value,
                printable(owner, CELL_WIDTH),
                printable(d.user_name or (a.user.name if a.user else ""), CELL_WIDTH),
                last_used,
                str(d.days_since_last_use),
                printable(reasons, REASONS_WIDTH),
            ]
        )
    if len(rows) == 1:
        return "No allocation was considered."
    return format_table(rows, [False, False, False, False, False, True, False])


def print_result(
    result: ReleaseResult, *, explain: bool = False, out: IO[str] | None = None
) -> None:
    out = out or sys.stdout
    print(summary_text(result), file=out)
    if explain:
        print("", file=out)
        print(explain_text(result), file=out)


# --------------------------------------------------------------------------- restore and runs


def restore_text(result: RestoreResult) -> str:
    """The console summary of a restore, and one row per released allocation it looked at."""
    mode = "dry run: nothing was changed" if result.dry_run else "restoring"
    lines = [f"License restore on {result.site} ({mode}), run {result.run_id}"]
    counts = {k: v for k, v in result.counts().items() if v}
    lines.append(
        "  ".join(f"{k.upper().replace('_', ' ')} {v}" for k, v in counts.items())
        or "Nothing selected."
    )
    if result.note:
        lines.append(result.note)
    if result.recovered:
        lines.append(f"an interrupted restore was settled first: {result.recovered}")
    rows = [["LICENSE TYPE", "USER", "RELEASED BY RUN", "DECISION", "ALLOCATION", "REASON"]]
    for d in result.decisions:
        rows.append(
            [
                d.release.license_type,
                printable(d.release.user, CELL_WIDTH),
                d.release.run_id or "-",
                d.decision,
                d.allocation_id or "-",
                printable(d.reason, REASONS_WIDTH),
            ]
        )
    if len(rows) > 1:
        lines.append("")
        lines.append(format_table(rows))
    lines.extend(f"! {printable(error)}" for error in result.errors)
    return "\n".join(lines)


def print_restore(result: RestoreResult, out: IO[str] | None = None) -> None:
    print(restore_text(result), file=out or sys.stdout)


def runs_table(records: Sequence[RunRecord]) -> str:
    """``release runs``: one row per run, newest first."""
    if not records:
        return "No run recorded yet."
    rows = [["RUN", "SITE", "KIND", "STARTED", "COUNTS", "OUTCOME"]]
    for r in records:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(r.counts.items())) or "-"
        rows.append([r.run_id, r.site, r.kind, format_qrs_time(r.started), counts, r.outcome])
    return format_table(rows)
