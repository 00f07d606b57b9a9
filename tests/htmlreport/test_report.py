"""The HTML report from SQLite histories: data read back, charts drawn, edge cases."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from agent.cli import main
from agent.htmlreport import (
    USAGE_SERIES,
    ReportError,
    load_decisions,
    load_history,
    nice_ticks,
    render_html,
    time_ticks,
)
from agent.models import UTC
from plugins.destinations.sqlite import SqliteDestination

from .builders import END, decision_document, release_point, usage_point, write_history


def _polylines(page: str, cls: str) -> list[list[tuple[float, float]]]:
    found = re.findall(rf'<polyline class="series series-{cls}"[^>]* points="([^"]+)"', page)
    return [[tuple(map(float, p.split(","))) for p in pts.split()] for pts in found]


def _write(path, points):
    destination = SqliteDestination(
        path, frozenset({"license_monitor", "license_release", "server_license"})
    )
    destination.write(points)
    destination.close()


# --------------------------------------------------------------------------- scales


@pytest.mark.parametrize(
    ("maximum", "expected"),
    [
        (1743, [0, 500, 1000, 1500, 2000]),
        (83, [0, 20, 40, 60, 80, 100]),
        (3, [0, 1, 2, 3]),
        (0, [0, 1]),
        (1124, [0, 250, 500, 750, 1000, 1250]),
    ],
)
def test_nice_ticks(maximum, expected):
    assert nice_ticks(maximum) == expected


@pytest.mark.parametrize(
    ("span", "labels"),
    [
        (timedelta(hours=1), ["12:15", "12:30", "12:45", "13:00"]),
        (timedelta(days=2), None),
        (timedelta(days=45), ["Jan 05", "Jan 19", "Feb 02"]),
        (timedelta(days=400), ["Apr 2026", "Jul 2026", "Oct 2026", "Jan 2027"]),
    ],
)
def test_time_ticks_are_round_and_inside(span, labels):
    start = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    ticks = time_ticks(start, start + span)
    assert 2 <= len(ticks) <= 7
    assert all(start <= t <= start + span for t, _ in ticks)
    assert all(t.second == 0 and t.minute % 15 == 0 for t, _ in ticks)
    if labels is not None:
        assert [label for _, label in ticks][-len(labels) :] == labels


# --------------------------------------------------------------------------- reading


def test_history_reads_what_the_destination_wrote(history_db):
    history = load_history(history_db)
    assert [s.license_type for s in history.usage] == ["professional", "analyzer"]
    assert history.runs == 45 * 4 + 1
    assert history.first == END - timedelta(days=45) and history.last == END
    professional = history.usage[0].snapshots[-1].values
    assert professional["total"] == 1743
    assert professional["available"] == professional["total"] - professional["allocated"]
    per_day = {}
    for count in history.releases:
        per_day.setdefault(count.day, {})[count.license_type] = count
    last_day = per_day[(END - timedelta(hours=1)).date()]
    assert last_day["professional"].released == 3 + (45 * 7) % 11
    assert last_day["professional"].quarantined == 1
    assert last_day["analyzer"].released == 1 + (45 * 5) % 6


def test_missing_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(ReportError, match="no such file.*sqlite destination"):
        load_history(tmp_path / "nope.sqlite")
    foreign = tmp_path / "other.sqlite"
    import sqlite3

    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ReportError, match="not a license-agent history"):
        load_history(foreign)
    (tmp_path / "bad.json").write_text('{"decisions": []}', encoding="utf-8")
    with pytest.raises(ReportError, match="not a decision report"):
        load_decisions(tmp_path / "bad.json")


# --------------------------------------------------------------------------- drawing


def test_page_is_self_contained(history_db, decisions_file):
    history = load_history(history_db)
    page = render_html(history, load_decisions(decisions_file), generated=END)
    assert "<script" not in page and "<link" not in page and "src=" not in page
    assert "@import" not in page and "url(" not in page
    # The only URL is the SVG namespace, which is a name, not a download.
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}
    assert "Qlik Sense license report &mdash; sense.example.com" in page
    assert "Generated 2026-06-01 12:00 UTC" in page


def test_usage_lines_follow_the_data(history_db):
    history = load_history(history_db)
    page = render_html(history, generated=END)
    for name, *_ in USAGE_SERIES:
        assert len(_polylines(page, name)) == 2  # one per license type
    allocated = _polylines(page, "allocated")[0]
    assert len(allocated) == history.runs
    xs = [x for x, _ in allocated]
    assert xs == sorted(xs) and xs[-1] - xs[0] > 400
    # SVG y grows downwards: the larger count is drawn higher up.
    values = [s.values["allocated"] for s in history.usage[0].snapshots]
    top, bottom = values.index(max(values)), values.index(min(values))
    assert allocated[top][1] < allocated[bottom][1]
    total = _polylines(page, "total")[0]
    assert total[0][1] < allocated[0][1]  # total is above allocated
    # Few points get markers; 181 runs do not (they would be a smear).
    assert "marker-allocated" not in page


def test_missing_field_breaks_the_line_instead_of_bridging(tmp_path):
    db = tmp_path / "gap.sqlite"
    points = [
        usage_point("professional", END - timedelta(hours=6 * i), 100, 90 - i, 80, 1)
        for i in range(6)
    ]
    gap = usage_point("professional", END - timedelta(hours=6 * 6), 100, 85, 80, 1)
    points.append(gap.__class__(gap.measurement, gap.tags, {"total": 100.0}, gap.time))
    points += [
        usage_point("professional", END - timedelta(hours=6 * i), 100, 90 - i, 80, 1)
        for i in range(7, 10)
    ]
    _write(db, points)
    page = render_html(load_history(db), generated=END)
    runs = _polylines(page, "allocated")
    assert sorted(len(r) for r in runs) == [3, 6]
    assert len(_polylines(page, "total")[0]) == 10


def test_single_snapshot_is_markers_with_values(tmp_path):
    db = tmp_path / "one.sqlite"
    _write(db, [usage_point("professional", END, 1743, 1660, 1571, 5)])
    page = render_html(load_history(db), generated=END)
    assert "<polyline" not in page
    assert page.count('class="marker marker-') == len(USAGE_SERIES)
    for text in ("Total 1,743", "Allocated 1,660", "Used 1,571", "Available 83", "Quarantined 5"):
        assert f">{text}</text>" in page
    assert "one snapshot, 2026-06-01 12:00 UTC" in page


def test_empty_history_explains_what_to_do(tmp_path):
    db = tmp_path / "empty.sqlite"
    _write(db, [])
    page = render_html(load_history(db), generated=END)
    assert "<svg" not in page
    assert "No license data yet" in page
    assert "No license has been released yet" in page
    assert "No decision report" in page
    assert "no monitor run yet" in page


def test_dry_run_points_to_would_release(history_db, tmp_path):
    write_history(tmp_path / "norel.sqlite", releases=False)
    page = render_html(
        load_history(tmp_path / "norel.sqlite"), [decision_document()], generated=END
    )
    assert "it would release 833 allocation(s)" in page
    assert ">Would release (dry run)</text>" in page
    assert re.search(r">customProperty</text>.*?>52</text>", page)


def test_decisions_without_counts_are_counted(history_db):
    document = {
        "run": {"site": "s", "dry_run": False, "started": "2026-06-01T12:00:00.000Z"},
        "decisions": [
            {"license_type": "professional", "decision": "released", "reasons": []},
            {"license_type": "professional", "decision": "released", "reasons": []},
            {
                "license_type": "analyzer",
                "decision": "kept",
                "reasons": [{"rule": "tag", "reason": "x"}, {"rule": "user", "reason": "y"}],
            },
        ],
    }
    page = render_html(load_history(history_db), [document], generated=END)
    assert re.search(r">Released</text>.*?>2</text>", page)
    assert re.search(r">tag</text>.*?>1</text>", page)


def test_stale_history_is_flagged(history_db):
    page = render_html(load_history(history_db), generated=END + timedelta(days=9))
    assert "9 days before this report: is the agent running" in page


def test_sites_get_their_own_sections_and_names_are_escaped(tmp_path):
    db = tmp_path / "sites.sqlite"
    write_history(db, days=10, sites=("prod", "<b>test</b>"))
    history = load_history(db)
    assert history.sites() == ["<b>test</b>", "prod"]
    docs = [decision_document(site="prod"), decision_document(site="dev-without-history")]
    page = render_html(history, docs, generated=END)
    assert "<b>test</b>" not in page and "&lt;b&gt;test&lt;/b&gt;" in page
    assert page.count("<h2>Site ") == 3
    assert len(_polylines(page, "allocated")) == 4
    assert "Site dev-without-history" in page


def test_long_histories_are_thinned(tmp_path):
    db = tmp_path / "year.sqlite"
    write_history(db, days=365, every_hours=2, releases=True)
    page = render_html(load_history(db), generated=END)
    allocated = _polylines(page, "allocated")[0]
    assert 300 < len(allocated) <= 600  # one point per pixel column at most
    assert "Released per week" in page
    assert len(page) < 600_000


# --------------------------------------------------------------------------- the command


def test_report_command(tmp_path, history_db, decisions_file, capsys):
    out = tmp_path / "out" / "report.html"
    assert main(["report", "--db", str(history_db), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # release-report.json next to the database is picked up without --decisions.
    assert f"report written to {out} (181 monitor runs, 255 releases, decisions from" in printed
    page = out.read_text(encoding="utf-8")
    assert "Kept by rule" in page and "userDirectory" in page


def test_report_command_errors(tmp_path, capsys):
    assert main(["report", "--db", str(tmp_path / "missing.sqlite")]) == 2
    assert "no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    db = tmp_path / "h.sqlite"
    _write(db, [release_point("professional", END, "ACME\\x")])
    code = main(
        ["report", "--db", str(db), "--decisions", str(bad), "--out", str(tmp_path / "r.html")]
    )
    assert code == 1
    assert "not a decision report" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_report_command_reads_the_config(tmp_path, monkeypatch, capsys):
    (tmp_path / "data").mkdir()
    write_history(tmp_path / "data" / "history.sqlite", days=3)
    (tmp_path / "config.yaml").write_text(
        "Butler:\n  licenseAgent:\n    destinations:\n      sqlite:\n        enable: true\n"
        "        path: data/history.sqlite\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    assert main(["report", "-c", "config.yaml"]) == 0
    assert "13 monitor runs" in capsys.readouterr().out
    assert "Professional" in (tmp_path / "report.html").read_text(encoding="utf-8")
