"""Fuzz the QRS data path: random and mutated JSON never crashes it and never releases anything
whose data failed validation.

Inputs are random JSON values and mutations of real QRS shapes (the samples from the QRS
reference, and objects the simulator serves). They go through the one definition of a valid QRS
object (:mod:`agent.models`: in bulk from bytes, and one by one from JSON values), every license
type's ``extract`` and the release decision (:func:`agent.decisions.screen` and
:func:`agent.decisions.plan_type` with the real rules).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agent.decisions import TypeSettings, index_users, plan_type, screen
from agent.models import (
    Allocation,
    Decision,
    QrsDataError,
    Unreadable,
    User,
    decode_allocations,
    decode_users,
    parse_allocation,
    parse_user,
    read_allocations,
    read_users,
)
from agent.plugins import build_plugin_host, parse_config
from agent.qrs import UserFetch, users_by_id
from agent.simulator import generate_state

from .strategies import JSON_VALUES, mutated

UTC = timezone.utc
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The shapes QRS.md documents.
ALLOCATION = {
    "id": "046b6c7f-0b8a-43b9-b35d-6489e6daee91",
    "createdDate": "2026-01-23T04:56:07.000Z",
    "modifiedDate": "2026-01-23T04:56:07.000Z",
    "modifiedByUserName": "INTERNAL\\sa_repository",
    "schemaPath": "License.ProfessionalAccessType",
    "privileges": None,
    "user": {
        "id": "1c2e3f4a-0000-4000-8000-000000000001",
        "userId": "jdoe",
        "userDirectory": "ACME",
        "userDirectoryConnectorName": "ACME",
        "name": "Jane Doe",
        "privileges": None,
    },
    "lastUsed": "2026-03-01T08:12:44.000Z",
    "excess": False,
    "quarantined": False,
    "quarantineEnd": "1753-01-01T00:00:00.000Z",
    "deletedUserId": "",
    "deletedUserDirectory": "",
}
USER = {
    "id": "1c2e3f4a-0000-4000-8000-000000000001",
    "createdDate": "2025-01-23T04:56:07.000Z",
    "modifiedDate": "2025-01-23T04:56:07.000Z",
    "modifiedByUserName": "INTERNAL\\sa_repository",
    "schemaPath": "User",
    "privileges": None,
    "customProperties": [
        {
            "id": "9",
            "value": "do-not-release",
            "definition": {"id": "8", "name": "LicenseManage", "valueType": "Text"},
        }
    ],
    "userId": "jdoe",
    "userDirectory": "ACME",
    "userDirectoryConnectorName": "ACME",
    "name": "Jane Doe",
    "roles": [],
    "attributes": [{"attributeType": "Group", "attributeValue": "Sales"}],
    "inactive": False,
    "removedExternally": False,
    "blacklisted": False,
    "deleteProhibited": False,
    "tags": [{"id": "7", "name": "VIP", "privileges": None}],
    "favorites": [],
}
OVERVIEW = {
    "totalTokens": 0,
    "availableTokens": 0,
    "tokensEnabled": False,
    "userAccess": {"enabled": False, "tokenCost": 1, "allocatedTokens": 0, "usedTokens": 0},
    "loginAccess": {"enabled": False, "tokenCost": 0.1, "allocatedTokens": 0},
    "professionalAccess": {
        "enabled": True,
        "total": 25,
        "allocated": 5,
        "used": 0,
        "quarantined": 0,
        "excess": 0,
        "available": 20,
    },
    "analyzerAccess": {
        "enabled": True,
        "total": 25,
        "allocated": 4,
        "used": 0,
        "quarantined": 0,
        "excess": 0,
        "available": 21,
    },
    "analyzerTimeAccess": {"enabled": True, "allocatedMinutes": 700, "usedMinutes": 0},
    "schemaPath": "AccessTypeOverview",
}

# A small generated site: real allocation and user objects as the simulator serves them.
_SITE = generate_state(40, 3, NOW)
SITE_ALLOCATIONS = list(_SITE.allocations["professionalaccesstype"].values())
SITE_USERS = {u["id"]: u for u in _SITE.users.values()}

CONFIG = parse_config(
    yaml.safe_load(
        """
Butler:
  configQRS: {host: qs.example.com}
  cert: {clientCert: c.pem, clientCertKey: k.pem, clientCertCA: r.pem}
  qlikSenseLicense:
    licenseRelease:
      enable: true
      neverRelease:
        user: [{userDir: INTERNAL, userId: sa_api}]
        tag: [VIP, License do not release]
        customProperty: [{name: LicenseManage, value: do-not-release}]
        userDirectory: [ADMIN]
        inactive: Yes
        blocked: Yes
        removedExternally: Ignore
      licenseType:
        professional: {enable: true, releaseThresholdDays: 30}
"""
    )
)
SITE_CONFIG = CONFIG.sites()[0]
HOST = build_plugin_host(CONFIG)
RULES, _ERRORS = HOST.release_rules(CONFIG, SITE_CONFIG)
assert not _ERRORS
SETTINGS = TypeSettings("professional", "professionalaccesstype", 30)


def parses(raw: Any) -> Allocation | None:
    try:
        return parse_allocation(raw, "professional")
    except QrsDataError:
        return None


# --------------------------------------------------------------------------- parsing


@FUZZ
@given(st.one_of(JSON_VALUES, mutated(ALLOCATION, 4)))
def test_parse_allocation_returns_an_allocation_or_raises_qrs_data_error(raw: Any) -> None:
    try:
        allocation = parse_allocation(raw, "professional")
    except QrsDataError as exc:
        assert str(exc)
        return
    assert isinstance(allocation, Allocation) and allocation.id
    assert allocation.created.tzinfo is not None
    assert isinstance(allocation.quarantined, bool)
    assert allocation.user is not None or allocation.deleted_user_id


@FUZZ
@given(st.one_of(JSON_VALUES, mutated(USER, 4)))
def test_parse_user_returns_a_user_or_raises_qrs_data_error(raw: Any) -> None:
    try:
        user = parse_user(raw)
    except QrsDataError as exc:
        assert str(exc)
        return
    assert isinstance(user, User) and user.user_id
    assert all(isinstance(t, str) for t in user.tags)
    for flag in (user.inactive, user.blocked, user.removed_externally):
        assert flag in (True, False, None)


@FUZZ
@given(st.one_of(mutated(OVERVIEW, 5), JSON_VALUES.filter(lambda v: isinstance(v, dict))))
def test_license_type_extractors_never_raise_and_give_numbers(overview: Any) -> None:
    for license_type in HOST.license_types():
        fields = license_type.extract(overview)
        if fields is None:
            continue
        assert isinstance(fields, Mapping)
        for name, value in fields.items():
            assert isinstance(name, str)
            assert isinstance(value, int | float) and not isinstance(value, bool), (name, value)


# --------------------------------------------------------------------------- deciding


@st.composite
def listings(draw: st.DrawFn) -> list[Any]:
    """A listing of allocations: real ones, some mutated, some random values, some repeated."""
    picked = draw(st.lists(st.sampled_from(SITE_ALLOCATIONS), min_size=1, max_size=12))
    listing: list[Any] = []
    for allocation in picked:
        choice = draw(st.integers(0, 5))
        if choice == 0:
            listing.append(draw(mutated(allocation, 2)))
        elif choice == 1:
            listing.append(draw(JSON_VALUES))
        else:
            listing.append(allocation)
    if draw(st.booleans()) and listing:
        listing.insert(0, draw(mutated(draw(st.sampled_from(picked)), 1)))  # a broken twin
    return listing


@st.composite
def fetched_users(draw: st.DrawFn) -> dict[str, Any]:
    users: dict[str, Any] = {}
    for user_id, user in SITE_USERS.items():
        choice = draw(st.integers(0, 9))
        if choice == 0:
            continue  # QRS did not return it
        users[user_id] = draw(mutated(user, 2)) if choice == 1 else user
    return users


def _invalid_ids(listing: list[Any]) -> set[str]:
    """Ids of listed objects that fail validation (when an id can be read at all)."""
    ids = set()
    for raw in listing:
        if parses(raw) is None and isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
            ids.add(raw["id"].lower())
    return ids


def fetch_of(users: Mapping[str, Any]) -> UserFetch:
    """What the client hands over for these user objects (one answer), as it sorts them."""
    try:
        found, odd = users_by_id(read_users(users.values()))
    except QrsDataError as exc:  # an object without an id: the client fails the whole chunk
        return UserFetch(failed=dict.fromkeys(users, str(exc)))
    return UserFetch(users=found, unreadable=odd)


@FUZZ
@given(listings())
def test_screen_never_makes_eligible_what_failed_validation(listing: list[Any]) -> None:
    screening = screen(read_allocations(listing, "professional"), "professional", 30, NOW)
    invalid = _invalid_ids(listing)
    for allocation, days in screening.eligible:
        assert allocation.id.lower() not in invalid
        assert not allocation.quarantined and days >= 30
    decided = len(screening.eligible) + len(screening.decisions)
    assert decided <= len(listing)


@FUZZ
@given(listings(), fetched_users())
def test_the_release_decision_releases_only_fully_valid_unprotected_data(
    listing: list[Any], users: dict[str, Any]
) -> None:
    result = plan_type(
        SETTINGS,
        read_allocations(listing, "professional"),
        index_users(fetch_of(users)),
        RULES,
        NOW,
    )
    invalid = _invalid_ids(listing)
    for candidate in result.to_release:
        allocation = candidate.allocation
        assert allocation.id.lower() not in invalid, "released from data that failed validation"
        assert not allocation.quarantined and candidate.days_since_last_use >= 30
        if allocation.user is None:
            assert candidate.user is None and allocation.deleted_user_id
            continue
        raw_user = users.get(allocation.user.id)
        assert raw_user is not None, "released although its owner was not fetched"
        user = parse_user(raw_user)  # must be valid, or it could not be a candidate
        assert candidate.user == user
        # The protections the config sets, checked independently of the plugins.
        assert (user.user_directory.casefold(), user.user_id.casefold()) != ("internal", "sa_api")
        assert user.user_directory.casefold() != "admin"
        assert not {t.casefold() for t in user.tags} & {"vip", "license do not release"}
        assert ("licensemanage", "do-not-release") not in {
            (p.name.casefold(), p.value.casefold()) for p in user.custom_properties
        }
        assert user.inactive is False and user.blocked is False


# --------------------------------------------------------------------------- bulk decoding


def _body(values: list[Any]) -> bytes | None:
    """The JSON body QRS would send, or None for values JSON cannot carry (NaN, infinity)."""
    try:
        return json.dumps(values, allow_nan=False).encode()
    except ValueError:
        return None


@FUZZ
@given(listings())
def test_decoding_a_listing_in_bulk_reads_exactly_what_parse_allocation_reads(
    listing: list[Any],
) -> None:
    body = _body(listing)
    assume(body is not None)
    objects = json.loads(body)
    decoded = decode_allocations(body, "professional")
    one_by_one = read_allocations(objects, "professional")
    assert decoded.valid == one_by_one.valid
    assert [u.raw for u in decoded.unreadable] == [u.raw for u in one_by_one.unreadable]
    valid = [a for a in map(parses, objects) if a is not None]
    assert decoded.valid == valid
    # Every object that does not fit is kept apart with its own reason, never dropped.
    assert len(decoded) == len(objects)
    assert all(isinstance(u, Unreadable) and u.reason for u in decoded.unreadable)


@FUZZ
@given(fetched_users())
def test_decoding_users_in_bulk_reads_exactly_what_parse_user_reads(users: dict[str, Any]) -> None:
    body = _body(list(users.values()))
    assume(body is not None)
    objects = json.loads(body)
    decoded = decode_users(body)
    one_by_one = read_users(objects)
    assert decoded.valid == one_by_one.valid
    assert [u.id for u in decoded.unreadable] == [u.id for u in one_by_one.unreadable]
    assert len(decoded) == len(objects)
    for user in decoded.valid:
        assert user == parse_user(next(o for o in objects if o.get("id") == user.id))


def test_one_unusual_object_is_kept_apart_with_its_own_reason() -> None:
    odd = dict(ALLOCATION, id="046b6c7f-0b8a-43b9-b35d-6489e6daee92", lastUsed="yesterday")
    decoded = decode_allocations(json.dumps([ALLOCATION, odd]).encode(), "professional")
    assert decoded.valid == [parse_allocation(ALLOCATION, "professional")]
    assert [u.raw for u in decoded.unreadable] == [odd]
    assert "lastUsed" in decoded.unreadable[0].reason
    screening = screen(decoded, "professional", 30, NOW)
    assert [a.id for a, _ in screening.eligible] == [ALLOCATION["id"]]
    (kept,) = screening.decisions
    assert kept.decision is Decision.KEPT and kept.allocation.id == odd["id"]
    assert kept.reasons[0].rule == "qrsData" and "cannot be read" in kept.reasons[0].reason


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"tags": None}, "tags"),
        ({"customProperties": None}, "customProperties"),
        ({"tags": "missing"}, "tags"),
        ({"customProperties": "missing"}, "customProperties"),
    ],
)
def test_a_user_with_tags_or_custom_properties_null_or_missing_is_unreadable(
    change: dict[str, Any], where: str
) -> None:
    """Null or missing is not "no tags": a tag or property rule might protect this user."""
    odd = {k: v for k, v in USER.items() if change.get(k) != "missing"}
    odd.update({k: v for k, v in change.items() if v != "missing"})
    for decoded in (decode_users(json.dumps([odd]).encode()), read_users([odd])):
        assert decoded.valid == []
        (unreadable,) = decoded.unreadable
        assert unreadable.id == USER["id"] and where in unreadable.reason
    with pytest.raises(QrsDataError, match=where):
        parse_user(odd)


def test_a_user_returned_twice_is_unreadable_in_every_copy() -> None:
    other = dict(USER, id="1c2e3f4a-0000-4000-8000-000000000002", userId="other")
    twin = dict(USER, tags=[])  # same id, a copy without the protecting tag
    for decoded in (
        decode_users(json.dumps([USER, other, twin]).encode()),
        read_users([USER, other, twin]),
    ):
        assert [u.user_id for u in decoded.valid] == ["other"]
        assert [u.id for u in decoded.unreadable] == [USER["id"], USER["id"]]
        assert all("more than once" in u.reason for u in decoded.unreadable)


def test_bulk_decoding_keeps_the_byte_order_mark_and_not_json_apart() -> None:
    body = json.dumps([ALLOCATION]).encode()
    assert (
        decode_allocations(b"\xef\xbb\xbf" + body, "analyzer").valid[0].license_type == "analyzer"
    )
    assert decode_users(b"\xef\xbb\xbf" + json.dumps([USER]).encode()).valid == [parse_user(USER)]
    for broken in (b"", b"[{", b"<html>"):
        with pytest.raises(ValueError):
            decode_allocations(broken, "professional")
        with pytest.raises(ValueError):
            decode_users(broken)
    with pytest.raises(QrsDataError, match="expected a JSON list"):
        decode_allocations(b'{"not": "a list"}', "professional")


def test_a_usual_site_decodes_every_object() -> None:
    allocations = decode_allocations(json.dumps(SITE_ALLOCATIONS).encode(), "professional")
    assert not allocations.unreadable
    assert allocations.valid == [parse_allocation(a, "professional") for a in SITE_ALLOCATIONS]
    users = decode_users(json.dumps(list(SITE_USERS.values())).encode())
    assert not users.unreadable
    assert users.valid == [parse_user(u) for u in SITE_USERS.values()]
    assert any(u.tags for u in users.valid) and any(u.custom_properties for u in users.valid)


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-01-01 00:00:00Z",
        "2026-01-01t00:00:00z",
        "2026-01-01T00:00Z",
        "2026-01-01T00:00:00+0100",
        "2026-01-01T00:00:00-00:00",
        "2026-01-01T00:00:00.1234567Z",
        "2026-01-01T00:00:00.9999995Z",
        "2026-01-01T00:00:00",
        " 2026-01-01T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:00:60Z",
        "2026-01-01T00:00.5Z",
        "+2026-01-01T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "1753-01-01T00:00:00.000Z",
    ],
)
def test_both_paths_read_a_timestamp_alike(stamp: str) -> None:
    """Bytes and parsed JSON go through the same Struct, so they agree on every timestamp; a
    timestamp without a time zone is ambiguous and keeps the allocation."""
    raw = dict(ALLOCATION, lastUsed=stamp)
    decoded = decode_allocations(json.dumps([raw]).encode(), "professional")
    assert decoded == read_allocations([raw], "professional")
    assert len(decoded) == 1
    if stamp == "2026-01-01T00:00:00":
        assert "timezone" in decoded.unreadable[0].reason
