"""Releasing allocations: 204 / 404, the 7-day quarantine, and its expiry by the simulator clock."""

from __future__ import annotations

import datetime as dt
from typing import Any

from agent.simulator import Simulator

from .helpers import NOW, Qrs, aid, pid, uid

PROF = "/qrs/license/professionalaccesstype"
ANAL = "/qrs/license/analyzeraccesstype"


def test_delete_of_long_unused_allocation_frees_it(sim: Simulator, qrs: Qrs) -> None:
    response = qrs.delete(f"{PROF}/{pid(1)}")  # last used 90 days ago
    assert response.status_code == 204 and response.content == b""
    assert qrs.get(f"{PROF}/{pid(1)}").status_code == 404
    assert qrs.get(f"{PROF}/count").json() == {"value": 5}
    overview = qrs.get("/qrs/license/accesstypeoverview").json()["professionalAccess"]
    assert (overview["allocated"], overview["available"]) == (5, 5)


def test_never_used_allocations_are_freed(qrs: Qrs) -> None:
    assert qrs.delete(f"{PROF}/{pid(3)}").status_code == 204  # lastUsed null
    assert qrs.delete(f"{PROF}/{pid(4)}").status_code == 204  # lastUsed 1753, created 3 days ago
    assert qrs.get(f"{PROF}/count").json() == {"value": 4}


def test_delete_of_recently_used_allocation_quarantines_it(sim: Simulator, qrs: Qrs) -> None:
    assert (
        qrs.delete(
            f"{PROF}/{pid(2)}", headers={"X-Qlik-User": "UserDirectory=ACME; UserId=admin"}
        ).status_code
        == 204
    )
    allocation = qrs.get(f"{PROF}/{pid(2)}").json()
    assert allocation["quarantined"] is True
    assert allocation["quarantineEnd"] == "2026-06-08T12:00:00.000Z"  # now + 7 days
    assert allocation["modifiedDate"] == "2026-06-01T12:00:00.000Z"
    assert allocation["modifiedByUserName"] == "ACME\\admin"
    assert allocation["user"]["id"] == uid(2)
    overview = qrs.get("/qrs/license/accesstypeoverview").json()["professionalAccess"]
    assert (overview["allocated"], overview["quarantined"], overview["available"]) == (6, 2, 4)
    assert qrs.get(f"{PROF}/count", params={"filter": "quarantined eq true"}).json() == {"value": 2}


def test_seven_day_boundary(qrs: Qrs) -> None:
    assert qrs.delete(f"{ANAL}/{aid(2)}").status_code == 204  # exactly 7 days: freed
    assert qrs.get(f"{ANAL}/{aid(2)}").status_code == 404
    assert qrs.delete(f"{ANAL}/{aid(3)}").status_code == 204  # 6 days 23 hours: quarantined
    assert qrs.get(f"{ANAL}/{aid(3)}").json()["quarantined"] is True


def test_deleting_a_quarantined_allocation_is_a_204_no_op(qrs: Qrs) -> None:
    before = qrs.get(f"{PROF}/{pid(6)}").json()
    assert qrs.delete(f"{PROF}/{pid(6)}").status_code == 204
    assert qrs.get(f"{PROF}/{pid(6)}").json() == before


def test_unknown_or_already_deleted_id_is_404(qrs: Qrs) -> None:
    assert qrs.delete(f"{PROF}/{aid(1)}").status_code == 404  # an analyzer id
    assert qrs.delete(f"{PROF}/not-a-guid").status_code == 404
    assert qrs.delete(f"{PROF}/{pid(1)}").status_code == 204
    assert qrs.delete(f"{PROF}/{pid(1)}").status_code == 404


def test_quarantine_expires_with_the_clock(sim: Simulator, qrs: Qrs) -> None:
    qrs.delete(f"{PROF}/{pid(2)}")
    sim.advance(dt.timedelta(days=3))  # pid(6) ends at now + 3 days
    assert qrs.get(f"{PROF}/{pid(6)}").status_code == 404
    assert qrs.get(f"{PROF}/{pid(2)}").status_code == 200
    clock = qrs.admin("POST", "/_simulator/clock", json={"advance_seconds": 4 * 86400}).json()
    assert clock == {"now": "2026-06-08T12:00:00.000Z", "fixed": True, "date_header": "clock"}
    assert qrs.get(f"{PROF}/{pid(2)}").status_code == 404
    assert (
        qrs.get("/qrs/license/accesstypeoverview").json()["professionalAccess"]["quarantined"] == 0
    )


def test_set_clock_over_admin_api(sim: Simulator, qrs: Qrs) -> None:
    assert qrs.admin("GET", "/_simulator/clock").json() == {
        "now": "2026-06-01T12:00:00.000Z",
        "fixed": True,
        "date_header": "clock",
    }
    later = (NOW + dt.timedelta(days=30)).isoformat()
    assert (
        qrs.admin("POST", "/_simulator/clock", json={"now": later}).json()["now"]
        == "2026-07-01T12:00:00.000Z"
    )
    assert sim.now() == NOW + dt.timedelta(days=30)


def test_user_access_allocations_follow_the_same_rules(make_sim: Any) -> None:
    """A token site: the overview counts its User access allocations, and a DELETE frees or
    quarantines them by last use, as for Professional and Analyzer."""
    users = [{"id": uid(n), "userDirectory": "ACME", "userId": f"u{n}"} for n in (1, 2, 3)]
    recent, old, never = "dddddddd-0000-4000-8000-000000000001", pid(11), pid(12)
    state = {
        "now": "2026-06-01T12:00:00.000Z",
        "users": users,
        "useraccesstype": [
            {"id": recent, "user": uid(1), "lastUsed": "2026-05-30T12:00:00.000Z"},
            {"id": old, "user": uid(2), "lastUsed": "2026-03-01T12:00:00.000Z"},
            {"id": never, "user": uid(3), "lastUsed": None},
        ],
        "totals": {"user": 10},
    }
    for allocation in state["useraccesstype"]:
        allocation["createdDate"] = "2025-01-01T00:00:00.000Z"
    qrs = Qrs(make_sim(state))
    user = "/qrs/license/useraccesstype"
    block = qrs.get("/qrs/license/accesstypeoverview").json()
    assert block["tokensEnabled"] is True and block["totalTokens"] == 10
    assert block["availableTokens"] == 7
    assert block["userAccess"]["enabled"] is True
    assert (block["userAccess"]["allocatedTokens"], block["userAccess"]["usedTokens"]) == (3, 2)
    assert "excess" not in qrs.get(f"{user}/{old}").json()
    assert qrs.delete(f"{user}/{recent}").status_code == 204  # used 2 days ago: quarantined
    assert qrs.delete(f"{user}/{old}").status_code == 204  # 92 days: freed
    assert qrs.delete(f"{user}/{never}").status_code == 204  # never used: freed
    assert qrs.get(f"{user}/{recent}").json()["quarantined"] is True
    assert qrs.get(f"{user}/{old}").status_code == 404
    assert qrs.get(f"{user}/count").json() == {"value": 1}
    quarantined = qrs.get("/qrs/license/accesstypeoverview").json()["userAccess"]
    assert (quarantined["allocatedTokens"], quarantined["quarantinedTokens"]) == (1, 1)


def test_a_site_without_tokens_has_user_access_disabled(qrs: Qrs) -> None:
    overview = qrs.get("/qrs/license/accesstypeoverview").json()
    assert overview["tokensEnabled"] is False and overview["userAccess"]["enabled"] is False
    assert overview["totalTokens"] == overview["availableTokens"] == 0
