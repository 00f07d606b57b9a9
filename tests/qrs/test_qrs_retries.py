"""Retries: transient failures are absorbed with backoff, permanent ones are not repeated, and
the budget ends in one clear error. Waits go through the injected ``sleep``; only the read
timeout tests spend real time (a fraction of a second)."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from agent.qrs import (
    QrsAuthError,
    QrsClient,
    QrsError,
    QrsHttpError,
    QrsNotFoundError,
    QrsProtocolError,
    QrsTimeout,
)
from agent.qrs_transport import BACKOFF_CAP, RETRY_AFTER_CAP
from agent.simulator import Simulator
from agent.simulator.certs import CertPaths

from .conftest import site_for


def test_recovers_from_5xx_with_growing_jittered_backoff(
    make_client: Callable[..., QrsClient], sim: Simulator, sleeps: list[float]
) -> None:
    client = make_client(retries=4)
    sim.add_fault("GET /qrs/license/accesstypeoverview", "error", status=503, count=3)
    overview = client.access_type_overview()
    assert overview["professionalAccess"]["total"] == 10
    assert sim.get_stats()["statuses"] == {"503": 3, "200": 1}
    # Equal jitter: the n-th wait lies in [step/2, step] with step = 0.5 s * 2**(n-1).
    assert len(sleeps) == 3
    for n, waited in enumerate(sleeps, start=1):
        step = 0.5 * 2 ** (n - 1)
        assert step / 2 <= waited <= step


def test_backoff_is_capped_and_jittered(sim: Simulator, qrs_certs: CertPaths) -> None:
    with QrsClient(site_for(sim, qrs_certs), rng=random.Random(3)) as client:
        waits = [client.transport._backoff(n, None) for n in range(1, 12)]
        assert client.transport._backoff(1, 500.0) == RETRY_AFTER_CAP  # a huge Retry-After is cut
    assert max(waits) <= BACKOFF_CAP
    assert waits[-1] >= BACKOFF_CAP / 2
    assert len({round(w, 6) for w in waits[-3:]}) == 3  # jitter: equal steps, different waits


def test_429_honours_retry_after(
    make_client: Callable[..., QrsClient], sim: Simulator, sleeps: list[float]
) -> None:
    client = make_client()
    sim.add_fault("GET /qrs/about", "error", status=429, retry_after=7, count=1)
    assert client.about()["schemaPath"] == "About"
    assert sleeps == [7.0]


def test_gives_up_after_the_budget_with_a_clear_error(
    make_client: Callable[..., QrsClient], sim: Simulator, sleeps: list[float]
) -> None:
    client = make_client(retries=3)
    sim.add_fault("GET /qrs/license/professionalaccesstype/full", "error", status=500, body="Boom")
    with pytest.raises(QrsHttpError) as caught:
        client.list_allocations("professionalaccesstype", license_type="professional")
    error = caught.value
    assert str(error) == (
        "QRS answered 500 Internal Server Error to GET /qrs/license/professionalaccesstype/full:"
        " 'Boom' (gave up after 4 attempts)"
    )
    assert (error.status, error.attempts, error.body_excerpt) == (500, 4, "Boom")
    assert sim.get_stats()["requests"] == {"GET /qrs/license/professionalaccesstype/full": 4}
    assert len(sleeps) == 3


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, QrsHttpError), (401, QrsAuthError), (403, QrsAuthError), (404, QrsNotFoundError)],
)
def test_refusals_are_not_retried(
    make_client: Callable[..., QrsClient],
    sim: Simulator,
    sleeps: list[float],
    status: int,
    error_type: type[QrsError],
) -> None:
    client = make_client(retries=4)
    sim.add_fault("GET /qrs/about", "error", status=status)
    with pytest.raises(error_type) as caught:
        client.about()
    assert caught.value.status == status
    assert sleeps == []
    assert sim.get_stats()["total"] == 1


def test_unknown_object_is_none_not_an_error(client: QrsClient, sim: Simulator) -> None:
    assert (
        client.get_allocation("analyzeraccesstype", "99999999-0000-4000-8000-000000000000") is None
    )
    with pytest.raises(QrsNotFoundError):
        client.transport.get_json("/qrs/user/99999999-0000-4000-8000-000000000000", expect=dict)


def test_recovers_from_a_connection_reset(
    make_client: Callable[..., QrsClient], sim: Simulator, sleeps: list[float]
) -> None:
    client = make_client()
    sim.add_fault("GET /qrs/about", "reset", count=1)
    assert client.about()["schemaPath"] == "About"
    assert sim.get_stats()["statuses"] == {"reset": 1, "200": 1}
    assert len(sleeps) == 1


def test_recovers_from_a_hang_past_the_read_timeout(
    make_sim: Callable[..., Simulator], qrs_certs: CertPaths, sleeps: list[float]
) -> None:
    sim = make_sim()  # its own simulator: stopping it ends the hang at once
    sim.add_fault("GET /qrs/about", "hang", seconds=5, count=1)
    with QrsClient(site_for(sim, qrs_certs, readTimeout=0.2), sleep=sleeps.append) as client:
        assert client.about()["schemaPath"] == "About"
    assert len(sleeps) == 1
    assert sim.get_faults()["rules"][0]["fired"] == 1


def test_a_server_that_keeps_hanging_ends_in_a_timeout_error(
    make_sim: Callable[..., Simulator], qrs_certs: CertPaths, sleeps: list[float]
) -> None:
    sim = make_sim()
    sim.add_fault("GET /qrs/about", "hang", seconds=5)
    site = site_for(sim, qrs_certs, readTimeout=0.2, retries=1)
    with QrsClient(site, sleep=sleeps.append) as client, pytest.raises(QrsTimeout) as caught:
        client.about()
    message = str(caught.value)
    assert (
        f"QRS at 127.0.0.1:{sim.port} did not answer GET /qrs/about within the read timeout of 0.2 s"
        in message
    )
    assert "configQRS.readTimeout" in message and "gave up after 2 attempts" in message
    assert caught.value.attempts == 2
    assert sim.get_faults()["rules"][0]["fired"] == 2


def test_malformed_json_is_a_protocol_error_not_retried(
    make_client: Callable[..., QrsClient], sim: Simulator, sleeps: list[float]
) -> None:
    client = make_client()
    sim.add_fault("GET /qrs/license/accesstypeoverview", "malformed", count=1)
    with pytest.raises(QrsProtocolError) as caught:
        client.access_type_overview()
    assert "not valid JSON" in str(caught.value)
    assert caught.value.status == 200 and len(caught.value.body_excerpt) <= 200
    assert sleeps == []
    assert sim.get_stats()["total"] == 1
