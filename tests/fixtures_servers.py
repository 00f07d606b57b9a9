"""Real database servers for the tests: InfluxDB 1.x and VictoriaMetrics.

A pytest plugin (listed in ``tests/conftest.py``'s ``pytest_plugins``) and a small program.

Fixtures:

* ``influxdb_server`` / ``victoriametrics_server`` (session): a running server. The URL comes
  from ``SLA_INFLUXDB_URL`` / ``SLA_VM_URL`` when set (``.ci/run`` starts the servers and sets
  them); otherwise the fixture starts the binary (``influxd``, ``victoria-metrics``) itself on
  127.0.0.1 with its data in a temporary folder. Without the binary the test is skipped, or
  fails when the ``CI`` environment variable is set.
* ``influxdb_database``: a fresh database name on ``influxdb_server``, dropped afterwards.
* ``victoriametrics_factory``: starts private VictoriaMetrics instances a test may stop and
  start again (to take a destination down and bring it back).

Program (used by ``.ci/run``)::

    python tests/fixtures_servers.py serve --dir DIR --env-file FILE

starts both servers, writes ``export SLA_INFLUXDB_URL=...`` lines to FILE once they are ready,
and stops them on SIGTERM or SIGINT. Only the standard library is used here, so this works
before the project is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENV_INFLUXDB = "SLA_INFLUXDB_URL"
ENV_VM = "SLA_VM_URL"
READY_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    method: str, url: str, data: bytes | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    """A plain HTTP request; returns (status, body) for every status, raises OSError when down."""
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class ServerProcess:
    """A server binary run on 127.0.0.1 with its data in ``workdir``."""

    binary = ""
    label = ""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self._log = None

    @classmethod
    def available(cls) -> bool:
        return shutil.which(cls.binary) is not None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = (self.workdir / f"{self.binary}.log").open("ab")
        self.process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited at start; see {self._log.name}")
            try:
                if self.ready():
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.label} not ready after {READY_TIMEOUT:g} s; see {self._log.name}"
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None


class InfluxDB1(ServerProcess):
    """InfluxDB 1.x (Debian ships 1.6): HTTP and the RPC port bound to loopback."""

    binary = "influxd"
    label = "InfluxDB"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.rpc_port = free_port()

    def command(self) -> list[str]:
        config = self.workdir / "influxdb.conf"
        d = self.workdir.as_posix()
        config.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
""",
            encoding="utf-8",
        )
        return [self.binary, "-config", str(config)]

    def ready(self) -> bool:
        return http("GET", f"{self.url}/ping", timeout=2)[0] == 204

    def client(self) -> InfluxDBClient1:
        return InfluxDBClient1(self.url)


class VictoriaMetrics(ServerProcess):
    binary = "victoria-metrics"
    label = "VictoriaMetrics"

    def command(self) -> list[str]:
        return [
            self.binary,
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.workdir / 'data'}",
        ]

    def ready(self) -> bool:
        return http("GET", f"{self.url}/health", timeout=2)[0] == 200

    def client(self) -> VictoriaMetricsClient:
        return VictoriaMetricsClient(self.url)


# --------------------------------------------------------------------------- clients


class InfluxDBClient1:
    """Reads an InfluxDB 1.x server back with InfluxQL."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.host, self.port = (
            urllib.parse.urlsplit(self.url).hostname,
            urllib.parse.urlsplit(self.url).port,
        )

    def query(self, q: str, db: str | None = None, method: str = "GET") -> dict[str, Any]:
        """One InfluxQL statement; times come back as integer nanoseconds."""
        params = {"q": q, "epoch": "ns", **({"db": db} if db else {})}
        encoded = urllib.parse.urlencode(params)
        if method == "GET":
            status, body = http("GET", f"{self.url}/query?{encoded}")
        else:
            status, body = http("POST", f"{self.url}/query", data=encoded.encode())
        data = json.loads(body)
        if status != 200 or "error" in data["results"][0]:
            raise AssertionError(f"InfluxQL {q!r} failed: {status} {body[:300]!r}")
        return data["results"][0]

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """Every row of every series as a dict (column -> value, plus the series' tags)."""
        out = []
        for series in self.query(q, db).get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(series.get("tags") or {})
                out.append(row)
        return out


class VictoriaMetricsClient:
    """Reads VictoriaMetrics back through ``/api/v1/export`` after a forced flush."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        parts = urllib.parse.urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port

    def export(self, match: str) -> list[dict[str, Any]]:
        http("GET", f"{self.url}/internal/force_flush")
        query = urllib.parse.urlencode({"match[]": match})
        status, body = http("GET", f"{self.url}/api/v1/export?{query}")
        if status != 200:
            raise AssertionError(f"export {match!r} failed: {status} {body[:300]!r}")
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]


# --------------------------------------------------------------------------- pytest plugin

try:
    import pytest
except ImportError:  # used as a program before pytest is installed
    pytest = None  # type: ignore[assignment]


def _unavailable(what: str) -> None:
    message = f"{what} is not available"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI is set: .ci/run must provide it", pytrace=False)
    pytest.skip(message)


@contextlib.contextmanager
def _server(env: str, cls: type[ServerProcess], tmp_path_factory: Any) -> Iterator[str]:
    url = os.environ.get(env)
    if url:
        yield url.rstrip("/")
        return
    if not cls.available():
        _unavailable(f"{cls.label} (set {env} or install {cls.binary})")
    server = cls(tmp_path_factory.mktemp(cls.binary)).start()
    try:
        yield server.url
    finally:
        server.stop()


if pytest is not None:

    @pytest.fixture(scope="session")
    def influxdb_server(tmp_path_factory: Any) -> Iterator[InfluxDBClient1]:
        """A running InfluxDB 1.x, as a client that reads it back with InfluxQL."""
        with _server(ENV_INFLUXDB, InfluxDB1, tmp_path_factory) as url:
            yield InfluxDBClient1(url)

    @pytest.fixture
    def influxdb_database(influxdb_server: InfluxDBClient1) -> Iterator[str]:
        """A database name unique to the test (not created), dropped afterwards."""
        name = f"sla_test_{uuid.uuid4().hex[:12]}"
        yield name
        influxdb_server.query(f'DROP DATABASE "{name}"', method="POST")

    @pytest.fixture(scope="session")
    def victoriametrics_server(tmp_path_factory: Any) -> Iterator[VictoriaMetricsClient]:
        """A running VictoriaMetrics, as a client that reads it back with the export API.

        Shared by tests: give each test's points a unique tag and match on it.
        """
        with _server(ENV_VM, VictoriaMetrics, tmp_path_factory) as url:
            yield VictoriaMetricsClient(url)

    @pytest.fixture
    def victoriametrics_factory(tmp_path: Path) -> Iterator[Any]:
        """``start(port=None)`` -> a private VictoriaMetrics the test may ``stop()`` and
        ``start()`` again (same port and data). All are stopped after the test."""
        if not VictoriaMetrics.available():
            _unavailable("the victoria-metrics binary")
        started: list[VictoriaMetrics] = []

        def start(port: int | None = None) -> VictoriaMetrics:
            server = VictoriaMetrics(tmp_path / f"vm{len(started)}", port).start()
            started.append(server)
            return server

        yield start
        for server in started:
            server.stop()


# --------------------------------------------------------------------------- program


def serve(workdir: Path, env_file: Path) -> int:
    """Start both servers, publish their URLs in ``env_file``, stop them on a signal."""
    servers: list[ServerProcess] = []
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        influx = InfluxDB1(workdir / "influxdb").start()
        servers.append(influx)
        vm = VictoriaMetrics(workdir / "victoria-metrics").start()
        servers.append(vm)
        partial = env_file.with_suffix(".tmp")
        partial.write_text(
            f"export {ENV_INFLUXDB}={influx.url}\nexport {ENV_VM}={vm.url}\n", encoding="utf-8"
        )
        partial.replace(env_file)  # atomic: the reader never sees half a file
        print(f"servers ready: InfluxDB {influx.url}, VictoriaMetrics {vm.url}", flush=True)
        while not stopping:
            for server in servers:
                if server.process is None or server.process.poll() is not None:
                    print(f"{server.label} stopped unexpectedly", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        for server in reversed(servers):
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="start InfluxDB and VictoriaMetrics until SIGTERM")
    p.add_argument("--dir", type=Path, default=None, help="data folder (default: a temp folder)")
    p.add_argument("--env-file", type=Path, required=True, help="where to write the URLs")
    args = parser.parse_args(argv)
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="sla-servers-"))
    return serve(workdir, args.env_file)


if __name__ == "__main__":
    sys.exit(main())
