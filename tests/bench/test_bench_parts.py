"""The pieces the benchmark relies on: the baseline's checks and the simulator's id look-ups.

The baseline must decide as the existing tool does (first matching check wins, in its order,
exact and case-sensitive), or the comparison would be with something else. The simulator answers
a chunk of ``id eq`` filters from its index without running the filter on every candidate; the
answer must be exactly what the filter means.
"""

from __future__ import annotations

import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent.simulator import compile_filter, generate_state
from agent.simulator.clock import Clock
from agent.simulator.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from baseline_client import NeverRelease, butler_check, butler_cutoff  # noqa: E402

RULES = NeverRelease.from_config(
    {
        "user": [{"userDir": "INTERNAL", "userId": "sa_api"}],
        "tag": ["Keep"],
        "customProperty": [{"name": "LicenseManage", "value": "do-not-release"}],
        "userDirectory": ["ADMIN"],
        "inactive": False,  # PyYAML's reading of an unquoted `No`
        "blocked": "Yes",
        "removedExternally": "ignore",
    }
)


def user(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "userDirectory": "ACME",
        "userId": "jdoe",
        "tags": [],
        "customProperties": [],
        "inactive": True,
        "blacklisted": False,
        "removedExternally": False,
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"userDirectory": "INTERNAL", "userId": "sa_api", "tags": [{"name": "Keep"}]}, "user"),
        ({"tags": [{"name": "Keep"}], "userDirectory": "ADMIN"}, "tag"),
        ({"tags": [{"name": "keep"}]}, None),  # exact and case-sensitive, as in Butler
        (
            {
                "customProperties": [
                    {"definition": {"name": "LicenseManage"}, "value": "do-not-release"}
                ]
            },
            "customProperty",
        ),
        ({"userDirectory": "ADMIN"}, "userDirectory"),
        ({"inactive": False}, "inactive"),  # `inactive: No` keeps active users
        ({"blacklisted": True}, "blocked"),
        ({"removedExternally": True}, None),
        ({}, None),
    ],
)
def test_baseline_checks_follow_butler(fields: dict[str, object], expected: str | None) -> None:
    assert butler_check(user(**fields), RULES) == expected


def test_baseline_cutoff_is_the_end_of_a_local_day() -> None:
    now = datetime(2026, 6, 10, 9, 30, tzinfo=timezone.utc)
    assert butler_cutoff(now, 30) == "2026-05-11T23:59:59.999Z"


def test_simulator_answers_id_chunks_exactly() -> None:
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    store = Store(generate_state(300, 3, now), Clock(now))
    ids = sorted(store.objects("user"), key=lambda u: u["id"])
    wanted = [u["id"] for u in ids[:40]] + [str(uuid.uuid4())]  # one unknown id
    chain = " or ".join(f"id eq {i.upper()}" for i in wanted)
    assert compile_filter(chain).exact
    assert not compile_filter(f"({chain}) and inactive eq true").exact
    assert not compile_filter(f"{chain} or userId eq 'x'").exact
    found = store.query("user", chain)
    assert [u["id"] for u in found] == sorted(u["id"] for u in ids[:40])
    # The same answer as evaluating the filter on every user.
    predicate = compile_filter(chain).predicate
    assert sorted(u["id"] for u in store.objects("user") if predicate(u)) == [
        u["id"] for u in found
    ]
    # The regex fast path (a bare chain) and the general parser (the same chain in parentheses)
    # agree, whatever the case of keywords, property and ids.
    shouted = chain.replace("id eq", "ID Eq").replace(" or ", " OR ")
    assert store.query("user", shouted) == store.query("user", f"({chain})") == found
    assert compile_filter(f"({chain})").exact
    narrowed = store.query("user", f"({chain}) and inactive eq true")
    assert [u["id"] for u in narrowed] == [u["id"] for u in found if u["inactive"]]
