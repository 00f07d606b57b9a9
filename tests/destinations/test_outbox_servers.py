"""A destination that is down on real servers: the others are written, its points wait in the
outbox and reach it in order, each exactly once, when it is back."""

from __future__ import annotations

import socket
import time
import uuid
from typing import Any

import pytest

from agent.delivery import Delivery
from agent.outbox import Outbox, time_to_ns
from plugins.destinations.influxdb import make_destination
from plugins.destinations.sqlite import SqliteDestination

from .conftest import monitor_point

MONITOR = frozenset({"license_monitor"})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def influx(make_config, host: str, port: int, **extra: Any):
    butler = {"influxDb": {"enable": True, "hostIP": host, "hostPort": port, "timeout": 2, **extra}}
    return make_destination(make_config(butler).butler.influx_db, MONITOR)


@pytest.mark.influxdb
def test_influxdb_down_then_fixed(make_config, tmp_path, influxdb_server, influxdb_database):
    outbox = tmp_path / "outbox.sqlite"
    sqlite = SqliteDestination(tmp_path / "history.sqlite", MONITOR)
    # The agent starts with InfluxDB unreachable (a wrong port in the config).
    down = influx(make_config, "127.0.0.1", closed_port(), dbName=influxdb_database)
    delivery = Delivery([down, sqlite], Outbox(outbox))
    produced = []
    for run in range(3):
        points = [monitor_point(run), monitor_point(run, "analyzer")]
        produced += points
        report = {d.name: d for d in delivery.deliver(points).destinations}
        assert (report["sqlite"].written, report["sqlite"].pending) == (2, 0)
        assert (report["influxdb"].written, report["influxdb"].pending) == (0, len(produced))
    delivery.close()  # the agent stops; the config is fixed; it starts again

    up = influx(make_config, influxdb_server.host, influxdb_server.port, dbName=influxdb_database)
    delivery = Delivery([up, sqlite], Outbox(outbox))
    report = delivery.flush().destinations[0]
    assert (report.written, report.pending) == (6, 0)
    delivery.deliver([monitor_point(3)])
    delivery.close()
    rows = influxdb_server.rows(
        "SELECT allocated FROM qlik_sense_license GROUP BY license_type", influxdb_database
    )
    got = sorted((r["time"], r["license_type"], r["allocated"]) for r in rows)
    assert got == sorted(
        (time_to_ns(p.time), p.tags["license_type"], p.fields["allocated"])
        for p in [*produced, monitor_point(3)]
    )


@pytest.mark.victoriametrics
def test_victoriametrics_stopped_and_started_again(make_config, tmp_path, victoriametrics_factory):
    vm = victoriametrics_factory()
    tag = uuid.uuid4().hex[:10]
    dest = influx(make_config, "127.0.0.1", vm.port, version=2, org="o", bucket="b", token="t")
    delivery = Delivery([dest], Outbox(tmp_path / "outbox.sqlite"))
    delivery.deliver([monitor_point(0, test=tag)])
    vm.stop()
    assert delivery.deliver([monitor_point(1, test=tag)]).destinations[0].pending == 1
    assert delivery.deliver([monitor_point(2, test=tag)]).destinations[0].pending == 2
    vm.start()
    report = delivery.flush().destinations[0]
    assert (report.written, report.pending) == (2, 0)
    delivery.deliver([monitor_point(3, test=tag)])
    delivery.close()

    client = vm.client()  # this private server, not the shared one
    deadline = time.monotonic() + 10
    while True:
        [series] = client.export(f'qlik_sense_license_allocated{{test="{tag}"}}') or [None]
        if series and len(series["values"]) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # One sample per run, in order, no duplicate (this server does not de-duplicate).
    assert series["values"] == [0.0, 1.0, 2.0, 3.0]
    assert series["timestamps"] == [
        time_to_ns(monitor_point(n).time) // 1_000_000 for n in range(4)
    ]
