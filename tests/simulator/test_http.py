"""The simulator over real mutual TLS: TLS, xrfkey and user checks, endpoints, filters, /table."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from agent.simulator import Simulator

from .helpers import XRF, Qrs, aid, pid, uid

XSRF = "XSRF prevention check failed. Possible XSRF discovered."


# -- TLS and request checks -------------------------------------------------------------------


def test_connection_without_client_certificate_is_refused(sim: Simulator) -> None:
    assert sim.certs is not None
    session = requests.Session()
    session.trust_env = False
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        session.get(
            f"{sim.url}/qrs/about",
            params={"xrfkey": XRF},
            headers={"X-Qlik-Xrfkey": XRF},
            verify=str(sim.certs.root_cert),
            timeout=5,
        )


def test_server_certificate_is_verified_against_root_pem(qrs: Qrs) -> None:
    assert qrs.get("/qrs/about").status_code == 200


@pytest.mark.parametrize(
    ("query_key", "header_key"),
    [
        (None, XRF),  # no query parameter
        (XRF, None),  # no header
        (None, None),
        (XRF, "0123456789abcDEG"),  # mismatch
        (XRF, XRF.lower()),  # keys are case-sensitive
        ("0123456789abcde", "0123456789abcde"),  # 15 chars
        ("0123456789abcdef0", "0123456789abcdef0"),  # 17 chars
        ("0123456789abcde-", "0123456789abcde-"),  # not [0-9a-zA-Z]
    ],
)
def test_xrfkey_rule(qrs: Qrs, query_key: str | None, header_key: str | None) -> None:
    response = qrs.get("/qrs/about", xrfkey=query_key, headers={"X-Qlik-Xrfkey": header_key})
    assert response.status_code == 403
    assert response.text == XSRF


def test_xrfkey_may_change_per_call_and_query_key_is_case_insensitive(qrs: Qrs) -> None:
    for key in ("ABCDEFGHIJKLMNOP", "abcdefghijklmnop", "0000000000000000"):
        response = qrs.get(
            "/qrs/about", xrfkey=None, params={"Xrfkey": key}, headers={"X-Qlik-Xrfkey": key}
        )
        assert response.status_code == 200


@pytest.mark.parametrize("value", [None, "", "UserDirectory=INTERNAL", "UserId=sa_api", "nonsense"])
def test_missing_or_malformed_user_header_is_forbidden(qrs: Qrs, value: str | None) -> None:
    response = qrs.get("/qrs/about", headers={"X-Qlik-User": value})
    assert response.status_code == 403
    assert "X-Qlik-User" in response.text


@pytest.mark.parametrize(
    "value",
    [
        "UserDirectory=INTERNAL;UserId=sa_repository",
        "userdirectory=ACME ;  userid=j%C3%B6rg",
        "UserId=x; UserDirectory=Y",
    ],
)
def test_user_header_spacing_order_and_encoding_vary(qrs: Qrs, value: str) -> None:
    assert qrs.get("/qrs/about", headers={"X-Qlik-User": value}).status_code == 200


def test_unknown_path_is_404_and_wrong_method_405(qrs: Qrs) -> None:
    assert qrs.get("/qrs/nosuchthing").status_code == 404
    assert qrs.get("/qrs/license/loginaccesstype/full").status_code == 404
    response = qrs.delete(f"/qrs/user/{uid(1)}")
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert qrs.post("/qrs/user/full").status_code == 405


def test_json_content_type_utf8_and_keep_alive(qrs: Qrs) -> None:
    response = qrs.get(f"/qrs/user/{uid(4)}")
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert int(response.headers["Content-Length"]) == len(response.content)
    assert "Björn Ødegård".encode() in response.content  # raw UTF-8, not \u escapes
    assert response.json()["name"] == "Björn Ødegård"
    assert response.raw.version == 11
    assert "close" not in response.headers.get("Connection", "")


# -- endpoints --------------------------------------------------------------------------------


def test_about_and_license(qrs: Qrs) -> None:
    about = qrs.get("/qrs/about").json()
    assert about["schemaPath"] == "About" and about["nodeType"] == 1
    license_ = qrs.get("/qrs/license").json()
    assert license_["isExpired"] is False
    assert "Valid To: 2027-06-01 12:00:00 AM" in license_["keyDetails"].splitlines()


def test_overview_is_computed_from_allocations(qrs: Qrs) -> None:
    overview = qrs.get("/qrs/license/accesstypeoverview").json()
    # professional: 6 allocations, 1 quarantined, 4 with a real lastUsed (null and 1753 are not)
    assert overview["professionalAccess"] == {
        "enabled": True,
        "total": 10,
        "allocated": 6,
        "used": 4,
        "quarantined": 1,
        "excess": 0,
        "available": 4,
        "schemaPath": "AccessTypeOverview.Details",
    }
    analyzer = overview["analyzerAccess"]
    assert (analyzer["total"], analyzer["allocated"], analyzer["used"], analyzer["available"]) == (
        5,
        3,
        3,
        2,
    )


def test_overview_overrides_can_drop_blocks_and_keys(make_sim: Any) -> None:
    from .helpers import SITE

    state = {
        **SITE,
        "overview": {"analyzerTimeAccess": None, "professionalAccess": {"excess": None}},
    }
    overview = Qrs(make_sim(state)).get("/qrs/license/accesstypeoverview").json()
    assert "analyzerTimeAccess" not in overview
    assert "excess" not in overview["professionalAccess"]
    assert overview["professionalAccess"]["allocated"] == 6


def test_lists_condensed_full_count_and_get(qrs: Qrs) -> None:
    condensed = qrs.list("/qrs/user")
    assert len(condensed) == 8
    assert set(condensed[0]) == {
        "id",
        "userId",
        "userDirectory",
        "userDirectoryConnectorName",
        "name",
        "privileges",
    }
    full = qrs.list("/qrs/user/full")
    assert len(full) == 8 and "customProperties" in full[0]
    assert qrs.get("/qrs/user/count").json() == {"value": 8}
    assert qrs.get(f"/qrs/user/{uid(2).upper()}").json()["userId"] == "jdoe"
    assert qrs.get("/qrs/user/aaaaaaaa-0000-4000-8000-999999999999").status_code == 404

    allocations = qrs.list("/qrs/license/professionalaccesstype/full")
    assert {a["id"] for a in allocations} == {pid(n) for n in range(1, 7)}
    assert qrs.get("/qrs/license/analyzeraccesstype/count").json() == {"value": 3}
    assert qrs.get(f"/qrs/license/analyzeraccesstype/{aid(1)}").json()["user"]["userId"] == "zoe"
    assert qrs.get(f"/qrs/license/analyzeraccesstype/{pid(1)}").status_code == 404
    assert qrs.list("/qrs/license/useraccesstype/full") == []


def test_allocation_user_objects(qrs: Qrs) -> None:
    by_id = {a["id"]: a for a in qrs.list("/qrs/license/professionalaccesstype/full")}
    assert by_id[pid(5)]["user"] is None
    assert (by_id[pid(5)]["deletedUserId"], by_id[pid(5)]["deletedUserDirectory"]) == (
        "leaver",
        "ACME",
    )
    # given by directory + userId in any case, resolved to the real user
    assert by_id[pid(6)]["user"]["id"] == uid(5)
    assert by_id[pid(3)]["lastUsed"] is None
    assert by_id[pid(4)]["lastUsed"] == "1753-01-01T00:00:00.000Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tags.name eq 'R&D #1'", {"o'brien"}),  # & and # survive proper encoding
        ("name eq 'Siobhán O''Brien'", {"o'brien"}),
        ("userId eq 'o''brien' or userId eq 'björn'", {"o'brien", "björn"}),
        (
            "customProperties.definition.name eq 'LicenseManage' and customProperties.value eq 'review'",
            {"björn", "admin1"},
        ),
        (f"id eq {uid(1)} or id eq {uid(8)}", {"sa_api", "kai"}),
        ("createdDate le '2026-01-01T00:00:00.000Z'", {"sa_api", "jdoe", "o'brien", "björn"}),
    ],
)
def test_filters_over_http(qrs: Qrs, text: str, expected: set[str]) -> None:
    assert {u["userId"] for u in qrs.list("/qrs/user/full", text)} == expected
    assert qrs.get("/qrs/user/count", params={"filter": text}).json() == {"value": len(expected)}


def test_unencoded_ampersand_cuts_the_filter(qrs: Qrs) -> None:
    url = f"{qrs.sim.url}/qrs/user/full?xrfkey={XRF}&filter=tags.name eq 'R&D #1'"
    response = qrs.session.get(
        url, headers={"X-Qlik-Xrfkey": XRF, "X-Qlik-User": "UserDirectory=A; UserId=b"}
    )
    assert response.status_code == 400
    assert response.text.startswith("Cannot parse the expression: unterminated string")


@pytest.mark.parametrize(
    "text", ["name gt 'a'", "userId eq", "(userId eq 'a'", "userId eq 'a", "bogus eq 1"]
)
def test_malformed_filter_is_400(qrs: Qrs, text: str) -> None:
    for path in ("/qrs/user/full", "/qrs/user", "/qrs/user/count"):
        response = qrs.get(path, params={"filter": text})
        assert response.status_code == 400
        assert response.text.startswith("Cannot parse the expression: ")


def test_empty_filter_means_no_filter(qrs: Qrs) -> None:
    assert len(qrs.list("/qrs/user/full", "")) == 8


def test_allocation_filters_over_http(qrs: Qrs) -> None:
    found = qrs.list(
        "/qrs/license/professionalaccesstype/full",
        "lastUsed le '2026-05-01T23:59:59.999Z' and quarantined eq false",
    )
    assert {a["id"] for a in found} == {pid(1), pid(4), pid(5)}


def test_orderby(qrs: Qrs) -> None:
    names = [u["userId"] for u in qrs.get("/qrs/user", params={"orderby": "userId desc"}).json()]
    assert names == sorted(names, key=str.casefold, reverse=True)
    assert qrs.get("/qrs/user", params={"orderby": "userId sideways"}).status_code == 400


# -- /table -----------------------------------------------------------------------------------

COLUMNS = [
    {"name": "id", "columnType": "Property", "definition": "id"},
    {"name": "userId", "columnType": "Property", "definition": "userId"},
    {"name": "tags", "columnType": "Property", "definition": "tags.name"},
]


def table(qrs: Qrs, params: dict[str, Any], columns: list[dict[str, Any]] = COLUMNS) -> Any:
    response = qrs.post("/qrs/user/table", params=params, json={"type": "User", "columns": columns})
    assert response.status_code == 200, response.text
    return response.json()


def test_table_shape_and_paging(qrs: Qrs) -> None:
    everything = table(qrs, {"take": 0, "sortColumn": "userId", "orderAscending": "true"})
    assert set(everything) == {"id", "type", "columnNames", "rows"}
    assert everything["type"] == "User"
    assert everything["columnNames"] == ["id", "userId", "tags"]
    ids = [row[1] for row in everything["rows"]]
    assert ids == sorted(ids, key=str.casefold) and len(ids) == 8
    pages = [
        table(qrs, {"skip": skip, "take": 3, "sortColumn": "userId"})["rows"] for skip in (0, 3, 6)
    ]
    assert [row[1] for page in pages for row in page] == ids
    assert [len(page) for page in pages] == [3, 3, 2]
    descending = table(qrs, {"take": 0, "sortColumn": "userId", "orderAscending": "false"})
    assert [row[1] for row in descending["rows"]] == ids[::-1]


def test_table_filter_and_collection_columns(qrs: Qrs) -> None:
    result = table(qrs, {"filter": "tags.name ne null"})
    assert sorted(result["rows"]) == sorted(
        [[uid(2), "jdoe", ["License do not release"]], [uid(3), "o'brien", ["R&D #1"]]]
    )
    nested = table(
        qrs,
        {"filter": "userId eq 'björn'"},
        [{"name": "customProperties", "columnType": "List", "definition": "CustomPropertyValue",
          "list": [{"name": "value", "columnType": "Property", "definition": "value"},
                   {"name": "name", "columnType": "Property", "definition": "definition.name"}]}],
    )  # fmt: skip
    assert nested["rows"] == [[[["review", "LicenseManage"], ["Sales", "Department"]]]]


def test_table_allocations_and_bad_requests(qrs: Qrs) -> None:
    response = qrs.post(
        "/qrs/license/professionalaccesstype/table",
        params={"filter": "user eq null"},
        json={
            "type": "License.ProfessionalAccessType",
            "columns": [{"name": "who", "columnType": "Property", "definition": "deletedUserId"}],
        },
    )
    assert response.json()["rows"] == [["leaver"]]
    assert qrs.post("/qrs/user/table", data=b"{not json").status_code == 400
    assert qrs.post("/qrs/user/table", json={"type": "User"}).status_code == 400
    assert (
        qrs.post("/qrs/user/table", params={"take": "x"}, json={"columns": []}).status_code == 400
    )
    bad_filter = qrs.post("/qrs/user/table", params={"filter": "x eq"}, json={"columns": COLUMNS})
    assert bad_filter.status_code == 400 and bad_filter.text.startswith(
        "Cannot parse the expression"
    )


def test_many_simulators_side_by_side(make_sim: Any) -> None:
    first, second = make_sim(), make_sim(users=30, seed=3)
    assert first.port != second.port
    assert Qrs(first).get("/qrs/user/count").json() == {"value": 8}
    assert Qrs(second).get("/qrs/user/count").json() == {"value": 30}
    assert json.loads(Qrs(first).admin("GET", "/_simulator/stats").text)["total"] == 1
