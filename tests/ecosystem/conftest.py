"""Fixtures for the ecosystem tests: captured log lines, configs, external binaries."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from loguru import logger

from agent.config import AgentConfig
from agent.plugins import parse_config

REPO = Path(__file__).resolve().parents[2]
#: The simulator's frozen "now" and the moment every run in these tests measures from.
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def log_lines() -> Iterator[list[tuple[str, str]]]:
    """Every loguru message during the test, as ``(level, message)``."""
    lines: list[tuple[str, str]] = []
    sink = logger.add(
        lambda m: lines.append((m.record["level"].name, m.record["message"])), level="DEBUG"
    )
    yield lines
    logger.remove(sink)


def build_config(tmp_path: Path, butler: dict[str, Any] | None = None) -> AgentConfig:
    """A validated config from a ``Butler`` dict, as if read from ``tmp_path/config.yaml``."""
    return parse_config({"Butler": butler or {}}, source=tmp_path / "config.yaml")


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., AgentConfig]:
    """``make_config({...Butler keys...})`` -> a validated config in ``tmp_path``."""
    return lambda butler=None: build_config(tmp_path, butler)


@pytest.fixture
def qrs_keys() -> Callable[..., dict[str, Any]]:
    """``qrs_keys(host, port, certs)`` -> the ``configQRS`` and ``cert`` keys of a Butler dict."""
    return qrs_section


def qrs_section(host: str = "qs.example.com", port: int = 4242, certs: Path | None = None) -> dict:
    """``configQRS`` and ``cert`` keys for a Butler dict."""
    folder = certs or Path("certs")
    return {
        "configQRS": {"host": host, "port": port},
        "cert": {
            "clientCert": str(folder / "client.pem"),
            "clientCertKey": str(folder / "client_key.pem"),
            "clientCertCA": str(folder / "root.pem"),
        },
    }


def require_binary(name: str) -> str:
    """The path of a server binary; skip without it, but fail under CI (CI must install it)."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (Debian package {name!r})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must install it")
    pytest.skip(message)


@pytest.fixture
def binary() -> Callable[[str], str]:
    """``binary("prometheus")`` -> its path; skips without it (fails under CI)."""
    return require_binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrometheusServer:
    """A running Prometheus and the two questions the tests ask it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> list[dict]:
        """An instant query; fails the test on a PromQL error."""
        response = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        body = response.json()
        assert body.get("status") == "success", f"{promql!r}: {body.get('error')}"
        return body["data"]["result"]

    def wait_for(self, promql: str, timeout: float = 20) -> list[dict]:
        """Poll until the query has a result (the server scrapes every second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.2)  # a real server on its own clock: no fake clock possible
        pytest.fail(f"prometheus returned nothing for {promql!r} within {timeout} s")

    def label_values(self, label: str, match: str) -> list[str]:
        response = requests.get(
            f"{self.url}/api/v1/label/{label}/values", params={"match[]": match}, timeout=5
        )
        return response.json()["data"]


class ScrapedPrometheus(PrometheusServer):
    """A Prometheus that scrapes ``127.0.0.1:target_port`` every second.

    Bind the agent's metrics server to :attr:`target_port` (and close it after the test).
    One server serves the whole session: Prometheus's target discovery takes about five
    seconds to hand the first target to the scraper, which would otherwise be paid per test.
    Give each test's series a unique ``site`` label so earlier tests' series never match.
    """

    def __init__(self, url: str, target_port: int) -> None:
        super().__init__(url)
        self.target_port = target_port


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScrapedPrometheus]:
    """Debian's prometheus on loopback with its data in a temporary folder."""
    exe = require_binary("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    port, target_port = free_port(), free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: license_agent\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target_port}']\n"
    )
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited: {log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("prometheus did not become ready in 30 s")
            time.sleep(0.1)
        yield ScrapedPrometheus(url, target_port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- the QRS simulator


@pytest.fixture(scope="session")
def eco_certs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from agent.simulator import ensure_certs

    return ensure_certs(tmp_path_factory.mktemp("eco-certs"))


@pytest.fixture(scope="session")
def _eco_sim(eco_certs: Any) -> Iterator[Any]:
    from agent.simulator import Simulator

    sim = Simulator(users=60, seed=8, now=NOW, cert_dir=eco_certs.cert_dir)
    sim.start()
    generated = sim.dump_state()
    yield sim, generated
    sim.stop()


@pytest.fixture
def sim(_eco_sim: tuple[Any, dict[str, Any]]) -> Any:
    """A generated site (60 users) over mutual TLS, fresh for this test; clock at NOW.
    A test may ``load_state`` its own site; the next test gets the generated one again."""
    simulator, generated = _eco_sim
    simulator.load_state(generated)
    simulator.reset()
    return simulator


@pytest.fixture
def sim_config(sim: Any, eco_certs: Any, tmp_path: Path) -> Callable[..., AgentConfig]:
    """``sim_config({...more Butler keys...})`` -> a config for the simulator, its files
    (outbox, journal) in ``tmp_path``."""

    def make(extra: dict[str, Any] | None = None) -> AgentConfig:
        butler: dict[str, Any] = {
            "configQRS": {"host": sim.host, "port": sim.port},
            "cert": {
                "clientCert": str(eco_certs.client_cert),
                "clientCertKey": str(eco_certs.client_key),
                "clientCertCA": str(eco_certs.root_cert),
            },
        }
        for key, value in (extra or {}).items():
            if isinstance(value, dict) and isinstance(butler.get(key), dict):
                butler[key] = {**butler[key], **value}
            else:
                butler[key] = value
        butler.setdefault("licenseAgent", {}).setdefault("stateDir", str(tmp_path / "state"))
        return build_config(tmp_path, butler)

    return make
