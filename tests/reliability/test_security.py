"""Security: TLS verified by default, a warning at every start when it is not, the simulator on
loopback, a warning for a client key others can read, and no secret in any output of a full run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.plugins import parse_config
from agent.qrs import QrsClient, QrsTlsError, key_file_exposure
from agent.simulator import Simulator, ensure_certs
from agent.simulator.cli import add_arguments
from plugins.destinations.influxdb import make_destination
from tests.fixtures_servers import free_port

from .helpers import (
    EchoServer,
    build_site,
    captured_logs,
    config_document,
    load,
    loud,
    real_now,
    release_section,
    spawn,
    wait_until,
    write_config,
)

# --------------------------------------------------------------------------- TLS


def test_tls_verification_is_on_by_default_and_refuses_a_foreign_server(
    simulator, certs, workdir, tmp_path_factory
) -> None:
    sim = simulator(build_site(1))
    other = ensure_certs(tmp_path_factory.mktemp("foreign-ca"))
    document = config_document(sim.port, certs, workdir)
    del document["Butler"]["configQRS"]["rejectUnauthorized"]  # not written: the default
    config = load(write_config(workdir / "c.yaml", document))
    assert config.butler.config_qrs.reject_unauthorized is True
    with QrsClient(config.sites()[0]) as qrs:
        qrs.about()  # our CA signed the simulator: accepted
    document["Butler"]["cert"]["clientCertCA"] = str(other.root_cert)
    config = load(write_config(workdir / "c.yaml", document))
    with QrsClient(config.sites()[0]) as qrs, pytest.raises(QrsTlsError, match="not signed by"):
        qrs.about()
    assert sim.get_stats()["total"] == 1  # the refused handshake never became a request


def stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM on POSIX (a graceful stop); TerminateProcess on Windows."""
    if os.name == "nt":
        proc.terminate()
    else:
        proc.send_signal(signal.SIGTERM)


def _start_until(config: Path, cwd: Path, marker: str) -> tuple[int, str]:
    """Start ``license-agent run``, wait for ``marker`` on stderr, stop it; (exit code, stderr)."""
    proc = spawn("run", "-c", str(config), cwd=cwd)
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        for line in proc.stderr:
            seen.append(line)
            if marker in line:
                break
    finally:
        stop(proc)
        out, err = proc.communicate(timeout=60)
    return proc.returncode, "".join(seen) + err


def test_turning_verification_off_warns_at_every_start(simulator, certs, workdir) -> None:
    sim = simulator(build_site(1))
    document = config_document(
        sim.port,
        certs,
        workdir,
        qrs={"rejectUnauthorized": False},
        monitor={"enable": True, "frequency": "every 24 hours"},
        release=release_section(enable=False),
    )
    config = write_config(workdir / "config.yaml", document)
    for _ in range(2):
        code, stderr = _start_until(config, workdir, "next run")
        warnings = [line for line in stderr.splitlines() if "rejectUnauthorized" in line]
        assert warnings and all("WARNING" in line for line in warnings), stderr
        assert "not verified" in warnings[0].lower()
        if os.name != "nt":
            assert code == 0


# --------------------------------------------------------------------------- the simulator


def test_the_simulator_binds_loopback_by_default(certs) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).host == "127.0.0.1"
    with Simulator(build_site(1).document, cert_dir=certs.cert_dir) as sim:
        assert sim._server is not None
        assert sim._server.server_address[0] == "127.0.0.1"
        # From another address of this machine, nothing answers.
        outside = _non_loopback_address()
        if outside is not None:
            with pytest.raises(OSError), socket.create_connection((outside, sim.port), 1):
                pass


def _non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


# --------------------------------------------------------------------------- the key file


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes; Windows uses ACLs")
@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o640, True), (0o600, False)])
def test_a_client_key_readable_by_others_is_warned_about(
    mode: int, warned: bool, certs, tmp_path
) -> None:
    folder = tmp_path / f"certs-{mode:o}"
    shutil.copytree(certs.cert_dir, folder)
    key = folder / "client_key.pem"
    os.chmod(key, mode)
    config = parse_config(
        {
            "Butler": {
                "configQRS": {"host": "127.0.0.1", "port": 4242},
                "cert": {
                    "clientCert": str(folder / "client.pem"),
                    "clientCertKey": str(key),
                    "clientCertCA": str(folder / "root.pem"),
                },
            }
        }
    )
    with captured_logs("WARNING") as lines:
        QrsClient(config.sites()[0]).close()
        QrsClient(config.sites()[0]).close()  # once per process, not once per run
    messages = [line.message for line in lines]
    if warned:
        assert len(messages) == 1, messages
        assert str(key) in messages[0] and f"chmod 600 {key}" in messages[0]
        assert f"{mode:04o}" in messages[0]
    else:
        assert messages == [] and key_file_exposure(key) is None


# --------------------------------------------------------------------------- secrets


PASSWORD = "pw-Zq8v3Kx91-SECRET"
TOKEN = "v2tok-1a2b3c4d5e-SECRET"
PLUGIN_TOKEN = "plg-8d7c6b5a4f-SECRET"
BEARER = "qrsbearer-5f4e3d2c1b-SECRET"


def _key_material(key: Path) -> list[str]:
    """The base64 lines of a PEM private key: none may appear anywhere."""
    lines = key.read_text("ascii").splitlines()
    return [line for line in lines if line and not line.startswith("-----")]


def _secret_config(
    sim: Simulator, certs: Any, workdir: Path, influx_port: int, version: int
) -> dict[str, Any]:
    influx: dict[str, Any] = {
        "enable": True,
        "version": version,
        "hostIP": "127.0.0.1",
        "hostPort": influx_port,
        "timeout": 1,
    }
    if version == 1:
        influx.update(
            dbName="senseops", auth={"enable": True, "username": "agent", "password": PASSWORD}
        )
    else:
        influx.update(org="acme", bucket="senseops", token="${env:INFLUX_TOKEN}")
    destination = {"destination": {"influxDb": {"enable": True}}}
    return config_document(
        sim.port,
        certs,
        workdir,
        influx=influx,
        monitor={"enable": True, "frequency": "every 24 hours", **destination},
        release=release_section(**destination),
        qrs={
            "headers": {
                "static": [
                    {"name": "X-Qlik-User", "value": "UserDirectory=INTERNAL; UserId=sa_api"},
                    {"name": "Authorization", "value": f"Bearer {BEARER}"},
                ]
            }
        },
        agent={
            "logging": {"file": str(workdir / "logs" / "agent.log"), "json": True},
            "plugins": {"settings": {"sla_webhook": {"apiToken": PLUGIN_TOKEN, "url": "x"}}},
        },
    )


def run_recorded(
    config: Path,
    args: Sequence[str],
    workdir: Path,
    env: dict[str, str],
    outputs: dict[str, str],
    label: str,
    level: str,
) -> subprocess.CompletedProcess[str]:
    """Run one command on ``config``; its stdout and stderr go into ``outputs`` under ``label``."""
    done = subprocess.run(
        [sys.executable, "-m", "agent", *args, "-c", str(config), "--log-level", level],
        cwd=workdir,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
    )
    outputs[f"{label} stdout"], outputs[f"{label} stderr"] = done.stdout, done.stderr
    return done


def run_until(
    config: Path,
    workdir: Path,
    env: dict[str, str],
    condition: Callable[[], bool],
    what: str,
    level: str = "TRACE",
) -> tuple[str, str]:
    """Run ``license-agent run`` until ``condition`` holds, stop it; (stdout, stderr)."""
    proc = spawn("run", "-c", str(config), "--log-level", level, cwd=workdir, env=env)
    try:
        wait_until(condition, timeout=60, what=what)
    finally:
        stop(proc)
        out, err = proc.communicate(timeout=60)
    return out, err


def load_with(config: Path, name: str, value: str) -> Any:
    """The config loaded in this process with the environment variable ``name`` set."""
    os.environ[name] = value
    try:
        return load(config)
    finally:
        del os.environ[name]


def destination_failure(config: Any) -> str:
    """The text of the exception the config's InfluxDB destination raises for one point."""
    from agent.models import DestinationError, Point

    destination = make_destination(config.butler.influx_db, frozenset({"license_monitor"}))
    point = Point("m", {"t": "v"}, {"f": 1.0}, real_now(), "license_monitor")
    with pytest.raises(DestinationError) as failure:
        destination.write([point])
    return f"{failure.value!r} {failure.value}"


@pytest.mark.parametrize("version", [1, 2])
def test_no_secret_appears_in_any_output_of_a_full_run(
    version: int, simulator, certs, workdir
) -> None:
    now = real_now()
    site = build_site(4, now=now)
    sim = simulator(site, now=now)
    # The first overview read fails (a QRS failure to report), InfluxDB is down throughout.
    sim.add_fault("GET /qrs/license/accesstypeoverview", "error", status=500, count=3)
    config = write_config(
        workdir / "config.yaml", _secret_config(sim, certs, workdir, free_port(), version)
    )
    env = {**os.environ, "INFLUX_TOKEN": TOKEN}
    outputs: dict[str, str] = {}

    def agent(*args: str) -> subprocess.CompletedProcess[str]:
        label = f"#{len(outputs) // 2} {' '.join(args)}"
        return run_recorded(config, args, workdir, env, outputs, label, level="DEBUG")

    assert agent("config", "check").returncode == 0
    assert agent("monitor", "--once").returncode == 1  # the QRS failure
    assert agent("monitor", "--once").returncode == 0  # QRS back; InfluxDB still down
    report = workdir / "report.json"
    assert agent("release", "--once", "--report", str(report)).returncode == 0
    log_file = workdir / "logs" / "agent.log"
    outputs["run stdout"], outputs["run stderr"] = run_until(
        config,
        workdir,
        env,
        lambda: log_file.exists() and log_file.read_text("utf-8").count("run finished") >= 2,
        "both jobs of `license-agent run` to finish",
        level="DEBUG",
    )

    # Exception texts, raised in this process.
    loaded = load_with(config, "INFLUX_TOKEN", TOKEN)
    outputs["destination exception"] = destination_failure(loaded)
    sim.add_fault("*", "error", status=401, count=1)
    with QrsClient(loaded.sites()[0]) as qrs:
        try:
            qrs.about()
        except Exception as exc:
            outputs["qrs exception"] = f"{exc!r} {exc} {getattr(exc, 'body_excerpt', '')}"

    for path in sorted(workdir.rglob("*")):
        if path.is_file() and path.name != "config.yaml":
            outputs[str(path.relative_to(workdir))] = path.read_bytes().decode("utf-8", "replace")

    assert report.exists() and log_file.exists()
    assert any(name.endswith("history.sqlite") for name in outputs)
    json_lines = [line for line in log_file.read_text("utf-8").splitlines() if line.strip()]
    assert json_lines and all(line.startswith("{") for line in json_lines)  # JSON logs
    assert "cannot read the license overview" in outputs["#1 monitor --once stderr"]
    assert "cannot connect to InfluxDB" in outputs["run stderr"]

    secrets = [PASSWORD, TOKEN, PLUGIN_TOKEN, BEARER, *_key_material(certs.client_key)]
    leaks = {
        name: [s for s in secrets if s in text]
        for name, text in outputs.items()
        if any(s in text for s in secrets)
    }
    assert leaks == {}, leaks
    assert not any(re.search(r"PRIVATE KEY", text) for text in outputs.values())
    # The config does hold them, so the grep could have found them had they leaked.
    written = config.read_text("utf-8")
    assert PLUGIN_TOKEN in written and BEARER in written
    assert (PASSWORD if version == 1 else "${env:INFLUX_TOKEN}") in written


def test_secret_values_are_masked_even_when_logged_by_mistake(simulator, certs, workdir) -> None:
    """The last line of defence: a plugin that logs its setting or an exception with a token."""
    from loguru import logger

    from agent.logging import setup_logging

    sim = simulator(build_site(1))
    document = config_document(
        sim.port,
        certs,
        workdir,
        agent={"plugins": {"settings": {"sla_webhook": {"apiToken": PLUGIN_TOKEN}}}},
    )
    config = load(write_config(workdir / "c.yaml", document))
    setup_logging(config)
    with captured_logs() as lines:
        logger.warning("posting with token {}", PLUGIN_TOKEN)
        try:
            raise RuntimeError(f"401 for Authorization: Bearer {BEARER}")
        except RuntimeError as exc:
            logger.opt(exception=exc).error("webhook failed: {}", exc)
    assert lines and not any(PLUGIN_TOKEN in x.message or BEARER in x.message for x in lines)
    assert loud(lines)


# --------------------------------------------------------------------------- servers that echo


COOKIE = "session=ck-77a1b2c3d4-SECRET; theme=dark"
API_KEY = "apikey-9f8e7d6c5b-SECRET"
CUSTOM = "tenantpass-3c4d5e6f7a-SECRET"  # a header whose name says nothing about secrets
ECHO_TOKEN = "v2tok-echo-0a9b8c7d6e-SECRET"
SECRET_HEADERS = [
    {"name": "Cookie", "value": COOKIE},
    {"name": "X-Api-Key", "value": API_KEY},
    {"name": "X-Tenant", "value": CUSTOM},
    {"name": "Authorization", "value": f"Bearer {BEARER}"},
]
ECHO_SECRETS = [COOKIE, "ck-77a1b2c3d4-SECRET", API_KEY, CUSTOM, ECHO_TOKEN, BEARER]


@pytest.fixture
def echo_servers() -> Iterator[tuple[EchoServer, EchoServer]]:
    """(a QRS that answers 500, an InfluxDB 2 that answers 401), both echoing headers."""
    first = ["Authorization", "Cookie", "X-Api-Key", "X-Tenant"]
    qrs, influx = EchoServer(500, first), EchoServer(401, first)
    yield qrs, influx
    qrs.close()
    influx.close()


def _influx2(port: int) -> dict[str, Any]:
    return {
        "enable": True,
        "version": 2,
        "hostIP": "127.0.0.1",
        "hostPort": port,
        "timeout": 2,
        "org": "acme",
        "bucket": "senseops",
        "token": "${env:ECHO_TOKEN}",
    }


def _echo_config(
    qrs_port: int, influx_port: int, certs: Any, workdir: Path, *, use_ssl: bool
) -> dict[str, Any]:
    """One site under ``licenseAgent.sites[]`` with every kind of secret header."""
    destination = {"destination": {"influxDb": {"enable": True}}}
    document = config_document(
        qrs_port,
        certs,
        workdir,
        influx=_influx2(influx_port),
        monitor={"enable": True, "frequency": "every 24 hours", **destination},
        release=release_section(**destination),
        agent={"logging": {"file": str(workdir / "logs" / "agent.log")}},
    )
    butler = document["Butler"]
    qrs = butler.pop("configQRS")
    qrs["useSSL"] = use_ssl
    qrs["retries"] = 0
    qrs["headers"]["static"] += SECRET_HEADERS
    butler["licenseAgent"]["sites"] = [
        {"name": "prod", "configQRS": qrs, "cert": butler.pop("cert")}
    ]
    return document


def _leaks(outputs: dict[str, str]) -> dict[str, list[str]]:
    return {
        name: [s for s in ECHO_SECRETS if s in text]
        for name, text in outputs.items()
        if any(s in text for s in ECHO_SECRETS)
    }


def _files(workdir: Path, outputs: dict[str, str]) -> None:
    for path in sorted(workdir.rglob("*")):
        if path.is_file() and path.suffix != ".yaml":
            outputs[str(path.relative_to(workdir))] = path.read_bytes().decode("utf-8", "replace")


def test_what_servers_echo_never_shows_a_secret(echo_servers, simulator, certs, workdir) -> None:
    """QRS and InfluxDB 2 answer with the request's headers in their error bodies: the error
    line, the destination summary, the log file at TRACE, the report, the heartbeat, the
    outbox and the exception texts show none of the header values, the token or the cookie."""
    echo_qrs, echo_influx = echo_servers
    env = {**os.environ, "ECHO_TOKEN": ECHO_TOKEN, "PYTHONIOENCODING": "utf-8"}
    outputs: dict[str, str] = {}

    def agent(config: Path, *args: str, code: int) -> str:
        label = f"{config.stem} {' '.join(args)}"
        done = run_recorded(config, args, workdir, env, outputs, label, level="TRACE")
        assert done.returncode == code, (label, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done.stdout + done.stderr

    # QRS works (the simulator over mutual TLS); InfluxDB 2 echoes the token it was sent.
    sim = simulator(build_site(2, now=real_now()), now=real_now())
    working = write_config(
        workdir / "working.yaml",
        _echo_config(sim.port, echo_influx.port, certs, workdir, use_ssl=True),
    )
    shown = agent(working, "monitor", "--once", code=0)
    assert "influxdb: FAILED" in shown and "HTTP 401" in shown and "***" in shown, shown
    agent(working, "monitor", "--once", "--json", code=0)

    # QRS itself echoes every header of the site in its 500 answer.
    echoing = write_config(
        workdir / "echoing.yaml",
        _echo_config(echo_qrs.port, echo_influx.port, certs, workdir, use_ssl=False),
    )
    shown = agent(echoing, "monitor", "--once", code=1)
    assert "error: " in shown and "QRS answered 500" in shown and "***" in shown, shown
    report = workdir / "report.json"
    agent(echoing, "release", "--once", "--report", str(report), code=1)
    assert "***" in report.read_text("utf-8")

    heartbeat = workdir / "heartbeat.json"
    outputs["run stdout"], outputs["run stderr"] = run_until(
        echoing,
        workdir,
        env,
        lambda: heartbeat.exists() and "QRS answered 500" in heartbeat.read_text("utf-8"),
        "a failed run in the heartbeat",
    )

    # The exception texts, raised in this process (no logging set up here).
    loaded = load_with(echoing, "ECHO_TOKEN", ECHO_TOKEN)
    outputs["destination exception"] = destination_failure(loaded)
    with QrsClient(loaded.sites()[0]) as qrs, pytest.raises(Exception) as failure:
        qrs.about()
    outputs["qrs exception"] = f"{failure.value!r} {failure.value}"
    outputs["qrs exception"] += str(getattr(failure.value, "body_excerpt", ""))

    _files(workdir, outputs)
    assert heartbeat.exists() and (workdir / "logs" / "agent.log").exists()
    assert any("outbox" in name for name in outputs), sorted(outputs)
    # The servers did get the secrets, so had the agent passed their answers on, the grep
    # would have found them.
    sent = [h for server in echo_servers for h in server.received]
    assert any(h.get("Cookie") == COOKIE and h.get("X-Tenant") == CUSTOM for h in sent)
    assert any(h.get("Authorization") == f"Token {ECHO_TOKEN}" for h in sent)
    assert _leaks(outputs) == {}, _leaks(outputs)
