"""``license-agent qrs check`` against the simulator: the output a user sees, and exit codes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.cli import main
from agent.simulator import Simulator
from agent.simulator.certs import CertPaths

from .conftest import butler_config, free_port, hand_state, write_config


def run_check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["qrs", "check", "-c", str(config)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_prints_version_and_license_overview(
    sim: Simulator, qrs_certs: CertPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.yaml", butler_config(sim.host, sim.port, qrs_certs))
    code, out, err = run_check(config, capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        f"QRS https://127.0.0.1:{sim.port} as 'UserDirectory=INTERNAL; UserId=sa_api': connected"
        " (TLS with the client certificate; server certificate verified)"
    )
    assert lines[1] == "Qlik Sense repository version 25.12.3.0 (built 11/14/2025 10:12:41 AM)"
    # The shared simulator's clock is frozen at 2026-06-01: the release's clock check is shown.
    assert lines[2].startswith("Clock: WARNING: this machine's clock is ")
    assert "a live release refuses to run until it is fixed" in lines[2]
    # Hand-built site: 10 professional seats, 4 allocated, 3 of them used (one never);
    # 5 analyzer seats, 2 allocated and used.
    table = [line.split() for line in lines[4:7]]
    assert table[0] == ["TYPE", "TOTAL", "ALLOCATED", "USED", "QUARANTINED", "AVAILABLE"]
    overview = sim.store.overview()
    for row, key in zip(table[1:], ("professionalAccess", "analyzerAccess"), strict=True):
        block = overview[key]
        expected = [block[c] for c in ("total", "allocated", "used", "quarantined", "available")]
        assert [int(v) for v in row[1:]] == expected
    assert table[1][:3] == ["professional", "10", "4"]
    assert table[2][:3] == ["analyzer", "5", "2"]
    assert sim.get_stats()["requests"] == {
        "GET /qrs/about": 1,
        "GET /qrs/license/accesstypeoverview": 1,
    }


def test_tolerates_missing_blocks_and_keys(
    make_sim: Callable[..., Simulator],
    qrs_certs: CertPaths,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = hand_state()
    # An older Sense: no analyzer block, no 'quarantined' key.
    state["overview"] = {"analyzerAccess": None, "professionalAccess": {"quarantined": None}}
    sim = make_sim(state)
    config = write_config(tmp_path / "c.yaml", butler_config(sim.host, sim.port, qrs_certs))
    code, out, err = run_check(config, capsys)
    assert code == 0, err
    types = [line.split()[0] for line in out.splitlines()[4:]]
    assert "professional" in types and "analyzer" not in types
    professional = next(line for line in out.splitlines() if line.startswith("professional"))
    assert professional.split()[4] == "-"


def test_wrong_ca_is_diagnosed_with_exit_1(
    sim: Simulator,
    qrs_certs: CertPaths,
    other_certs: CertPaths,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = butler_config(
        sim.host, sim.port, qrs_certs, cert={"clientCertCA": str(other_certs.root_cert)}
    )
    code, out, err = run_check(write_config(tmp_path / "c.yaml", document), capsys)
    assert code == 1
    assert out == ""
    assert f"is not signed by {other_certs.root_cert}" in err
    assert "Traceback" not in err


def test_closed_port_is_diagnosed_with_exit_1(
    qrs_certs: CertPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    document = butler_config("127.0.0.1", port, qrs_certs, retries=0)
    code, _, err = run_check(write_config(tmp_path / "c.yaml", document), capsys)
    assert code == 1
    assert f"cannot connect to 127.0.0.1:{port} (connection refused)" in err


def test_config_mistakes_exit_2(
    sim: Simulator, qrs_certs: CertPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "client.pem"
    document = butler_config(sim.host, sim.port, qrs_certs, cert={"clientCert": str(missing)})
    code, _, err = run_check(write_config(tmp_path / "a.yaml", document), capsys)
    assert code == 2
    assert f"error: Butler.cert.clientCert: {missing} not found; copy client.pem from" in err

    code, _, err = run_check(
        write_config(tmp_path / "b.yaml", {"Butler": {"logLevel": "info"}}), capsys
    )
    assert code == 2
    assert "Butler.configQRS and Butler.cert must be set" in err
    assert sim.get_stats()["total"] == 0


def test_readme_flow_simulator_then_check_as_commands(tmp_path: Path) -> None:
    """``license-agent simulator ... --write-config`` then ``license-agent qrs check -c``."""
    config = tmp_path / "sim-config.yaml"
    command = [sys.executable, "-m", "agent"]
    simulator = subprocess.Popen(
        [*command, "simulator", "--users", "200", "--port", "0"]
        + ["--cert-dir", str(tmp_path / "sim-certs"), "--write-config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert simulator.stdout is not None
        ready = simulator.stdout.readline()
        assert ready.startswith("listening on https://127.0.0.1:"), ready
        result = subprocess.run(
            [*command, "qrs", "check", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        simulator.terminate()
        simulator.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    port = ready.strip().rsplit(":", 1)[1]
    assert (
        f"QRS https://127.0.0.1:{port} as 'UserDirectory=INTERNAL; UserId=sa_api'" in result.stdout
    )
    assert "Qlik Sense repository version 25.12.3.0" in result.stdout
    # The simulator follows the real clock: the clocks agree.
    assert "Clock: this machine's clock " in result.stdout and "WARNING" not in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [row[0] for row in rows if len(row) == 6 and row[1].isdigit()] == [
        "professional",
        "analyzer",
    ]


def test_qrs_check_and_monitor_print_one_table(
    sim: Simulator, qrs_certs: CertPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path / "c.yaml", butler_config(sim.host, sim.port, qrs_certs))
    assert main(["qrs", "check", "-c", str(config)]) == 0
    checked = capsys.readouterr().out
    assert main(["monitor", "--once", "-c", str(config)]) == 0
    monitored = capsys.readouterr().out

    def table(out: str) -> list[str]:
        lines = out.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("TYPE"))
        end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
        return lines[start:end]

    assert table(checked) == table(monitored)
    assert len(table(checked)) >= 3  # header, professional, analyzer (and what plugins add)
