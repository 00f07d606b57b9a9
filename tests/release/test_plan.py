"""The reviewed workflow end to end through ``license-agent``: a dry run over the safety limit
lists everything and exits 0, a live run exits 3 and deletes nothing, and ``--apply`` releases
exactly the planned set, minus what stopped qualifying in between (each with its reason).

The simulator runs on the real clock here (``--apply`` is a live run, measured from now)."""

from __future__ import annotations

import html
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.htmlreport import History, load_decisions, render_html
from agent.models import UTC, format_qrs_time
from agent.simulator import Simulator
from agent.simulator.certs import CertPaths

from .helpers import allocation, config_text, release_block, user

LIMIT = "maxReleasesPerRun: 50"  # the example config's limit


def real_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def ago(days: float, now: datetime) -> str:
    return format_qrs_time(now - timedelta(days=days))


class Site:
    """A site with a backlog: 60 Professional and 6 Analyzer allocations past 30 days, two
    protected by a tag, two used recently."""

    def __init__(self, certs: CertPaths, tmp_path: Path, port: int = 0) -> None:
        self.now = real_now()
        self.tmp_path = tmp_path
        users = [user(f"u{n:03d}") for n in range(60)]
        vip = [user("vip1", tags=["VIP"]), user("vip2", tags=["VIP"])]
        busy = [user("busy1"), user("busy2")]
        self.users = users + vip + busy
        professional = [allocation(u, ago(40 + n, self.now)) for n, u in enumerate(users)]
        professional += [allocation(u, ago(100, self.now)) for u in vip]
        professional += [allocation(u, ago(2, self.now)) for u in busy]
        analyzer = [allocation(u, ago(50, self.now), key="a") for u in users[:6]]
        self.document: dict[str, Any] = {
            "now": format_qrs_time(self.now),
            "users": self.users,
            "professionalaccesstype": professional,
            "analyzeraccesstype": analyzer,
            "totals": {"professional": 100, "analyzer": 20},
        }
        self.candidates = {a["id"] for a in professional[:60]} | {a["id"] for a in analyzer}
        self.sim = Simulator(self.document, cert_dir=certs.cert_dir, now=self.now, port=port)
        self.sim.start()
        self.certs = certs

    def config(self, release: str | None = None, name: str = "config.yaml") -> Path:
        """A config for this site; events go to a SQLite and a JSON-lines destination."""
        body = release or release_block("tag: [VIP]", extra=LIMIT)
        agent = f"""
            destinations:
              sqlite:
                enable: true
                path: {self.tmp_path / "history.sqlite"}
              jsonl:
                enable: true
                path: {self.tmp_path / "events.jsonl"}
            """
        path = self.tmp_path / name
        path.write_text(
            config_text(
                body, port=self.sim.port, certs=self.certs, state_dir=self.tmp_path, agent=agent
            ),
            encoding="utf-8",
        )
        return path

    def events(self, measurement: str) -> list[dict[str, Any]]:
        """The events of one measurement the JSON-lines destination received."""
        path = self.tmp_path / "events.jsonl"
        if not path.exists():
            return []
        lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
        return [e for e in lines if e["measurement"] == measurement]

    def overview(self) -> dict[str, tuple[int, int, int]]:
        """(allocated, quarantined, available) per type, as QRS's overview says."""
        document = self.sim.store.overview()
        return {
            key: (
                document[key]["allocated"],
                document[key]["quarantined"],
                document[key]["available"],
            )
            for key in ("professionalAccess", "analyzerAccess")
        }

    def present(self) -> set[str]:
        state = self.sim.state
        return {
            a["id"]
            for c in ("professionalaccesstype", "analyzeraccesstype")
            for a in state.allocations[c].values()
        }

    def deletes(self) -> int:
        requests = self.sim.get_stats()["requests"]
        return sum(n for key, n in requests.items() if key.startswith("DELETE"))

    def touch(self, allocation_id: str) -> None:
        """The owner opened an app: QRS records the use."""
        document = self.sim.dump_state()
        for collection in ("professionalaccesstype", "analyzeraccesstype"):
            for item in document[collection]:
                if item["id"] == allocation_id:
                    item["lastUsed"] = format_qrs_time(real_now())
        self.sim.load_state(document)

    def add_backlog(self, owner: dict[str, Any]) -> str:
        document = self.sim.dump_state()
        document["users"].append(owner)
        new = allocation(owner, ago(45, self.now))
        document["professionalaccesstype"].append(new)
        self.sim.load_state(document)
        return new["id"]


def cli(*args: str) -> int:
    return main(["release", "--once", *args])


def report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def decided(document: dict[str, Any], decision: str) -> set[str]:
    return {d["allocation_id"] for d in document["decisions"] if d["decision"] == decision}


def test_dry_run_over_the_limit_lists_everything_and_a_live_run_exits_3(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site.config()
    plan = site.tmp_path / "plan.json"
    assert cli("--dry-run", "--report", str(plan), "-c", str(config)) == 0
    out = capsys.readouterr().out
    document = report(plan)
    assert decided(document, "would_release") == site.candidates  # 66, over the limit of 50
    assert all(
        r["rule"] != "maxReleasesPerRun" for d in document["decisions"] for r in d["reasons"]
    )
    note = document["run"]["limit_note"]
    assert "60 professional allocations qualify (limit 50)" in note
    assert "--apply" in note and "raise the limit" in note
    assert "Safety limit: 60 professional allocations qualify (limit 50)" in out
    assert "WOULD RELEASE 0" not in out
    assert document["run"]["id"] and document["plan"]["run_id"] == document["run"]["id"]
    assert document["plan"]["thresholds"] == {"professional": 30, "analyzer": 30}
    assert site.deletes() == 0
    # The HTML report gives the same message, and no advice that cannot work.
    page = render_html(History(), load_decisions(plan))
    assert html.escape(note) in page and "Safety limit" in page
    assert "set <code>dryRun: false</code>" not in page

    live = site.tmp_path / "live.json"
    assert cli("--report", str(live), "-c", str(config)) == 3
    out = capsys.readouterr().out
    assert "released nothing" in out and "--apply plan.json" in out
    assert site.deletes() == 0 and site.candidates <= site.present()
    assert report(live)["run"]["aborted"] and "plan" not in report(live)


def test_apply_releases_exactly_the_plan_minus_what_stopped_qualifying(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site.config()
    plan = site.tmp_path / "plan.json"
    assert cli("--dry-run", "--report", str(plan), "-c", str(config)) == 0
    planned = decided(report(plan), "would_release")
    # Between review and apply: one user came back, one allocation was removed in the QMC,
    # and a new allocation passed its threshold (it was not reviewed).
    used, removed = sorted(planned)[:2]
    site.touch(used)
    document = site.sim.dump_state()
    for collection in ("professionalaccesstype", "analyzeraccesstype"):
        document[collection] = [a for a in document[collection] if a["id"] != removed]
    site.sim.load_state(document)
    newcomer = site.add_backlog(user("newcomer"))
    capsys.readouterr()

    applied = site.tmp_path / "applied.json"
    assert cli("--apply", str(plan), "--report", str(applied), "-c", str(config)) == 0, (
        capsys.readouterr()
    )
    document = report(applied)
    assert document["run"]["plan_applied"] is True
    assert decided(document, "released") == planned - {used, removed}
    assert site.deletes() == len(planned) - 2  # the limit of 50 did not stop the reviewed plan
    assert site.present() & (planned - {used, removed}) == set()
    by_id = {d["allocation_id"]: d for d in document["decisions"]}
    assert by_id[used]["decision"] == "kept"
    assert any(
        r["rule"] == "plan" and "used it since the plan" in r["reason"]
        for r in by_id[used]["reasons"]
    )
    assert by_id[removed]["decision"] == "already_gone"
    assert by_id[removed]["reasons"] == [
        {"rule": "plan", "reason": "in the plan, but QRS no longer has it: removed since"}
    ]
    assert by_id[newcomer]["decision"] == "kept"
    assert by_id[newcomer]["reasons"][0]["rule"] == "plan"
    assert "not in the plan" in by_id[newcomer]["reasons"][0]["reason"]
    assert {used, newcomer} <= site.present()


def test_apply_needs_a_live_config(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    config = site.config()
    plan = site.tmp_path / "plan.json"
    assert cli("--dry-run", "--report", str(plan), "-c", str(config)) == 0
    assert cli("--apply", str(plan), "--dry-run", "-c", str(config)) == 2
    assert "--apply releases for real" in capsys.readouterr().err
    dry = site.config(release_block("tag: [VIP]", extra=LIMIT, dry_run=True), "dry.yaml")
    assert cli("--apply", str(plan), "-c", str(dry)) == 2
    assert site.deletes() == 0
