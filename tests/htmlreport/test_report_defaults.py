"""`license-agent report` finds the decision report under its one default name, says when it
found no decisions, and leaves no SQLite working files beside the history."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

from agent.cli import main
from agent.models import DEFAULT_REPORT_FILE

from .builders import decision_document, write_history


def test_one_default_name():
    assert DEFAULT_REPORT_FILE == "release-report.json"


def test_no_decisions_anywhere_is_said(tmp_path, monkeypatch, capsys):
    (tmp_path / "data").mkdir()
    db = tmp_path / "data" / "license-agent.sqlite"
    write_history(db, days=2)
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--db", str(db)]) == 0
    captured = capsys.readouterr()
    assert "decisions from" not in captured.out
    assert "note: no release decisions: no release-report.json beside the history" in captured.err
    assert "release --once --dry-run --report" in captured.err
    assert "No decision report" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_the_decision_report_in_the_current_folder_is_found(tmp_path, monkeypatch, capsys):
    # `release --once --report` writes ./release-report.json; the history lives elsewhere.
    (tmp_path / "state").mkdir()
    db = tmp_path / "state" / "license-agent.sqlite"
    write_history(db, days=2)
    (tmp_path / DEFAULT_REPORT_FILE).write_text(json.dumps(decision_document()), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--db", str(db)]) == 0
    captured = capsys.readouterr()
    assert f"decisions from {DEFAULT_REPORT_FILE})" in captured.out
    assert "note:" not in captured.err


def test_the_one_beside_the_history_wins(tmp_path, monkeypatch, capsys):
    db = tmp_path / "license-agent.sqlite"
    write_history(db, days=2)
    (tmp_path / DEFAULT_REPORT_FILE).write_text(json.dumps(decision_document()), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / DEFAULT_REPORT_FILE).write_text("not json", encoding="utf-8")
    monkeypatch.chdir(elsewhere)
    assert main(["report", "--db", str(db)]) == 0
    assert f"decisions from {tmp_path / DEFAULT_REPORT_FILE}" in capsys.readouterr().out


def test_a_decision_report_without_decisions_is_said(tmp_path, capsys):
    db = tmp_path / "license-agent.sqlite"
    write_history(db, days=2)
    document = decision_document()
    for counts in document["run"]["counts"].values():
        counts.update(dict.fromkeys(counts, 0), kept_by_rule={})
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(document), encoding="utf-8")
    out = tmp_path / "r.html"
    assert main(["report", "--db", str(db), "--decisions", str(empty), "--out", str(out)]) == 0
    assert f"note: {empty} holds no release decisions" in capsys.readouterr().err


def test_the_report_leaves_no_wal_files_and_changes_nothing(tmp_path, capsys):
    db = tmp_path / "license-agent.sqlite"
    write_history(db, days=2)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        before = conn.execute("SELECT COUNT(*), MAX(time_ns) FROM license_snapshot").fetchone()
    assert not list(tmp_path.glob("*-wal"))
    assert main(["report", "--db", str(db), "--out", str(tmp_path / "r.html")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["license-agent.sqlite", "r.html"]
    with closing(sqlite3.connect(db)) as conn:
        after = conn.execute("SELECT COUNT(*), MAX(time_ns) FROM license_snapshot").fetchone()
    assert after == before
