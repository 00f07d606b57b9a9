"""``license-agent monitor --once``: the table, where the points went, and exit codes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from agent.cli import main

from .conftest import influx_v1

TABLE = """\
TYPE               TOTAL  ALLOCATED  USED  QUARANTINED  AVAILABLE
professional          25          5     3            1         20
analyzer              30          4     2            0         26
analyzer_capacity      -        700    12            -          -
token_login            -         10     4            -          -
token_user             -          8     6            2          -
tokens_available     100          -     -            -         72"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sqlite_on(extra: dict | None = None) -> dict:
    return {"licenseAgent": {"destinations": {"sqlite": {"enable": True}}}, **(extra or {})}


@pytest.mark.influxdb
def test_once_prints_the_overview_and_where_it_went(
    simulator, make_config, influxdb_server, influxdb_database, capsys
):
    config = make_config(
        simulator, {**influx_v1(influxdb_server, influxdb_database), **sqlite_on()}
    )
    assert main(["monitor", "--once", "-c", str(config.source)]) == 0
    out = capsys.readouterr().out
    assert TABLE in out
    assert (
        f"influxdb: 6 points written to InfluxDB 1.x http://{influxdb_server.host}:"
        f"{influxdb_server.port} database {influxdb_database} (retention policy autogen)"
    ) in out
    assert (
        f"sqlite: 6 points written to SQLite file {config.state_dir / 'license-agent.sqlite'}"
        in out
    )
    series = influxdb_server.query("SHOW SERIES FROM qlik_sense_license", influxdb_database)
    assert len(series["series"][0]["values"]) == 6


def test_a_destination_down_is_reported_and_its_points_kept(simulator, make_config, capsys):
    port = closed_port()
    extra = {
        "influxDb": {"enable": True, "hostIP": "127.0.0.1", "hostPort": port, "timeout": 2},
        "qlikSenseLicense": {"licenseMonitor": {"destination": {"influxDb": {"enable": True}}}},
    }
    config = make_config(simulator, {**extra, **sqlite_on()})
    assert main(["monitor", "--once", "-c", str(config.source)]) == 0
    out = capsys.readouterr().out
    assert f"influxdb: FAILED (InfluxDB 1.x http://127.0.0.1:{port}" in out
    assert f"cannot connect to InfluxDB at 127.0.0.1:{port}: connection refused" in out
    assert "6 points kept in the outbox; they are sent at the next run" in out
    assert "sqlite: 6 points written" in out


def test_no_destination_says_so(simulator, make_config, capsys):
    config = make_config(simulator)
    assert main(["monitor", "--once", "-c", str(config.source)]) == 0
    out = capsys.readouterr().out
    assert TABLE in out and "No destination is enabled" in out


def test_json_output(simulator, make_config, capsys):
    config = make_config(simulator, sqlite_on())
    assert main(["monitor", "--once", "--json", "-c", str(config.source)]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["error"] is None
    assert {row["license_type"] for row in result["overview"]} == {
        "professional",
        "analyzer",
        "analyzer_capacity",
        "token_login",
        "token_user",
        "tokens_available",
    }
    assert result["delivery"]["destinations"][0]["written"] == 6


def test_qrs_down_is_one_clear_message_and_exit_1(simulator, make_config, capsys):
    config = make_config(simulator, sqlite_on())
    simulator.stop()
    assert main(["monitor", "--once", "-c", str(config.source)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = [x for x in captured.err.splitlines() if x.startswith("error:")]
    assert f"https://127.0.0.1:{config.butler.config_qrs.port}" in line
    assert "cannot read the license overview from QRS" in line
    assert "Traceback" not in captured.err


def test_without_once_or_without_qrs_is_a_usage_error(make_config, tmp_path, capsys):
    config = make_config(None)
    assert main(["monitor", "-c", str(config.source)]) == 2
    assert "add --once" in capsys.readouterr().err
    bare = tmp_path / "bare.yaml"
    bare.write_text("Butler:\n  influxDb:\n    enable: false\n", encoding="utf-8")
    assert main(["monitor", "--once", "-c", str(bare)]) == 2
    assert "Butler.configQRS and Butler.cert must be set" in capsys.readouterr().err


def test_the_installed_command_end_to_end(simulator, make_config, tmp_path):
    config = make_config(simulator, sqlite_on())
    done = subprocess.run(
        [sys.executable, "-m", "agent", "monitor", "--once", "-c", str(config.source)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert TABLE in done.stdout and "sqlite: 6 points written" in done.stdout
