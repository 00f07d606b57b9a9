"""Fault injection, request statistics and reset, over HTTP and through the Python API."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from agent.simulator import FaultConfigError, Simulator

from .helpers import Qrs, pid


def test_fail_next_k_requests_then_recover(sim: Simulator, qrs: Qrs) -> None:
    sim.add_fault("GET /qrs/user*", "error", status=503, count=2)
    statuses = [qrs.get("/qrs/user/full").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert qrs.get("/qrs/about").status_code == 200  # not matched
    assert sim.get_faults()["rules"][0]["fired"] == 2
    assert sim.get_faults()["rules"][0]["count"] == 0


def test_error_rate_statuses_body_and_retry_after(sim: Simulator, qrs: Qrs) -> None:
    sim.set_faults(
        {
            "rules": [
                {
                    "match": "/qrs/license/*",
                    "action": "error",
                    "status": 429,
                    "retry_after": 3,
                    "body": "slow down",
                }
            ]
        }
    )
    response = qrs.get("/qrs/license/accesstypeoverview")
    assert (response.status_code, response.text, response.headers["Retry-After"]) == (
        429,
        "slow down",
        "3",
    )
    sim.set_faults({"rules": [{"match": "GET *", "action": "error", "status": 500, "rate": 0.5}]})
    statuses = [qrs.get("/qrs/about").status_code for _ in range(60)]
    assert 10 < statuses.count(500) < 50 and statuses.count(500) + statuses.count(200) == 60
    assert sim.get_stats()["statuses"]["500"] == statuses.count(500)


def test_errors_do_not_touch_state(sim: Simulator, qrs: Qrs) -> None:
    sim.add_fault("DELETE /qrs/license/professionalaccesstype/{id}", "error", status=500, count=1)
    assert qrs.delete(f"/qrs/license/professionalaccesstype/{pid(1)}").status_code == 500
    assert qrs.get(f"/qrs/license/professionalaccesstype/{pid(1)}").status_code == 200
    assert qrs.delete(f"/qrs/license/professionalaccesstype/{pid(1)}").status_code == 204


def test_hang_and_client_timeout(sim: Simulator, qrs: Qrs) -> None:
    sim.add_fault("GET /qrs/about", "hang", seconds=2, count=1)
    started = time.perf_counter()
    with pytest.raises(requests.exceptions.ReadTimeout):
        qrs.get("/qrs/about", timeout=0.3)
    assert time.perf_counter() - started < 1.5
    assert qrs.get("/qrs/about").status_code == 200  # the hang was used up


def test_hang_then_answer(sim: Simulator, qrs: Qrs) -> None:
    sim.add_fault("GET /qrs/about", "hang", seconds=0.3, count=1)
    started = time.perf_counter()
    assert qrs.get("/qrs/about").status_code == 200
    assert time.perf_counter() - started >= 0.3


def test_latency_and_jitter(make_sim: Any) -> None:
    sim = make_sim(latency_ms=100, jitter_ms=50)
    qrs = Qrs(sim)
    qrs.get("/qrs/about")  # handshake outside the measurement
    started = time.perf_counter()
    for _ in range(3):
        qrs.get("/qrs/about")
    elapsed = time.perf_counter() - started
    assert 0.3 <= elapsed < 1.5
    assert sim.get_faults()["latency_ms"] == 100


def test_connection_reset(sim: Simulator, qrs: Qrs) -> None:
    sim.add_fault("GET /qrs/user/full", "reset", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        qrs.get("/qrs/user/full")
    assert qrs.get("/qrs/user/full").status_code == 200
    stats = sim.get_stats()
    assert stats["statuses"] == {"reset": 1, "200": 1}


def test_malformed_json(sim: Simulator, qrs: Qrs) -> None:
    sim.add_fault("GET /qrs/user/count", "malformed", count=1)
    sim.add_fault("DELETE *", "malformed", count=1)
    response = qrs.get("/qrs/user/count")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    deleted = qrs.delete(f"/qrs/license/professionalaccesstype/{pid(1)}")
    assert (deleted.status_code, deleted.content) == (200, b"{")
    assert qrs.get("/qrs/user/count").json() == {"value": 8}


def test_duplicate_lists_every_object_twice_with_a_changed_twin(sim: Simulator, qrs: Qrs) -> None:
    sim.add_fault("GET /qrs/user/full", "duplicate", body='{"tags": []}', count=1)
    sim.add_fault("GET /qrs/about", "duplicate", count=1)  # not a list: answered as usual
    plain = sim.store.objects("user")
    twice = qrs.get("/qrs/user/full").json()
    assert [u["id"] for u in twice] == [u["id"] for u in plain for _ in (1, 2)]
    assert twice[0] == plain[0] and twice[1] == {**plain[0], "tags": []}
    assert qrs.get("/qrs/about").json()["schemaPath"] == "About"
    assert len(qrs.get("/qrs/user/full").json()) == len(plain)  # count=1: used up
    with pytest.raises(FaultConfigError, match="JSON object"):
        sim.add_fault("GET /qrs/user/full", "duplicate", body="[1]")


def test_null_lists_of_a_loaded_state_are_served_as_null(make_sim: Any) -> None:
    odd = {"id": pid(1), "userDirectory": "A", "userId": "n", "tags": None}
    absent = {"id": pid(2), "userDirectory": "A", "userId": "m", "_absent": ["customProperties"]}
    qrs = Qrs(make_sim({"users": [odd, absent]}))
    served = {u["userId"]: u for u in qrs.get("/qrs/user/full").json()}
    assert served["n"]["tags"] is None and served["n"]["customProperties"] == []
    assert "customProperties" not in served["m"] and served["m"]["tags"] == []


def test_rules_over_admin_api(qrs: Qrs) -> None:
    document = {
        "latency_ms": 0,
        "jitter_ms": 0,
        "rules": [{"match": "GET /qrs/about", "action": "error", "status": 503, "count": 1}],
    }
    response = qrs.admin("POST", "/_simulator/faults", json=document)
    assert response.status_code == 200
    assert response.json()["rules"][0] == {
        "match": "GET /qrs/about", "action": "error", "status": 503, "rate": 1.0, "count": 1,
        "seconds": 0.0, "body": None, "retry_after": None, "fired": 0,
    }  # fmt: skip
    appended = qrs.admin(
        "POST",
        "/_simulator/faults",
        json={"append_rules": [{"match": "*", "action": "reset", "rate": 0}]},
    )
    assert len(appended.json()["rules"]) == 2
    assert qrs.get("/qrs/about").status_code == 503
    assert qrs.get("/qrs/about").status_code == 200
    assert qrs.admin("DELETE", "/_simulator/faults").status_code == 204
    assert qrs.admin("GET", "/_simulator/faults").json() == {
        "latency_ms": 0.0,
        "jitter_ms": 0.0,
        "rules": [],
    }
    bad = qrs.admin("POST", "/_simulator/faults", json={"rules": [{"action": "explode"}]})
    assert bad.status_code == 400 and "action" in bad.text


def test_invalid_fault_documents() -> None:
    from agent.simulator import Faults

    for document in (
        {"rules": [{"match": "*", "action": "hang"}]},  # no seconds
        {"rules": [{"match": "*", "status": 99}]},
        {"rules": [{"match": "*", "rate": 2}]},
        {"rules": [{"match": "*", "colour": "red"}]},
        {"latency_ms": -1},
        {"whatever": 1},
    ):
        with pytest.raises(FaultConfigError):
            Faults(document)


def test_admin_endpoints_need_no_xrfkey_but_a_client_cert(sim: Simulator, qrs: Qrs) -> None:
    assert qrs.admin("GET", "/_simulator/stats").status_code == 200
    assert sim.certs is not None
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{sim.url}/_simulator/stats", verify=str(sim.certs.root_cert), timeout=5)
    assert qrs.admin("GET", "/_simulator/nothing").status_code == 404


def test_stats_count_templates_and_statuses(sim: Simulator, qrs: Qrs) -> None:
    qrs.get("/qrs/user/full")
    qrs.get("/qrs/user/full", params={"filter": "userId eq 'x'"})
    qrs.get(f"/qrs/user/{pid(1)}")
    qrs.delete(f"/qrs/license/professionalaccesstype/{pid(1)}")
    qrs.delete(f"/qrs/license/professionalaccesstype/{pid(1)}")
    qrs.get("/qrs/about", xrfkey=None)
    qrs.get("/qrs/nothing/aaaaaaaa-0000-4000-8000-000000000001")
    qrs.admin("GET", "/_simulator/faults")  # admin calls are not counted
    stats = qrs.admin("GET", "/_simulator/stats").json()
    assert stats == {
        "requests": {
            "GET /qrs/user/full": 2,
            "GET /qrs/user/{id}": 1,
            "DELETE /qrs/license/professionalaccesstype/{id}": 2,
            "GET /qrs/about": 1,
            "GET /qrs/nothing/{id}": 1,
        },
        "statuses": {"200": 2, "404": 3, "204": 1, "403": 1},
        "total": 7,
    }
    assert qrs.admin("POST", "/_simulator/stats/reset").status_code == 204
    assert sim.get_stats() == {"requests": {}, "statuses": {}, "total": 0}


def test_reset_restores_state_stats_faults_and_clock(make_sim: Any) -> None:
    sim = make_sim(
        faults={
            "rules": [{"match": "GET /qrs/about", "action": "error", "status": 503, "count": 1}]
        }
    )
    qrs = Qrs(sim)
    assert qrs.get("/qrs/about").status_code == 503
    qrs.delete(f"/qrs/license/professionalaccesstype/{pid(1)}")
    sim.add_fault("*", "error", status=500, rate=0)
    sim.set_now("2030-01-01T00:00:00Z")
    assert qrs.admin("POST", "/_simulator/reset").status_code == 204
    assert qrs.get("/qrs/about").status_code == 503  # the initial fault is back
    assert qrs.get(f"/qrs/license/professionalaccesstype/{pid(1)}").status_code == 200
    assert len(sim.get_faults()["rules"]) == 1
    assert sim.get_stats()["total"] == 2
    assert qrs.admin("GET", "/_simulator/clock").json()["now"] == "2026-06-01T12:00:00.000Z"


def test_state_over_admin_api(sim: Simulator, qrs: Qrs) -> None:
    qrs.delete(f"/qrs/license/professionalaccesstype/{pid(1)}")
    dumped = qrs.admin("GET", "/_simulator/state").json()
    assert len(dumped["professionalaccesstype"]) == 5 and len(dumped["users"]) == 8
    replacement = {
        "users": [{"userDirectory": "X", "userId": "only"}],
        "professionalaccesstype": [{"user": {"userDirectory": "x", "userId": "ONLY"}}],
    }
    assert qrs.admin("POST", "/_simulator/state", json=replacement).status_code == 204
    assert qrs.get("/qrs/user/count").json() == {"value": 1}
    assert qrs.list("/qrs/license/professionalaccesstype/full")[0]["user"]["userId"] == "only"
    bad = qrs.admin("POST", "/_simulator/state", json={"users": [{"userId": "no-directory"}]})
    assert bad.status_code == 400 and "userDirectory" in bad.text
    sim.reset()  # the loaded state is the new initial state
    assert qrs.get("/qrs/user/count").json() == {"value": 1}


def test_concurrent_requests(sim: Simulator) -> None:
    import threading

    errors: list[BaseException] = []

    def worker() -> None:
        client = Qrs(sim)
        try:
            for _ in range(15):
                assert client.get("/qrs/user/full").status_code == 200
        except BaseException as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sim.get_stats()["requests"] == {"GET /qrs/user/full": 90}
