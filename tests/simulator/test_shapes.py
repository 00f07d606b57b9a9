"""Every response has the keys QRS.md documents (examples copied from docs/reference QRS.md)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.simulator import Simulator
from tests.qrs_md import ALLOCATION_EXAMPLE, OVERVIEW_EXAMPLE  # noqa: E402

from .helpers import Qrs

USER_FIELDS = set(
    [
        "id",
        "createdDate",
        "modifiedDate",
        "modifiedByUserName",
        "schemaPath",
        "privileges",
        "customProperties",
        "userId",
        "userDirectory",
        "userDirectoryConnectorName",
        "name",
        "roles",
        "attributes",
        "inactive",
        "removedExternally",
        "blacklisted",
        "deleteProhibited",
        "tags",
        "favorites",
    ]
)
TAG_FIELDS = {"id", "name", "privileges"}
CUSTOM_VALUE_FIELDS = {
    "id",
    "createdDate",
    "modifiedDate",
    "modifiedByUserName",
    "schemaPath",
    "value",
    "definition",
}
DEFINITION_FIELDS = {"id", "name", "valueType", "choiceValues", "privileges"}
LICENSE_FIELDS = set(
    [
        "id",
        "serial",
        "name",
        "organization",
        "product",
        "numberOfCores",
        "isExpired",
        "expiredReason",
        "isBlacklisted",
        "isInvalid",
        "isSubscription",
        "keyDetails",
        "lef",
        "check",
        "key",
    ]
)
ABOUT_FIELDS = {
    "buildVersion", "buildDate", "databaseProvider", "nodeType", "sharedPersistence",
    "requiresBootstrap", "singleNodeOnly", "schemaPath",
}  # fmt: skip
DATE_KEYS = ("createdDate", "modifiedDate", "lastUsed", "quarantineEnd")


def keys_deep(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: keys_deep(item) for key, item in value.items() if isinstance(item, dict)} | {
            key: None for key, item in value.items() if not isinstance(item, dict)
        }
    return None


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with Simulator(
        users=120, seed=5, now="2026-06-01T12:00:00Z", cert_dir=tmp_path_factory.mktemp("c")
    ) as sim:
        yield Qrs(sim)


def test_overview_matches_example(generated: Qrs) -> None:
    overview = generated.get("/qrs/license/accesstypeoverview").json()
    assert keys_deep(overview) == keys_deep(OVERVIEW_EXAMPLE)
    for name, block in OVERVIEW_EXAMPLE.items():
        if isinstance(block, dict):
            assert overview[name]["schemaPath"] == block["schemaPath"]


@pytest.mark.parametrize("collection", ["professionalaccesstype", "analyzeraccesstype"])
def test_allocations_match_example(generated: Qrs, collection: str) -> None:
    allocations = generated.list(f"/qrs/license/{collection}/full")
    assert allocations
    expected_user = set(ALLOCATION_EXAMPLE["user"])
    for allocation in allocations:
        assert list(allocation) == list(ALLOCATION_EXAMPLE)  # same keys, same order
        assert allocation["user"] is None or set(allocation["user"]) == expected_user
        for key in DATE_KEYS:
            value = allocation[key]
            assert value is None or (
                len(value) == 24 and value.endswith("Z") and value[19] == "."
            ), value
    assert {a["schemaPath"] for a in allocations} == {
        "License.ProfessionalAccessType"
        if collection.startswith("pro")
        else "License.AnalyzerAccessType"
    }
    one = generated.get(f"/qrs/license/{collection}/{allocations[0]['id']}").json()
    assert list(one) == list(ALLOCATION_EXAMPLE)
    condensed = generated.list(f"/qrs/license/{collection}")
    assert set(condensed[0]) <= set(ALLOCATION_EXAMPLE)


def test_users_match_documented_fields(generated: Qrs) -> None:
    users = generated.list("/qrs/user/full")
    tags = values = 0
    for user in users:
        assert set(user) == USER_FIELDS
        for tag in user["tags"]:
            assert set(tag) == TAG_FIELDS
            tags += 1
        for value in user["customProperties"]:
            assert set(value) == CUSTOM_VALUE_FIELDS
            assert set(value["definition"]) == DEFINITION_FIELDS
            values += 1
    assert tags and values
    assert set(generated.get(f"/qrs/user/{users[0]['id']}").json()) == USER_FIELDS
    assert set(generated.list("/qrs/user")[0]) == set(ALLOCATION_EXAMPLE["user"])


def test_license_about_count(generated: Qrs) -> None:
    assert set(generated.get("/qrs/license").json()) >= LICENSE_FIELDS
    assert set(generated.get("/qrs/about").json()) == ABOUT_FIELDS
    assert set(generated.get("/qrs/user/count").json()) == {"value"}
