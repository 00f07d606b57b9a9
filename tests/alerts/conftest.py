"""Real receivers for the alert channels: a mosquitto broker, an SMTP server (aiosmtpd) and an
HTTPS server with its own CA, each on loopback, each recording what it received."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from agent.simulator.certs import CertPaths, ensure_certs


def unavailable(what: str) -> None:
    message = f"{what} is not available"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI is set: .ci/run must provide it", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="session")
def alert_certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    """A CA (root.pem) and a server certificate for localhost and 127.0.0.1."""
    return ensure_certs(tmp_path_factory.mktemp("alert-certs"))


# --------------------------------------------------------------------------- HTTPS receiver


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    status: int = 200

    def wait(self, count: int = 1, timeout: float = 10) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.requests)


@pytest.fixture
def https_receiver(alert_certs: CertPaths) -> Iterator[Receiver]:
    """An HTTPS server whose certificate only ``alert_certs.root_cert`` trusts."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            receiver.requests.append(
                Received(
                    method=self.command,
                    path=parts.path,
                    query={k: v[0] for k, v in parse_qs(parts.query).items()},
                    headers=dict(self.headers),
                    body=self.rfile.read(length) if length else b"",
                )
            )
            self.send_response(receiver.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = do_PUT = _record

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(alert_certs.server_cert, alert_certs.server_key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    receiver.url = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- MQTT


@dataclass
class Broker:
    host: str
    port: int
    #: A second listener that requires user ``agent`` with password ``broker-secret-pw``.
    auth_port: int
    username: str = "agent"
    password: str = "broker-secret-pw"


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    passwd = shutil.which("mosquitto_passwd")
    if binary is None or passwd is None:
        unavailable("the mosquitto MQTT broker (Debian package mosquitto)")
    folder = tmp_path_factory.mktemp("mosquitto")
    port, auth_port = free_port(), free_port()
    password_file = folder / "passwords"
    subprocess.run(
        [passwd, "-c", "-b", str(password_file), "agent", "broker-secret-pw"],
        check=True,
        capture_output=True,
    )
    password_file.chmod(0o600)
    conf = folder / "mosquitto.conf"
    conf.write_text(
        "\n".join(
            [
                "per_listener_settings true",
                # Started as root (CI), mosquitto would switch to its own user, which cannot
                # read the test's private temporary folder.
                *([f"user {getpass.getuser()}"] if hasattr(os, "getuid") else []),
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                f"listener {auth_port} 127.0.0.1",
                "allow_anonymous false",
                f"password_file {password_file}",
                "persistence false",
                "",
            ]
        )
    )
    log = (folder / "mosquitto.log").open("wb")
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
        wait_for_port(auth_port)
        yield Broker("127.0.0.1", port, auth_port)
    finally:
        process.terminate()
        process.wait(10)
        log.close()


@contextlib.contextmanager
def subscribed(broker: Broker, topic: str = "#") -> Iterator[list[tuple[str, str]]]:
    """Collect ``(topic, payload)`` of every message on ``topic`` while the block runs."""
    import paho.mqtt.client as paho

    messages: list[tuple[str, str]] = []
    ready = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *a: ready.set()
    client.on_message = lambda c, u, m: messages.append((m.topic, m.payload.decode()))
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert ready.wait(10), "the test subscriber could not subscribe"
        yield messages
        time.sleep(0.3)  # the last messages in flight
    finally:
        client.disconnect()
        client.loop_stop()


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# --------------------------------------------------------------------------- SMTP


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[Any] = field(default_factory=list)


@pytest.fixture
def smtp_server(alert_certs: CertPaths) -> Iterator[Callable[..., Mailbox]]:
    """Start aiosmtpd servers: ``smtp_server(starttls=True, login=("user", "pw"))``."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    controllers = []

    def start(*, starttls: bool = False, login: tuple[str, str] | None = None) -> Mailbox:
        box = Mailbox("127.0.0.1", free_port())

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                from email import message_from_bytes
                from email.policy import default

                box.messages.append(message_from_bytes(envelope.content, policy=default))
                return "250 OK"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
            ok = (
                login is not None
                and isinstance(data, LoginPassword)
                and (data.login.decode(), data.password.decode()) == login
            )
            return AuthResult(success=ok, handled=False)

        kwargs: dict[str, Any] = {}
        if starttls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(alert_certs.server_cert, alert_certs.server_key)
            kwargs.update(tls_context=context, require_starttls=True)
        if login is not None:
            kwargs.update(
                authenticator=authenticator, auth_required=True, auth_require_tls=starttls
            )
        controller = Controller(
            Handler(), hostname=box.host, port=box.port, ready_timeout=10, **kwargs
        )
        controller.start()
        controllers.append(controller)
        return box

    yield start
    for controller in controllers:
        controller.stop()
