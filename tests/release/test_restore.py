"""Undo through ``license-agent release restore`` against the simulator over mutual TLS: every
released allocation back, the overview at its earlier counts, restore events in every
destination, exactly once; users deleted or already served are skipped; no license left is a
refusal per user; quarantined allocations are reinstated without a license."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from agent.cli import main
from agent.htmlreport import load_history, render_html
from agent.simulator.certs import CertPaths

from .helpers import release_block
from .test_plan import Site, cli, decided, report

RESTORE_MEASUREMENT = "qlik_sense_license_restore"


def restore(*args: str) -> int:
    return main(["release", "restore", *args])


def posts(site: Site) -> int:
    requests = site.sim.get_stats()["requests"]
    return sum(n for key, n in requests.items() if key.startswith("POST /qrs/license/"))


def applied_run(site: Site, config: Path) -> tuple[str, set[str]]:
    """Dry run, then apply it: the applied run's id and what it released."""
    plan, applied = site.tmp_path / "plan.json", site.tmp_path / "applied.json"
    assert cli("--dry-run", "--report", str(plan), "-c", str(config)) == 0
    assert cli("--apply", str(plan), "--report", str(applied), "-c", str(config)) == 0
    document = report(applied)
    return document["run"]["id"], decided(document, "released") | decided(document, "quarantined")


def holdings(site: Site) -> Counter[tuple[str, str]]:
    """(type, user id) -> how many allocations the user holds."""
    state = site.sim.state
    return Counter(
        (collection, a["user"]["id"])
        for collection in ("professionalaccesstype", "analyzeraccesstype")
        for a in state.allocations[collection].values()
        if a["user"]
    )


def test_restore_a_run_gives_everything_back(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site.config()
    before, held_before = site.overview(), holdings(site)
    run_id, released = applied_run(site, config)
    assert released == site.candidates and site.overview() != before
    release_events = site.events("qlik_sense_license_release")
    assert {e["fields"]["run_id"] for e in release_events} == {run_id}

    capsys.readouterr()
    assert main(["release", "runs", "--json", "-c", str(config)]) == 0
    runs = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert runs[run_id]["kind"] == "apply"
    assert runs[run_id]["counts"]["released"] == len(site.candidates)
    assert any(r["kind"] == "dry_run" for r in runs.values())
    # Each run's row, written when it started, was rewritten when it ended.
    assert {(r["status"], r["outcome"]) for r in runs.values()} == {("finished", "ok")}
    assert all(r["finished"] for r in runs.values())

    preview = site.tmp_path / "preview.json"
    assert restore("--run", run_id, "--dry-run", "--report", str(preview), "-c", str(config)) == 0
    counts = report(preview)["restore"]["counts"]
    assert counts["would_restore"] == len(site.candidates) and posts(site) == 0

    out = site.tmp_path / "restore.json"
    assert restore("--run", run_id, "--report", str(out), "-c", str(config)) == 0
    document = report(out)
    assert document["restore"]["counts"]["restored"] == len(site.candidates)
    assert {d["released_allocation_id"] for d in document["decisions"]} == site.candidates
    assert all(d["release_run_id"] == run_id for d in document["decisions"])
    # The overview is back to its earlier counts; each user holds one allocation again.
    assert site.overview() == before
    assert holdings(site) == held_before
    # One restore event per allocation, to every destination.
    events = site.events(RESTORE_MEASUREMENT)
    assert Counter(e["fields"]["released_allocation_id"] for e in events) == Counter(
        site.candidates
    )
    restore_id = document["restore"]["id"]
    assert {e["fields"]["run_id"] for e in events} == {restore_id}
    assert {e["fields"]["release_run_id"] for e in events} == {run_id}
    assert all(e["fields"]["reinstated"] is False for e in events)
    assert all(e["feature"] == "license_release" for e in events)
    db = sqlite3.connect(str(site.tmp_path / "history.sqlite"))
    try:
        stored = db.execute(
            "SELECT COUNT(*) FROM point WHERE measurement = ?", (RESTORE_MEASUREMENT,)
        ).fetchone()[0]
    finally:
        db.close()
    assert stored == len(site.candidates)
    page = render_html(load_history(site.tmp_path / "history.sqlite"))
    assert "Licenses restored" in page
    assert f"{len(site.candidates)} allocation(s) given back" in page
    assert restore_id in page and run_id in page

    # Exactly once: a second restore of the same run changes nothing and sends nothing.
    sent = posts(site)
    capsys.readouterr()
    assert restore("--run", run_id, "-c", str(config)) == 0
    assert "ALREADY RESTORED 66" in capsys.readouterr().out
    assert posts(site) == sent and len(site.events(RESTORE_MEASUREMENT)) == len(site.candidates)
    assert main(["release", "runs", "-c", str(config)]) == 0
    table = capsys.readouterr().out
    assert restore_id in table and "restore" in table and run_id in table


def test_restore_skips_deleted_users_and_users_already_served(site: Site) -> None:
    config = site.config()
    run_id, released = applied_run(site, config)
    document = site.sim.dump_state()
    gone = next(u for u in document["users"] if u["userId"] == "u000")
    document["users"] = [u for u in document["users"] if u is not gone]
    for collection in ("professionalaccesstype", "analyzeraccesstype"):
        for item in document[collection]:
            if item["user"] and item["user"]["id"] == gone["id"]:
                item["user"] = None
    site.sim.load_state(document)
    served = next(u for u in site.users if u["userId"] == "u010")
    from agent.plugins import load_config
    from agent.qrs import QrsClient

    with QrsClient(load_config(config).sites()[0]) as qrs:  # an admin allocated it in the QMC
        qrs.create_allocation("professionalaccesstype", served["id"])
    out = site.tmp_path / "restore.json"
    assert restore("--run", run_id, "--report", str(out), "-c", str(config)) == 0
    by_user = {(d["user_id"], d["license_type"]): d for d in report(out)["decisions"]}
    assert by_user[("u000", "professional")]["decision"] == "skipped"
    assert "deleted since" in by_user[("u000", "professional")]["reason"]
    assert by_user[("u000", "analyzer")]["decision"] == "skipped"
    assert by_user[("u010", "professional")]["decision"] == "skipped"
    assert "already holds a professional allocation" in by_user[("u010", "professional")]["reason"]
    restored = [d for d in report(out)["decisions"] if d["decision"] == "restored"]
    assert len(restored) == len(released) - 3
    assert holdings(site)[("professionalaccesstype", served["id"])] == 1


def test_restore_when_no_license_is_available(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site.config()
    run_id, _ = applied_run(site, config)
    # The freed analyzer licenses went to others meanwhile: one is left for six users.
    document = site.sim.dump_state()
    document["totals"]["analyzer"] = len(document["analyzeraccesstype"]) + 1
    site.sim.load_state(document)
    capsys.readouterr()
    out = site.tmp_path / "restore.json"
    code = restore("--run", run_id, "--user", "ACME\\nobody", "-c", str(config))
    assert code == 0  # nothing matches both: nothing to do
    assert restore("--run", run_id, "--report", str(out), "-c", str(config)) == 1
    analyzer = [d for d in report(out)["decisions"] if d["license_type"] == "analyzer"]
    assert Counter(d["decision"] for d in analyzer) == {"restored": 1, "refused": 5}
    for refused in (d for d in analyzer if d["decision"] == "refused"):
        assert "no analyzer license is available (the overview shows 0)" in refused["reason"]
        assert "QRS refused the allocation" in refused["reason"]
        assert "no license is available (" in refused["reason"]  # QRS's own words
    assert site.overview()["analyzerAccess"][2] == 0
    professional = [d for d in report(out)["decisions"] if d["license_type"] == "professional"]
    assert {d["decision"] for d in professional} == {"restored"}
    # Once licenses are free again, the refused ones are restored, the others not twice.
    document = site.sim.dump_state()
    document["totals"]["analyzer"] = 100
    site.sim.load_state(document)
    again = site.tmp_path / "again.json"
    assert restore("--run", run_id, "--report", str(again), "-c", str(config)) == 0
    counts = report(again)["restore"]["counts"]
    assert counts["restored"] == 5 and counts["already_restored"] == len(site.candidates) - 5


def test_quarantined_releases_are_reinstated_without_a_license(
    release_certs: CertPaths, tmp_path: Path
) -> None:
    site = Site(release_certs, tmp_path)
    try:
        # A 1-day threshold: the busy users' allocations (used 2 days ago) are quarantined.
        release = release_block("tag: [VIP]", threshold=1, extra="maxReleasesPerRun: 1000")
        config = site.config(release)
        assert cli("-c", str(config), "--report", str(tmp_path / "r.json")) == 0
        document = report(tmp_path / "r.json")
        quarantined = decided(document, "quarantined")
        assert len(quarantined) == 2
        before = site.overview()
        out = tmp_path / "restore.json"
        assert restore("--run", document["run"]["id"], "--user", "CORP\\busy1", "--report",
                       str(out), "-c", str(config)) == 0  # fmt: skip
        (decision,) = report(out)["decisions"]
        assert decision["decision"] == "reinstated"
        assert decision["allocation_id"] == decision["released_allocation_id"]
        assert decision["allocation_id"] in quarantined
        after = site.overview()["professionalAccess"]
        assert after == (before["professionalAccess"][0], 1, before["professionalAccess"][2])
        (event,) = site.events(RESTORE_MEASUREMENT)
        assert event["fields"]["reinstated"] is True
        assert event["tags"]["user"] == "CORP\\busy1"
    finally:
        site.sim.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "name what to restore: --run ID"),
        (["--run", "20990101T000000Z-000000"], "no run 20990101T000000Z-000000"),
        (["--since", "last tuesday"], "--since: 'last tuesday' is not a date"),
    ],
)
def test_restore_usage_errors(
    site: Site, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert restore(*args, "-c", str(site.config())) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert posts(site) == 0
