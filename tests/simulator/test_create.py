"""Allocating (``POST /qrs/license/<type>``): reinstatement from quarantine, a new allocation from
an available license, and QRS-like refusals when none is left or the body is wrong."""

from __future__ import annotations

import datetime as dt

from agent.simulator import Simulator

from .helpers import Qrs, aid, pid, uid

PROF = "/qrs/license/professionalaccesstype"
ANAL = "/qrs/license/analyzeraccesstype"
OVERVIEW = "/qrs/license/accesstypeoverview"


def counts(qrs: Qrs, key: str = "professionalAccess") -> tuple[int, int, int]:
    block = qrs.get(OVERVIEW).json()[key]
    return block["allocated"], block["quarantined"], block["available"]


def test_release_then_allocate_gives_a_new_allocation_and_the_same_counts(qrs: Qrs) -> None:
    before = counts(qrs)
    assert qrs.delete(f"{PROF}/{pid(1)}").status_code == 204  # unused for 90 days: freed
    assert counts(qrs) == (before[0] - 1, before[1], before[2] + 1)
    answer = qrs.post(
        PROF,
        json={"user": {"id": uid(1)}},
        headers={"X-Qlik-User": "UserDirectory=ACME; UserId=admin"},
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created["id"] != pid(1)
    assert created["user"]["id"] == uid(1) and created["user"]["userId"] == "sa_api"
    assert created["quarantined"] is False and created["lastUsed"] is None
    assert created["createdDate"] == "2026-06-01T12:00:00.000Z"
    assert created["modifiedByUserName"] == "ACME\\admin"
    assert created["schemaPath"] == "License.ProfessionalAccessType"
    assert qrs.get(f"{PROF}/{created['id']}").json() == created
    assert counts(qrs) == before


def test_same_user_within_quarantine_gets_the_quarantined_allocation_back(qrs: Qrs) -> None:
    before = counts(qrs)
    assert qrs.delete(f"{PROF}/{pid(2)}").status_code == 204  # used 2 days ago: quarantined
    assert counts(qrs) == (before[0], before[1] + 1, before[2])
    answer = qrs.post(PROF, json={"user": {"id": uid(2)}})
    assert answer.status_code == 201, answer.text
    back = answer.json()
    assert back["id"] == pid(2)  # the same allocation, no new license
    assert back["quarantined"] is False
    assert back["quarantineEnd"] == "1753-01-01T00:00:00.000Z"
    assert back["lastUsed"] == qrs.get(f"{PROF}/{pid(2)}").json()["lastUsed"]
    assert counts(qrs) == before


def test_after_the_quarantine_a_new_license_is_needed(sim: Simulator, qrs: Qrs) -> None:
    assert qrs.delete(f"{PROF}/{pid(2)}").status_code == 204
    sim.advance(dt.timedelta(days=7, seconds=1))  # the quarantine ends: the allocation is gone
    assert qrs.get(f"{PROF}/{pid(2)}").status_code == 404
    answer = qrs.post(PROF, json={"user": {"id": uid(2)}})
    assert answer.status_code == 201
    assert answer.json()["id"] != pid(2)


def test_no_license_left_is_refused_and_changes_nothing(qrs: Qrs) -> None:
    # Analyzer: 5 licensed, 3 allocated. Two more fit, the third is refused.
    for n in (1, 2):
        assert qrs.post(ANAL, json={"user": {"id": uid(n)}}).status_code == 201
    assert counts(qrs, "analyzerAccess") == (5, 0, 0)
    refused = qrs.post(ANAL, json={"user": {"id": uid(3)}})
    assert refused.status_code == 400
    assert refused.headers["Content-Type"].startswith("text/plain")
    assert "no license is available" in refused.text and "5 licensed" in refused.text
    assert counts(qrs, "analyzerAccess") == (5, 0, 0)
    assert qrs.list(ANAL, f"user.id eq {uid(3)}") == []


def test_quarantined_allocation_is_reinstated_even_when_no_license_is_left(
    sim: Simulator, qrs: Qrs
) -> None:
    assert qrs.delete(f"{ANAL}/{aid(3)}").status_code == 204  # used 6 days 23 h ago
    for n in (1, 2):
        assert qrs.post(ANAL, json={"user": {"id": uid(n)}}).status_code == 201
    assert counts(qrs, "analyzerAccess") == (5, 1, 0)
    back = qrs.post(ANAL, json={"user": {"id": uid(8)}})
    assert back.status_code == 201 and back.json()["id"] == aid(3)
    assert counts(qrs, "analyzerAccess") == (5, 0, 0)


def test_refusals(qrs: Qrs) -> None:
    held = qrs.post(PROF, json={"user": {"id": uid(3)}})  # holds pid(3), not quarantined
    assert held.status_code == 409 and "already has a professional access allocation" in held.text
    unknown = qrs.post(PROF, json={"user": {"id": "aaaaaaaa-0000-4000-8000-999999999999"}})
    assert unknown.status_code == 400 and "no user with id" in unknown.text
    for body in ({}, {"user": None}, {"user": {"userId": "x"}}, [1]):
        answer = qrs.post(PROF, json=body)
        assert answer.status_code == 400 and "needs a user" in answer.text, body
    assert qrs.post(PROF, data=b"{not json").status_code == 400
    assert qrs.post("/qrs/user", json={"user": {"id": uid(1)}}).status_code == 405
    assert qrs.get(f"{PROF}/count").json() == {"value": 6}


def test_create_counts_and_takes_faults(sim: Simulator, qrs: Qrs) -> None:
    sim.add_fault(f"POST {PROF}", "error", status=503, count=1)
    assert qrs.post(PROF, json={"user": {"id": uid(6)}}).status_code == 503
    assert qrs.list(PROF, f"user.id eq {uid(6)}") == []  # an error fault changes nothing
    assert qrs.post(PROF, json={"user": {"id": uid(6)}}).status_code == 201
    stats = sim.get_stats()["requests"]
    assert stats[f"POST {PROF}"] == 2
