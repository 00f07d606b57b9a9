"""DELETE of allocations: quarantine and 404 semantics, and what is (and is not) repeated."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pytest

from agent.qrs import DeleteOutcome, QrsClient, QrsConnectionError, QrsHttpError, QrsTimeout
from agent.simulator import Simulator
from agent.simulator.certs import CertPaths

from .conftest import NOW, PRO_OLD, PRO_RECENT, iso, site_for

PRO = "professionalaccesstype"
DELETE_KEY = "DELETE /qrs/license/professionalaccesstype/{id}"
UNKNOWN = "99999999-0000-4000-8000-000000000000"


def present(sim: Simulator, allocation_id: str) -> bool:
    return allocation_id in sim.state.allocations[PRO]


def test_unused_for_seven_days_is_removed(client: QrsClient, sim: Simulator) -> None:
    assert client.delete_allocation(PRO, PRO_OLD) is DeleteOutcome.DELETED
    assert client.get_allocation(PRO, PRO_OLD) is None
    assert client.count("license/professionalaccesstype") == 3
    assert client.access_type_overview()["professionalAccess"]["allocated"] == 3


def test_used_within_seven_days_is_quarantined(client: QrsClient, sim: Simulator) -> None:
    assert client.delete_allocation(PRO, PRO_RECENT) is DeleteOutcome.DELETED
    allocation = client.get_allocation(PRO, PRO_RECENT)
    assert allocation is not None
    assert allocation["quarantined"] is True
    assert allocation["quarantineEnd"] == iso(NOW + dt.timedelta(days=7))
    assert client.access_type_overview()["professionalAccess"]["quarantined"] == 1
    # Deleting a quarantined allocation again changes nothing and is not an error.
    assert client.delete_allocation(PRO, PRO_RECENT) is DeleteOutcome.DELETED
    assert client.get_allocation(PRO, PRO_RECENT)["quarantineEnd"] == allocation["quarantineEnd"]


def test_unknown_or_already_removed_is_not_found(client: QrsClient, sim: Simulator) -> None:
    assert client.delete_allocation(PRO, UNKNOWN) is DeleteOutcome.NOT_FOUND
    assert client.delete_allocation(PRO, PRO_OLD) is DeleteOutcome.DELETED
    assert client.delete_allocation(PRO, PRO_OLD) is DeleteOutcome.NOT_FOUND
    assert sim.get_stats()["statuses"] == {"404": 2, "204": 1}


def test_ids_and_resources_are_validated_before_sending(client: QrsClient, sim: Simulator) -> None:
    with pytest.raises(ValueError, match="GUID"):
        client.delete_allocation(PRO, "../../user")
    with pytest.raises(ValueError, match="resource"):
        client.delete_allocation("../user", PRO_OLD)
    assert sim.get_stats()["total"] == 0


def test_5xx_is_reported_not_repeated(
    make_client: Callable[..., QrsClient], sim: Simulator, sleeps: list[float]
) -> None:
    client = make_client(retries=4)
    sim.add_fault("DELETE /qrs/license/*", "error", status=500)
    with pytest.raises(QrsHttpError) as caught:
        client.delete_allocation(PRO, PRO_OLD)
    assert (caught.value.status, caught.value.method, caught.value.attempts) == (500, "DELETE", 1)
    assert caught.value.path == f"/qrs/license/{PRO}/{PRO_OLD}"
    assert sim.get_stats()["requests"] == {DELETE_KEY: 1}
    assert sleeps == []


def test_429_is_repeated_because_qrs_did_not_process_it(
    make_client: Callable[..., QrsClient], sim: Simulator, sleeps: list[float]
) -> None:
    client = make_client()
    sim.add_fault("DELETE /qrs/license/*", "error", status=429, retry_after=2, count=2)
    assert client.delete_allocation(PRO, PRO_OLD) is DeleteOutcome.DELETED
    assert sleeps == [2.0, 2.0]
    assert not present(sim, PRO_OLD)


def test_reset_before_an_answer_is_repeated_once(
    make_client: Callable[..., QrsClient], sim: Simulator
) -> None:
    client = make_client(retries=4)
    sim.add_fault("DELETE /qrs/license/*", "reset", count=1)
    assert client.delete_allocation(PRO, PRO_OLD) is DeleteOutcome.DELETED
    assert sim.get_stats()["statuses"] == {"reset": 1, "204": 1}
    sim.reset()
    sim.add_fault("DELETE /qrs/license/*", "reset", count=2)
    with pytest.raises(QrsConnectionError) as caught:
        client.delete_allocation(PRO, PRO_OLD)
    assert caught.value.attempts == 2  # once, not the whole budget of 4
    assert present(sim, PRO_OLD)


def test_a_timed_out_delete_that_went_through_counts_as_deleted(
    make_sim: Callable[..., Simulator], qrs_certs: CertPaths
) -> None:
    sim = make_sim()
    # The first DELETE is held past the client's read timeout, then applied by the server.
    sim.add_fault("DELETE /qrs/license/*", "hang", seconds=0.4, count=1)

    def wait_until_applied(_seconds: float) -> None:
        deadline = time.monotonic() + 5
        while present(sim, PRO_OLD) and time.monotonic() < deadline:
            time.sleep(0.02)

    site = site_for(sim, qrs_certs, readTimeout=0.1)
    with QrsClient(site, sleep=wait_until_applied) as client:
        assert client.delete_allocation(PRO, PRO_OLD) is DeleteOutcome.DELETED
    assert sim.get_stats()["requests"] == {DELETE_KEY: 2}
    assert sim.get_stats()["statuses"] == {"204": 1, "404": 1}


def test_a_delete_timing_out_twice_is_an_error(
    make_sim: Callable[..., Simulator], qrs_certs: CertPaths, sleeps: list[float]
) -> None:
    sim = make_sim()
    sim.add_fault("DELETE /qrs/license/*", "hang", seconds=5)
    site = site_for(sim, qrs_certs, readTimeout=0.1, retries=4)
    with QrsClient(site, sleep=sleeps.append) as client, pytest.raises(QrsTimeout) as caught:
        client.delete_allocation(PRO, PRO_OLD)
    assert caught.value.attempts == 2
    assert sim.get_faults()["rules"][0]["fired"] == 2
