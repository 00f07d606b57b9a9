"""Property test: random populations and rule sets, checked against a plain model of the rules.

The model below is written from the rules' documentation, independently of the plugins: no
protected allocation may ever be released, and every eligible unprotected one must be.
Pure level (the simulator's state loader shapes the QRS objects; no HTTP), so it runs fast.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.decisions import TypeSettings, index_users, plan_type
from agent.models import read_allocations
from agent.plugins import parse_config
from agent.simulator.clock import parse_date

from .helpers import NEVER, NOW, ago, fetch_of, pure_host, qrs_objects, state, uid

DIRECTORIES = ["CORP", "Admin", "internal"]
USER_IDS = ["ann", "Bob", "cy", "dee", "Eve"]
TAGS = ["VIP", "keep", "License do not release"]
PROP_NAMES = ["LicenseManage", "Dept"]
PROP_VALUES = ["do-not-release", "Sales"]
FLAGS = {"inactive": "inactive", "blocked": "blacklisted", "removedExternally": "removedExternally"}


def cased(words: list[str]) -> st.SearchStrategy[str]:
    """A word from ``words`` in some casing, as an admin might type it."""
    return st.tuples(
        st.sampled_from(words), st.sampled_from([str.upper, str.lower, str.title, str])
    ).map(lambda pair: pair[1](pair[0]))


flag_value = st.sampled_from([True, False, None])  # None: QRS did not report the flag


@st.composite
def populations(draw: st.DrawFn) -> dict[str, Any]:
    owners = draw(
        st.lists(
            st.tuples(st.sampled_from(DIRECTORIES), st.sampled_from(USER_IDS)),
            unique_by=lambda p: (p[0].lower(), p[1].lower()),
            max_size=12,
        )
    )
    users, allocations, unknown_flags = [], [], {}
    for index, (directory, user_id) in enumerate(owners):
        flags = {field: draw(flag_value) for field in FLAGS.values()}
        record = {
            "id": uid("prop-user", directory, user_id),
            "userDirectory": draw(cased([directory])),
            "userId": draw(cased([user_id])),
            "tags": [{"name": t} for t in draw(st.lists(cased(TAGS), max_size=2))],
            "customProperties": [
                {"definition": n, "value": v}
                for n, v in draw(
                    st.lists(st.tuples(cased(PROP_NAMES), cased(PROP_VALUES)), max_size=3)
                )
            ],
            **{field: bool(value) for field, value in flags.items()},
        }
        unknown_flags[record["id"].lower()] = [f for f, v in flags.items() if v is None]
        users.append(record)
        allocations.append(draw(allocation_fields(record["id"], f"a{index}")))
    for index in range(draw(st.integers(0, 3))):  # allocations of deleted users
        fields = draw(allocation_fields(None, f"d{index}"))
        fields["deletedUserDirectory"] = draw(cased(DIRECTORIES))
        fields["deletedUserId"] = draw(cased(USER_IDS))
        allocations.append(fields)
    return {"state": state(users, professional=allocations), "unknown_flags": unknown_flags}


@st.composite
def allocation_fields(draw: st.DrawFn, user_id: str | None, key: str) -> dict[str, Any]:
    created_days = draw(st.floats(0, 400))
    used = draw(st.sampled_from(["used", "null", "sentinel"]))
    last_used = {
        "used": ago(draw(st.floats(0, min(created_days, 90)))),
        "null": None,
        "sentinel": NEVER,
    }[used]
    quarantined = draw(st.booleans()) and draw(st.booleans())
    return {
        "id": uid("prop-allocation", key, str(user_id)),
        "user": user_id,
        "createdDate": ago(created_days),
        "lastUsed": last_used,
        "quarantined": quarantined,
        "quarantineEnd": ago(-3) if quarantined else NEVER,
    }


def maybe_list(items: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.lists(items, max_size=3))


rule_sets = st.fixed_dictionaries(
    {
        "user": maybe_list(
            st.builds(lambda d, i: {"userDir": d, "userId": i}, cased(DIRECTORIES), cased(USER_IDS))
        ),
        "tag": maybe_list(cased(TAGS)),
        "customProperty": maybe_list(
            st.builds(lambda n, v: {"name": n, "value": v}, cased(PROP_NAMES), cased(PROP_VALUES))
        ),
        "userDirectory": maybe_list(cased(DIRECTORIES)),
        # YAML gives strings or, for unquoted yes/no, booleans.
        "inactive": st.sampled_from(["Yes", "no", "IGNORE", True, False]),
        "blocked": st.sampled_from(["yes", "No", "Ignore", True, False]),
        "removedExternally": st.sampled_from(["YES", "no", "ignore", True, False]),
    }
)


# --------------------------------------------------------------------------- the model


def setting(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return value.lower()


def model_protected(
    allocation: dict[str, Any], user: dict[str, Any] | None, rules: dict[str, Any]
) -> bool:
    if user is not None:
        directory, user_id = user["userDirectory"].lower(), user["userId"].lower()
    else:
        directory = allocation["deletedUserDirectory"].lower()
        user_id = allocation["deletedUserId"].lower()
    for entry in rules["user"] or []:
        if entry["userDir"].lower() == directory and entry["userId"].lower() == user_id:
            return True
    if directory in [d.lower() for d in rules["userDirectory"] or []]:
        return True
    if user is None:
        return False  # nothing else can protect a deleted user
    tags = {t["name"].lower() for t in user["tags"]}
    if tags & {t.lower() for t in rules["tag"] or []}:
        return True
    values = {
        (p["definition"]["name"].lower(), str(p["value"]).lower()) for p in user["customProperties"]
    }
    if values & {(p["name"].lower(), p["value"].lower()) for p in rules["customProperty"] or []}:
        return True
    for key, field in FLAGS.items():
        rule = setting(rules[key])
        value = user.get(field)  # None when QRS did not report it
        if rule == "yes" and value in (True, None):
            return True
        if rule == "no" and value in (False, None):
            return True
    return False


def model_days(allocation: dict[str, Any]) -> int | None:
    created = parse_date(allocation["createdDate"])
    last_used = parse_date(allocation["lastUsed"]) if allocation["lastUsed"] else None
    activity = last_used if last_used is not None and last_used >= created else created
    return math.floor((NOW - activity) / timedelta(days=1))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(population=populations(), rules=rule_sets, threshold=st.integers(1, 60))
def test_release_decisions_match_the_model(
    population: dict[str, Any], rules: dict[str, Any], threshold: int
) -> None:
    config = parse_config(
        {
            "Butler": {
                "configQRS": {"host": "qrs.example"},
                "cert": {"clientCert": "c.pem", "clientCertKey": "k.pem", "clientCertCA": "r.pem"},
                "qlikSenseLicense": {
                    "licenseRelease": {
                        "enable": True,
                        "neverRelease": rules,
                        "licenseType": {
                            "professional": {"enable": True, "releaseThresholdDays": threshold}
                        },
                    }
                },
            }
        }
    )
    site = config.sites()[0]
    rule_objects, errors = pure_host().release_rules(config, site)
    assert not errors
    objects = qrs_objects(population["state"])
    raw_users = {}
    for key, raw in objects.users.items():
        raw = dict(raw)
        for field in population["unknown_flags"][key]:
            del raw[field]  # an older Sense that does not send the flag
        raw_users[key] = raw
    raw_allocations = list(objects.allocations["professionalaccesstype"].values())
    result = plan_type(
        TypeSettings("professional", "professionalaccesstype", threshold),
        read_allocations(raw_allocations, "professional"),
        index_users(fetch_of(raw_users.values())),
        rule_objects,
        NOW,
    )

    expected_release, expected_kept = set(), set()
    for raw in raw_allocations:
        if raw["quarantined"] or model_days(raw) < threshold:
            continue
        owner = raw_users[raw["user"]["id"].lower()] if raw["user"] else None
        (expected_kept if model_protected(raw, owner, rules) else expected_release).add(raw["id"])

    released = {c.allocation.id for c in result.to_release}
    kept = {d.allocation.id for d in result.decisions if d.decision.value == "kept"}
    assert not released & expected_kept, "a protected allocation would be released"
    assert released == expected_release
    assert kept == expected_kept
    assert len(result.decisions) + len(result.to_release) == len(raw_allocations)
