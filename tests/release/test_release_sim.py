"""Release runs against the QRS simulator over mutual TLS, with hand-built states: what was
deleted in the simulator, what the report says, which events were sent, how many requests."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from loguru import logger

from agent.hookspecs import hookimpl
from agent.jobs import run_release_job
from agent.journal import JournalEntry
from agent.models import MEASUREMENT_RELEASE, Decision, ReleaseRule, format_qrs_time
from agent.plugins import build_plugin_host
from agent.qrs import QrsClient

from .helpers import (
    NEVER,
    NOW,
    ReleaseHarness,
    ago,
    allocation,
    by_user,
    release_block,
    state,
    user,
)

ALICE, BOB, CAROL = user("alice"), user("bob", tags=["VIP"]), user("carol", "ADMIN")


def three_users_state():
    return state(
        [ALICE, BOB, CAROL],
        professional=[allocation(u, ago(40)) for u in (ALICE, BOB, CAROL)],
        analyzer=[allocation(u, ago(60), key="analyzer") for u in (ALICE, BOB, CAROL)],
    )


def test_a_run_releases_exactly_the_unprotected(harness: ReleaseHarness) -> None:
    harness.start(three_users_state())
    result = harness.run(release_block("tag: [vip]\nuserDirectory: [admin]"))
    assert result.ok and result.aborted is None
    for license_type, collection in (
        ("professional", "professionalaccesstype"),
        ("analyzer", "analyzeraccesstype"),
    ):
        decisions = by_user(result, license_type)
        assert {k: d.decision for k, d in decisions.items()} == {
            "CORP\\alice": Decision.RELEASED,
            "CORP\\bob": Decision.KEPT,
            "ADMIN\\carol": Decision.KEPT,
        }
        remaining = {a["user"]["userId"] for a in harness.remaining(collection).values()}
        assert remaining == {"bob", "carol"}
    # Professional first, one event per released allocation, with the fields and tags.
    assert [p.tags["license_type"] for p in harness.delivery.points] == ["professional", "analyzer"]
    event = harness.delivery.points[0]
    assert event.measurement == MEASUREMENT_RELEASE and event.feature == "license_release"
    assert event.tags == {"license_type": "professional", "user": "CORP\\alice"}
    assert event.fields["days_since_last_use"] == 40.0
    assert isinstance(event.fields["days_since_last_use"], float)
    assert event.fields["quarantined"] is False
    assert event.fields["allocation_id"] == by_user(result)["CORP\\alice"].allocation.id
    assert event.time == NOW


def test_requests_stay_within_budget(harness: ReleaseHarness) -> None:
    users = [user(f"u{i:03d}") for i in range(120)]
    harness.start(
        state(
            users,
            professional=[allocation(u, ago(40)) for u in users],
            analyzer=[allocation(u, ago(40), key="a") for u in users[:30]],
        )
    )
    result = harness.run(dry_run=True)
    assert result.counts()["professional"]["would_release"] == 120
    reads = harness.requests("GET ")
    candidates = 120  # the analyzer owners are among them: users are fetched once per run
    assert harness.requests("GET /qrs/user") == math.ceil(candidates / 50)
    assert reads <= 2 * 2 + math.ceil(candidates / 50)
    assert harness.requests("DELETE") == 0


@pytest.mark.parametrize("how", ["config", "cli-flag"])
def test_dry_run_deletes_nothing_and_sends_nothing(harness: ReleaseHarness, how: str) -> None:
    harness.start(three_users_state())
    if how == "config":
        result = harness.run(release_block("tag: [vip]", dry_run=True))
    else:
        result = harness.run(release_block("tag: [vip]"), dry_run=True)
    assert result.dry_run
    assert by_user(result)["CORP\\alice"].decision is Decision.WOULD_RELEASE
    assert by_user(result)["CORP\\bob"].decision is Decision.KEPT
    assert harness.requests("DELETE") == 0
    assert harness.delivery.points == []
    assert len(harness.remaining()) == 3


def test_each_flag_rule_against_qrs_users(harness: ReleaseHarness) -> None:
    """The YAML forms users write, against QRS's own flag fields (blocked = blacklisted)."""
    flagged = [
        user("inactive", inactive=True),
        user("blocked", blacklisted=True),
        user("removed", removedExternally=True),
        user("plain"),
    ]
    harness.start(state(flagged, professional=[allocation(u, ago(40)) for u in flagged]))
    cases = {
        "inactive: yes": {"inactive"},
        "inactive: No": {"blocked", "removed", "plain"},
        "blocked: YES": {"blocked"},
        "blocked: 'no'": {"inactive", "removed", "plain"},
        "removedExternally: Yes": {"removed"},
        "removedExternally: no\ninactive: ignore": {"inactive", "blocked", "plain"},
        "inactive: Ignore\nblocked: IGNORE\nremovedExternally: ignore": set(),
    }
    for block, kept in cases.items():
        result = harness.run(release_block(block), dry_run=True)
        got = {d.allocation.owner_id for d in result.decisions if d.decision is Decision.KEPT}
        assert got == kept, block


def test_case_variations_match(harness: ReleaseHarness) -> None:
    people = [
        user("Jdoe", "Corp"),
        user("tagged", tags=["License Do Not Release"]),
        user("prop", props=[("licenseManage", "Do-Not-Release")]),
        user("admin", "admin"),
        user("free"),
    ]
    harness.start(state(people, professional=[allocation(u, ago(40)) for u in people]))
    result = harness.run(
        release_block(
            """
            user:
              - userDir: CORP
                userId: JDOE
            tag: [license do not release]
            customProperty:
              - name: LICENSEMANAGE
                value: do-not-release
            userDirectory: [ADMIN]
            """
        )
    )
    released = {d.allocation.owner_id for d in result.decisions if d.decision is Decision.RELEASED}
    assert released == {"free"}
    assert [
        a["user"]["userId"] for a in harness.remaining().values() if a["user"]["userId"] == "free"
    ] == []


@pytest.mark.parametrize("empty", ["null", "[]"])
def test_null_and_empty_lists_release_normally(harness: ReleaseHarness, empty: str) -> None:
    """Butler crashed on a null tag list in its analyzer run."""
    harness.start(three_users_state())
    block = f"user: {empty}\ntag: {empty}\ncustomProperty: {empty}\nuserDirectory: {empty}"
    result = harness.run(release_block(block))
    assert result.ok
    assert result.counts()["analyzer"]["released"] == 3
    assert harness.remaining("analyzeraccesstype") == {}


def test_several_custom_property_values(harness: ReleaseHarness) -> None:
    multi = user("multi", props=[("LicenseManage", "sales"), ("LicenseManage", "do-not-release")])
    single = user("single", props=[("LicenseManage", "sales")])
    harness.start(
        state(
            [multi, single], professional=[allocation(multi, ago(40)), allocation(single, ago(40))]
        )
    )
    result = harness.run(
        release_block(
            "customProperty:\n  - name: LicenseManage\n    value: do-not-release\n"
            "  - name: LicenseManage\n    value: finance"
        )
    )
    assert by_user(result)["CORP\\multi"].decision is Decision.KEPT
    assert by_user(result)["CORP\\single"].decision is Decision.RELEASED


def test_deleted_users(harness: ReleaseHarness) -> None:
    """Butler crashed on ``user: null``; here they are judged by user/userDirectory rules."""
    gone_listed = allocation(None, ago(90), deletedUserId="listed", deletedUserDirectory="OLD")
    gone_dir = allocation(None, ago(90), deletedUserId="x", deletedUserDirectory="Retired")
    gone_free = allocation(
        None, NEVER, created=ago(200), deletedUserId="free", deletedUserDirectory="OLD"
    )
    harness.start(state([ALICE], professional=[gone_listed, gone_dir, gone_free]))
    result = harness.run(
        release_block(
            "user:\n  - userDir: old\n    userId: LISTED\nuserDirectory: [retired]\ntag: [VIP]\ninactive: No"
        )
    )
    decisions = by_user(result)
    assert decisions["OLD\\listed"].decision is Decision.KEPT
    assert decisions["Retired\\x"].decision is Decision.KEPT
    assert decisions["OLD\\free"].decision is Decision.RELEASED
    assert decisions["OLD\\free"].days_since_last_use == 200
    assert harness.requests("GET /qrs/user") == 0  # nobody to look up
    assert [p.tags["user"] for p in harness.delivery.points] == ["OLD\\free"]


def test_never_used_old_and_new(harness: ReleaseHarness) -> None:
    old_null, old_sentinel, new_null, new_sentinel = (
        user(n) for n in ("oldnull", "oldsent", "newnull", "newsent")
    )
    harness.start(
        state(
            [old_null, old_sentinel, new_null, new_sentinel],
            professional=[
                allocation(old_null, None, created=ago(100)),
                allocation(old_sentinel, NEVER, created=ago(100)),
                allocation(new_null, None, created=ago(1)),
                allocation(new_sentinel, NEVER, created=ago(1)),
            ],
        )
    )
    result = harness.run()
    decisions = {k: d.decision for k, d in by_user(result).items()}
    assert decisions == {
        "CORP\\oldnull": Decision.RELEASED,
        "CORP\\oldsent": Decision.RELEASED,
        "CORP\\newnull": Decision.NOT_ELIGIBLE,
        "CORP\\newsent": Decision.NOT_ELIGIBLE,
    }
    assert {a["user"]["userId"] for a in harness.remaining().values()} == {"newnull", "newsent"}


def test_quarantined_allocations_are_skipped(harness: ReleaseHarness) -> None:
    harness.start(
        state(
            [ALICE, BOB],
            professional=[
                allocation(
                    ALICE,
                    ago(3),
                    quarantined=True,
                    quarantineEnd=format_qrs_time(NOW + timedelta(days=4)),
                ),
                allocation(BOB, ago(3), key="b"),
            ],
        )
    )
    result = harness.run(release_block("", threshold=1))
    decisions = by_user(result)
    assert decisions["CORP\\alice"].decision is Decision.SKIPPED_QUARANTINED
    assert decisions["CORP\\bob"].decision is Decision.QUARANTINED
    assert harness.requests("DELETE") == 1


@pytest.mark.parametrize(
    ("age", "decision"),
    [
        (29, Decision.NOT_ELIGIBLE),
        (30 - 1 / 86400, Decision.NOT_ELIGIBLE),
        (30, Decision.RELEASED),
        (31, Decision.RELEASED),
    ],
)
def test_threshold_boundary_from_a_fixed_now(
    harness: ReleaseHarness, age: float, decision: Decision
) -> None:
    """A day either side of 30, and one second short of it. The server filter has a one-day
    margin, so the 29-day allocation is listed and reported as not eligible."""
    harness.start(state([ALICE], professional=[allocation(ALICE, ago(age))]))
    result = harness.run()
    assert by_user(result)["CORP\\alice"].decision is decision
    assert (len(harness.remaining()) == 0) is (decision is Decision.RELEASED)


def test_threshold_under_seven_days_reports_quarantine(harness: ReleaseHarness) -> None:
    recent, older = user("recent"), user("older")
    harness.start(
        state(
            [recent, older], professional=[allocation(recent, ago(4)), allocation(older, ago(12))]
        )
    )
    result = harness.run(release_block("", threshold=3))
    decisions = by_user(result)
    assert decisions["CORP\\recent"].decision is Decision.QUARANTINED
    assert decisions["CORP\\older"].decision is Decision.RELEASED
    remaining = list(harness.remaining().values())
    assert [(a["user"]["userId"], a["quarantined"]) for a in remaining] == [("recent", True)]
    events = {p.tags["user"]: p.fields["quarantined"] for p in harness.delivery.points}
    assert events == {"CORP\\recent": True, "CORP\\older": False}
    assert result.counts()["professional"]["quarantined"] == 1
    # One extra read to verify the quarantine, only because a removal was recent.
    assert harness.requests("GET /qrs/license/professionalaccesstype/full") == 2


class FailSecondListing:
    """Wraps the QRS client: the first listing works, later ones raise."""

    def __init__(self, qrs):
        self.qrs, self.calls = qrs, 0

    def __getattr__(self, name):
        return getattr(self.qrs, name)

    def list_allocations(self, resource, filter=None, *, license_type):
        self.calls += 1
        if self.calls > 1:
            raise RuntimeError("QRS is busy")
        return self.qrs.list_allocations(resource, filter, license_type=license_type)


def test_quarantine_falls_back_to_the_seven_day_rule_when_it_cannot_verify(
    harness: ReleaseHarness,
) -> None:
    recent, older = user("recent"), user("older")
    harness.start(
        state(
            [recent, older], professional=[allocation(recent, ago(2)), allocation(older, ago(7.5))]
        )
    )
    result = harness.run(release_block("", threshold=1, analyzer=False), wrap=FailSecondListing)
    assert by_user(result)["CORP\\recent"].decision is Decision.QUARANTINED
    assert by_user(result)["CORP\\older"].decision is Decision.RELEASED
    assert any("not verified" in e for e in result.errors)


def test_safety_limit_releases_nothing_in_the_whole_run(harness: ReleaseHarness) -> None:
    users = [user(f"u{i}") for i in range(5)]
    harness.start(
        state(
            users,
            professional=[allocation(u, ago(40)) for u in users[:2]],
            analyzer=[allocation(u, ago(40), key="a") for u in users],
        )
    )
    result = harness.run(release_block("", extra="maxReleasesPerRun: 3"))
    assert result.limit_tripped and not result.ok
    assert "5 analyzer allocations (limit 3)" in result.aborted
    # Professional (2 <= 3) is held back too: the run as a whole releases nothing.
    assert all(d.decision is Decision.KEPT for d in result.decisions)
    assert {r.rule for d in result.decisions for r in d.reasons} == {"maxReleasesPerRun"}
    assert harness.requests("DELETE") == 0 and harness.delivery.points == []


def test_safety_limit_as_a_percentage_of_allocated(harness: ReleaseHarness) -> None:
    users = [user(f"u{i}") for i in range(10)]
    # 10 allocations, 4 of them old: 50% of 10 allows 5; 30% allows 3.
    allocations = [allocation(u, ago(40 if i < 4 else 1)) for i, u in enumerate(users)]
    document = state(users, professional=allocations)
    harness.start(document)
    release = release_block("", extra="maxReleasesPerRun: 50%", analyzer=False)
    result = harness.run(release, dry_run=True)
    assert not result.limit_tripped and result.counts()["professional"]["would_release"] == 4
    assert result.types[0].limit == 5 and result.types[0].allocated == 10
    # A dry run over the limit still lists everything that qualifies, and says so.
    result = harness.run(release.replace("50%", "30%"), dry_run=True)
    assert not result.limit_tripped and result.ok and result.exit_code == 0
    assert result.counts()["professional"]["would_release"] == 4
    assert result.limit_note and "4 professional allocations qualify (limit 3)" in result.limit_note
    result = harness.run(release.replace("50%", "30%"))
    assert result.limit_tripped and result.exit_code == 3
    assert result.counts()["professional"]["released"] == 0


def test_delete_failures_and_404s(harness: ReleaseHarness) -> None:
    users = [user(f"u{i}") for i in range(6)]
    allocations = [allocation(u, ago(40)) for u in users]
    harness.start(state(users, professional=allocations))
    failing, gone = allocations[1]["id"], allocations[4]["id"]
    harness.sim.add_fault(
        f"DELETE /qrs/license/professionalaccesstype/{failing}", "error", status=500
    )
    harness.sim.add_fault(f"DELETE /qrs/license/professionalaccesstype/{gone}", "error", status=404)
    result = harness.run(release_block("", analyzer=False))
    decisions = {d.allocation.id: d for d in result.decisions}
    assert decisions[failing].decision is Decision.FAILED
    assert "500" in decisions[failing].reasons[0].reason
    assert decisions[gone].decision is Decision.ALREADY_GONE
    released = [d for d in result.decisions if d.decision is Decision.RELEASED]
    assert len(released) == 4  # the run went on after the failure
    assert not result.ok  # a failed delete needs attention
    assert len(harness.delivery.points) == 4
    assert set(harness.remaining()) == {failing.lower(), gone.lower()}


def test_user_lookup_failures_keep_exactly_those_allocations(harness: ReleaseHarness) -> None:
    users = [user(f"u{i:03d}") for i in range(100)]  # two chunks of 50
    harness.start(state(users, professional=[allocation(u, ago(40)) for u in users]))
    harness.sim.add_fault("GET /qrs/user/full", "error", status=503, count=1)

    def no_retries(butler):
        butler["configQRS"]["retries"] = 0  # so exactly one chunk fails

    result = harness.run(release_block("", analyzer=False), patch=no_retries)
    kept = [d for d in result.decisions if d.decision is Decision.KEPT]
    released = [d for d in result.decisions if d.decision is Decision.RELEASED]
    assert len(kept) == 50 and len(released) == 50
    assert all(d.reasons[0].rule == "userLookup" and "503" in d.reasons[0].reason for d in kept)
    remaining = {a["id"].lower() for a in harness.remaining().values()}
    assert remaining == {d.allocation.id.lower() for d in kept}


def test_a_user_missing_from_qrs_is_kept(harness: ReleaseHarness) -> None:
    ghost = {
        "id": "6f1c1a52-0000-4000-8000-000000000001",
        "userId": "ghost",
        "userDirectory": "CORP",
    }
    harness.start(
        state(
            [ALICE],
            professional=[
                allocation(ALICE, ago(40)),
                {
                    "id": "6f1c1a52-0000-4000-8000-0000000000a1",
                    "user": ghost,
                    "createdDate": ago(400),
                    "lastUsed": ago(40),
                },
            ],
        )
    )
    result = harness.run()
    decisions = by_user(result)
    assert decisions["CORP\\ghost"].decision is Decision.KEPT
    assert "no user with that id" in decisions["CORP\\ghost"].reasons[0].reason
    assert decisions["CORP\\alice"].decision is Decision.RELEASED


class VipPlugin:
    """A third-party rule: protects users whose name ends in "(VIP)"."""

    def __init__(self):
        self.batches = []

    @hookimpl
    def sla_release_rules(self, config, site):
        def judge(candidates):
            self.batches.append(len(candidates))
            return {
                c.allocation.id: "name marks a VIP"
                for c in candidates
                if c.user is not None and c.user.name.endswith("(VIP)")
            }

        return [ReleaseRule("vip", judge, "protect VIPs")]


def test_a_third_party_rule_plugs_in_through_the_hook(harness: ReleaseHarness) -> None:
    vip = user("boss", name="The Boss (VIP)")
    harness.start(
        state(
            [ALICE, vip],
            professional=[allocation(ALICE, ago(40)), allocation(vip, ago(40))],
            analyzer=[allocation(vip, ago(40), key="a")],
        )
    )
    plugin = VipPlugin()
    result = harness.run(extra=[("vip", plugin)])
    decisions = by_user(result)
    assert decisions["CORP\\boss"].decision is Decision.KEPT
    assert decisions["CORP\\boss"].reasons[0].rule == "vip"
    assert decisions["CORP\\alice"].decision is Decision.RELEASED
    assert plugin.batches == [2, 1]  # one call per license type, whole batch


def test_a_rule_that_raises_keeps_everything_it_judged(harness: ReleaseHarness) -> None:
    class Broken:
        @hookimpl
        def sla_release_rules(self):
            def judge(candidates):
                raise KeyError("lookup table missing")

            return [ReleaseRule("broken", judge)]

    harness.start(three_users_state())
    result = harness.run(extra=[("broken", Broken())])
    assert all(d.decision is Decision.KEPT for d in result.decisions)
    assert all("KeyError" in d.reasons[0].reason for d in result.decisions)
    assert harness.requests("DELETE") == 0


def test_a_rule_plugin_that_fails_to_register_stops_the_run(harness: ReleaseHarness) -> None:
    class CannotStart:
        @hookimpl
        def sla_release_rules(self, config):
            raise ConnectionError("HR system unreachable")

    harness.start(three_users_state())
    result = harness.run(extra=[("hr", CannotStart())])
    assert result.aborted and "hr: ConnectionError: HR system unreachable" in result.aborted
    assert not result.ok and result.decisions == []
    assert harness.sim.get_stats()["total"] == 0  # not even a listing


def test_a_failed_listing_does_not_stop_the_other_type(harness: ReleaseHarness) -> None:
    harness.start(three_users_state())
    harness.sim.add_fault("GET /qrs/license/analyzeraccesstype/full", "error", status=400)
    result = harness.run()
    assert not result.ok
    analyzer = next(t for t in result.types if t.license_type == "analyzer")
    assert analyzer.error and "400" in analyzer.error and analyzer.decisions == []
    assert result.counts()["professional"]["released"] == 3
    assert len(harness.remaining("analyzeraccesstype")) == 3


def test_static_tags_on_events(harness: ReleaseHarness) -> None:
    """Butler.influxDb tags first, the feature's tags win, license_type and user always win."""
    harness.start(state([ALICE], professional=[allocation(ALICE, ago(40))]))
    release = release_block(
        "",
        extra="""
        destination:
          influxDb:
            enable: true
            tag:
              static:
                - name: env
                  value: prod
                - name: user
                  value: not-allowed-to-win
        """,
    )

    def global_tags(butler):
        butler["influxDb"]["tag"] = {
            "static": [{"name": "env", "value": "global"}, {"name": "site", "value": "s1"}]
        }

    harness.run(release, patch=global_tags)
    (event,) = harness.delivery.points
    assert event.tags == {
        "env": "prod",
        "site": "s1",
        "user": "CORP\\alice",
        "license_type": "professional",
    }


class RecordingJournal:
    def __init__(self, fail_intent_for: str = ""):
        self.log = []
        self.fail_intent_for = fail_intent_for

    def intent(self, entry: JournalEntry) -> None:
        if entry.allocation_id == self.fail_intent_for:
            raise OSError("disk full")
        self.log.append(("intent", entry.allocation_id))

    def outcome(self, entry: JournalEntry, decision, detail: str = "") -> None:
        self.log.append(("outcome", entry.allocation_id, decision))


def test_journal_records_before_and_after_each_delete(harness: ReleaseHarness) -> None:
    users = [user(f"u{i}") for i in range(3)]
    allocations = [allocation(u, ago(40)) for u in users]
    harness.start(state(users, professional=allocations))
    journal = RecordingJournal(fail_intent_for=allocations[2]["id"])
    result = harness.run(journal=journal)
    decisions = {d.allocation.id: d.decision for d in result.decisions}
    assert decisions[allocations[2]["id"]] is Decision.FAILED  # not deleted without a record
    assert allocations[2]["id"].lower() in harness.remaining()
    for a in allocations[:2]:
        assert journal.log.index(("intent", a["id"])) < journal.log.index(
            ("outcome", a["id"], Decision.RELEASED)
        )
    assert harness.requests("DELETE") == 2


def test_scheduled_job_logs_an_error_when_the_limit_trips(harness: ReleaseHarness) -> None:
    users = [user(f"u{i}") for i in range(3)]
    harness.start(state(users, professional=[allocation(u, ago(40)) for u in users]))
    config = harness.config(release_block("", extra="maxReleasesPerRun: 1"))

    messages = []
    sink = logger.add(lambda m: messages.append(m.record), level="ERROR")
    try:
        results = run_release_job(
            config, build_plugin_host(config), harness.delivery, qrs_factory=QrsClient
        )
    finally:
        logger.remove(sink)
    assert len(results) == 1 and results[0].limit_tripped
    assert any("safety limit" in r["message"] for r in messages)
    assert harness.requests("DELETE") == 0


def test_a_plugin_that_fails_to_load_stops_the_run(harness: ReleaseHarness) -> None:
    """It might have been a rule plugin; disabling it explicitly lets the run go on."""
    folder = harness.tmp_path / "plugins.d"
    folder.mkdir()
    (folder / "hr_rules.py").write_text("raise ImportError('hr_client is not installed')\n")
    harness.start(three_users_state())

    def with_plugins(disable):
        def patch(butler):
            butler["licenseAgent"]["plugins"] = {"paths": [str(folder)], "disable": disable}

        return patch

    result = harness.run(patch=with_plugins([]))
    assert result.aborted and "hr_rules: failed to load" in result.aborted
    assert "hr_client is not installed" in result.aborted
    assert harness.sim.get_stats()["total"] == 0
    result = harness.run(patch=with_plugins(["hr_rules"]))
    assert result.ok and result.counts()["professional"]["released"] == 3


def test_scheduled_job_skips_a_site_another_agent_is_releasing(harness: ReleaseHarness) -> None:
    from agent.lock import release_lock

    harness.start(three_users_state())
    config = harness.config(release_block(""))
    messages = []
    sink = logger.add(lambda m: messages.append(m.record["message"]), level="ERROR")
    try:
        with release_lock(config.state_dir, config.sites()[0].name):
            results = run_release_job(config, build_plugin_host(config), harness.delivery)
    finally:
        logger.remove(sink)
    assert list(results) == [] and not results.ok
    assert "another license agent is releasing" in results.failures[config.sites()[0].name]
    assert any("another license agent is releasing" in m for m in messages)
    assert harness.sim.get_stats()["total"] == 0
