"""What goes on the wire: the Xrfkey, headers, encoded filters, and the answers they select."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import requests

from agent.qrs import (
    QrsAuthError,
    QrsClient,
    QrsHttpError,
    encode_query,
    filter_any_id,
    quote_filter_value,
)
from agent.simulator import XSRF_MESSAGE, Simulator
from agent.simulator.certs import CertPaths

from .conftest import (
    ANA_OLD,
    ANA_RECENT,
    JDOE,
    OBRIEN,
    PRO_NEVER,
    PRO_OLD,
    PRO_ORPHAN,
    PRO_RECENT,
    SA_API,
    TANAKA,
    ZOE,
    ago,
)

USER = "UserDirectory=INTERNAL; UserId=sa_api"


def raw_get(
    sim: Simulator, certs: CertPaths, query: str, headers: dict[str, str]
) -> requests.Response:
    return requests.get(
        f"{sim.url}/qrs/about{query}",
        headers=headers,
        cert=certs.client_pair,
        verify=str(certs.root_cert),
        timeout=5,
    )


def test_simulator_enforces_the_xrfkey(sim: Simulator, qrs_certs: CertPaths) -> None:
    key = "abcdefgh12345678"
    missing = raw_get(sim, qrs_certs, "", {"X-Qlik-User": USER})
    header_only = raw_get(sim, qrs_certs, "", {"X-Qlik-User": USER, "X-Qlik-Xrfkey": key})
    mismatch = raw_get(
        sim, qrs_certs, f"?xrfkey={key}", {"X-Qlik-User": USER, "X-Qlik-Xrfkey": key.upper()}
    )
    matching = raw_get(
        sim, qrs_certs, f"?xrfkey={key}", {"X-Qlik-User": USER, "X-Qlik-Xrfkey": key}
    )
    for response in (missing, header_only, mismatch):
        assert response.status_code == 403
        assert response.text == XSRF_MESSAGE
    assert matching.status_code == 200


def test_every_request_carries_a_fresh_matching_xrfkey(
    make_client: Callable[..., QrsClient], sim: Simulator
) -> None:
    seen: list[requests.PreparedRequest] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, **_: seen.append(response.request))
    client = make_client(session=session)
    client.about()
    client.access_type_overview()
    client.count("/qrs/user")
    keys = []
    for request in seen:
        assert request.url is not None
        query = re.search(r"[?&]xrfkey=([^&]*)", request.url)
        assert query is not None
        assert request.headers["X-Qlik-Xrfkey"] == query.group(1)
        assert re.fullmatch(r"[0-9A-Za-z]{16}", query.group(1))
        keys.append(query.group(1))
        assert request.headers["X-Qlik-User"] == USER
    assert len(set(keys)) == 3
    assert sim.get_stats()["statuses"] == {"200": 3}
    session.close()


def test_static_headers_and_a_non_ascii_user_are_sent_url_encoded(
    make_client: Callable[..., QrsClient],
) -> None:
    seen: list[requests.PreparedRequest] = []
    session = requests.Session()
    session.hooks["response"].append(lambda response, **_: seen.append(response.request))
    headers = [
        {"name": "X-Qlik-User", "value": "UserDirectory=東京; UserId=tanaka"},
        {"name": "X-Custom", "value": "yes"},
    ]
    client = make_client(session=session, headers={"static": headers})
    client.about()  # the simulator accepts the URL-encoded user
    sent = seen[0].headers
    assert sent["X-Qlik-User"] == "UserDirectory=%E6%9D%B1%E4%BA%AC; UserId=tanaka"
    assert sent["X-Custom"] == "yes"
    session.close()


def test_account_without_rights_gets_403_naming_the_header_and_is_not_retried(
    make_client: Callable[..., QrsClient], sim: Simulator, sleeps: list[float]
) -> None:
    # The simulator answers 403 to an X-Qlik-User it cannot read, like QRS to a user without rights.
    client = make_client(headers={"static": [{"name": "X-Qlik-User", "value": "nobody"}]})
    with pytest.raises(QrsAuthError) as caught:
        client.about()
    message = str(caught.value)
    assert caught.value.status == 403
    assert "the user 'nobody' (X-Qlik-User, set in configQRS.headers.static)" in message
    assert sleeps == []
    assert sim.get_stats()["total"] == 1


def test_query_encoding_keeps_quotes_hash_ampersand_and_utf8() -> None:
    filter_text = "tags.name eq " + quote_filter_value("R&D #1") + " and name eq 'Zoë'"
    query = encode_query({"xrfkey": "k" * 16, "filter": filter_text})
    assert query == (
        "xrfkey=kkkkkkkkkkkkkkkk&filter=tags.name%20eq%20%27R%26D%20%231%27%20and"
        "%20name%20eq%20%27Zo%C3%AB%27"
    )
    assert quote_filter_value("O'Brien") == "'O''Brien'"
    assert filter_any_id([SA_API, ZOE]) == f"id eq {SA_API} or id eq {ZOE}"
    with pytest.raises(ValueError, match="not a QRS id"):
        filter_any_id(["x' or id ne null"])


def allocation_ids(client: QrsClient, resource: str, filter_text: str) -> set[str]:
    listing = client.list_allocations(resource, filter_text, license_type=resource)
    assert not listing.unreadable
    return {a.id for a in listing.valid}


def user_count(client: QrsClient, filter_text: str) -> int:
    return client.count("/qrs/user", filter_text)


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        # A doubled quote inside a value.
        ("user.name eq " + quote_filter_value("Seán O'Brien"), {PRO_RECENT}),
        # Non-ASCII values travel as UTF-8, percent-encoded.
        ("user.userDirectory eq 'ACME' and user.name sw " + quote_filter_value("Zoë"), {PRO_OLD}),
        ("user.userDirectory eq " + quote_filter_value("東京"), {PRO_NEVER}),
        ("user.name ew " + quote_filter_value("太郎"), {PRO_NEVER}),
        ("lastUsed le '" + ago(30) + "'", {PRO_OLD, PRO_ORPHAN}),
        ("user eq null", {PRO_ORPHAN}),
        ("deletedUserId eq 'gone' or id eq " + PRO_RECENT, {PRO_ORPHAN, PRO_RECENT}),
    ],
)
def test_allocation_filters_select_what_the_site_holds(
    client: QrsClient, filter_text: str, expected: set[str]
) -> None:
    assert allocation_ids(client, "professionalaccesstype", filter_text) == expected


def test_user_filters_with_special_characters(client: QrsClient, sim: Simulator) -> None:
    # '&' and '#' inside a value would cut an unencoded query string.
    assert user_count(client, "tags.name eq " + quote_filter_value("R&D #1")) == 1
    assert user_count(client, "tags.name eq 'Ops & Support' or tags.name eq '#vip'") == 2
    assert user_count(client, "name so " + quote_filter_value("ÅSTRÖM")) == 1  # case-insensitive
    both = "customProperties.definition.name eq 'LicenseManage' and customProperties.value eq 'do-not-release'"
    assert user_count(client, both) == 2  # ZOE and JDOE (who also holds 'keep')
    assert user_count(client, "inactive eq true") == 1
    analyzer = allocation_ids(client, "analyzeraccesstype", "lastUsed ge '" + ago(7) + "'")
    assert analyzer == {ANA_RECENT}
    assert client.count("license/analyzeraccesstype") == len({ANA_RECENT, ANA_OLD})
    fetched = client.get_users([OBRIEN, TANAKA, JDOE])
    assert fetched.users[TANAKA].name == "田中 太郎"
    assert fetched.users[OBRIEN].tags == ("R&D #1",)
    assert sim.get_stats()["statuses"] == {"200": 8}


def test_bad_filter_is_a_400_with_the_qrs_message_and_not_retried(
    client: QrsClient, sim: Simulator, sleeps: list[float]
) -> None:
    with pytest.raises(QrsHttpError) as caught:
        client.list_allocations(
            "professionalaccesstype", "lastUsed le", license_type="professional"
        )
    assert caught.value.status == 400
    assert caught.value.method == "GET"
    assert caught.value.path == "/qrs/license/professionalaccesstype/full"
    assert "Cannot parse the expression" in caught.value.body_excerpt
    assert len(caught.value.body_excerpt) <= 200
    assert sleeps == []
    assert sim.get_stats()["total"] == 1


def test_site_license_and_overview(client: QrsClient) -> None:
    overview = client.access_type_overview()
    assert overview["professionalAccess"]["total"] == 10
    assert overview["professionalAccess"]["allocated"] == 4
    assert overview["analyzerAccess"]["allocated"] == 2
    license_ = client.site_license()
    assert "Valid To:" in license_["keyDetails"]


class HeaderStrippingSession(requests.Session):
    """Acts like a proxy that drops the X-Qlik-Xrfkey header on the way to QRS."""

    def send(self, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        del request.headers["X-Qlik-Xrfkey"]
        return super().send(request, **kwargs)


def test_xrfkey_rejection_is_explained_and_not_retried(
    make_client: Callable[..., QrsClient], sim: Simulator, sleeps: list[float]
) -> None:
    session = HeaderStrippingSession()
    client = make_client(session=session)
    with pytest.raises(QrsAuthError) as caught:
        client.about()
    message = str(caught.value)
    assert caught.value.status == 403
    assert caught.value.body_excerpt == XSRF_MESSAGE
    assert "the Xrfkey check failed" in message
    assert "a proxy between it and QRS may drop the header" in message
    assert sleeps == []
    assert sim.get_stats()["statuses"] == {"403": 1}
    session.close()
