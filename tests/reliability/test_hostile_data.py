"""Hostile user data from QRS (issue 13, item 9): nothing QRS sends can forge a log line, act on
a terminal, or blow up the console table; the JSON report keeps every value as QRS sent it.

The users are loaded into the simulator as a state and the agent runs as a real command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent.text import CELL_WIDTH, json_safe, printable

from .helpers import PRO, build_site, config_document, real_now, release_section, write_config
from .test_security import run_until

FORGED = "2026-01-01 00:00:00.000 | INFO     | release run finished: nothing released"
NEWLINE_ID = f"mallory\n{FORGED}"
ANSI_ID = "ansi\x1b[2J\x1b]0;owned\x07\r"
ANSI_NAME = "\x1b[31mRed Team\x1b[0m \u202egnp.exe\x9b1m"
HUGE_NAME = "N" * 10_000_000
#: What no output may contain raw: ESC, BEL, CR, the C1 CSI and the right-to-left override.
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\u202e")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\S* \| ")


def _agent(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``license-agent ARGS`` as a real command; its output read as UTF-8, bytes kept."""
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="surrogateescape",
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        timeout=300,
    )


def test_hostile_user_data_cannot_forge_logs_or_reach_the_terminal(
    simulator, certs, workdir
) -> None:
    now = real_now()
    site = build_site(
        2,
        now=now,
        names=[
            ("ACME", NEWLINE_ID, "Mallory"),
            ("ACME", ANSI_ID, ANSI_NAME),
            ("ACME", "huge", HUGE_NAME),
        ],
    )
    sim = simulator(site, now=now)
    # The DELETE of Mallory's allocation fails: the agent logs the owner with the error.
    mallory = next(a for a, owner in site.owners.items() if owner.endswith(NEWLINE_ID))
    sim.add_fault(f"DELETE /qrs/license/{PRO}/{mallory}", "error", status=500)
    log = workdir / "agent.log"
    config = write_config(
        workdir / "config.yaml",
        config_document(
            sim.port,
            certs,
            workdir,
            release=release_section(),
            qrs={"retries": 0},
            agent={"logging": {"file": str(log)}},
        ),
    )
    report = workdir / "report.json"
    done = _agent(
        workdir,
        "release",
        "--once",
        "--explain",
        "--report",
        str(report),
        "-c",
        str(config),
        "--log-level",
        "TRACE",
    )
    assert done.returncode == 1, done.stderr[-3000:]  # Mallory's DELETE failed
    log_text = log.read_text("utf-8")

    # The failure was logged with the owner, escaped: no line of the log is a forged record.
    failed = [line for line in log_text.splitlines() if "release of " in line and "failed" in line]
    assert len(failed) == 1 and "mallory\\n2026-01-01" in failed[0], failed
    assert all(LOG_LINE.match(line) for line in log_text.splitlines()), [
        line for line in log_text.splitlines() if not LOG_LINE.match(line)
    ][:3]
    assert not any(line.startswith(FORGED) for line in done.stderr.splitlines())

    # No escape sequence or bidirectional override reaches the terminal or the log.
    for name, text in (("stdout", done.stdout), ("stderr", done.stderr), ("log", log_text)):
        assert not any(c in text for c in RAW_CONTROLS), (
            name,
            [c for c in RAW_CONTROLS if c in text],
        )
    assert printable(ANSI_NAME) in done.stdout  # shown, as text: \x1b[31mRed Team...
    assert "\\u202egnp.exe" in done.stdout

    # One 10 MB name does not make a 10 MB table: the cell is cut, the rows stay narrow.
    assert len(done.stdout) < 50_000, len(done.stdout)
    explain = done.stdout[done.stdout.index("LICENSE TYPE  DECISION") :]
    assert max(map(len, explain.splitlines())) < 400
    assert "N" * (CELL_WIDTH - 3) + "..." in explain

    # The JSON report keeps every value exactly as QRS sent it.
    decisions = json.loads(report.read_text("utf-8"))["decisions"]
    by_id = {d["user_id"]: d for d in decisions}
    assert by_id["huge"]["user_name"] == HUGE_NAME
    assert by_id[ANSI_ID]["user_name"] == ANSI_NAME
    assert by_id[NEWLINE_ID]["decision"] == "failed"


@pytest.mark.parametrize(
    ("text", "limit", "shown"),
    [
        ("a\nb\r\tc", None, "a\\nb\\r\\tc"),
        ("\x1b[31mred\x1b]0;t\x07", None, "\\x1b[31mred\\x1b]0;t\\x07"),
        ("\x9b1m \x7f \x00", None, "\\x9b1m \\x7f \\x00"),
        ("\u202eabc\u2066\u2028", None, "\\u202eabc\\u2066\\u2028"),
        (
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
            None,
            "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        ),
        ("DOMAIN\\user", None, "DOMAIN\\user"),
        ("x" * 100, 10, "xxxxxxx..."),
        ("\n" * 100, 10, "\\n\\n\\n\\..."),
        ("short", 10, "short"),
        (42, None, "42"),
    ],
    ids=[
        "newline",
        "ansi-osc",
        "c1-del-nul",
        "bidi",
        "persian-zwnj",
        "backslash",
        "cut",
        "cut-escaped",
        "fits",
        "not-text",
    ],
)
def test_printable_escapes_controls_and_cuts(text: object, limit: int | None, shown: str) -> None:
    assert printable(text, limit) == shown


def test_an_error_answer_with_escape_codes_is_shown_as_text(simulator, certs, workdir) -> None:
    """QRS's error body reaches the error line, the log, the heartbeat and `health` escaped."""
    hostile = "denied\x1b]0;owned\x07\x1b[2J\u202e"
    sim = simulator(build_site(1, now=real_now()), now=real_now())
    sim.add_fault("GET /qrs/license/accesstypeoverview", "error", status=500, body=hostile)
    config = write_config(
        workdir / "config.yaml",
        config_document(
            sim.port,
            certs,
            workdir,
            qrs={"retries": 0},
            monitor={"enable": True, "frequency": "every 24 hours"},
            release=release_section(enable=False),
        ),
    )
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}

    def agent(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "agent", *args, "-c", str(config)],
            cwd=workdir,
            capture_output=True,
            text=True,
            encoding="utf-8",
            env=env,
            timeout=120,
        )
        assert done.returncode == 1, done.stderr
        return done.stdout + done.stderr

    heartbeat = workdir / "heartbeat.json"
    outputs = {"monitor --once": agent("monitor", "--once")}
    outputs["run"] = "".join(
        run_until(
            config,
            workdir,
            env,
            lambda: heartbeat.exists() and "denied" in heartbeat.read_text("utf-8"),
            "the failed monitor run in the heartbeat",
        )
    )
    outputs["health"] = agent("health")
    for name, text in outputs.items():
        assert "denied\\x1b]0;owned\\x07\\x1b[2J\\u202e" in text, (name, text)
        assert not any(c in text for c in RAW_CONTROLS), name


def test_release_events_on_standard_output_cannot_act_on_the_terminal(
    simulator, certs, workdir
) -> None:
    """The jsonl destination writing to standard output (``path: "-"``) is read on a terminal
    too: names from QRS reach it as JSON escapes, and the JSON still decodes to the exact
    values QRS sent."""
    now = real_now()
    # json.dumps escapes C0 controls itself; DEL, the C1 CSI and the bidi override it leaves raw.
    c1_id = "c1\x9b2J\x7f\u202egnp.exe"
    site = build_site(2, now=now, names=[("ACME", c1_id, "C1")])
    sim = simulator(site, now=now)
    config = write_config(
        workdir / "config.yaml",
        config_document(
            sim.port,
            certs,
            workdir,
            release=release_section(),
            agent={"destinations": {"jsonl": {"enable": True, "path": "-"}}},
        ),
    )
    done = _agent(workdir, "release", "--once", "-c", str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    released = [e for e in events if e["tags"]["user"] == f"ACME\\{c1_id}"]
    assert len(released) == 1, events  # the event was written, with the id exactly as sent
    raw = (*RAW_CONTROLS, "\x7f")
    assert not any(c in done.stdout for c in raw), [c for c in raw if c in done.stdout]


@pytest.mark.parametrize("indent", [None, 2])
def test_json_safe_escapes_what_json_leaves_raw_and_keeps_the_layout(indent: int | None) -> None:
    value = {"user": "c1\x9b2J\x7f\u202e\u2028 \x1b\n", "n": [1, 2]}
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    safe = json_safe(text)
    assert json.loads(safe) == value
    assert not any(c in safe for c in ("\x9b", "\x7f", "\u202e", "\u2028", "\x1b"))
    # The layout of indented output is whitespace, not data: it stays as it was.
    assert safe.count("\n") == text.count("\n")
