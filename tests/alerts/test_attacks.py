"""Attacks on the alert guarantees: hostile receivers (a redirect to plain HTTP, a receiver
that answers with no end, one that never answers), a damaged or hostile alert state file, a
clock that goes back. Real HTTPS and HTTP servers on loopback; the channels as the agent uses
them."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agent.alerts import (
    FIRING,
    REPEAT,
    AlertStateError,
    AlertStateStore,
    Condition,
    ConditionState,
    transitions,
)
from agent.cli import main
from agent.models import UTC, DestinationError
from agent.simulator.certs import CertPaths
from plugins.alerts.chat import SLACK, ChatChannel, ChatSettings
from tests.alerts.test_channels import access_alert, webhook_channel, webhooks
from tests.alerts.test_cli import access_alert_config, low_availability, simulator  # noqa: F401

NOW = datetime(2026, 12, 5, 6, tzinfo=UTC)


class Server:
    """A loopback HTTP(S) server whose every answer the test sets; it records the paths."""

    def __init__(self, certs: CertPaths | None, answer: Any) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                outer.paths.append(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                answer(self)

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        scheme = "http"
        if certs is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certs.server_cert, certs.server_key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    made: list[Server] = []
    yield made
    for server in made:
        server.close()


def plain_ok(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "2")
    handler.end_headers()
    handler.wfile.write(b"ok")


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_webhook_redirect_to_plain_http_is_not_followed(
    alert_certs: CertPaths, servers: list[Server], tmp_path: Path, status: int
) -> None:
    """The HTTPS receiver answers with a redirect to http://: the alert must not travel in
    plain text to wherever the answer points; the redirect is a failure that names the host."""
    plain = Server(None, plain_ok)
    servers.append(plain)

    def redirect(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", plain.url + "/stolen?token=x")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    secure = Server(alert_certs, redirect)
    servers.append(secure)
    point = access_alert().to_point()
    with pytest.raises(DestinationError, match=f"HTTP {status}") as caught:
        webhook_channel(webhooks(secure, alert_certs), tmp_path).write([point])
    assert caught.value.failed == (point,)  # kept in the outbox for later
    assert secure.paths == ["/hook"] and plain.paths == []
    # Teams and Slack too (their URL carries the secret; the error names the host only).
    settings = ChatSettings.model_validate(
        {
            "enable": True,
            "webhookURL": secure.url + "/services/secret-path",
            "caFile": str(alert_certs.root_cert),
        }
    )
    with pytest.raises(DestinationError, match=f"HTTP {status}") as caught:
        ChatChannel(SLACK, settings, tmp_path).write([point])
    assert "secret-path" not in str(caught.value) and plain.paths == []


def test_a_receiver_that_answers_without_end_is_not_read(
    alert_certs: CertPaths, servers: list[Server], tmp_path: Path
) -> None:
    """200 with a body that never ends: the answer's body is not needed; the send is done once
    the status is in (before, the channel read on until the receiver gave up)."""
    stop = threading.Event()

    def endless(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(10**12))
        handler.end_headers()
        chunk = b"x" * 65536
        while not stop.is_set():
            try:
                handler.wfile.write(chunk)
            except OSError:
                return
            time.sleep(0.01)

    secure = Server(alert_certs, endless)
    servers.append(secure)
    done = threading.Event()

    def send() -> None:
        webhook_channel(webhooks(secure, alert_certs), tmp_path).write([access_alert().to_point()])
        done.set()

    threading.Thread(target=send, daemon=True).start()
    finished = done.wait(8)  # below the channel's 10 s timeout: the body is not read at all
    stop.set()
    assert finished, "the channel kept reading an answer it does not need"


def test_a_receiver_that_never_answers_fails_after_the_timeout_without_the_secret(
    alert_certs: CertPaths, tmp_path: Path
) -> None:
    """TCP accepted, TLS never started: the channel gives up (its timeout), naming the host."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        settings = ChatSettings.model_validate(
            {
                "enable": True,
                "webhookURL": f"https://127.0.0.1:{port}/services/T000/B000/secret-token",
                "caFile": str(alert_certs.root_cert),
            }
        )
        with pytest.raises(DestinationError) as caught:
            ChatChannel(SLACK, settings, tmp_path).write([access_alert().to_point()])
    message = str(caught.value)
    assert "127.0.0.1" in message and "secret-token" not in message and "T000" not in message


# --------------------------------------------------------------------------- the state file


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"version": 1, "sites": {"prod": {"professional:avail', "not JSON"),
        ("[]", "not JSON object"),
        ('{"sites": []}', "sites"),
        ('{"sites": {"prod": {"k": {"since": 5, "last_sent": 5}}}}', "since"),
        (
            '{"sites": {"prod": {"k": {"since": "2026-12-01T00:00:00",'
            ' "last_sent": "2026-12-01T00:00:00"}}}}',
            "time zone",
        ),
        (b"\xff\xfe\x00garbage", "UTF-8"),
    ],
)
def test_a_damaged_state_file_is_an_error_naming_it(tmp_path: Path, content: Any, why: str) -> None:
    store = AlertStateStore(tmp_path)
    if isinstance(content, bytes):
        store.path.write_bytes(content)
    else:
        store.path.write_text(content, encoding="utf-8")
    with pytest.raises(AlertStateError) as caught:
        store.load()
    message = str(caught.value)
    assert str(store.path) in message and "move the file away" in message


def test_a_huge_state_file_is_refused_unread(tmp_path: Path) -> None:
    store = AlertStateStore(tmp_path)
    with store.path.open("wb") as stream:  # sparse: 2 GB that takes no disk
        stream.truncate(2 * 1024**3)
    with pytest.raises(AlertStateError, match="too large"):
        store.load()


def condition() -> Condition:
    return Condition(
        key="professional:available_below",
        license_type="professional",
        title="professional: 5 licenses available",
        text="5 available, threshold 10",
        severity="warning",
        details={},
    )


def test_a_clock_that_went_back_does_not_silence_the_repeat() -> None:
    """The alert was last sent by a clock a month ahead; the clock is corrected. The repeat
    counts from the correction, not from a month from now."""
    ahead = NOW + timedelta(days=30)
    state = {"professional:available_below": ConditionState(ahead, ahead, "t", "professional")}
    repeat = timedelta(hours=24)
    assert transitions([condition()], state, NOW, repeat) == []
    later = transitions([condition()], state, NOW + timedelta(hours=24), repeat)
    assert [a.state for a in later] == [REPEAT]
    # An ordinary repeat is unchanged: fired now, due in 24 hours, not before.
    fresh: dict[str, ConditionState] = {}
    assert [a.state for a in transitions([condition()], fresh, NOW, repeat)] == [FIRING]
    assert transitions([condition()], fresh, NOW + timedelta(hours=23), repeat) == []
    assert [
        a.state for a in transitions([condition()], fresh, NOW + timedelta(hours=24), repeat)
    ] == [REPEAT]


def test_a_damaged_state_file_through_the_monitor_is_one_clear_error_each_run(
    simulator,  # noqa: F811
    alert_certs,
    https_receiver,
    smtp_server,
    tmp_path,
    capsys,
):
    """The monitor run goes on (its points are delivered), the error names the file and what
    to do, and nothing is sent as if the state were empty (no second 'firing')."""
    low_availability(simulator)
    box = smtp_server(starttls=True, login=("agent", "pw"))
    config = access_alert_config(tmp_path, simulator, alert_certs, https_receiver, box, "pw")
    assert main(["monitor", "--once", "-c", str(config)]) == 0
    assert len(https_receiver.wait(1)) == 1  # fired
    state = tmp_path / "state" / "alerts-state.json"
    state.write_text(state.read_text("utf-8").replace("Z", ""), encoding="utf-8")
    capsys.readouterr()
    for _ in range(2):
        # The monitor itself did its work (exit 0, as for any plugin's failure): its output
        # and the log say which file to move away.
        assert main(["monitor", "--once", "-c", str(config)]) == 0
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        assert "Professional" in out or "professional" in out
        for text in (out, err):
            assert str(state) in text and "move the file away" in text and "time zone" in text
    assert len(https_receiver.wait(2, timeout=0.5)) == 1  # not fired again
