"""Builders for the reliability tests: hand-built sites, config files, log capture, runs.

A site here is small and every expected outcome can be read off it: ``CANDIDATES`` are
allocations nothing protects and that are past the 30-day threshold; ``PROTECTED`` are past it
too but protected by a neverRelease rule; ``RECENT`` are used too recently. Configs are written
to real files (the CLI reads them in subprocesses) with the simulator's certificates.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from loguru import logger

from agent.config import AgentConfig
from agent.journal import JournalEntry
from agent.models import format_qrs_time
from agent.plugins import load_config
from agent.simulator import Simulator
from agent.simulator.certs import CertPaths

UTC = timezone.utc
#: The moment the in-process tests measure from (the simulator's frozen clock).
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
PRO = "professionalaccesstype"
ANA = "analyzeraccesstype"
DELETE_PRO = f"DELETE /qrs/license/{PRO}/{{id}}"
DELETE_ANA = f"DELETE /qrs/license/{ANA}/{{id}}"


def journal_entry(
    allocation_id: str, at: datetime = NOW, *, resource: str = PRO, user: str = "ACME\\someone"
) -> JournalEntry:
    """A release journal entry: one DELETE of ``allocation_id`` sent at ``at``."""
    return JournalEntry(
        site="127.0.0.1",
        license_type="professional" if resource == PRO else "analyzer",
        resource=resource,
        allocation_id=allocation_id,
        user=user,
        days_since_last_use=45,
        last_used=NOW - timedelta(days=45),
        at=at,
    )


def real_now() -> datetime:
    """The real time: for sites served to agents in subprocesses, which measure from it."""
    return datetime.now(UTC).replace(microsecond=0)


def ago(days: float, now: datetime = NOW) -> str:
    return format_qrs_time(now - timedelta(days=days))


def uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


@dataclass
class Site:
    """A state document plus the allocation ids by what the release should do with them."""

    document: dict[str, Any]
    candidates: dict[str, str] = field(default_factory=dict)  # allocation id -> resource
    protected: dict[str, str] = field(default_factory=dict)
    recent: dict[str, str] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)  # allocation id -> DIR\\user

    def all(self) -> dict[str, str]:
        return {**self.candidates, **self.protected, **self.recent}


def build_site(
    candidates: int = 8,
    *,
    now: datetime = NOW,
    tag: str = "",
    analyzer_every: int = 3,
    names: Sequence[tuple[str, str, str]] = (),
) -> Site:
    """A site with ``candidates`` releasable allocations (every ``analyzer_every``-th an
    Analyzer one), three protected ones (by user, by tag, by directory) and two recent ones.

    ``tag`` makes the ids unique (several sites over one simulator's life).
    ``names`` adds releasable users ``(directory, userId, name)`` with unusual characters.
    """
    users: list[dict[str, Any]] = []
    pro: list[dict[str, Any]] = []
    ana: list[dict[str, Any]] = []
    site = Site(document={})

    def add(
        directory: str,
        user_id: str,
        kind: str,
        days: float | None,
        bucket: dict[str, str],
        **extra: Any,
    ) -> None:
        user = {
            "id": uid(tag, "user", directory, user_id),
            "userDirectory": directory,
            "userId": user_id,
            "name": extra.pop("name", user_id),
            "tags": extra.pop("tags", []),
            "createdDate": ago(900, now),
        }
        users.append(user)
        allocation = {
            "id": uid(tag, "allocation", directory, user_id, kind),
            "user": user["id"],
            "createdDate": ago(800, now),
            "lastUsed": None if days is None else ago(days, now),
        }
        (pro if kind == PRO else ana).append(allocation)
        bucket[allocation["id"]] = kind
        site.owners[allocation["id"]] = f"{directory}\\{user_id}"

    for n in range(candidates):
        kind = ANA if analyzer_every and n % analyzer_every == analyzer_every - 1 else PRO
        # One never-used allocation (lastUsed null, assigned long ago) among the candidates.
        add("ACME", f"user{n:03d}", kind, None if n == 1 else 40 + n, site.candidates)
    for directory, user_id, name in names:
        add(directory, user_id, PRO, 45, site.candidates, name=name)
    add("INTERNAL", "sa_api", PRO, 90, site.protected)
    add("ACME", "keeper", PRO, 100, site.protected, tags=[{"name": "License do not release"}])
    add("ADMIN", "qs_admin", ANA, 300, site.protected)
    add("ACME", "busy", PRO, 2, site.recent)
    add("ACME", "busier", ANA, 10, site.recent)
    site.document = {
        "now": format_qrs_time(now),
        "users": users,
        PRO: pro,
        ANA: ana,
        "totals": {"professional": 1000, "analyzer": 1000},
    }
    return site


NEVER_RELEASE = {
    "user": [{"userDir": "INTERNAL", "userId": "sa_api"}],
    "tag": ["License do not release"],
    "userDirectory": ["ADMIN"],
    "inactive": "Ignore",
    "blocked": "Ignore",
    "removedExternally": "Ignore",
}


def release_section(**overrides: Any) -> dict[str, Any]:
    section = {
        "enable": True,
        "dryRun": False,
        "frequency": "every 24 hours",
        "maxReleasesPerRun": 1000,
        "deleteConcurrency": 2,
        "neverRelease": NEVER_RELEASE,
        "licenseType": {
            "professional": {"enable": True, "releaseThresholdDays": 30},
            "analyzer": {"enable": True, "releaseThresholdDays": 30},
        },
    }
    section.update(overrides)
    return section


def config_document(
    port: int,
    certs: CertPaths,
    state_dir: Path,
    *,
    release: dict[str, Any] | None = None,
    monitor: dict[str, Any] | None = None,
    qrs: dict[str, Any] | None = None,
    influx: dict[str, Any] | None = None,
    agent: dict[str, Any] | None = None,
    sqlite: bool = True,
    jsonl: bool = True,
) -> dict[str, Any]:
    """A full Butler document for a simulator on ``port``; outputs go to ``state_dir``."""
    license_agent: dict[str, Any] = {
        "stateDir": str(state_dir),
        "runAtStart": True,
        "destinations": {
            "sqlite": {"enable": sqlite, "path": str(state_dir / "history.sqlite")},
            "jsonl": {"enable": jsonl, "path": str(state_dir / "events.jsonl")},
        },
    }
    for key, value in (agent or {}).items():
        license_agent[key] = value
    return {
        "Butler": {
            "configQRS": {
                "host": "127.0.0.1",
                "port": port,
                "useSSL": True,
                "rejectUnauthorized": True,
                "headers": {
                    "static": [
                        {"name": "X-Qlik-User", "value": "UserDirectory=INTERNAL; UserId=sa_api"}
                    ]
                },
                "connectTimeout": 2,
                "readTimeout": 5,
                "retries": 2,
                **(qrs or {}),
            },
            "cert": {
                "clientCert": str(certs.client_cert),
                "clientCertKey": str(certs.client_key),
                "clientCertCA": str(certs.root_cert),
            },
            "influxDb": influx or {"enable": False},
            "qlikSenseLicense": {
                "licenseMonitor": monitor or {"enable": False},
                "licenseRelease": release or release_section(),
            },
            "licenseAgent": license_agent,
        }
    }


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return path


def load(path: Path) -> AgentConfig:
    return load_config(path)


# --------------------------------------------------------------------------- reading outputs


def release_rows(history: Path) -> list[dict[str, Any]]:
    """The ``release_event`` rows of a sqlite destination file (empty if none yet)."""
    if not history.exists():
        return []
    db = sqlite3.connect(str(history))
    try:
        db.row_factory = sqlite3.Row
        try:
            rows = db.execute("SELECT * FROM release_event ORDER BY time_ns").fetchall()
        except sqlite3.OperationalError:
            return []
        return [dict(r) for r in rows]
    finally:
        db.close()


def jsonl_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text("utf-8").splitlines()
    return [e for e in map(json.loads, lines) if e["measurement"] == "qlik_sense_license_release"]


def deletes(sim: Simulator) -> int:
    requests = sim.get_stats()["requests"]
    return requests.get(DELETE_PRO, 0) + requests.get(DELETE_ANA, 0)


def present(sim: Simulator) -> dict[str, dict[str, Any]]:
    """Allocation id -> its current QRS object, both releasable types."""
    state = sim.state
    return {**state.allocations[PRO], **state.allocations[ANA]}


# --------------------------------------------------------------------------- logs


@dataclass
class LogLine:
    level: str
    message: str
    thread: str


@contextmanager
def captured_logs(level: str = "DEBUG") -> Iterator[list[LogLine]]:
    """Every loguru record at ``level`` or above while the block runs."""
    lines: list[LogLine] = []
    handler = logger.add(
        lambda m: lines.append(
            LogLine(m.record["level"].name, m.record["message"], m.record["thread"].name)
        ),
        level=level,
    )
    try:
        yield lines
    finally:
        logger.remove(handler)


def loud(lines: Sequence[LogLine]) -> list[LogLine]:
    """Lines an operator is alerted by: WARNING and above."""
    return [line for line in lines if line.level in ("WARNING", "ERROR", "CRITICAL")]


# --------------------------------------------------------------------------- subprocesses


def agent_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent", *args]


def spawn(*args: str, cwd: Path, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        agent_command(*args),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        **kwargs,
    )


def run_agent(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        agent_command(*args),
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def wait_until(condition: Callable[[], bool], timeout: float = 30, what: str = "") -> None:
    """Poll ``condition`` (a real-time wait: for subprocesses, which have no fake clock)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- a fake clock


class FakeClock:
    """``now`` and ``sleep`` for a :class:`agent.schedule.RunLoop`: sleeping advances time at
    once, after the runs in progress have ended. ``on_tick(clock)`` runs before each advance
    and may stop the loop or change the world (take QRS down, bring it back)."""

    def __init__(self, start: datetime) -> None:
        self.moment = start
        self.loop: Any = None
        self.on_tick: Callable[[FakeClock], None] | None = None

    def now(self) -> datetime:
        return self.moment

    def sleep(self, seconds: float) -> None:
        assert self.loop is not None
        assert self.loop.wait_for_jobs(timeout=60), "a run did not end"
        if self.on_tick is not None:
            self.on_tick(self)
        if not self.loop.stopping:
            self.moment += timedelta(seconds=seconds)


def no_sleep(seconds: float) -> None:
    """The QRS client's wait between retries, skipped (the backoff is tested in tests/qrs)."""


# --------------------------------------------------------------------------- HTTP servers


class LoopbackHttp:
    """A threaded HTTP server on 127.0.0.1 (a free port) for a test's own fake servers:
    ``handle(request)`` answers every method; :meth:`answer` sends a JSON body."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.handle(self, self.rfile.read(length) if length else b"")

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def handle(self, request: Any, body: bytes) -> None:
        raise NotImplementedError

    @staticmethod
    def answer(request: Any, status: int, body: bytes = b"") -> None:
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FlakyInflux(LoopbackHttp):
    """A local HTTP server that answers like InfluxDB 1.x and records every line it accepts.

    ``up = False`` makes it answer 503 to everything without recording (a clean failure: the
    agent cannot know more than "not written"). Lines are kept in arrival order.
    """

    def __init__(self) -> None:
        import threading

        self.up = True
        self.lines: list[str] = []
        self.refused = 0
        self._lock = threading.Lock()
        super().__init__()

    def handle(self, request: Any, body: bytes) -> None:
        with self._lock:
            if not self.up:
                self.refused += 1
                self.answer(request, 503, b'{"error":"down"}')
                return
            if request.path.startswith("/write"):
                self.lines.extend(x for x in body.decode().split("\n") if x)
                self.answer(request, 204)
            else:
                self.answer(request, 200, b'{"results":[{"statement_id":0}]}')


class EchoServer(LoopbackHttp):
    """Answers every request with ``status`` and an InfluxDB-style JSON error whose message
    echoes the request's headers, ``first`` ones first (as some proxies and misconfigured
    servers do), then the header lines themselves. ``received`` holds the headers it got."""

    def __init__(self, status: int, first: Sequence[str]) -> None:
        self.status = status
        self.first = list(first)
        self.received: list[dict[str, str]] = []
        super().__init__()

    def handle(self, request: Any, body: bytes) -> None:
        headers = dict(request.headers.items())
        self.received.append(headers)
        order = [n for n in self.first if n in headers]
        order += [n for n in headers if n not in self.first]
        echoed = "; ".join(f"{name}: {headers[name]}" for name in order)
        error = json.dumps({"code": "unauthorized", "message": f"denied {echoed}"})
        lines = "\n".join(f"{name}: {headers[name]}" for name in order)
        self.answer(request, self.status, f"{error}\n{lines}".encode())
