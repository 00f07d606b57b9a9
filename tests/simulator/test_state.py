"""Generated sites (deterministic, realistic mix) and the state-file format (defaults, round trip)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from agent.simulator import NEVER, SimulatorState, StateError, generate_state
from agent.simulator.state import ALLOCATION_FIELDS, USER_FIELDS

from .helpers import NOW, SITE, uid


def dump(state: SimulatorState) -> str:
    return json.dumps(state.to_dict(), sort_keys=True)


def test_same_seed_and_now_give_the_same_site() -> None:
    assert dump(generate_state(300, 7, NOW)) == dump(generate_state(300, 7, NOW))
    assert dump(generate_state(300, 7, NOW)) != dump(generate_state(300, 8, NOW))
    later = generate_state(300, 7, NOW + dt.timedelta(days=1))
    assert [u["id"] for u in later.users.values()] == list(generate_state(300, 7, NOW).users)


def test_generated_mix_is_realistic() -> None:
    state = generate_state(3000, 1, NOW)
    users = list(state.users.values())
    prof = list(state.allocations["professionalaccesstype"].values())
    anal = list(state.allocations["analyzeraccesstype"].values())
    assert len(users) == 3000
    assert 0.50 < len(prof) / 3000 < 0.60
    assert 0.30 < len(anal) / 3000 < 0.40
    allocations = prof + anal
    cutoff = (NOW - dt.timedelta(days=30)).isoformat()[:19]
    used = [a for a in allocations if a["lastUsed"] not in (None, NEVER)]
    assert 0.25 < sum(a["lastUsed"] < cutoff for a in used) / len(allocations) < 0.40
    assert any(a["lastUsed"] is None for a in allocations)
    assert any(a["lastUsed"] == NEVER for a in allocations)
    assert any(a["quarantined"] for a in prof) and any(a["quarantined"] for a in anal)
    assert all(a["quarantineEnd"] > NOW.isoformat()[:19] for a in allocations if a["quarantined"])
    deleted = [a for a in allocations if a["user"] is None]
    assert deleted and all(a["deletedUserId"] and a["deletedUserDirectory"] for a in deleted)
    directories = {u["userDirectory"] for u in users}
    assert {"INTERNAL", "ACME", "ADMIN", "EU", "ÅLAND"} <= directories
    assert {("INTERNAL", "sa_api"), ("INTERNAL", "sa_repository")} <= {
        (u["userDirectory"], u["userId"]) for u in users
    }
    assert any("'" in u["name"] for u in users)
    assert any(any(not ch.isascii() for ch in u["userId"]) for u in users)
    for flag in ("inactive", "blacklisted", "removedExternally"):
        assert 0 < sum(u[flag] for u in users) < 300
    manage = [
        [v["value"] for v in u["customProperties"] if v["definition"]["name"] == "LicenseManage"]
        for u in users
    ]
    assert any(values == ["do-not-release"] for values in manage)
    assert any(len(values) > 1 for values in manage)
    assert any(tag["name"] == "License do not release" for u in users for tag in u["tags"])
    assert all(list(u) == list(USER_FIELDS) for u in users)
    assert all(list(a) == list(ALLOCATION_FIELDS) for a in allocations)
    holders = {a["user"]["id"] for a in allocations if a["user"]}
    assert len(holders) == len(allocations) - len(deleted)  # one allocation per user
    assert state.totals["professional"] >= len(prof)


def test_tiny_sites_still_have_every_kind() -> None:
    state = generate_state(12, 1, NOW)
    allocations = [a for items in state.allocations.values() for a in items.values()]
    assert any(a["quarantined"] for a in allocations)
    assert any(a["lastUsed"] is None for a in allocations)
    assert any(a["user"] is None for a in allocations)
    assert generate_state(0, 1, NOW).users == {}


def test_defaults_are_filled() -> None:
    state = SimulatorState.from_dict(
        {
            "users": [{"userDirectory": "ACME", "userId": "x", "tags": ["t"]}],
            "professionalaccesstype": [{"user": {"userDirectory": "acme", "userId": "X"}}],
        },
        NOW,
    )
    (user,) = state.users.values()
    assert list(user) == list(USER_FIELDS)
    assert (
        user["name"],
        user["userDirectoryConnectorName"],
        user["inactive"],
        user["createdDate"],
    ) == (
        "x",
        "ACME",
        False,
        "2026-06-01T12:00:00.000Z",
    )
    assert user["tags"][0]["name"] == "t"
    (allocation,) = state.allocations["professionalaccesstype"].values()
    assert list(allocation) == list(ALLOCATION_FIELDS)
    assert allocation["user"]["id"] == user["id"]
    assert (allocation["lastUsed"], allocation["quarantined"], allocation["quarantineEnd"]) == (
        None,
        False,
        NEVER,
    )
    assert state.total("professionalaccesstype") == 1  # defaults to the allocation count
    again = SimulatorState.from_dict(
        {
            "users": [{"userDirectory": "ACME", "userId": "x"}],
            "professionalaccesstype": [{"user": {"userDirectory": "acme", "userId": "X"}}],
        },
        NOW,
    )
    assert list(again.allocations["professionalaccesstype"]) == list(
        state.allocations["professionalaccesstype"]
    )  # stable ids


def test_quarantined_without_end_gets_seven_days() -> None:
    state = SimulatorState.from_dict(
        {"analyzeraccesstype": [{"user": None, "quarantined": True}]}, NOW
    )
    (allocation,) = state.allocations["analyzeraccesstype"].values()
    assert allocation["quarantineEnd"] == "2026-06-08T12:00:00.000Z"


def test_dates_are_normalized() -> None:
    state = SimulatorState.from_dict(
        {
            "users": [
                {"userDirectory": "A", "userId": "b", "createdDate": "2026-01-02T03:04:05+01:00"}
            ]
        },
        NOW,
    )
    assert next(iter(state.users.values()))["createdDate"] == "2026-01-02T02:04:05.000Z"


def test_round_trip() -> None:
    state = SimulatorState.from_dict(SITE, NOW)
    document = json.loads(json.dumps(state.to_dict()))
    assert dump(SimulatorState.from_dict(document, NOW)) == dump(state)
    assert document["now"] == "2026-06-01T12:00:00.000Z"
    assert document["totals"] == {"professional": 10, "analyzer": 5}
    generated = generate_state(50, 2, NOW)
    assert dump(SimulatorState.from_dict(json.loads(dump(generated)), NOW)) == dump(generated)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"users": [{"userId": "x"}]}, r"users\[0\]: 'userDirectory' is required"),
        (
            {"users": [{"userDirectory": "A", "userId": "b", "createdDate": "soon"}]},
            "not an ISO date",
        ),
        (
            {"professionalaccesstype": [{"user": uid(42)}]},
            r"professionalaccesstype\[0\]: user id .* is not in 'users'",
        ),
        ({"analyzeraccesstype": [{"user": 5}]}, "'user' must be"),
        ({"users": [{"userDirectory": "A", "userId": "b", "tags": [{}]}]}, "a tag needs a 'name'"),
        ({"now": "tomorrow"}, "'now' is not an ISO date"),
        ([], "must be a JSON object"),
    ],
)
def test_state_errors_name_the_object(document: object, message: str) -> None:
    with pytest.raises(StateError, match=message):
        SimulatorState.from_dict(document, NOW)  # type: ignore[arg-type]


def test_values_the_state_gives_are_served_as_they_are() -> None:
    """Null lists and flags are not turned into [] and false: tests reproduce an odd QRS."""
    document = {
        "users": [
            {"id": uid(1), "userDirectory": "A", "userId": "n", "tags": None, "inactive": None},
            {"id": uid(2), "userDirectory": "A", "userId": "m", "customProperties": None},
            {"id": uid(3), "userDirectory": "A", "userId": "s", "tags": "Finance"},
        ]
    }
    users = SimulatorState.from_dict(document, NOW).users
    assert users[uid(1)]["tags"] is None and users[uid(1)]["inactive"] is None
    assert users[uid(1)]["customProperties"] == []  # missing: QRS's default
    assert users[uid(2)]["customProperties"] is None and users[uid(2)]["tags"] == []
    assert users[uid(3)]["tags"] == "Finance"


def test_absent_fields_are_left_out_and_survive_a_round_trip() -> None:
    document = {
        "users": [
            {"id": uid(1), "userDirectory": "A", "userId": "n", "_absent": ["tags", "inactive"]}
        ],
        "useraccesstype": [{"user": uid(1), "_absent": ["quarantineEnd"]}],
    }
    state = SimulatorState.from_dict(document, NOW)
    (user,) = state.users.values()
    assert "tags" not in user and "inactive" not in user and "_absent" not in user
    assert "customProperties" in user
    (allocation,) = state.allocations["useraccesstype"].values()
    assert "quarantineEnd" not in allocation and "excess" not in allocation
    again = SimulatorState.from_dict(json.loads(dump(state)), NOW)
    assert dump(again) == dump(state)
    assert again.users == state.users
    with pytest.raises(StateError, match="cannot remove 'id'"):
        SimulatorState.from_dict({"users": [dict(document["users"][0], _absent=["id"])]}, NOW)
    with pytest.raises(StateError, match="list of field names"):
        SimulatorState.from_dict({"users": [dict(document["users"][0], _absent="tags")]}, NOW)
