"""User access allocations (the token model) released like Professional and Analyzer ones:
through the simulator over mutual TLS, the built-in ``userAccess`` license type, dry run and
live, protected users kept, QRS's quarantine told apart, off unless enabled."""

from __future__ import annotations

from typing import Any

import pytest

from agent.config import ConfigError
from agent.models import MEASUREMENT_RELEASE, Decision
from agent.plugins import parse_config

from .helpers import ReleaseHarness, ago, allocation, state, user

ALICE, BOB, CAROL, DAVE = (
    user("alice"),
    user("bob", tags=["VIP"]),
    user("carol"),
    user("dave"),
)
USER_ACCESS = "useraccesstype"


def token_site() -> dict[str, Any]:
    """Professional and User access allocations; each user holds one of the latter."""
    document = state([ALICE, BOB, CAROL, DAVE], professional=[allocation(ALICE, ago(40))])
    document[USER_ACCESS] = [
        allocation(ALICE, ago(40), key="user"),  # idle: released
        allocation(BOB, ago(40), key="user"),  # protected by his tag
        allocation(CAROL, ago(3), key="user"),  # used 3 days ago: not even listed
        allocation(DAVE, ago(40), created=ago(400), key="user"),
    ]
    document["totals"]["user"] = 10
    return document


def release_text(*, user_access: bool | None, dry_run: bool, threshold: int = 30) -> str:
    text = f"""
enable: true
dryRun: {str(dry_run).lower()}
neverRelease:
  tag: [VIP]
licenseType:
  professional:
    enable: false
"""
    if user_access is not None:
        text += f"""  userAccess:
    enable: {str(user_access).lower()}
    releaseThresholdDays: {threshold}
"""
    return text


def decisions(result: Any) -> dict[str, Decision]:
    return {
        d.allocation.owner: d.decision
        for d in result.decisions
        if d.allocation.license_type == "userAccess"
    }


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry run", "live"])
def test_user_access_allocations_are_released_like_the_others(
    harness: ReleaseHarness, dry_run: bool
) -> None:
    harness.start(token_site())
    result = harness.run(release_text(user_access=True, dry_run=dry_run))
    assert result.ok, result.errors
    released = Decision.WOULD_RELEASE if dry_run else Decision.RELEASED
    assert decisions(result) == {
        "CORP\\alice": released,
        "CORP\\bob": Decision.KEPT,
        "CORP\\dave": released,
    }
    kept = next(d for d in result.decisions if d.allocation.owner == "CORP\\bob")
    assert [r.rule for r in kept.reasons] == ["tag"]
    remaining = {a["user"]["userId"] for a in harness.remaining(USER_ACCESS).values()}
    events = [p for p in harness.delivery.points if p.measurement == MEASUREMENT_RELEASE]
    if dry_run:
        assert remaining == {"alice", "bob", "carol", "dave"} and events == []
    else:
        assert remaining == {"bob", "carol"}
        assert sorted(p.tags["user"] for p in events) == ["CORP\\alice", "CORP\\dave"]
        assert {p.tags["license_type"] for p in events} == {"userAccess"}
    # Professional is off: its list is never asked for.
    assert harness.requests("GET /qrs/license/professionalaccesstype") == 0
    # The filter leaves out Carol's, used 3 days ago, as for the other types.
    assert result.counts()["userAccess"]["considered"] == 3


def test_a_recently_used_one_is_quarantined_by_qrs(harness: ReleaseHarness) -> None:
    harness.start(token_site())
    result = harness.run(release_text(user_access=True, dry_run=False, threshold=1))
    assert decisions(result)["CORP\\carol"] is Decision.QUARANTINED
    (held,) = [a for a in harness.remaining(USER_ACCESS).values() if a["quarantined"]]
    assert held["user"]["userId"] == "carol"


@pytest.mark.parametrize("user_access", [None, False], ids=["absent", "enable: false"])
def test_off_unless_enabled(harness: ReleaseHarness, user_access: bool | None) -> None:
    harness.start(token_site())
    result = harness.run(release_text(user_access=user_access, dry_run=False))
    assert decisions(result) == {}
    assert harness.requests(f"GET /qrs/license/{USER_ACCESS}") == 0
    assert len(harness.remaining(USER_ACCESS)) == 4


def _document(user_access: dict[str, Any], disable: list[str] | None = None) -> dict[str, Any]:
    butler: dict[str, Any] = {
        "configQRS": {"host": "qs.example.com"},
        "cert": {"clientCert": "c.pem", "clientCertKey": "k.pem", "clientCertCA": "r.pem"},
        "qlikSenseLicense": {
            "licenseRelease": {"enable": True, "licenseType": {"userAccess": user_access}}
        },
    }
    if disable:
        butler["licenseAgent"] = {"plugins": {"disable": disable}}
    return {"Butler": butler}


def test_its_settings_are_validated_and_default_to_off() -> None:
    site = parse_config(_document({"releaseThresholdDays": 45})).sites()[0]
    assert site.license_release.license_type.enabled() == {}
    with pytest.raises(ConfigError) as caught:
        parse_config(_document({"enable": True, "releaseThresholdDays": 0}))
    assert "licenseType.userAccess.releaseThresholdDays" in str(caught.value)


def test_its_settings_without_its_plugin_are_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(_document({"enable": True}, disable=["user_access"]))
    assert "userAccess" in str(caught.value) and "user_access" in str(caught.value)
