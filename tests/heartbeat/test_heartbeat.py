"""The heartbeat file of `license-agent run`, and `license-agent health` that reads it."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from agent.cli import main
from agent.heartbeat import (
    Heartbeat,
    JobOutcome,
    check_health,
    default_max_age,
    job_outcome,
    parse_duration,
    read_heartbeat,
)
from agent.models import UTC
from agent.simulator import Simulator

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class SiteResult:
    site: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class ReleaseLike:
    site: str
    aborted: str | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.aborted and not self.errors


# --------------------------------------------------------------------------- outcomes


def test_a_run_succeeds_only_when_every_site_did_its_work():
    assert job_outcome([SiteResult("a"), SiteResult("b")], ["a", "b"]).ok
    outcome = job_outcome([SiteResult("a"), SiteResult("b", "QRS down")], ["a", "b"])
    assert not outcome.ok and outcome.sites == {"a": None, "b": "QRS down"}
    assert outcome.error == "b: QRS down"
    missing = job_outcome([SiteResult("a")], ["a", "b"])
    assert not missing.ok and "did not complete" in missing.sites["b"]
    limited = job_outcome([ReleaseLike("a", aborted="safety limit")], ["a"])
    assert not limited.ok and limited.error == "a: safety limit"
    assert not job_outcome([], []).ok  # no site at all is not a success
    assert job_outcome(None, ["a"]).ok  # a job that returns nothing and did not raise


# --------------------------------------------------------------------------- the file


def test_the_file_records_start_runs_and_stop(tmp_path):
    clock = FakeClock()
    path = tmp_path / "state" / "heartbeat.json"
    beat = Heartbeat(path, clock=clock)
    beat.started({"monitor": "every 6 hours", "release": "every 24 hours"})
    document = read_heartbeat(path)
    assert document["started"] == "2026-06-01T12:00:00.000Z" and document["stopped"] is None
    assert document["jobs"]["monitor"]["last_success"] is None
    assert document["pid"] == os.getpid() and document["version"]

    clock.now = T0 + timedelta(minutes=1)
    beat.record("monitor", JobOutcome(ok=True, sites={"sense": None}), T0)
    clock.now = T0 + timedelta(minutes=2)
    beat.record(
        "release",
        JobOutcome(ok=False, error="sense: safety limit", sites={"sense": "safety limit"}),
        T0,
    )
    document = read_heartbeat(path)
    monitor, release = document["jobs"]["monitor"], document["jobs"]["release"]
    assert monitor["last_success"] == "2026-06-01T12:01:00.000Z"
    assert monitor["sites"]["sense"]["last_success"] == "2026-06-01T12:01:00.000Z"
    assert release["last_failure"] == "2026-06-01T12:02:00.000Z"
    assert release["last_error"] == "sense: safety limit"
    assert release["consecutive_failures"] == 1
    assert release["last_run"]["ok"] is False

    beat.stopped()
    assert read_heartbeat(path)["stopped"] == "2026-06-01T12:02:00.000Z"
    assert [p.name for p in path.parent.iterdir()] == ["heartbeat.json"]  # no temp file left


def test_a_job_records_its_outcome_and_a_bug_never_escapes(tmp_path):
    """The job functions write the heartbeat themselves; a bug inside a run (here a delivery
    that raises) fails the job in the heartbeat instead of reaching the scheduler."""
    from agent.jobs import run_monitor_job
    from agent.plugins import build_plugin_host, parse_config

    class BrokenDelivery:
        destinations: list = []

        def deliver(self, points):
            raise RuntimeError("boom")

    with Simulator(users=5, seed=1, cert_dir=tmp_path / "certs") as sim:
        data = {
            "Butler": {
                "configQRS": {"host": sim.host, "port": sim.port},
                "cert": {
                    "clientCert": str(sim.certs.client_cert),
                    "clientCertKey": str(sim.certs.client_key),
                    "clientCertCA": str(sim.certs.root_cert),
                },
                "licenseAgent": {"stateDir": str(tmp_path / "state")},
            }
        }
        config = parse_config(data, source=tmp_path / "config.yaml")
        host = build_plugin_host(config)
        beat = Heartbeat(tmp_path / "hb.json")
        beat.started({"monitor": "every 6 hours"})
        ok = run_monitor_job(config, host, heartbeat=beat)
        assert ok.ok and [r.site for r in ok] == [config.sites()[0].name]
        broken = run_monitor_job(config, host, BrokenDelivery(), heartbeat=beat)
    assert not broken.ok and broken.error == "the license_monitor job failed: RuntimeError: boom"
    entry = read_heartbeat(tmp_path / "hb.json")["jobs"]["monitor"]
    assert entry["last_success"] is not None
    assert entry["last_error"] == "the license_monitor job failed: RuntimeError: boom"
    assert entry["consecutive_failures"] == 1


def test_an_unwritable_file_never_stops_a_job(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    beat = Heartbeat(blocker / "heartbeat.json")  # a folder that cannot exist
    beat.started({"monitor": "every 6 hours"})
    beat.record("monitor", JobOutcome(ok=True, sites={"s": None}), T0)  # logged, not raised


# --------------------------------------------------------------------------- health


def _document(**jobs) -> dict:
    return {"started": "2026-06-01T00:00:00.000Z", "stopped": None, "jobs": jobs}


def test_default_max_age_is_two_periods_and_a_grace():
    assert default_max_age("every 6 hours", T0) == timedelta(hours=12, minutes=10)
    assert default_max_age("at 02:30", T0) == timedelta(days=2, minutes=10)
    assert default_max_age("nonsense", T0) is None


def test_health_judges_each_job():
    fresh = {"frequency": "every 6 hours", "last_success": "2026-06-01T11:00:00.000Z"}
    stale = {"frequency": "every 6 hours", "last_success": "2026-05-31T20:00:00.000Z"}
    health = check_health(_document(monitor=fresh, release=stale), T0)
    assert not health.ok
    assert [(j.job, j.ok) for j in health.jobs] == [("monitor", True), ("release", False)]
    assert check_health(_document(release=stale), T0, parse_duration("1d")).ok


def test_a_job_without_a_run_yet_is_fine_for_a_while():
    waiting = {"frequency": "every 24 hours", "last_success": None}
    assert check_health(_document(release=waiting), T0).ok
    assert not check_health(_document(release=waiting), T0 + timedelta(days=3)).ok


def test_a_failed_latest_run_is_unhealthy_by_default():
    job = {
        "frequency": "every 6 hours",
        "last_success": "2026-06-01T06:00:00.000Z",
        "last_run": {
            "finished": "2026-06-01T11:50:00.000Z",
            "ok": False,
            "error": "sense: QRS down",
        },
    }
    health = check_health(_document(monitor=job), T0)
    assert not health.ok
    assert health.jobs[0].message == (
        "the latest run failed 10 min ago: sense: QRS down; last success 6 h 0 min ago"
    )


def test_a_finished_failed_run_is_never_reported_as_no_run_yet():
    """Issue 16 item 4: the agent started a minute ago, its first release run failed; health
    said "ok release: no run finished yet; ... the latest run failed"."""
    document = {
        "started": "2026-06-01T11:59:00.000Z",
        "stopped": None,
        "jobs": {
            "release": {
                "frequency": "every 24 hours",
                "last_success": None,
                "last_failure": "2026-06-01T11:59:30.000Z",
                "last_error": "sense: the safety limit",
                "last_run": {
                    "started": "2026-06-01T11:59:00.000Z",
                    "finished": "2026-06-01T11:59:30.000Z",
                    "ok": False,
                    "error": "sense: the safety limit",
                },
            }
        },
    }
    (job,) = check_health(document, T0).jobs
    assert not job.ok
    assert "no run finished yet" not in job.message
    assert (
        job.message
        == "the latest run failed 30 s ago: sense: the safety limit; no successful run yet"
    )


def test_health_command_fails_on_a_failed_latest_run_with_or_without_the_old_flag(tmp_path, capsys):
    now = datetime.now(UTC)
    stamp = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    path = tmp_path / "heartbeat.json"
    path.write_text(
        json.dumps(
            {
                "version": "9.9",
                "host": "sense1",
                "started": stamp,
                "stopped": None,
                "jobs": {
                    "release": {
                        "frequency": "every 24 hours",
                        "last_success": None,
                        "last_run": {"finished": stamp, "ok": False, "error": "sense: QRS down"},
                    }
                },
            }
        ),
        encoding="utf-8",
    )
    for flags in ([], ["--fail-on-error"]):
        assert main(["health", "--file", str(path), *flags]) == 1
        out = capsys.readouterr().out
        assert out.startswith("UNHEALTHY:")
        assert "FAIL release: the latest run failed 5 min ago: sense: QRS down" in out
        assert "ok   release" not in out


def test_a_stopped_agent_is_unhealthy():
    fresh = {"frequency": "every 6 hours", "last_success": "2026-06-01T11:59:00.000Z"}
    document = {**_document(monitor=fresh), "stopped": "2026-06-01T11:59:30.000Z"}
    health = check_health(document, T0)
    assert not health.ok and health.problems == ["the agent stopped at 2026-06-01T11:59:30.000Z"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200), ("90m", 5400), ("1d 12h", 129600), ("45 s", 45), ("1.5 hours", 5400)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "h", "2 parsecs", "-1h", "0m", "2h x"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_health_command(tmp_path, capsys):
    path = tmp_path / "heartbeat.json"
    now = datetime.now(UTC)
    recent = (now - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    path.write_text(
        json.dumps(
            {
                "version": "9.9",
                "host": "sense1",
                "started": recent,
                "stopped": None,
                "jobs": {"monitor": {"frequency": "every 6 hours", "last_success": recent}},
            }
        ),
        encoding="utf-8",
    )
    assert main(["health", "--file", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: license-agent 9.9 on sense1")
    assert "ok   monitor: last success 5 min ago" in out
    assert main(["health", "--file", str(path), "--max-age", "2m"]) == 1
    assert "FAIL monitor" in capsys.readouterr().out
    assert main(["health", "--file", str(path), "--max-age", "soon"]) == 2
    assert main(["health", "--file", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert main(["health", "--file", str(tmp_path / "none.json")]) == 1
    assert "no heartbeat file" in capsys.readouterr().out


# --------------------------------------------------------------------------- the real agent


@pytest.mark.skipif(os.name == "nt", reason="stops the run loop with SIGINT")
def test_run_writes_the_heartbeat_health_reads(tmp_path, capsys):
    with Simulator(users=120, seed=2, cert_dir=tmp_path / "certs") as sim:
        certs = sim.certs
        config = tmp_path / "config.yaml"
        config.write_text(
            "Butler:\n"
            "  configQRS:\n"
            "    host: 127.0.0.1\n"
            f"    port: {sim.port}\n"
            "    headers:\n      static:\n        - name: X-Qlik-User\n"
            "          value: UserDirectory=INTERNAL; UserId=sa_api\n"
            "  cert:\n"
            f"    clientCert: {json.dumps(str(certs.client_cert))}\n"
            f"    clientCertKey: {json.dumps(str(certs.client_key))}\n"
            f"    clientCertCA: {json.dumps(str(certs.root_cert))}\n"
            "  qlikSenseLicense:\n"
            "    licenseMonitor:\n      enable: true\n      frequency: every 6 hours\n"
            "  licenseAgent:\n"
            "    heartbeat:\n      file: state/hb.json\n"
            "    destinations:\n      sqlite:\n        enable: true\n",
            encoding="utf-8",
        )
        heartbeat = tmp_path / "state" / "hb.json"
        seen: dict = {}

        def watch() -> None:
            # Wait for the run at start to land in the heartbeat, check it, then Ctrl+C.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    document = read_heartbeat(heartbeat)
                except Exception:
                    document = None
                if document and document["jobs"]["monitor"]["last_success"]:
                    seen["document"] = document
                    seen["health"] = check_health(document, datetime.now(UTC))
                    break
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)

        watcher = threading.Thread(target=watch)
        watcher.start()
        assert main(["run", "-c", str(config)]) == 0
        watcher.join()
    monitor = seen["document"]["jobs"]["monitor"]
    assert monitor["frequency"] == "every 6 hours"
    assert monitor["sites"] == {
        "127.0.0.1": {
            "last_success": monitor["last_success"],
            "last_failure": None,
            "last_error": None,
        }
    }
    assert seen["health"].ok
    capsys.readouterr()
    # Once stopped, the agent is no longer healthy, and health says why.
    assert main(["health", "-c", str(config)]) == 1
    out = capsys.readouterr().out
    assert "UNHEALTHY" in out and "the agent stopped at" in out
