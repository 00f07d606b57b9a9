"""The InfluxDB destination: which features it serves, line protocol, versions 1, 2 and 3,
HTTP errors, TLS, and the InfluxDB 1.x server itself.

Version 1 talks through ``requests`` (``requests-mock`` covers statuses the real server does
not give); versions 2 and 3 talk through influxdb-client, i.e. urllib3, which requests-mock
cannot see, so their error answers come from a real local socket (``fake_http.py``).
"""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from agent.delivery import Delivery
from agent.models import DestinationError, Point
from agent.outbox import Outbox, time_to_ns
from agent.plugins import build_plugin_host
from agent.simulator.certs import ensure_certs
from plugins.destinations.influxdb import line_protocol, make_destination

from .conftest import T0, monitor_point, release_point
from .fake_http import Answer, FakeHttpServer

SECRET = "s3cr3t-t0ken-value"
MONITOR = frozenset({"license_monitor"})


def influx_settings(make_config, **influx: Any):
    return make_config({"influxDb": {"enable": True, **influx}}).butler.influx_db


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("influx", "monitor", "release", "server", "expected"),
    [
        (True, True, True, True, {"license_monitor", "license_release", "server_license"}),
        (True, True, False, False, {"license_monitor"}),
        (True, False, True, False, {"license_release"}),  # the existing tool ignored this one
        (True, False, False, True, {"server_license"}),
        (True, False, False, False, None),
        (False, True, True, True, None),
    ],
)
def test_features_follow_each_features_destination_switch(
    make_config, influx, monitor, release, server, expected
):
    def on(flag: bool) -> dict:
        return {"destination": {"influxDb": {"enable": flag}}}

    config = make_config(
        {
            "influxDb": {"enable": influx},
            "qlikSenseLicense": {
                "licenseMonitor": on(monitor),
                "licenseRelease": on(release),
                "serverLicenseMonitor": on(server),
            },
        }
    )
    found = [d for d in build_plugin_host(config).destinations(config) if d.name == "influxdb"]
    assert (found[0].features if found else None) == expected


# --------------------------------------------------------------------------- line protocol


def test_line_protocol_keeps_types_and_nanoseconds():
    point = Point(
        "qlik_sense_license",
        {"license_type": "professional", "env": "a b,c"},
        {"allocated": 5, "ratio": 0.5, "expired": True, "date": 'say "hi"', "nan": float("nan")},
        T0,
    )
    assert line_protocol(point) == (
        r"qlik_sense_license,env=a\ b\,c,license_type=professional "
        r'allocated=5,date="say \"hi\"",expired=true,ratio=0.5 '
        f"{time_to_ns(T0)}"
    )  # `5` without `i` is a float in line protocol
    assert line_protocol(Point("m", {}, {"x": float("inf")}, T0)) == ""


# --------------------------------------------------------------------------- version 1, real server


def v1(make_config, server, database, **extra: Any):
    settings = influx_settings(
        make_config, hostIP=server.host, hostPort=server.port, dbName=database, **extra
    )
    return make_destination(settings, MONITOR)


@pytest.mark.influxdb
def test_v1_writes_are_idempotent(make_config, influxdb_server, influxdb_database):
    dest = v1(make_config, influxdb_server, influxdb_database)
    points = [monitor_point(1), monitor_point(1, "analyzer"), monitor_point(2)]
    dest.write(points)
    dest.write(points)
    rows = influxdb_server.rows("SELECT * FROM qlik_sense_license", influxdb_database)
    assert sorted((r["time"], r["license_type"]) for r in rows) == sorted(
        (time_to_ns(p.time), p.tags["license_type"]) for p in points
    )


@pytest.mark.influxdb
def test_v1_bad_point_is_rejected_without_blocking_the_others(
    make_config, tmp_path, influxdb_server, influxdb_database
):
    dest = v1(make_config, influxdb_server, influxdb_database)
    dest.write([monitor_point(1)])
    conflicting = Point("qlik_sense_license", {"license_type": "x"}, {"allocated": "text"}, T0)
    delivery = Delivery([dest], Outbox(tmp_path / "o.sqlite"), batch_size=1)
    report = delivery.deliver([conflicting, monitor_point(2)]).destinations[0]
    assert (report.written, report.rejected, report.pending) == (1, 1, 0)
    assert "field type conflict" in report.error
    assert len(influxdb_server.rows("SELECT * FROM qlik_sense_license", influxdb_database)) == 2


@pytest.mark.influxdb
def test_v1_database_dropped_behind_its_back_is_created_again(
    make_config, influxdb_server, influxdb_database
):
    dest = v1(make_config, influxdb_server, influxdb_database)
    dest.write([monitor_point(1)])
    influxdb_server.query(f'DROP DATABASE "{influxdb_database}"', method="POST")
    with pytest.raises(DestinationError, match="HTTP 404") as failed:
        dest.write([monitor_point(2)])
    assert len(failed.value.failed) == 1  # kept for the retry
    dest.write([monitor_point(2)])
    assert len(influxdb_server.rows("SELECT * FROM qlik_sense_license", influxdb_database)) == 1


# --------------------------------------------------------------------------- version 1, mocked


@pytest.fixture
def v1_mocked(make_config, requests_mock):
    requests_mock.get(
        "http://influx.example:8086/query",
        json={
            "results": [{"statement_id": 0, "series": [{"values": [["senseops"], ["autogen"]]}]}]
        },
    )
    settings = influx_settings(
        make_config,
        hostIP="influx.example",
        auth={"enable": True, "username": "writer", "password": SECRET},
    )
    return make_destination(settings, MONITOR)


@pytest.mark.parametrize(
    ("status", "body", "kept", "text"),
    [
        (
            401,
            '{"error":"authorization failed"}',
            True,
            "HTTP 401 (check the token / Butler.influxDb.auth)",
        ),
        (500, '{"error":"timeout"}', True, "HTTP 500"),
        (400, '{"error":"unable to parse \'x\': missing fields"}', False, "unable to parse"),
    ],
)
def test_v1_http_errors(v1_mocked, requests_mock, status, body, kept, text):
    requests_mock.post("http://influx.example:8086/write", status_code=status, text=body)
    with pytest.raises(DestinationError) as failed:
        v1_mocked.write([monitor_point(1)])
    message = str(failed.value)
    assert text in message and "influx.example:8086" in message
    assert SECRET not in message
    assert (len(failed.value.failed), len(failed.value.rejected)) == ((1, 0) if kept else (0, 1))


def test_v1_sends_credentials_as_basic_auth_never_in_the_url(v1_mocked, requests_mock):
    write = requests_mock.post("http://influx.example:8086/write", status_code=204)
    v1_mocked.write([monitor_point(1)])
    request = write.last_request
    assert SECRET not in request.url
    assert request.headers["Authorization"].startswith("Basic ")
    assert request.qs == {"db": ["senseops"], "precision": ["ns"]}


def test_v1_creates_missing_database_and_default_policy(make_config, requests_mock):
    query = requests_mock.get(
        "http://influx.example:8086/query", json={"results": [{"statement_id": 0}]}
    )
    create = requests_mock.post(
        "http://influx.example:8086/query", json={"results": [{"statement_id": 0}]}
    )
    requests_mock.post("http://influx.example:8086/write", status_code=204)
    settings = influx_settings(
        make_config,
        hostIP="influx.example",
        dbName='my "db"',
        retentionPolicy={"name": "10d", "duration": "10d"},
    )
    make_destination(settings, MONITOR).write([monitor_point(1)])
    assert [r.qs["q"][0] for r in query.request_history] == [
        "show databases",
        'show retention policies on "my \\"db\\""',
    ]
    assert [r.text for r in create.request_history] == [
        "q=CREATE+DATABASE+%22my+%5C%22db%5C%22%22",
        "q=CREATE+RETENTION+POLICY+%2210d%22+ON+%22my+%5C%22db%5C%22%22+DURATION+10d+REPLICATION+1+DEFAULT",
    ]


def test_v1_connection_refused(make_config):
    settings = influx_settings(make_config, hostIP="127.0.0.1", hostPort=1)
    with pytest.raises(
        DestinationError, match="cannot connect to InfluxDB at 127.0.0.1:1: connection refused"
    ):
        make_destination(settings, MONITOR).write([monitor_point(1)])


# --------------------------------------------------------------------------- versions 2 and 3


def v2_settings(make_config, port: int, version: int = 2, **extra: Any):
    names = {"org": "acme", "bucket": "licenses"} if version == 2 else {"database": "sense"}
    settings = {
        "version": version,
        "hostIP": "127.0.0.1",
        "hostPort": port,
        "token": SECRET,
        "timeout": 2,
    }
    return influx_settings(make_config, **{**settings, **names, **extra})


@pytest.mark.parametrize(
    ("version", "query"),
    [(2, {"org": "acme", "bucket": "licenses"}), (3, {"org": "-", "bucket": "sense"})],
)
def test_v2_and_v3_write_api(make_config, version, query):
    with FakeHttpServer() as server:
        dest = make_destination(v2_settings(make_config, server.port, version), MONITOR)
        dest.write([monitor_point(1), monitor_point(2)])
        dest.close()
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/api/v2/write")
    assert request.query == {**query, "precision": "ns"}
    assert request.headers["authorization"] == f"Token {SECRET}"
    assert request.lines == [line_protocol(monitor_point(1)), line_protocol(monitor_point(2))]


@pytest.mark.parametrize(
    ("status", "body", "outcome", "text"),
    [
        (
            401,
            '{"code":"unauthorized","message":"unauthorized access"}',
            "failed",
            "HTTP 401 (check the token / Butler.influxDb.auth): unauthorized access",
        ),
        (
            404,
            '{"code":"not found","message":"bucket \\"licenses\\" not found"}',
            "failed",
            'bucket "licenses" not found',
        ),
        (
            400,
            '{"code":"invalid","message":"unable to parse \'qlik x\': missing fields"}',
            "rejected",
            "unable to parse",
        ),
        (
            400,
            '{"code":"invalid","message":"organization name \\"\\" not found"}',
            "failed",
            "organization name",
        ),
        (
            422,
            '{"code":"unprocessable entity","message":"points beyond retention policy"}',
            "rejected",
            "HTTP 422",
        ),
        (413, '{"code":"request too large","message":"too large"}', "rejected", "HTTP 413"),
        (503, "Service Unavailable", "failed", "HTTP 503"),
    ],
)
def test_v2_http_errors(make_config, status, body, outcome, text):
    with FakeHttpServer(lambda request: Answer(status, body)) as server:
        dest = make_destination(v2_settings(make_config, server.port), MONITOR)
        with pytest.raises(DestinationError) as failed:
            dest.write([monitor_point(1)])
    message = str(failed.value)
    assert text in message and f"127.0.0.1:{server.port}" in message
    assert SECRET not in message
    assert (len(failed.value.failed), len(failed.value.rejected)) == (
        (1, 0) if outcome == "failed" else (0, 1)
    )


def test_v2_413_splits_the_batch_until_it_fits(make_config):
    def at_most_two_lines(request):
        return Answer(413, '{"message":"too large"}') if len(request.lines) > 2 else Answer(204)

    with FakeHttpServer(at_most_two_lines) as server:
        dest = make_destination(v2_settings(make_config, server.port), MONITOR)
        dest.write([monitor_point(n) for n in range(5)])
    written = [line for r in server.requests if len(r.lines) <= 2 for line in r.lines]
    assert written == [line_protocol(monitor_point(n)) for n in range(5)]


def test_v2_timeout_and_refused(make_config):
    with FakeHttpServer(lambda request: Answer(204, delay=3)) as server:
        dest = make_destination(v2_settings(make_config, server.port, timeout=0.5), MONITOR)
        with pytest.raises(DestinationError, match=r"did not answer within 0.5 s") as failed:
            dest.write([monitor_point(1)])
        assert len(failed.value.failed) == 1
    dest = make_destination(v2_settings(make_config, 1), MONITOR)
    with pytest.raises(
        DestinationError, match="cannot connect to InfluxDB at 127.0.0.1:1: connection refused"
    ):
        dest.write([monitor_point(1)])


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    certs = ensure_certs(tmp_path_factory.mktemp("influx-certs"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(certs.server_cert), str(certs.server_key))
    return certs, context


def v1_answers(request):
    if request.path == "/query":
        return Answer(
            200, '{"results":[{"statement_id":0,"series":[{"values":[["senseops"],["autogen"]]}]}]}'
        )
    return Answer(204)


@pytest.mark.parametrize("version", [1, 2])
def test_https_with_a_custom_ca(make_config, tls, version):
    certs, context = tls
    with FakeHttpServer(v1_answers, tls=context) as server:
        if version == 1:
            base = {"hostIP": "127.0.0.1", "hostPort": server.port}
            settings = lambda **kw: influx_settings(make_config, useHttps=True, **base, **kw)  # noqa: E731
        else:
            settings = lambda **kw: v2_settings(make_config, server.port, useHttps=True, **kw)  # noqa: E731
        make_destination(settings(caCert=str(certs.root_cert)), MONITOR).write([monitor_point(1)])
        make_destination(settings(verifyTls=False), MONITOR).write([monitor_point(2)])
        with pytest.raises(
            DestinationError,
            match=r"TLS error talking to InfluxDB at 127.0.0.1:\d+ \(check Butler.influxDb.caCert",
        ):
            make_destination(settings(), MONITOR).write([monitor_point(3)])  # system CAs only
    writes = [r for r in server.requests if r.path.endswith("write")]
    assert [r.lines for r in writes] == [
        [line_protocol(monitor_point(1))],
        [line_protocol(monitor_point(2))],
    ]


def test_release_events_keep_their_fields(make_config):
    with FakeHttpServer() as server:
        make_destination(
            v2_settings(make_config, server.port), frozenset({"license_release"})
        ).write([release_point(1)])
    assert server.requests[0].lines == [
        "qlik_sense_license_release,license_type=professional,user=ACME\\user1 "
        f'allocation_id="id-1",days_since_last_use=41,quarantined=false {time_to_ns(release_point(1).time)}'
    ]


def test_v1_write_only_user_writes_without_creating(make_config, requests_mock):
    denied = '{"error":"error authorizing query: writer not authorized to execute statement, requires admin privilege"}'
    requests_mock.get("http://influx.example:8086/query", status_code=403, text=denied)
    write = requests_mock.post("http://influx.example:8086/write", status_code=204)
    settings = influx_settings(make_config, hostIP="influx.example")
    dest = make_destination(settings, MONITOR)
    dest.write([monitor_point(1)])
    dest.write([monitor_point(2)])
    assert write.call_count == 2
    assert (
        len([r for r in requests_mock.request_history if r.path == "/query"]) == 1
    )  # not re-tried
