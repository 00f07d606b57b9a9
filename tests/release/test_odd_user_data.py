"""Odd user data from QRS never releases a protected user (issue 13, item 1).

Each case serves, through the simulator over mutual TLS, a user whose protection cannot be read:
``tags``, ``customProperties`` or ``attributes`` null or missing, or the same user twice in one answer with the
protection in only one copy. Read as "no tags", any of these would release a user that a tag or
custom property rule protects. The allocation must be kept with a ``qrsData`` reason, in a dry
run and in a live one, while a user with ordinary data is still released.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.hookspecs import hookimpl
from agent.models import Decision, ReleaseRule

from .helpers import ReleaseHarness, ago, allocation, by_user, release_block, state, user

NEVER_RELEASE = """
tag: [VIP]
customProperty:
  - name: LicenseManage
    value: keep
"""
ALICE = user("alice")
PROTECTED = user("bob", tags=["VIP"], props=[("LicenseManage", "keep")])


def only_tag(**odd: Any) -> dict[str, Any]:
    """Bob protected by his tag alone, with the odd fields."""
    return {**user("bob", tags=["VIP"]), **odd}


def only_property(**odd: Any) -> dict[str, Any]:
    """Bob protected by his custom property alone, with the odd fields."""
    return {**user("bob", props=[("LicenseManage", "keep")]), **odd}


CASES = {
    # Read as "no tags" / "no custom properties", each would lose Bob his only protection.
    "null tags": (only_tag(tags=None), None, "tags"),
    "missing tags": (only_tag(_absent=["tags"]), None, "tags"),
    "null customProperties": (only_property(customProperties=None), None, "customProperties"),
    "missing customProperties": (
        only_property(_absent=["customProperties"]),
        None,
        "customProperties",
    ),
    # QRS lists him twice; the second copy has lost his tag and property.
    "duplicate user record": (
        PROTECTED,
        {"tags": [], "customProperties": []},
        "more than once",
    ),
}


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry run", "live"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_user_whose_protection_cannot_be_read_is_kept(
    harness: ReleaseHarness, case: str, dry_run: bool
) -> None:
    bob, twin_changes, why = CASES[case]
    harness.start(state([ALICE, bob], professional=[allocation(u, ago(40)) for u in (ALICE, bob)]))
    assert harness.sim is not None
    if twin_changes is not None:
        harness.sim.add_fault(
            "GET /qrs/user/full", "duplicate", body=json.dumps(twin_changes), count=1
        )
    result = harness.run(release_block(NEVER_RELEASE, analyzer=False, dry_run=dry_run))

    kept = by_user(result)["CORP\\bob"]
    assert kept.decision is Decision.KEPT
    assert [r.rule for r in kept.reasons] == ["qrsData"]
    assert why in kept.reasons[0].reason
    remaining = {a["user"]["userId"] for a in harness.remaining().values()}
    assert "bob" in remaining
    alice = by_user(result)["CORP\\alice"].decision
    if twin_changes is not None:
        assert alice is Decision.KEPT  # she was listed twice too
    elif dry_run:
        assert alice is Decision.WOULD_RELEASE and remaining == {"alice", "bob"}
    else:
        assert alice is Decision.RELEASED and remaining == {"bob"}
    assert not [p for p in harness.delivery.points if p.tags.get("user") == "CORP\\bob"]


class _GroupRule:
    """A third-party rule on the user directory's attributes, as docs/plugins.md shows one:
    users in the group Finance are never released."""

    @hookimpl
    def sla_release_rules(self) -> list[ReleaseRule]:
        def judge(candidates: Any) -> dict[str, str]:
            return {
                c.allocation.id: "user is in group Finance"
                for c in candidates
                if c.user
                and any(a.type == "Group" and a.value == "Finance" for a in c.user.attributes)
            }

        return [ReleaseRule(name="financeGroup", judge=judge)]


FINANCE = [{"attributeType": "Group", "attributeValue": "Finance"}]


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry run", "live"])
@pytest.mark.parametrize("odd", ["null", "missing"])
def test_a_user_whose_attributes_cannot_be_read_is_kept(
    harness: ReleaseHarness, odd: str, dry_run: bool
) -> None:
    """QRS always sends ``attributes``; read as "no attributes", a null or missing list would
    lose Bob the protection of a plugin rule on directory groups."""
    carol = user("carol", attributes=FINANCE)  # protected, and readable
    bob = user("bob", attributes=None) if odd == "null" else user("bob", _absent=["attributes"])
    users = [ALICE, bob, carol]
    harness.start(state(users, professional=[allocation(u, ago(40)) for u in users]))
    result = harness.run(
        release_block("", analyzer=False, dry_run=dry_run), extra=[("financeGroup", _GroupRule())]
    )

    decided = by_user(result)
    assert decided["CORP\\bob"].decision is Decision.KEPT
    assert [r.rule for r in decided["CORP\\bob"].reasons] == ["qrsData"]
    assert "attributes" in decided["CORP\\bob"].reasons[0].reason
    assert [r.rule for r in decided["CORP\\carol"].reasons] == ["financeGroup"]
    expected = Decision.WOULD_RELEASE if dry_run else Decision.RELEASED
    assert decided["CORP\\alice"].decision is expected
    remaining = {a["user"]["userId"] for a in harness.remaining().values()}
    assert remaining == ({"alice", "bob", "carol"} if dry_run else {"bob", "carol"})
