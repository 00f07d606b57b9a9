"""The simulator's HTTPS server and its Python API, :class:`Simulator`.

A ``ThreadingHTTPServer`` behind TLS that requires a client certificate signed by the
simulator's CA (the TLS handshake runs in the connection's own thread, so a stuck client cannot
block others). Every ``/qrs/...`` request passes, in order: fault injection (delay, then maybe an
error, a dropped connection, or a truncated body), the xrfkey check (403), the ``X-Qlik-User``
check (403), routing (404 / 405), and the endpoint. ``/_simulator/...`` admin endpoints need the
client certificate only and are neither faulted nor counted. Responses are HTTP/1.1 with
``Content-Length`` and keep-alive. Nothing is module-level mutable state, so tests can run many
simulators side by side.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .certs import CertPaths, ensure_certs
from .clock import Clock, format_date
from .faults import FaultConfigError, FaultRule, Faults, Stats
from .filtering import FilterError
from .generate import generate_state
from .state import ALLOCATION_COLLECTIONS, SimulatorState, StateError
from .store import Store, encode_json

XSRF_MESSAGE = "XSRF prevention check failed. Possible XSRF discovered."
USER_HEADER_MESSAGE = (
    "Forbidden: the X-Qlik-User header is missing or malformed; "
    "expected 'UserDirectory=<directory>; UserId=<user id>'."
)
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"

_XRFKEY = re.compile(r"^[0-9a-zA-Z]{16}$")
_GUID_SEGMENT = re.compile(
    r"/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?=/|$)"
)
_TABLE_TYPES = {
    "user": "User",
    "professionalaccesstype": "License.ProfessionalAccessType",
    "analyzeraccesstype": "License.AnalyzerAccessType",
    "useraccesstype": "License.UserAccessType",
}
_HANDSHAKE_TIMEOUT = 10.0
_IDLE_TIMEOUT = 300.0


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    drop_connection: bool = False


def _json(value: Any, status: int = 200) -> Response:
    return Response(status, encode_json(value))


def _text(status: int, message: str) -> Response:
    return Response(status, message.encode("utf-8"), TEXT_TYPE)


#: What the ``Date`` header may say: the simulator clock, nothing, or text that is no date.
DATE_HEADER_MODES = ("clock", "omit", "garbled")


class _BadRequest(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- routing ----------------------------------------------------------------------------------

_ALLOCATIONS = "|".join(ALLOCATION_COLLECTIONS)
_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(pattern), template)
    for pattern, template in [
        (r"^/qrs/about$", "/qrs/about"),
        (r"^/qrs/license$", "/qrs/license"),
        (r"^/qrs/license/accesstypeoverview$", "/qrs/license/accesstypeoverview"),
        (rf"^/qrs/license/(?P<c>{_ALLOCATIONS})$", "/qrs/license/{c}"),
        (rf"^/qrs/license/(?P<c>{_ALLOCATIONS})/full$", "/qrs/license/{c}/full"),
        (rf"^/qrs/license/(?P<c>{_ALLOCATIONS})/count$", "/qrs/license/{c}/count"),
        (rf"^/qrs/license/(?P<c>{_ALLOCATIONS})/table$", "/qrs/license/{c}/table"),
        (rf"^/qrs/license/(?P<c>{_ALLOCATIONS})/(?P<id>[^/]+)$", "/qrs/license/{c}/{id}"),
        (r"^/qrs/(?P<c>user)$", "/qrs/user"),
        (r"^/qrs/(?P<c>user)/full$", "/qrs/user/full"),
        (r"^/qrs/(?P<c>user)/count$", "/qrs/user/count"),
        (r"^/qrs/(?P<c>user)/table$", "/qrs/user/table"),
        (r"^/qrs/(?P<c>user)/(?P<id>[^/]+)$", "/qrs/user/{id}"),
    ]
]


def _route(path: str) -> tuple[str, dict[str, str]] | None:
    """(template with the collection filled in and ``{id}`` kept, captured groups) or None."""
    for pattern, template in _ROUTES:
        found = pattern.match(path)
        if found:
            groups = {k: v for k, v in found.groupdict().items() if v is not None}
            return template.replace("{c}", groups.get("c", "")), groups
    return None


def _template_of(path: str) -> str:
    """A stats key for an unrouted path: GUID segments become ``{id}``."""
    return _GUID_SEGMENT.sub("/{id}", path)


def parse_user_header(value: str | None) -> str | None:
    """``'UserDirectory=X; UserId=y'`` (values URL-encoded, spacing free) -> ``'X\\y'`` or None."""
    if not value:
        return None
    parts: dict[str, str] = {}
    for part in value.split(";"):
        key, sep, item = part.partition("=")
        if sep:
            parts[key.strip().lower()] = unquote(item.strip())
    directory, user_id = parts.get("userdirectory"), parts.get("userid")
    if not directory or not user_id:
        return None
    return f"{directory}\\{user_id}"


# -- the application --------------------------------------------------------------------------


class _App:
    """Request handling independent of the socket: faults, checks, endpoints, admin API."""

    def __init__(
        self, store: Store, faults: Faults, clock: Clock, on_reset: Callable[[], None]
    ) -> None:
        self.store = store
        self.faults = faults
        self.clock = clock
        self.stats = Stats()
        self.stop_event = threading.Event()
        self._on_reset = on_reset
        #: What the ``Date`` header of each answer says (:data:`DATE_HEADER_MODES`).
        self.date_header = "clock"

    # QRS ---------------------------------------------------------------------------------

    def qrs(
        self, method: str, path: str, params: dict[str, str], headers: Any, body: bytes
    ) -> Response:
        query_key = params.get("xrfkey")
        header_key = headers.get("X-Qlik-Xrfkey")
        if not (query_key and header_key and _XRFKEY.match(query_key) and query_key == header_key):
            return _text(403, XSRF_MESSAGE)
        actor = parse_user_header(headers.get("X-Qlik-User"))
        if actor is None:
            return _text(403, USER_HEADER_MESSAGE)
        routed = _route(path)
        if routed is None:
            return _text(404, f"Not found: {path}")
        template, groups = routed
        handler, allowed = self._endpoint(template, method)
        if handler is None:
            return Response(405, b"", TEXT_TYPE, {"Allow": ", ".join(allowed)})
        try:
            return handler(groups, params, body, actor)
        except FilterError as error:
            return _text(400, f"Cannot parse the expression: {error}")
        except _BadRequest as error:
            return _text(400, error.message)

    def _endpoint(
        self, template: str, method: str
    ) -> tuple[Callable[..., Response] | None, list[str]]:
        tail = template.rsplit("/", 1)[-1]
        if template == "/qrs/about":
            table = {"GET": self._about}
        elif template == "/qrs/license":
            table = {"GET": self._license}
        elif template == "/qrs/license/accesstypeoverview":
            table = {"GET": self._overview}
        elif tail == "full":
            table = {"GET": self._list_full}
        elif tail == "count":
            table = {"GET": self._count}
        elif tail == "table":
            table = {"POST": self._table}
        elif tail == "{id}":
            table = {"GET": self._get}
            if not template.startswith("/qrs/user/"):
                table["DELETE"] = self._delete
        else:
            table = {"GET": self._list_condensed}
            if template.startswith("/qrs/license/"):
                table["POST"] = self._create
        return table.get(method), sorted(table)

    def _about(
        self, groups: dict[str, str], params: dict[str, str], body: bytes, actor: str
    ) -> Response:
        return _json(self.store.about())

    def _license(
        self, groups: dict[str, str], params: dict[str, str], body: bytes, actor: str
    ) -> Response:
        return _json(self.store.license())

    def _overview(
        self, groups: dict[str, str], params: dict[str, str], body: bytes, actor: str
    ) -> Response:
        return _json(self.store.overview())

    def _list(self, groups: dict[str, str], params: dict[str, str], view: str) -> Response:
        collection = groups["c"]
        objects = self.store.query(
            collection, params.get("filter") or None, params.get("orderby") or None
        )
        return Response(200, self.store.encode_list(collection, objects, view))

    def _list_full(
        self, groups: dict[str, str], params: dict[str, str], body: bytes, actor: str
    ) -> Response:
        return self._list(groups, params, "full")

    def _list_condensed(
        self, groups: dict[str, str], params: dict[str, str], body: bytes, actor: str
    ) -> Response:
        return self._list(groups, params, "condensed")

    def _count(
        self, groups: dict[str, str], params: dict[str, str], body: bytes, actor: str
    ) -> Response:
        return _json({"value": len(self.store.query(groups["c"], params.get("filter") or None))})

    def _get(
        self, groups: dict[str, str], params: dict[str, str], body: bytes, actor: str
    ) -> Response:
        found = self.store.get(groups["c"], groups["id"])
        if found is None:
            return _text(404, f"No object with id {groups['id']}")
        return _json(found)

    def _delete(
        self, groups: dict[str, str], params: dict[str, str], body: bytes, actor: str
    ) -> Response:
        outcome = self.store.delete_allocation(groups["c"], groups["id"], actor)
        if outcome is None:
            return _text(404, f"No object with id {groups['id']}")
        return Response(204)

    def _create(
        self, groups: dict[str, str], params: dict[str, str], body: bytes, actor: str
    ) -> Response:
        try:
            document = json.loads(body.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError):
            raise _BadRequest("The request body is not valid JSON.") from None
        status, answer = self.store.create_allocation(groups["c"], document, actor)
        if isinstance(answer, str):
            return _text(status, answer)
        return _json(answer, status)

    def _table(
        self, groups: dict[str, str], params: dict[str, str], body: bytes, actor: str
    ) -> Response:
        collection = groups["c"]
        try:
            definition = json.loads(body.decode("utf-8") or "null")
        except (UnicodeDecodeError, ValueError):
            raise _BadRequest("The table definition is not valid JSON.") from None
        if not isinstance(definition, dict) or not isinstance(definition.get("columns"), list):
            raise _BadRequest("The table definition needs a 'columns' list.")
        skip, take = _int_param(params, "skip", 0), _int_param(params, "take", 0)
        ascending = params.get("orderascending", "true").lower() != "false"
        try:
            rows = self.store.table(
                collection,
                definition["columns"],
                params.get("filter") or None,
                skip,
                take,
                params.get("sortcolumn") or None,
                ascending,
            )
        except ValueError as error:
            if isinstance(error, FilterError):
                raise
            raise _BadRequest(f"Invalid table definition: {error}") from None
        return _json(
            {
                "id": str(uuid.uuid4()),
                "type": definition.get("type") or _TABLE_TYPES[collection],
                "columnNames": [str(column.get("name", "")) for column in definition["columns"]],
                "rows": rows,
            }
        )

    # admin -------------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: bytes) -> Response:
        try:
            return self._admin(method, path, body)
        except (FaultConfigError, StateError, _BadRequest, ValueError) as error:
            return _text(400, str(error))

    def _admin(self, method: str, path: str, body: bytes) -> Response:
        key = f"{method} {path}"
        if key == "GET /_simulator/stats":
            return _json(self.stats.to_dict())
        if key == "POST /_simulator/stats/reset":
            self.stats.reset()
            return Response(204)
        if key == "GET /_simulator/faults":
            return _json(self.faults.to_dict())
        if key == "POST /_simulator/faults":
            self.faults.update(_json_body(body))
            return _json(self.faults.to_dict())
        if key == "DELETE /_simulator/faults":
            self.faults.clear()
            return Response(204)
        if key == "POST /_simulator/reset":
            self.reset()
            return Response(204)
        if key == "GET /_simulator/state":
            return _json(self.store.snapshot().to_dict())
        if key == "POST /_simulator/state":
            self.store.load(SimulatorState.from_dict(_json_body(body), self.clock.now()))
            return Response(204)
        if key == "GET /_simulator/clock":
            return _json(self.clock_info())
        if key == "POST /_simulator/clock":
            document = _json_body(body)
            if "now" in document:
                self.clock.set(document["now"])
            if "advance_seconds" in document:
                self.clock.advance(dt.timedelta(seconds=float(document["advance_seconds"])))
            if "date_header" in document:
                self.set_date_header(document["date_header"])
            return _json(self.clock_info())
        return _text(404, f"Not found: {path}")

    def clock_info(self) -> dict[str, Any]:
        return {
            "now": format_date(self.clock.now()),
            "fixed": self.clock.fixed is not None,
            "date_header": self.date_header,
        }

    def set_date_header(self, mode: Any) -> None:
        if mode not in DATE_HEADER_MODES:
            raise ValueError(f"date_header must be one of {', '.join(DATE_HEADER_MODES)}")
        self.date_header = mode

    def date_value(self) -> str | None:
        """The ``Date`` header for an answer now: the simulator clock as HTTP writes dates
        (IMF-fixdate), so an agent comparing clocks sees the skew a test set."""
        if self.date_header == "omit":
            return None
        if self.date_header == "garbled":
            return "yesterday, around noon"
        return format_datetime(self.clock.now().astimezone(dt.timezone.utc), usegmt=True)

    def reset(self) -> None:
        """Initial clock and faults (via ``on_reset``), initial state, zero stats."""
        self._on_reset()
        self.date_header = "clock"
        self.store.reset()
        self.stats.reset()


def _json_body(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError):
        raise _BadRequest("The request body is not valid JSON.") from None
    if not isinstance(document, dict):
        raise _BadRequest("The request body must be a JSON object.")
    return document


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    value = params.get(name.lower())
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise _BadRequest(f"Parameter '{name}' must be an integer.") from None
    if number < 0:
        raise _BadRequest(f"Parameter '{name}' must not be negative.")
    return number


# -- HTTP -------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "QRS-Simulator/1.0"
    sys_version = ""
    timeout = _IDLE_TIMEOUT
    server: _Server

    def setup(self) -> None:
        connection = self.request
        connection.settimeout(_HANDSHAKE_TIMEOUT)
        connection.do_handshake()  # in this thread: a slow client cannot stall accept()
        with contextlib.suppress(OSError):  # pragma: no cover
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(connection, True)
        super().setup()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.request, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        app = self.server.app
        method = self.command.upper()
        split = urlsplit(self.path)
        path = unquote(split.path).lower().rstrip("/") or "/"
        try:
            body = self._read_body()
        except ValueError:
            self.close_connection = True
            self._send(_text(400, "Bad request body."))
            return
        if path.startswith("/_simulator/"):
            self._send(app.admin(method, path, body))
            return
        params = {
            key.lower(): values[0]
            for key, values in parse_qs(split.query, keep_blank_values=True).items()
        }
        routed = _route(path)
        template = routed[0] if routed else _template_of(path)
        stats_key = f"{method} {template}"
        decision = app.faults.decide(method, path, template)
        if decision.delay > 0:
            app.stop_event.wait(decision.delay)
        rule = decision.rule
        if rule is not None and rule.action == "reset":
            app.stats.record(stats_key, "reset")
            self._reset()
            return
        if rule is not None and rule.action == "error":
            response = _text(
                rule.status, rule.body if rule.body is not None else _phrase(rule.status)
            )
            if rule.retry_after is not None:
                response.headers["Retry-After"] = str(rule.retry_after)
        else:
            response = app.qrs(method, path, params, self.headers, body)
            if rule is not None and rule.action == "malformed":
                response = _malformed(response)
            elif rule is not None and rule.action == "duplicate":
                response = _duplicated(response, rule.body)
        app.stats.record(stats_key, response.status)
        self._send(response)

    def _send(self, response: Response) -> None:
        status = response.status
        lines = [f"HTTP/1.1 {status} {_phrase(status)}", f"Server: {self.server_version}"]
        date = self.server.app.date_value()
        if date is not None:
            lines.append(f"Date: {date}")
        body = response.body
        if status == 204 or status == 304:
            body = b""
        else:
            lines.append(f"Content-Type: {response.content_type}")
            lines.append(f"Content-Length: {len(body)}")
        lines.extend(f"{name}: {value}" for name, value in response.headers.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if len(body) < 65536:
            self.wfile.write(head + body)
        else:
            self.wfile.write(head)
            self.wfile.write(body)

    def _reset(self) -> None:
        """Drop the connection without an answer (RST where SO_LINGER allows it)."""
        self.close_connection = True
        connection = self.request
        with contextlib.suppress(OSError):  # platforms without SO_LINGER semantics
            linger = struct.pack("HH" if sys.platform == "win32" else "ii", 1, 0)
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        with contextlib.suppress(OSError):  # pragma: no cover
            connection.close()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _malformed(response: Response) -> Response:
    """The same answer with its JSON cut short (a ``{`` for an empty body)."""
    if not response.body:
        return Response(200, b"{", JSON_TYPE, response.headers)
    cut = max(1, len(response.body) // 2)
    if cut >= len(response.body):
        cut = len(response.body) - 1
    return Response(response.status, response.body[:cut] or b"{", JSON_TYPE, response.headers)


def _duplicated(response: Response, overlay: str | None) -> Response:
    """A JSON list answer with every object listed twice, the second copy changed by the
    fields of ``overlay`` (a JSON object); other answers as they are."""
    if response.status != 200 or not response.body.startswith(b"["):
        return response
    changes = json.loads(overlay) if overlay else {}
    twice = [copy for item in json.loads(response.body) for copy in (item, {**item, **changes})]
    return Response(200, encode_json(twice), JSON_TYPE, response.headers)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # On Windows SO_REUSEADDR lets a second server bind a port in use: leave it off there.
    allow_reuse_address = sys.platform != "win32"

    def __init__(self, address: tuple[str, int], app: _App, context: ssl.SSLContext) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Handshake failures (no client cert), resets and timeouts are expected; bugs are not.
        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError, TimeoutError, OSError)):
            return
        super().handle_error(request, client_address)


def server_context(paths: CertPaths) -> ssl.SSLContext:
    """TLS 1.2+ server context that requires a client certificate signed by ``root.pem``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=str(paths.root_cert))
    context.load_cert_chain(str(paths.server_cert), str(paths.server_key))
    return context


# -- the public API ---------------------------------------------------------------------------


class Simulator:
    """A QRS simulator on its own port.

    :param state: a :class:`SimulatorState` or a dict in the state-file format; ``None``
        generates one from ``users`` and ``seed``.
    :param users: number of users to generate when ``state`` is ``None``.
    :param seed: generation seed.
    :param now: freeze the clock at this moment (datetime or ISO string); ``None`` uses the
        state's ``now`` if it has one, else real time.
    :param host: address to bind.
    :param port: port to bind; 0 picks a free one.
    :param cert_dir: where the certificates live (created by :func:`ensure_certs` if needed);
        ``None`` uses a temporary directory removed by :meth:`stop`.
    :param faults: initial fault document (see ``docs/simulator.md``); :meth:`reset` returns to it.
    :param latency_ms: base latency per request, added to ``faults``.
    :param jitter_ms: uniform extra latency in ``[0, jitter_ms]``.
    :param warm_cache: encode all objects' JSON in :meth:`start` (about 1.5 s per 100,000 users
        on a slow machine) so that even the first unfiltered ``/full`` list is fast.
    """

    def __init__(
        self,
        state: SimulatorState | Mapping[str, Any] | None = None,
        *,
        users: int = 200,
        seed: int = 1,
        now: dt.datetime | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_dir: str | Path | None = None,
        faults: Mapping[str, Any] | None = None,
        latency_ms: float = 0.0,
        jitter_ms: float = 0.0,
        warm_cache: bool = False,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._own_cert_dir = cert_dir is None
        self.cert_dir = (
            Path(tempfile.mkdtemp(prefix="qrs-sim-"))
            if cert_dir is None
            else Path(cert_dir).resolve()
        )
        self.clock = Clock(now)
        if state is None:
            loaded = generate_state(users, seed, self.clock.now())
        elif isinstance(state, SimulatorState):
            loaded = state
        else:
            loaded = SimulatorState.from_dict(state, self.clock.now())
        if now is None and loaded.now:
            self.clock.set(loaded.now)
        self._initial_clock = self.clock.fixed
        initial_faults = dict(faults or {})
        if latency_ms:
            initial_faults["latency_ms"] = latency_ms
        if jitter_ms:
            initial_faults["jitter_ms"] = jitter_ms
        self._initial_faults = json.loads(json.dumps(initial_faults))
        self.faults = Faults(self._initial_faults)
        self.store = Store(loaded, self.clock)
        self._app = _App(self.store, self.faults, self.clock, self._restore_initial_settings)
        self._warm_cache = warm_cache
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.certs: CertPaths | None = None

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> str:
        """Create certificates if needed, bind, serve in a background thread; returns :attr:`url`."""
        if self._server is not None:
            return self.url
        self.certs = ensure_certs(self.cert_dir)
        if self._warm_cache:
            self.store.warm()
        self._app.stop_event.clear()
        self._server = _Server(
            (self.host, self._requested_port), self._app, server_context(self.certs)
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"qrs-simulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving, drop open connections, end hangs; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._app.stop_event.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._own_cert_dir:
            shutil.rmtree(self.cert_dir, ignore_errors=True)

    def __enter__(self) -> Simulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the requested one before :meth:`start`)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``https://host:port`` (IPv6 hosts bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    # state -------------------------------------------------------------------------------

    @property
    def state(self) -> SimulatorState:
        """A snapshot of the current state (treat the objects as read-only)."""
        return self.store.snapshot()

    def dump_state(self) -> dict[str, Any]:
        """The current state in the state-file format."""
        return self.store.snapshot().to_dict()

    def load_state(self, state: SimulatorState | Mapping[str, Any]) -> None:
        """Replace the state; it also becomes what :meth:`reset` restores."""
        loaded = (
            state
            if isinstance(state, SimulatorState)
            else SimulatorState.from_dict(state, self.clock.now())
        )
        self.store.load(loaded)

    def reset(self) -> None:
        """Initial state, zero stats, initial faults, initial clock."""
        self._app.reset()

    # clock -------------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self.clock.now()

    def set_now(self, moment: dt.datetime | str | None) -> None:
        """Freeze the clock at ``moment``; ``None`` returns to real time."""
        self.clock.set(moment)

    def advance(self, delta: dt.timedelta) -> None:
        """Move the clock forward (freezing it)."""
        self.clock.advance(delta)

    def set_date_header(self, mode: str) -> None:
        """``"clock"`` (the default: the ``Date`` header follows the clock), ``"omit"`` (no
        ``Date`` header) or ``"garbled"`` (one that is not a date); :meth:`reset` restores it."""
        self._app.set_date_header(mode)

    # stats and faults --------------------------------------------------------------------

    def get_stats(self) -> dict[str, Any]:
        """``{"requests": {"GET /qrs/user/full": n, ...}, "statuses": {"200": n}, "total": n}``."""
        return self._app.stats.to_dict()

    def reset_stats(self) -> None:
        self._app.stats.reset()

    def get_faults(self) -> dict[str, Any]:
        return self.faults.to_dict()

    def set_faults(self, config: Mapping[str, Any]) -> None:
        """Apply a fault document (keys present replace; ``append_rules`` appends)."""
        self.faults.update(config)

    def add_fault(self, match: str, action: str = "error", **options: Any) -> FaultRule:
        """Append one rule, e.g. ``add_fault("GET /qrs/user*", "error", status=503, count=2)``."""
        return self.faults.add(FaultRule.from_dict({"match": match, "action": action, **options}))

    def clear_faults(self) -> None:
        self.faults.clear()

    def _restore_initial_settings(self) -> None:
        self.clock.set(self._initial_clock)
        self.faults.clear()
        self.faults.update(self._initial_faults)
