"""Shared pieces of the benchmarks: the simulator in its own process, QRS sessions, peak RSS.

The benchmarks in ``bench/`` measure the agent against the QRS simulator over real mutual TLS.
The simulator runs in a separate process (started by :class:`SimulatorProcess` with
``python -m agent.simulator``), so its CPU use never slows the measured client through the GIL,
and each agent phase runs in a fresh process so its peak memory is its own
(:func:`peak_rss_mb`). Nothing here is part of the agent; it only drives it.
"""

from __future__ import annotations

import math
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
import yaml
from requests.adapters import HTTPAdapter

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

QLIK_USER = "UserDirectory=INTERNAL; UserId=sa_api"
#: Only the benchmark's own requests use a fixed key; the agent sends a new one per request.
XRFKEY = "benchbenchbench0"


# --------------------------------------------------------------------------- memory


def peak_rss_mb() -> float | None:
    """The peak resident set size of this process in MB (10**6 bytes), or ``None``.

    Linux: ``VmHWM`` from ``/proc/self/status``; other POSIX: ``ru_maxrss`` (KiB on Linux and
    BSD, bytes on macOS); Windows: ``PeakWorkingSetSize`` through ``ctypes`` (no psutil).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    if os.name == "nt":
        return _windows_peak_working_set()
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def current_rss_mb() -> float | None:
    """The current resident set size in MB where cheaply known (Linux), else ``None``."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    return None


def _windows_peak_working_set() -> float | None:
    import ctypes
    from ctypes import wintypes

    class Counters(ctypes.Structure):
        _fields_ = [
            ("cb", wintypes.DWORD),
            ("PageFaultCount", wintypes.DWORD),
            ("PeakWorkingSetSize", ctypes.c_size_t),
            ("WorkingSetSize", ctypes.c_size_t),
            ("QuotaPeakPagedPoolUsage", ctypes.c_size_t),
            ("QuotaPagedPoolUsage", ctypes.c_size_t),
            ("QuotaPeakNonPagedPoolUsage", ctypes.c_size_t),
            ("QuotaNonPagedPoolUsage", ctypes.c_size_t),
            ("PagefileUsage", ctypes.c_size_t),
            ("PeakPagefileUsage", ctypes.c_size_t),
        ]

    counters = Counters()
    counters.cb = ctypes.sizeof(Counters)
    process = ctypes.windll.kernel32.GetCurrentProcess()  # type: ignore[attr-defined]
    ok = ctypes.windll.psapi.GetProcessMemoryInfo(  # type: ignore[attr-defined]
        process, ctypes.byref(counters), counters.cb
    )
    return counters.PeakWorkingSetSize / 1e6 if ok else None


# --------------------------------------------------------------------------- QRS sessions


class Site:
    """Where a simulator listens and the files to reach it, read from its ``--write-config``."""

    def __init__(self, config_file: Path) -> None:
        document = yaml.safe_load(config_file.read_text(encoding="utf-8"))["Butler"]
        qrs = document["configQRS"]
        # The written config names the certificates relative to its own folder when they are
        # inside it; the benchmark's configs live elsewhere, so make them absolute.
        cert = {key: str(config_file.parent / path) for key, path in document["cert"].items()}
        self.config_file = config_file
        self.url = f"https://{qrs['host']}:{qrs['port']}"
        self.client_pair = (cert["clientCert"], cert["clientCertKey"])
        self.root_cert = cert["clientCertCA"]
        self.connection = {"configQRS": qrs, "cert": cert}

    def session(self, pool: int = 1) -> requests.Session:
        """A keep-alive session with the client certificate and QRS headers (no xrfkey)."""
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        session.cert = self.client_pair
        session.verify = self.root_cert
        session.headers.update({"X-Qlik-User": QLIK_USER, "Accept": "application/json"})
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool, 1), max_retries=0)
        session.mount("https://", adapter)
        return session


class SimulatorProcess:
    """``python -m agent.simulator`` in its own process, and its admin API.

    :param users: generated users; :param latency_ms: added latency per QRS request.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        users: int,
        seed: int = 1,
        latency_ms: float = 0.0,
        startup_timeout: float = 900.0,
    ) -> None:
        self.workdir = workdir
        self.users = users
        self.seed = seed
        self.latency_ms = latency_ms
        self.startup_timeout = startup_timeout
        self.config_file = workdir / f"sim-{users}.yaml"
        self.log_file = workdir / f"sim-{users}.log"
        self.process: subprocess.Popen[str] | None = None
        self.site: Site | None = None
        self._admin: requests.Session | None = None
        self.startup_s = 0.0
        self.started_line = ""

    def start(self) -> SimulatorProcess:
        command = [
            sys.executable,
            "-m",
            "agent.simulator",
            "--users",
            str(self.users),
            "--seed",
            str(self.seed),
            "--port",
            "0",
            "--cert-dir",
            str(self.workdir / "certs"),
            "--write-config",
            str(self.config_file),
            "--latency-ms",
            str(self.latency_ms),
        ]
        started = time.perf_counter()
        log = self.log_file.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONPATH": _pythonpath()},
        )
        log.close()
        lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=self.startup_timeout)
        except queue.Empty:
            self.stop()
            raise RuntimeError(
                f"the simulator did not start within {self.startup_timeout:.0f} s"
            ) from None
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(
                f"the simulator failed to start: {self.log_file.read_text(encoding='utf-8')[-500:]}"
            )
        self.startup_s = time.perf_counter() - started
        self.started_line = self.log_file.read_text(encoding="utf-8").strip()
        self.site = Site(self.config_file)
        self._admin = self.site.session()
        return self

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> SimulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- admin API (not counted, not delayed) -------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        assert self._admin is not None and self.site is not None
        response = self._admin.request(method, self.site.url + path, json=body, timeout=300)
        response.raise_for_status()
        return response.json() if response.content else None

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_simulator/stats")

    def reset_stats(self) -> None:
        self._call("POST", "/_simulator/stats/reset")

    def reset(self) -> None:
        """Initial state, zero stats, initial faults (the latency given at start)."""
        self._call("POST", "/_simulator/reset")

    def set_latency(self, latency_ms: float) -> None:
        self._call("POST", "/_simulator/faults", {"latency_ms": latency_ms})

    def now(self) -> str:
        return self._call("GET", "/_simulator/clock")["now"]

    def count(self, resource: str, filter: str | None = None) -> int:
        """``GET /qrs/license/<resource>/count`` (a QRS request: counted in the stats)."""
        assert self._admin is not None and self.site is not None
        params = {"xrfkey": XRFKEY}
        if filter:
            params["filter"] = filter
        response = self._admin.get(
            f"{self.site.url}/qrs/license/{resource}/count",
            params=params,
            headers={"X-Qlik-Xrfkey": XRFKEY},
            timeout=300,
        )
        response.raise_for_status()
        return int(response.json()["value"])


def _pythonpath() -> str:
    existing = os.environ.get("PYTHONPATH")
    return str(ROOT) + (os.pathsep + existing if existing else "")


def requests_by_kind(stats: Mapping[str, Any]) -> dict[str, int]:
    """Simulator stats -> ``{"GET /qrs/user/full": 550, ...}`` (ids already folded to {id})."""
    return dict(sorted((stats.get("requests") or {}).items()))


def read_requests(by_kind: Mapping[str, int]) -> int:
    return sum(n for kind, n in by_kind.items() if kind.startswith("GET "))


def ceil_div(a: int, b: int) -> int:
    return math.ceil(a / b) if b else 0
