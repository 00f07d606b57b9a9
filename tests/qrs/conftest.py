"""Fixtures for the QRS client tests: simulators over mutual TLS, sites, clients, captured logs.

The hand-built site (:func:`hand_state`) is small enough that every expected answer can be read
off it. Its clock is frozen at :data:`NOW`, so quarantine decisions are deterministic. One
simulator serves the whole session and is reset before each test; tests that leave requests
hanging get their own simulator (its ``stop`` ends the hangs).
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from loguru import logger

from agent.config import SiteConfig
from agent.plugins import parse_config
from agent.qrs import QrsClient
from agent.simulator import Simulator, ensure_certs
from agent.simulator.certs import CertPaths

NOW = dt.datetime(2026, 6, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def ago(days: float) -> str:
    return iso(NOW - dt.timedelta(days=days))


def uid(n: int) -> str:
    return f"11111111-0000-4000-8000-{n:012d}"


def aid(n: int) -> str:
    return f"22222222-0000-4000-8000-{n:012d}"


# Users, by the traits the filter tests look for.
SA_API, OBRIEN, ZOE, TANAKA, JDOE = uid(1), uid(2), uid(3), uid(4), uid(5)
# Allocations: professional 1-4, analyzer 5-6.
PRO_RECENT, PRO_OLD, PRO_NEVER, PRO_ORPHAN = aid(1), aid(2), aid(3), aid(4)
ANA_RECENT, ANA_OLD = aid(5), aid(6)


def hand_state() -> dict[str, Any]:
    """Five users with quotes, ``&``, ``#`` and non-ASCII in names and tags; six allocations."""
    cp = {"definition": "LicenseManage", "value": "do-not-release"}
    users = [
        {"id": SA_API, "userDirectory": "INTERNAL", "userId": "sa_api", "createdDate": ago(900)},
        {
            "id": OBRIEN,
            "userDirectory": "ACME",
            "userId": "obrien",
            "name": "Seán O'Brien",
            "createdDate": ago(400),
            "tags": ["R&D #1"],
        },
        {
            "id": ZOE,
            "userDirectory": "ACME",
            "userId": "zoe",
            "name": "Zoë Åström",
            "createdDate": ago(300),
            "tags": ["Ops & Support"],
            "customProperties": [cp],
        },
        {
            "id": TANAKA,
            "userDirectory": "東京",
            "userId": "tanaka",
            "name": "田中 太郎",
            "createdDate": ago(200),
            "tags": ["#vip"],
        },
        {
            "id": JDOE,
            "userDirectory": "EXT",
            "userId": "jdoe",
            "name": "Jane Doe",
            "createdDate": ago(100),
            "inactive": True,
            "customProperties": [{"definition": "LicenseManage", "value": "keep"}, cp],
        },
    ]
    professional = [
        {"id": PRO_RECENT, "user": OBRIEN, "createdDate": ago(300), "lastUsed": ago(2)},
        {"id": PRO_OLD, "user": ZOE, "createdDate": ago(300), "lastUsed": ago(60)},
        {"id": PRO_NEVER, "user": TANAKA, "createdDate": ago(40), "lastUsed": None},
        {
            "id": PRO_ORPHAN,
            "user": None,
            "createdDate": ago(500),
            "lastUsed": ago(400),
            "deletedUserId": "gone",
            "deletedUserDirectory": "ACME",
        },
    ]
    analyzer = [
        {"id": ANA_RECENT, "user": JDOE, "createdDate": ago(90), "lastUsed": ago(1)},
        {"id": ANA_OLD, "user": SA_API, "createdDate": ago(90), "lastUsed": ago(30)},
    ]
    return {
        "now": iso(NOW),
        "users": users,
        "professionalaccesstype": professional,
        "analyzeraccesstype": analyzer,
        "totals": {"professional": 10, "analyzer": 5},
    }


# --------------------------------------------------------------------------- certificates


@pytest.fixture(scope="session")
def qrs_certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    """The simulator's CA, server and client certificates."""
    return ensure_certs(tmp_path_factory.mktemp("qrs-certs"))


@pytest.fixture(scope="session")
def other_certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    """A second, unrelated CA with its own client certificate (another Sense site)."""
    return ensure_certs(tmp_path_factory.mktemp("other-certs"))


def secret_snippets(*cert_sets: CertPaths) -> list[str]:
    """Lines of every PEM file (keys and certificates) that must never appear in a message."""
    snippets = ["BEGIN", "PRIVATE KEY"]
    for certs in cert_sets:
        for path in (certs.client_key, certs.client_cert, certs.root_cert):
            lines = [line for line in path.read_text().splitlines() if "-----" not in line]
            snippets.extend(line for line in lines if len(line) > 20)
    return snippets


# --------------------------------------------------------------------------- simulators


@pytest.fixture(scope="session")
def _shared_sim(qrs_certs: CertPaths) -> Iterator[Simulator]:
    sim = Simulator(hand_state(), now=NOW, cert_dir=qrs_certs.cert_dir)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def sim(_shared_sim: Simulator) -> Simulator:
    """The hand-built site, reset (state, stats, faults, clock) for this test."""
    _shared_sim.reset()
    return _shared_sim


@pytest.fixture
def make_sim(qrs_certs: CertPaths) -> Iterator[Callable[..., Simulator]]:
    """Start a private simulator (for hangs, other states, other hosts); stopped after the test."""
    started: list[Simulator] = []

    def make(state: Any = None, **options: Any) -> Simulator:
        options.setdefault("cert_dir", qrs_certs.cert_dir)
        options.setdefault("now", NOW)
        if state is None and "users" not in options:
            state = hand_state()
        instance = Simulator(state, **options)
        instance.start()
        started.append(instance)
        return instance

    yield make
    for instance in started:
        instance.stop()


def free_port() -> int:
    """A port nothing listens on (bound and released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------- config and clients


def butler_config(
    host: str, port: int, certs: CertPaths, *, cert: dict[str, str] | None = None, **qrs: Any
) -> dict[str, Any]:
    """A minimal config document for a simulator; ``cert`` overrides single paths."""
    return {
        "Butler": {
            "configQRS": {"host": host, "port": port, **qrs},
            "cert": {
                "clientCert": str(certs.client_cert),
                "clientCertKey": str(certs.client_key),
                "clientCertCA": str(certs.root_cert),
                **(cert or {}),
            },
        }
    }


def site_for(
    sim: Simulator | None,
    certs: CertPaths,
    *,
    host: str | None = None,
    port: int | None = None,
    cert: dict[str, str] | None = None,
    **qrs: Any,
) -> SiteConfig:
    document = butler_config(
        host or (sim.host if sim else "127.0.0.1"),
        port or (sim.port if sim else free_port()),
        certs,
        cert=cert,
        **qrs,
    )
    return parse_config(document).sites()[0]


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def sleeps() -> list[float]:
    """The waits the client asked for; tests pass ``sleeps.append`` as its ``sleep``."""
    return []


@pytest.fixture
def make_client(
    sim: Simulator, qrs_certs: CertPaths, sleeps: list[float]
) -> Iterator[Callable[..., QrsClient]]:
    """Build clients for the shared simulator (or ``target=`` another); closed after the test."""
    clients: list[QrsClient] = []

    def make(
        *,
        target: Simulator | None = None,
        certs: CertPaths | None = None,
        chunk_size: int = 50,
        session: Any = None,
        **site_options: Any,
    ) -> QrsClient:
        site = site_for(target or sim, certs or qrs_certs, **site_options)
        client = QrsClient(site, session=session, sleep=sleeps.append, chunk_size=chunk_size)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., QrsClient]) -> QrsClient:
    return make_client()


@pytest.fixture
def log_records() -> Iterator[list[tuple[str, str]]]:
    """(level, message) of every loguru record while the test runs."""
    records: list[tuple[str, str]] = []
    sink = logger.add(
        lambda message: records.append((message.record["level"].name, message.record["message"])),
        level="DEBUG",
    )
    yield records
    logger.remove(sink)
