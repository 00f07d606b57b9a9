"""The deciding functions of agent.decisions, without HTTP: thresholds, quarantine, bad data,
user look-ups, rule failures, the server filter, the safety limit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.config import MaxReleases
from agent.decisions import (
    TypeResult,
    TypeSettings,
    decide_candidates,
    hold_back,
    index_users,
    judge,
    limit_exceeded,
    release_filter,
    screen,
)
from agent.models import (
    Allocation,
    Decision,
    Decoded,
    ReleaseRule,
    format_qrs_time,
    read_allocations,
    read_users,
)
from agent.qrs import UserFetch, users_by_id
from agent.simulator.filtering import compile_filter

from .helpers import (
    NEVER,
    NOW,
    ago,
    allocation,
    decide,
    fetch_of,
    outcome,
    qrs_objects,
    release_block,
    state,
    user,
)

BOB = user("bob")


def screened(*allocations: dict, threshold: int = 30):
    objects = qrs_objects(state([BOB], professional=list(allocations)))
    return screen(listed(objects), "professional", threshold, NOW)


def listed(objects) -> Decoded[Allocation]:
    """The professional allocations as the QRS client hands them over."""
    return read_allocations(objects.allocations["professionalaccesstype"].values(), "professional")


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(
    ("age", "eligible", "days"),
    [
        (timedelta(days=30), True, 30),
        (timedelta(days=30, seconds=-1), False, 29),
        (timedelta(days=29), False, 29),
        (timedelta(days=31), True, 31),
        (timedelta(days=30, hours=23, minutes=59), True, 30),
    ],
)
def test_threshold_boundary(age: timedelta, eligible: bool, days: int) -> None:
    result = screened(allocation(BOB, format_qrs_time(NOW - age)))
    if eligible:
        assert [d for _, d in result.eligible] == [days] and not result.decisions
    else:
        (decision,) = result.decisions
        assert decision.decision is Decision.NOT_ELIGIBLE
        assert decision.days_since_last_use == days
        assert f"{days} day(s) ago" in decision.reasons[0].reason
        assert "threshold is 30 days" in decision.reasons[0].reason


@pytest.mark.parametrize("last_used", [None, NEVER])
@pytest.mark.parametrize(("created_days", "eligible"), [(31, True), (29, False), (0.5, False)])
def test_never_used_counts_from_assignment(last_used, created_days: float, eligible: bool) -> None:
    result = screened(allocation(BOB, last_used, created=ago(created_days)))
    assert bool(result.eligible) is eligible
    if eligible:
        allocation_, days = result.eligible[0]
        assert allocation_.last_used is None and days == int(created_days)


def test_quarantined_allocations_are_skipped_with_their_end() -> None:
    result = screened(
        allocation(
            BOB, ago(100), quarantined=True, quarantineEnd=format_qrs_time(NOW + timedelta(days=3))
        )
    )
    (decision,) = result.decisions
    assert decision.decision is Decision.SKIPPED_QUARANTINED
    assert "until 2026-06-04" in decision.reasons[0].reason
    assert not result.eligible


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"id": "x1", "createdDate": "yesterday", "lastUsed": None, "deletedUserId": "a"},
            "RFC3339 encoded datetime - at `$.createdDate`",
        ),
        (
            {"id": "x2", "createdDate": "2020-01-01T00:00:00.000Z", "lastUsed": None},
            "deletedUserId",
        ),
        (
            {
                "id": "x3",
                "createdDate": "2020-01-01T00:00:00.000Z",
                "quarantined": "no",
                "deletedUserId": "a",
            },
            "quarantined",
        ),
        ("not an object", "Expected `object`"),
    ],
)
def test_unreadable_allocations_are_kept(raw, message: str) -> None:
    result = screen(read_allocations([raw], "professional"), "professional", 30, NOW)
    (decision,) = result.decisions
    assert decision.decision is Decision.KEPT
    assert decision.reasons[0].rule == "qrsData" and message in decision.reasons[0].reason
    assert not result.eligible


def test_a_duplicate_listing_gives_one_decision() -> None:
    objects = qrs_objects(state([BOB], professional=[allocation(BOB, ago(40))]))
    raw = list(objects.allocations["professionalaccesstype"].values())
    twice = read_allocations(raw * 2, "professional")
    assert len(screen(twice, "professional", 30, NOW).eligible) == 1


# --------------------------------------------------------------------------- the server filter


@pytest.mark.parametrize("threshold", [1, 6, 7, 30, 365])
def test_server_filter_returns_a_superset_of_the_eligible(threshold: int) -> None:
    """Evaluated by the simulator's QRS filter engine over allocations around the cutoff."""
    allocations = []
    for minutes in range(-3 * 1440, 3 * 1440, 97):
        age = timedelta(days=threshold, minutes=minutes)
        allocations.append(allocation(BOB, format_qrs_time(NOW - age), key=f"u{minutes}"))
    for created_days in (threshold - 1, threshold, threshold + 1):
        for last_used in (None, NEVER):
            allocations.append(
                allocation(
                    BOB, last_used, created=ago(created_days), key=f"n{created_days}{last_used}"
                )
            )
    objects = list(
        qrs_objects(state([BOB], professional=allocations))
        .allocations["professionalaccesstype"]
        .values()
    )
    matcher = compile_filter(release_filter(NOW, threshold)).predicate
    returned = {a["id"] for a in objects if matcher(a)}
    listing = read_allocations(objects, "professional")
    eligible = {a.id for a, _ in screen(listing, "professional", threshold, NOW).eligible}
    assert eligible and eligible <= returned
    assert len(returned) < len(objects)  # it does filter


# --------------------------------------------------------------------------- users


def test_users_that_cannot_be_fetched_or_read_are_kept() -> None:
    carol, dave, erin = user("carol"), user("dave"), user("erin")
    objects = qrs_objects(
        state(
            [BOB, carol, dave, erin],
            professional=[allocation(u, ago(40)) for u in (BOB, carol, dave, erin)],
        )
    )
    raw_users = dict(objects.users)
    raw_users[carol["id"].lower()] = {**raw_users[carol["id"].lower()], "tags": "not a list"}
    del raw_users[dave["id"].lower()]
    del raw_users[erin["id"].lower()]
    found, odd = users_by_id(read_users(raw_users.values()))
    users = index_users(
        UserFetch(
            users=found,
            unreadable=odd,
            failed={erin["id"].upper(): "503 after 4 retries"},
            missing=frozenset({dave["id"]}),
        )
    )
    eligible = screen(listed(objects), "professional", 30, NOW).eligible
    kept, to_release = decide_candidates(eligible, users, [])
    assert [c.allocation.owner for c in to_release] == ["CORP\\bob"]
    reasons = {d.allocation.owner: (d.decision, d.reasons[0]) for d in kept}
    assert reasons["CORP\\carol"][1].rule == "qrsData"
    assert "cannot be read" in reasons["CORP\\carol"][1].reason
    assert reasons["CORP\\erin"][1].rule == reasons["CORP\\dave"][1].rule == "userLookup"
    assert "503 after 4 retries" in reasons["CORP\\erin"][1].reason
    assert "QRS has no user with that id" in reasons["CORP\\dave"][1].reason
    assert all(decision is Decision.KEPT for decision, _ in reasons.values())


@pytest.mark.parametrize(
    ("field", "value"), [("userId", "bob2"), ("userDirectory", "CORP2"), ("userId", "BOB")]
)
def test_an_owner_renamed_between_the_reads_is_kept(field: str, value: str) -> None:
    # The allocation names CORP\bob; the user record, read a moment later, names someone else.
    carol = user("carol")
    objects = qrs_objects(
        state([BOB, carol], professional=[allocation(u, ago(40)) for u in (BOB, carol)])
    )
    raw_users = dict(objects.users)
    raw_users[BOB["id"].lower()] = {**raw_users[BOB["id"].lower()], field: value}
    eligible = screen(listed(objects), "professional", 30, NOW).eligible
    seen: list[str] = []
    rule = ReleaseRule("spy", lambda cs: seen.extend(c.allocation.owner for c in cs) or {})
    kept, to_release = decide_candidates(
        eligible, index_users(fetch_of(raw_users.values())), [rule]
    )
    assert [c.allocation.owner for c in to_release] == ["CORP\\carol"]
    assert seen == ["CORP\\carol"]  # rules never see an owner with two names
    (decision,) = kept
    assert decision.allocation.owner == "CORP\\bob" and decision.decision is Decision.KEPT
    assert decision.reasons[0].rule == "qrsData"
    assert "CORP\\bob in the allocation" in decision.reasons[0].reason


# --------------------------------------------------------------------------- rules


def _candidates(n: int = 3):
    users = [user(f"u{i}") for i in range(n)]
    objects = qrs_objects(state(users, professional=[allocation(u, ago(40)) for u in users]))
    eligible = screen(listed(objects), "professional", 30, NOW).eligible
    _, candidates = decide_candidates(eligible, index_users(fetch_of(objects.users.values())), [])
    return candidates


def test_a_rule_that_raises_keeps_the_whole_batch() -> None:
    def boom(candidates):
        raise RuntimeError("directory service down")

    candidates = _candidates()
    fine = ReleaseRule("fine", lambda cs: {cs[0].allocation.id: "first one"})
    vetoes = judge(candidates, [ReleaseRule("boom", boom), fine])
    assert set(vetoes) == {c.allocation.id for c in candidates}
    first = vetoes[candidates[0].allocation.id]
    assert [r.rule for r in first] == ["boom", "fine"]  # every rule still consulted
    assert "RuntimeError: directory service down" in first[0].reason


@pytest.mark.parametrize("answer", [["not", "a", "mapping"], 42, "x"])
def test_a_rule_answering_nonsense_keeps_the_whole_batch(answer) -> None:
    candidates = _candidates()
    vetoes = judge(candidates, [ReleaseRule("odd", lambda cs: answer)])
    assert len(vetoes) == len(candidates)
    assert "not a mapping" in vetoes[candidates[0].allocation.id][0].reason


def test_rule_answers_for_unknown_ids_are_ignored_and_none_means_no_veto() -> None:
    candidates = _candidates()
    vetoes = judge(
        candidates,
        [
            ReleaseRule("stranger", lambda cs: {"not-in-batch": "x"}),
            ReleaseRule("silent", lambda cs: None),
            ReleaseRule("terse", lambda cs: {cs[1].allocation.id: ""}),
        ],
    )
    assert list(vetoes) == [candidates[1].allocation.id]
    assert vetoes[candidates[1].allocation.id][0].reason == "protected by this rule"


def test_each_rule_sees_the_whole_batch_once() -> None:
    calls = []
    candidates = _candidates(5)
    judge(candidates, [ReleaseRule("count", lambda cs: calls.append(len(cs)) or {})])
    assert calls == [5]


# --------------------------------------------------------------------------- the safety limit


def _type_result(n: int, limit: int | None) -> TypeResult:
    result = TypeResult(TypeSettings("professional", "professionalaccesstype", 30))
    result.to_release = _candidates(n)
    result.limit = limit
    return result


def test_limit_is_exceeded_only_above_it() -> None:
    assert limit_exceeded([_type_result(3, 3)]) is None
    assert limit_exceeded([_type_result(3, None)]) is None
    why = limit_exceeded([_type_result(3, 3), _type_result(4, 3)])
    assert why and "4 professional allocations (limit 3)" in why and "released nothing" in why


def test_hold_back_keeps_every_candidate_with_the_reason() -> None:
    results = [_type_result(2, 1), _type_result(1, 5)]
    hold_back(results, "maxReleasesPerRun", "too many")
    assert all(not r.to_release for r in results)
    decisions = [d for r in results for d in r.decisions]
    assert len(decisions) == 3
    assert all(
        d.decision is Decision.KEPT and d.reasons[0].rule == "maxReleasesPerRun" for d in decisions
    )


@pytest.mark.parametrize(
    ("setting", "allocated", "limit"),
    [(10, 1000, 10), ("5%", 1000, 50), ({"count": 10, "percent": 5}, 100, 5), ("0", 10, 0)],
)
def test_max_releases_forms(setting, allocated: int, limit: int) -> None:
    assert MaxReleases.model_validate(setting).limit_for(allocated) == limit


def test_plan_type_counts() -> None:
    bob, carol = user("bob", tags=["keep"]), user("carol")
    result = decide(
        state(
            [bob, carol],
            professional=[
                allocation(bob, ago(40)),
                allocation(carol, ago(40)),
                allocation(carol, ago(3), key="recent"),
            ],
        ),
        release_block("tag: [keep]"),
    )
    counts = result.counts()
    assert (counts["considered"], counts["eligible"], counts["kept"], counts["not_eligible"]) == (
        3,
        2,
        1,
        1,
    )
    assert result.kept_by_rule() == {"tag": 1}
    assert outcome(result)["CORP\\bob"] == "kept"


def test_the_user_index_takes_decoded_users_by_any_spelling_of_their_id() -> None:
    from agent.models import User

    ann = User("AAAAAAAA-0000-4000-8000-000000000001", "CORP", "ann")
    bob = User("bbbbbbbb-0000-4000-8000-000000000002", "CORP", "bob")
    for users in ({ann.id: ann, bob.id: bob}, {ann.id.lower(): ann, bob.id: bob}):
        index = index_users(UserFetch(users=users, failed={bob.id.upper(): "503"}))
        assert index.get(ann.id) is ann and index.get(ann.id.lower()) is ann
        assert index.get(bob.id) is None  # a failed fetch wins over anything else
        assert "503" in index.why_unavailable(bob.id).reason
