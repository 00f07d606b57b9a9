"""Attacks on ``release --once --apply``: hand-edited plans, a site whose rules changed since
the review, QRS failing during the apply, a configured dry run. Whatever the plan file says,
nothing is released that the current decision keeps, and nothing unplanned is released."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.plan import MAX_PLAN_BYTES, PlanError, check_plan, load_plans

from .test_plan import Site, cli, decided, report
from .test_plan_refusals import edit, refused


def make_plan(site: Site, config: Path | None = None) -> Path:
    path = site.tmp_path / "plan.json"
    assert cli("--dry-run", "--report", str(path), "-c", str(config or site.config())) == 0
    return path


def first_planned(document: dict[str, Any]) -> dict[str, Any]:
    return next(d for d in document["decisions"] if d["decision"] == "would_release")


def owned_by(site: Site, *user_ids: str) -> set[str]:
    ids = {u["id"] for u in site.users if u["userId"] in user_ids}
    return {
        a["id"]
        for c in ("professionalaccesstype", "analyzeraccesstype")
        for a in site.sim.state.allocations[c].values()
        if a["user"] and a["user"]["id"] in ids
    }


def test_a_hand_edited_plan_releases_nothing_the_current_decision_keeps(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plan is edited to turn kept (protected) and not-eligible (used recently) allocations
    into would_release, with a forged old last_used, and to add allocations that do not exist;
    after the review a rule starts protecting one planned user. Only what the current decision
    releases anyway, and the plan lists, goes."""
    config = site.config()
    plan = make_plan(site, config)
    owners = {"vip1", "vip2", "busy1", "busy2"}
    protected = owned_by(site, *owners)
    forged = [str(uuid.uuid4()) for _ in range(120)]

    def forge(document: dict[str, Any]) -> None:
        decisions = document["decisions"]
        template = first_planned(document)
        decisions[:] = [d for d in decisions if d["allocation_id"] not in protected]
        for owner in owners:
            for allocation_id in owned_by(site, owner):
                # Their real owner, and a last use long ago (the busy users used it 2 days ago).
                decisions.append(
                    {
                        **template,
                        "allocation_id": allocation_id,
                        "user_id": owner,
                        "license_type": "professional",
                        "last_used": "2020-01-01T00:00:00.000Z",
                    }
                )
        decisions += [{**template, "allocation_id": f} for f in forged]

    edit(plan, forge)
    # A rule protects u000 now: tagged VIP after the review.
    state = site.sim.dump_state()
    for item in state["users"]:
        if item["userId"] == "u000":
            item["tags"] = [{"name": "VIP"}]
    site.sim.load_state(state)
    newly_protected = owned_by(site, "u000")
    capsys.readouterr()

    applied = site.tmp_path / "applied.json"
    assert cli("--apply", str(plan), "--report", str(applied), "-c", str(config)) == 0
    document = report(applied)
    released = decided(document, "released")
    assert released == site.candidates - newly_protected
    assert protected | newly_protected <= site.present()
    assert site.deletes() == len(released)
    by_id = {d["allocation_id"]: d for d in document["decisions"]}
    for allocation_id in protected | newly_protected:
        assert by_id[allocation_id]["decision"] in ("kept", "not_eligible"), by_id[allocation_id]
    # The forged ids are not in QRS: reported, and no DELETE was sent for them (counted above).
    assert {by_id[f]["decision"] for f in forged} == {"already_gone"}


def test_a_plan_listing_one_allocation_twice_differently_or_a_forged_id_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dry run lists each allocation once: a plan that lists one twice, with another owner or
    last use, was edited; which copy was reviewed cannot be told."""
    config = site.config()
    plan = make_plan(site, config)

    def twice(document: dict[str, Any]) -> None:
        document["decisions"].insert(0, {**first_planned(document), "user_id": "someone-else"})

    edit(plan, twice)
    err = refused(site, plan, config, capsys)
    assert "lists allocation" in err and "twice" in err

    # An allocation id that is not a QRS id: no dry run wrote it.
    plan = make_plan(site, config)
    edit(plan, lambda d: d["decisions"].append({**first_planned(d), "allocation_id": "x or 1"}))
    assert "allocation_id (a QRS id)" in refused(site, plan, config, capsys)

    # The same entry twice (a copy and paste) says nothing new: it is applied.
    plan = make_plan(site, config)
    edit(plan, lambda d: d["decisions"].append(dict(first_planned(d))))
    assert cli("--apply", str(plan), "-c", str(config)) == 0
    assert site.deletes() == len(site.candidates)


def test_apply_keeps_every_planned_allocation_whose_user_cannot_be_fetched(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site.config()
    plan = make_plan(site, config)
    site.sim.add_fault("GET /qrs/user/full", "error", status=500)
    applied = site.tmp_path / "applied.json"
    assert cli("--apply", str(plan), "--report", str(applied), "-c", str(config)) == 1
    document = report(applied)
    assert site.deletes() == 0 and site.candidates <= site.present()
    by_id = {d["allocation_id"]: d for d in document["decisions"]}
    for allocation_id in site.candidates:
        assert by_id[allocation_id]["decision"] == "kept"
        assert any(r["rule"] == "userLookup" for r in by_id[allocation_id]["reasons"])


def test_apply_on_a_site_whose_own_settings_say_dry_run_is_refused(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """``dryRun: true`` of one site in ``licenseAgent.sites`` (over a shared ``dryRun: false``)
    turns a real run into a dry run there: --apply must not then report a plan as applied
    while releasing nothing."""
    document = yaml.safe_load(site.config().read_text("utf-8"))
    butler = document["Butler"]
    butler["licenseAgent"]["sites"] = [
        {
            "name": "prod",
            "configQRS": butler["configQRS"],
            "cert": butler["cert"],
            "qlikSenseLicense": {"licenseRelease": {"dryRun": True}},
        }
    ]
    config = site.tmp_path / "sites.yaml"
    config.write_text(yaml.safe_dump(document), encoding="utf-8")
    plan = make_plan(site, config)
    err = refused(site, plan, config, capsys)
    assert "--apply releases for real" in err
    assert "licenseAgent.sites[0]" in err and "dryRun" in err
    assert json.loads(plan.read_text("utf-8"))["plan"]["site"]["name"] == "prod"


def test_the_same_site_written_otherwise_is_the_same_site(site: Site) -> None:
    """Host case, a trailing dot, the port as text: the same site for the plan as for the
    release lock. Another host or port is another site."""
    loaded = load_plans(make_plan(site))[0]

    def current(**changes: Any) -> dict[str, Any]:
        return {
            "site": {**loaded.site, **changes},
            "thresholds": dict(loaded.thresholds),
            "rules": list(loaded.rules),
            "settings_digest": loaded.settings_digest,
        }

    now = loaded.made
    host, port = loaded.site["host"], loaded.site["port"]
    for same in [
        {"host": host.upper() + "."},
        {"port": str(port)},
        {"name": loaded.site_name.upper()},
    ]:
        check_plan(loaded, current(**same), now, 24)
    for other in [{"host": "10.0.0.1"}, {"port": port + 1}, {"port": "x"}, {"name": "other"}]:
        with pytest.raises(PlanError, match="made for site"):
            check_plan(loaded, current(**other), now, 24)


def test_a_plan_that_is_a_device_or_huge_is_refused_unread(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site.config()
    if Path("/dev/zero").exists():  # a device that never ends: read whole, it never returned
        assert "not a regular file" in refused(site, Path("/dev/zero"), config, capsys)
    huge = site.tmp_path / "huge.json"
    with huge.open("wb") as stream:  # sparse: no disk used
        stream.truncate(MAX_PLAN_BYTES + 1)
    assert "more than any dry run writes" in refused(site, huge, config, capsys)


def test_apply_when_one_type_cannot_be_listed_releases_only_the_other(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fresh Professional listing fails during the apply: no planned Professional
    allocation is released (nothing judges it now); the Analyzer part of the plan is applied."""
    config = site.config()
    plan = make_plan(site, config)
    planned = decided(report(plan), "would_release")
    site.sim.add_fault("GET /qrs/license/professionalaccesstype/full", "error", status=400)
    applied = site.tmp_path / "applied.json"
    assert cli("--apply", str(plan), "--report", str(applied), "-c", str(config)) == 1
    analyzer = {a["id"] for a in site.document["analyzeraccesstype"]}
    assert decided(report(applied), "released") == planned & analyzer
    assert (planned - analyzer) <= site.present()
    assert site.deletes() == len(planned & analyzer)
