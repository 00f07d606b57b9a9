"""Shared helpers for the simulator tests: a hand-built site and a QRS test client.

The hand-built site (:data:`SITE`) is small enough that every expected filter result can be
computed by reading it. Its clock is frozen at :data:`NOW`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import requests

from agent.simulator import Simulator
from agent.simulator.clock import NEVER, format_date

XRF = "0123456789abcDEF"
USER_HEADER = "UserDirectory=INTERNAL; UserId=sa_api"
NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def ago(**delta: float) -> str:
    return format_date(NOW - dt.timedelta(**delta))


def uid(n: int) -> str:
    return f"aaaaaaaa-0000-4000-8000-{n:012d}"


def pid(n: int) -> str:
    return f"bbbbbbbb-0000-4000-8000-{n:012d}"


def aid(n: int) -> str:
    return f"cccccccc-0000-4000-8000-{n:012d}"


def _site() -> dict[str, Any]:
    users = [
        {
            "id": uid(1),
            "userDirectory": "INTERNAL",
            "userId": "sa_api",
            "createdDate": ago(days=900),
        },
        {
            "id": uid(2),
            "userDirectory": "ACME",
            "userId": "jdoe",
            "name": "Jane Doe",
            "createdDate": ago(days=400),
            "tags": ["License do not release"],
            "customProperties": [{"definition": "LicenseManage", "value": "do-not-release"}],
        },
        {
            "id": uid(3),
            "userDirectory": "ACME",
            "userId": "o'brien",
            "name": "Siobhán O'Brien",
            "createdDate": ago(days=300),
            "tags": ["R&D #1"],
            "inactive": True,
        },
        {
            "id": uid(4),
            "userDirectory": "EU",
            "userId": "björn",
            "name": "Björn Ødegård",
            "createdDate": ago(days=200),
            "blacklisted": True,
            "customProperties": [
                {"definition": "LicenseManage", "value": "review"},
                {"definition": "Department", "value": "Sales"},
            ],
        },
        {
            "id": uid(5),
            "userDirectory": "ADMIN",
            "userId": "admin1",
            "createdDate": ago(days=100),
            "removedExternally": True,
            "customProperties": [
                {"definition": "LicenseManage", "value": "review"},
                {"definition": "Department", "value": "do-not-release"},
            ],
        },
        {
            "id": uid(6),
            "userDirectory": "ACME",
            "userId": "zoe",
            "name": "Zoë Müller",
            "createdDate": ago(days=50),
        },
        {"id": uid(7), "userDirectory": "EU", "userId": "åsa", "createdDate": ago(days=20)},
        {"id": uid(8), "userDirectory": "ACME", "userId": "kai", "createdDate": ago(days=10)},
    ]
    professional = [
        {"id": pid(1), "user": uid(1), "createdDate": ago(days=500), "lastUsed": ago(days=90)},
        {"id": pid(2), "user": uid(2), "createdDate": ago(days=300), "lastUsed": ago(days=2)},
        {"id": pid(3), "user": uid(3), "createdDate": ago(days=100), "lastUsed": None},
        {"id": pid(4), "user": uid(4), "createdDate": ago(days=3), "lastUsed": NEVER},
        {
            "id": pid(5),
            "user": None,
            "deletedUserId": "leaver",
            "deletedUserDirectory": "ACME",
            "createdDate": ago(days=400),
            "lastUsed": ago(days=40),
        },
        {
            "id": pid(6),
            "user": {"userDirectory": "admin", "userId": "ADMIN1"},
            "createdDate": ago(days=90),
            "lastUsed": ago(days=5),
            "quarantined": True,
            "quarantineEnd": format_date(NOW + dt.timedelta(days=3)),
        },
    ]
    analyzer = [
        {"id": aid(1), "user": uid(6), "createdDate": ago(days=40), "lastUsed": ago(days=10)},
        {"id": aid(2), "user": uid(7), "createdDate": ago(days=19), "lastUsed": ago(days=7)},
        {
            "id": aid(3),
            "user": uid(8),
            "createdDate": ago(days=9),
            "lastUsed": ago(days=6, hours=23),
        },
    ]
    return {
        "now": format_date(NOW),
        "users": users,
        "professionalaccesstype": professional,
        "analyzeraccesstype": analyzer,
        "totals": {"professional": 10, "analyzer": 5},
    }


SITE = _site()


class Qrs:
    """A minimal QRS client over mutual TLS, for asserting on raw responses."""

    def __init__(self, sim: Simulator) -> None:
        assert sim.certs is not None
        self.sim = sim
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would override session.verify
        self.session.cert = sim.certs.client_pair
        self.session.verify = str(sim.certs.root_cert)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        xrfkey: str | None = XRF,
        headers: dict[str, str | None] | None = None,
        timeout: float = 10,
        **kwargs: Any,
    ) -> requests.Response:
        query = dict(params or {})
        if xrfkey is not None:
            query["xrfkey"] = xrfkey
        merged: dict[str, str | None] = {"X-Qlik-Xrfkey": XRF, "X-Qlik-User": USER_HEADER}
        merged.update(headers or {})
        sent = {name: value for name, value in merged.items() if value is not None}
        return self.session.request(
            method, self.sim.url + path, params=query, headers=sent, timeout=timeout, **kwargs
        )

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def list(self, path: str, filter: str | None = None) -> Any:  # noqa: A002 - QRS name
        response = self.get(path, params={"filter": filter} if filter is not None else None)
        assert response.status_code == 200, response.text
        return response.json()

    def admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.sim.url + path, timeout=10, **kwargs)
