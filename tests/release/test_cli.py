"""``license-agent release --once`` end to end: config file, simulator over mutual TLS, the
console tables, the JSON report, exit codes, and release events through a real destination."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.models import format_qrs_time

from .helpers import NOW, ReleaseHarness, ago, allocation, config_text, release_block, state, user

ALICE, BOB = user("alice", name="Alice Smith"), user("bob", tags=["VIP"])


def write_config(harness: ReleaseHarness, release: str, agent: str = "") -> Path:
    path = harness.tmp_path / "config.yaml"
    path.write_text(config_text(release, **harness.config_options(agent)), encoding="utf-8")
    return path


def test_dry_run_explain_and_report(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.start(
        state(
            [ALICE, BOB],
            professional=[allocation(ALICE, ago(40)), allocation(BOB, ago(40))],
            analyzer=[allocation(ALICE, ago(29.5), key="a")],  # inside the filter margin
        )
    )
    config = write_config(harness, release_block("tag: [vip]"))
    report = harness.tmp_path / "out" / "report.json"
    code = main(
        [
            "release",
            "--once",
            "--dry-run",
            "--explain",
            "--report",
            str(report),
            "--config",
            str(config),
            "--now",
            format_qrs_time(NOW),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "dry run: nothing was deleted" in out
    assert "WOULD RELEASE" in out and "KEPT BY" in out
    summary = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line.startswith(("professional ", "analyzer ")) and line.split()[2] == "d"
    }
    assert summary["professional"][1:5] == ["30", "d", "2", "2"]  # threshold, considered, eligible
    explain = [line for line in out.splitlines() if "CORP\\" in line]
    assert any("would_release" in line and "Alice Smith" in line for line in explain)
    assert any("kept" in line and "tag: user has tag 'VIP'" in line for line in explain)
    assert harness.requests("DELETE") == 0

    document = json.loads(report.read_text(encoding="utf-8"))
    run = document["run"]
    assert run["dry_run"] is True and run["aborted"] is None
    assert run["thresholds"] == {"professional": 30, "analyzer": 30}
    assert run["counts"]["professional"]["would_release"] == 1
    assert run["counts"]["professional"]["kept_by_rule"] == {"tag": 1}
    assert run["started"] and run["finished"]
    decisions = {(d["license_type"], d["user_id"]): d for d in document["decisions"]}
    assert decisions[("professional", "alice")] == {
        "license_type": "professional",
        "allocation_id": ALICE_ALLOCATION_ID(harness),
        "user_directory": "CORP",
        "user_id": "alice",
        "user_name": "Alice Smith",
        "last_used": ago(40),
        "days_since_last_use": 40,
        "decision": "would_release",
        "reasons": [],
    }
    assert decisions[("professional", "bob")]["reasons"] == [
        {"rule": "tag", "reason": "user has tag 'VIP' (neverRelease.tag)"}
    ]
    assert decisions[("analyzer", "alice")]["decision"] == "not_eligible"


def ALICE_ALLOCATION_ID(harness: ReleaseHarness) -> str:  # noqa: N802 - reads like a constant
    (found,) = [a for a in harness.remaining().values() if a["user"]["userId"] == "alice"]
    return found["id"]


def test_a_real_release_writes_events_to_destinations(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.start(
        state([ALICE, BOB], professional=[allocation(ALICE, ago(400)), allocation(BOB, ago(400))])
    )
    # A live run measures from this machine's clock and refuses when QRS's Date header
    # disagrees: the simulator follows the real time here (both allocations stay 400+ days old).
    assert harness.sim is not None
    harness.sim.set_now(None)
    events = harness.tmp_path / "events.jsonl"
    config = write_config(
        harness,
        release_block("tag: [vip]", analyzer=False),
        agent=f"""
        destinations:
          jsonl:
            enable: true
            path: {events}
            features: [license_release]
        """,
    )
    code = main(["release", "--once", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "RELEASED" in out
    assert [a["user"]["userId"] for a in harness.remaining().values()] == ["bob"]
    (line,) = events.read_text(encoding="utf-8").splitlines()
    event = json.loads(line)
    assert event["measurement"] == "qlik_sense_license_release"
    assert event["tags"] == {"license_type": "professional", "user": "CORP\\alice"}
    assert event["fields"]["quarantined"] is False and event["fields"]["days_since_last_use"] >= 400


def test_safety_limit_exits_non_zero(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    users = [user(f"u{i}") for i in range(3)]
    harness.start(state(users, professional=[allocation(u, ago(400)) for u in users]))
    assert harness.sim is not None
    harness.sim.set_now(None)  # QRS's clock = this machine's: only the limit stops the run
    config = write_config(harness, release_block("", extra="maxReleasesPerRun: 2", analyzer=False))
    code = main(["release", "--once", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 3
    assert "released nothing" in out and "maxReleasesPerRun" in out
    assert harness.requests("DELETE") == 0 and len(harness.remaining()) == 3


@pytest.mark.parametrize(
    ("args", "release", "message"),
    [
        ([], None, "add --once"),
        (
            ["--once"],
            release_block("").replace("enable: true", "enable: false", 1),
            "licenseRelease.enable is false",
        ),
        (["--once", "--now", "2026-01-01T00:00:00Z"], None, "--now is only allowed with --dry-run"),
        (["--once", "--dry-run", "--now", "soon"], None, "--now"),
        (
            ["--once", "--dry-run"],
            release_block("", analyzer=False).replace(
                "enable: true\n    rel", "enable: false\n    rel"
            ),
            "no license type is enabled",
        ),
    ],
)
def test_usage_and_config_errors_exit_2(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str], args, release, message: str
) -> None:
    harness.start(state([ALICE], professional=[allocation(ALICE, ago(400))]))
    config = write_config(harness, release or release_block(""))
    assert main(["release", *args, "--config", str(config)]) == 2
    assert message in capsys.readouterr().err
    assert harness.requests("DELETE") == 0


def test_enable_false_still_allows_a_dry_run(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.start(state([ALICE], professional=[allocation(ALICE, ago(400))]))
    config = write_config(harness, release_block("").replace("enable: true", "enable: false", 1))
    assert main(["release", "--once", "--dry-run", "--config", str(config)]) == 0
    assert "would_release" not in capsys.readouterr().out  # the summary only, no --explain
    assert harness.requests("DELETE") == 0


def test_missing_certificate_files_are_a_config_error(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.start(state([ALICE], professional=[allocation(ALICE, ago(400))]))
    config = harness.tmp_path / "config.yaml"
    text = config_text(release_block(""), **harness.config_options())
    config.write_text(
        text.replace(str(harness.certs.client_cert), str(harness.tmp_path / "nope.pem"))
    )
    assert main(["release", "--once", "--dry-run", "--config", str(config)]) == 2
    assert "nope.pem" in capsys.readouterr().err


def test_progress_is_drawn_on_one_line() -> None:
    import io

    from agent.cli.release_cmd import TerminalProgress

    stream = io.StringIO()
    progress = TerminalProgress(stream)
    progress("releasing professional", 0, 3)
    progress("releasing professional", 3, 3)
    progress.clear()
    assert stream.getvalue().split("\r\033[K")[1:] == [
        "releasing professional: 0/3",
        "releasing professional: 3/3",
        "",
    ]
