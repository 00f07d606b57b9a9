"""Bulk user fetches: few requests, every id accounted for, failures confined to their chunk."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests

from agent.models import parse_user
from agent.qrs import MAX_URL_LENGTH, QrsClient, UserFetch
from agent.simulator import Simulator
from agent.simulator.certs import CertPaths

from .conftest import NOW, site_for

USERS = 230


@pytest.fixture(scope="module")
def _generated(qrs_certs: CertPaths) -> Iterator[Simulator]:
    sim = Simulator(users=USERS, seed=11, now=NOW, cert_dir=qrs_certs.cert_dir)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def big(_generated: Simulator) -> Simulator:
    """A generated site of 230 users, reset for this test."""
    _generated.reset()
    return _generated


@pytest.fixture
def users_client(
    big: Simulator, qrs_certs: CertPaths, sleeps: list[float]
) -> Callable[..., QrsClient]:
    made: list[QrsClient] = []

    def make(chunk_size: int = 50, **qrs: object) -> QrsClient:
        client = QrsClient(
            site_for(big, qrs_certs, **qrs), sleep=sleeps.append, chunk_size=chunk_size
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def all_ids(sim: Simulator) -> list[str]:
    return sorted(sim.state.users)


def accounted(fetch: UserFetch) -> set[str]:
    return set(fetch.users) | set(fetch.failed) | set(fetch.unreadable) | set(fetch.missing)


@pytest.mark.parametrize(("count", "chunk_size"), [(230, 50), (100, 50), (7, 3), (1, 50)])
def test_fetches_n_users_in_ceil_n_over_chunk_requests(
    big: Simulator, users_client: Callable[..., QrsClient], count: int, chunk_size: int
) -> None:
    ids = all_ids(big)[:count]
    fetch = users_client(chunk_size).get_users(ids)
    assert set(fetch.users) == set(ids)
    assert fetch.failed == {} and fetch.missing == frozenset()
    for key in ids:
        # decoded exactly as parse_user reads the raw QRS object
        assert fetch.users[key] == parse_user(big.state.users[key])
    expected = math.ceil(count / chunk_size)
    assert fetch.requests == expected
    assert big.get_stats()["requests"] == {"GET /qrs/user/full": expected}


def test_unknown_duplicate_upper_case_and_invalid_ids(
    big: Simulator, users_client: Callable[..., QrsClient]
) -> None:
    known = all_ids(big)[:3]
    unknown = str(uuid.UUID(int=7))
    fetch = users_client().get_users(
        [known[0].upper(), known[0], known[1], known[2], unknown, "bogus"]
    )
    assert set(fetch.users) == set(known)
    assert fetch.missing == frozenset({unknown})
    assert fetch.failed == {"bogus": "not a QRS id (GUID)"}
    assert big.get_stats()["requests"] == {"GET /qrs/user/full": 1}


def test_nothing_to_fetch_sends_nothing(
    big: Simulator, users_client: Callable[..., QrsClient]
) -> None:
    assert users_client().get_users([]) == UserFetch()
    assert big.get_stats()["total"] == 0


def test_a_chunk_failing_after_retries_fails_only_its_ids(
    big: Simulator, users_client: Callable[..., QrsClient], sleeps: list[float]
) -> None:
    ids = all_ids(big)[:120]
    # concurrency 1: chunks go in order, so the first chunk takes all three 503s.
    client = users_client(retries=2, concurrency=1)
    big.add_fault("GET /qrs/user/full", "error", status=503, count=3)
    fetch = client.get_users(ids)
    assert set(fetch.failed) == set(ids[:50])
    assert set(fetch.users) == set(ids[50:])
    assert fetch.missing == frozenset()
    reason = fetch.failed[ids[0]]
    assert "503" in reason and "gave up after 3 attempts" in reason
    assert big.get_stats()["statuses"] == {"503": 3, "200": 2}
    assert len(sleeps) == 2


def test_a_malformed_chunk_fails_its_ids_without_retry(
    big: Simulator, users_client: Callable[..., QrsClient], sleeps: list[float]
) -> None:
    ids = all_ids(big)[:100]
    client = users_client(concurrency=1)
    big.add_fault("GET /qrs/user/full", "malformed", count=1)
    fetch = client.get_users(ids)
    assert set(fetch.failed) == set(ids[:50])
    assert "not valid JSON" in fetch.failed[ids[0]]
    assert set(fetch.users) == set(ids[50:])
    assert sleeps == []
    assert big.get_stats()["requests"] == {"GET /qrs/user/full": 2}


def test_parallel_chunks_recover_from_transient_errors(
    big: Simulator, users_client: Callable[..., QrsClient]
) -> None:
    ids = all_ids(big)
    client = users_client(concurrency=4)
    big.add_fault("GET /qrs/user/full", "error", status=500, count=2)
    big.add_fault("GET /qrs/user/full", "reset", count=1)
    fetch = client.get_users(ids)
    assert set(fetch.users) == set(ids) and not fetch.failed
    stats = big.get_stats()
    assert stats["statuses"] == {"500": 2, "reset": 1, "200": 5}


def test_urls_stay_short_even_with_large_chunks(big: Simulator, qrs_certs: CertPaths) -> None:
    lengths: list[int] = []
    session = requests.Session()
    session.hooks["response"].append(
        lambda response, **_: lengths.append(len(response.request.url))
    )
    ids = all_ids(big)
    with QrsClient(site_for(big, qrs_certs), session=session) as client:
        fifty = client.get_users(ids[:50])
    # 50 GUIDs: about 2.7 KB, far below the 16 KB http.sys accepts.
    assert fifty.requests == 1 and 2500 < lengths[0] < 3000
    lengths.clear()
    with QrsClient(site_for(big, qrs_certs), session=session, chunk_size=500) as client:
        fetch = client.get_users(ids)
    assert set(fetch.users) == set(ids)
    assert max(lengths) <= MAX_URL_LENGTH
    assert fetch.requests == len(lengths) == math.ceil(len(ids) / (MAX_URL_LENGTH // 54))
    session.close()
