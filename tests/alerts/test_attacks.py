"""Attacks on the alert guarantees: hostile receivers (a redirect to plain HTTP, a receiver
that answers with no end, one that never answers), a damaged or hostile alert state file, a
clock that goes back. Real HTTPS and HTTP servers on loopback; the channels as the agent uses
them."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
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
    MAX_FORECAST_DAYS,
    REPEAT,
    Alert,
    AlertStateError,
    AlertStateStore,
    Condition,
    ConditionState,
    forecast_exhaustion,
    transitions,
)
from agent.cli import main
from agent.htmlreport import load_history, series_forecast
from agent.models import (
    FEATURE_LICENSE_MONITOR,
    UTC,
    DestinationError,
)
from agent.simulator.certs import CertPaths
from plugins.alerts._common import send_each
from plugins.alerts.chat import SLACK, ChatChannel, ChatSettings
from plugins.alerts.early_warning import LicenseAlert, evaluate
from plugins.alerts.email import EmailChannel
from plugins.alerts.mqtt import MqttChannel, MqttConfig
from plugins.alerts.webhook import WebhookNotification
from plugins.destinations.sqlite import SqliteDestination
from tests.alerts.conftest import wait_until
from tests.alerts.test_channels import access_alert, email_settings, webhook_channel, webhooks
from tests.alerts.test_cli import (  # noqa: F401
    access_alert_config,
    every_channel_config,
    low_availability,
    simulator,
    write_config,
)
from tests.alerts.test_forecast_alert import point

NOW = datetime(2026, 12, 5, 6, tzinfo=UTC)


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        yield listener.getsockname()[1]


class Server:
    """A loopback HTTP(S) server whose every answer the test sets; it records the paths."""

    def __init__(self, certs: CertPaths | None, answer: Any, port: int = 0) -> None:
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

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
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
    with silent_port() as port:
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


# --------------------------------------------------------------------------- the forecast

START = datetime(2026, 10, 1, 6, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.mark.parametrize(
    "values",
    [
        [100.0, 100.0, 100.0 - 1e-7],  # all but flat: exhausted in millions of years
        [100.0, 100.0 - 1e-3, 100.0 - 2e-3, 100.0 - 2e-3],  # a tiny fall, noise around it
    ],
    ids=["all but flat", "tiny fall"],
)
def test_an_all_but_flat_trend_is_no_forecast_not_a_crash(values: list[float]) -> None:
    """A fall of a millionth a day reaches 0 after the calendar ends (year 9999): before, the
    date overflowed, and every alert of the site failed in every run while the trend lasted."""
    samples = [(START + i * DAY, v) for i, v in enumerate(values)]
    forecast = forecast_exhaustion("professional", samples)
    assert forecast is None or forecast.days_left <= MAX_FORECAST_DAYS
    if forecast is not None:
        assert forecast.latest is None or forecast.latest <= START + MAX_FORECAST_DAYS * 2 * DAY


@pytest.mark.parametrize(
    "samples",
    [
        [(START, float("nan")), (START + DAY, float("inf")), (START + 2 * DAY, -5.0)],
        [(START, 10.0), (START, 5.0), (START, 1.0)],  # one moment three times
        [(START, 10.0), (START + 3 * DAY, 8.0), (START + 3 * DAY, 6.0), (START + 3 * DAY, 7.0)],
    ],
    ids=["nan inf negative", "one timestamp", "duplicates"],
)
def test_odd_histories_give_no_forecast_or_a_sane_one(samples) -> None:
    forecast = forecast_exhaustion("professional", samples)
    if forecast is not None:
        assert math.isfinite(forecast.days_left) and forecast.days_left >= 0
        assert forecast.available > 0


def test_licenses_bought_mid_window_do_not_hide_a_forecast(tmp_path: Path) -> None:
    """10 licenses a day are taken. On day 15, with 50 left, 200 more are bought: 250 left, 25
    days at that rate, so the forecast alert (30 days) stays. Before, the fit saw the jump as
    a turn of the trend: 'resolved', then silence until the purchase left the 30-day window,
    with 10 days left."""
    settings = LicenseAlert.model_validate(
        {
            "enable": True,
            "repeatHours": 0,
            "historyDays": 30,
            "licenseType": {"professional": {"forecastDays": 30}},
        }
    )
    db = SqliteDestination(tmp_path / "history.sqlite", frozenset({FEATURE_LICENSE_MONITOR}))
    state = tmp_path / "state"
    sent: list[str] = []
    for day in range(0, 25):
        total = 200.0 if day < 15 else 400.0
        available = 200.0 - 10 * day + (200 if day >= 15 else 0)
        current = point(START + day * DAY, available, total)
        batch = evaluate(
            settings, [current], current.time, site="", state_dir=state, history_path=db.path
        )
        db.write([current])
        batch.commit()
        sent += [f"{day}:{Alert.from_point(p).state}" for p in batch.points]
    assert sent[0].endswith(":firing")
    assert not [s for s in sent if s.endswith(":resolved")], sent
    # The report's chart draws the same forecast: 250 - 90 = 160 left on day 24, 16 days.
    [series] = load_history(db.path).usage
    forecast = series_forecast(series, 30)
    assert forecast is not None and forecast.days_left == pytest.approx(16, abs=0.01)


def test_no_secret_in_alert_test_output_at_trace(  # noqa: F811
    simulator,  # noqa: F811
    alert_certs,
    mosquitto,
    https_receiver,
    smtp_server,
    tmp_path,
    capsys,
):
    """Every channel at TRACE, once accepted and once refused (wrong passwords, a receiver
    answering 403): no password, no webhook token, in any output."""
    box = smtp_server(starttls=True, login=("agent", "smtp-secret-pw-1"))
    secrets = ["smtp-secret-pw-1", "broker-secret-pw", "teams-token-7f3a", "slack-token-9c1b"]
    secrets.append("hook-token-5d2e")

    def config(smtp_password: str, mqtt_password: str) -> Path:
        mqtt = {
            "enable": True,
            "brokerHost": mosquitto.host,
            "brokerPort": mosquitto.auth_port,
            "username": "agent",
            "password": mqtt_password,
        }
        hook = {
            "webhookURL": https_receiver.url + "/hook?token=hook-token-5d2e",
            "httpMethod": "POST",
            "cert": {"enable": True, "certCA": str(alert_certs.root_cert)},
        }
        return every_channel_config(
            tmp_path,
            simulator,
            alert_certs,
            https_receiver,
            box,
            mqtt_config=mqtt,
            webhooks={"enable": True, "licenseAgentAlert": {"webhooks": [hook]}},
            smtp_password=smtp_password,
            teams_path="/teams/teams-token-7f3a",
            slack_path="/slack/slack-token-9c1b",
        )

    assert main(["alert", "test", "--log-level", "TRACE", "-c", str(config(*secrets[:2]))]) == 0
    out, err = capsys.readouterr()
    assert " sent " in out
    https_receiver.status = 403
    wrong = ["smtp-wrong-pw-2", "broker-wrong-pw-3"]
    assert main(["alert", "test", "--log-level", "TRACE", "-c", str(config(*wrong))]) == 1
    out2, err2 = capsys.readouterr()
    assert "403" in out2 + err2 and "refused" in out2 + err2
    for text in (out, err, out2, err2):
        for secret in [*secrets, *wrong]:
            assert secret not in text, (secret, text)


def test_a_broker_that_never_answers_connect_is_one_error_after_the_timeout(tmp_path: Path) -> None:
    """TCP accepted, no CONNACK ever: the channel gives up after its timeout with one plain
    message naming the broker (not wrapped twice), and no password."""
    with silent_port() as port:
        settings = MqttConfig.model_validate(
            {
                "enable": True,
                "brokerHost": "127.0.0.1",
                "brokerPort": port,
                "username": "agent",
                "password": "mqtt-secret-pw-4",
            }
        )
        channel = MqttChannel(settings, server_license=True, access_alerts=True, base_dir=tmp_path)
        with pytest.raises(DestinationError) as caught:
            channel.write([access_alert().to_point()])
    assert str(caught.value) == f"mqtt: the broker 127.0.0.1:{port} did not answer in time"


def test_an_alert_title_with_line_breaks_is_one_subject_line_and_blocks_nothing(
    smtp_server, alert_certs, tmp_path: Path
) -> None:
    """A title with CR/LF (a third-party alert plugin quoting a QRS name): before, building the
    message raised ValueError, not a channel error, so the whole batch stayed in the outbox and
    every later e-mail alert waited behind it, for good. Now the subject is one line (no
    forged header) and the other alerts of the batch go too."""
    box = smtp_server()
    hostile = dataclasses.replace(
        access_alert(), key="x", title="Name\r\nBcc: evil@example.com\x1b[2J", text="a\r\nb"
    )
    EmailChannel(email_settings(box, alert_certs), tmp_path).write(
        [hostile.to_point(), access_alert().to_point()]
    )
    assert wait_until(lambda: len(box.messages) == 2)
    first = box.messages[0]
    assert "Bcc" not in first and "evil@example.com" not in str(first.get_all("To"))
    assert "\n" not in first["Subject"] and "\x1b" not in first["Subject"]
    assert "Name" in first["Subject"]


def test_an_alert_a_channel_cannot_render_does_not_hold_the_others() -> None:
    """Any error for one alert (not only a channel error) fails that alert alone: it waits
    in the outbox, the others of the batch are sent."""
    sent: list[str] = []
    bad = dataclasses.replace(access_alert(), key="bad")

    def send(alert: Any) -> None:
        if alert.key == "bad":
            raise ValueError("cannot render")
        sent.append(alert.key)

    points = [bad.to_point(), access_alert().to_point()]
    with pytest.raises(DestinationError, match="cannot render") as caught:
        send_each(points, send)
    assert caught.value.failed == (points[0],)
    assert sent == ["professional:available_below"]


def test_a_silent_chat_server_is_waited_for_once_per_batch(
    alert_certs: CertPaths, tmp_path: Path
) -> None:
    """A Teams or Slack endpoint that accepts and never answers: before, each alert of the
    batch waited the whole timeout again (the monitor run stalled alerts x 10 s). Now the
    first timeout keeps the whole batch in the outbox, untried."""
    accepted: list[socket.socket] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except OSError:
                    continue

        threading.Thread(target=accept, daemon=True).start()
        settings = ChatSettings.model_validate(
            {
                "enable": True,
                "webhookURL": f"https://127.0.0.1:{port}/services/x",
                "caFile": str(alert_certs.root_cert),
            }
        )
        points = [dataclasses.replace(access_alert(), key=f"k{n}").to_point() for n in range(3)]
        try:
            with pytest.raises(DestinationError) as caught:
                ChatChannel(SLACK, settings, tmp_path).write(points)
        finally:
            stop.set()
            for connection in accepted:
                connection.close()
    assert caught.value.failed == tuple(points)
    assert len(accepted) == 1


def test_a_password_in_a_chat_webhook_url_is_not_shown(  # noqa: F811
    simulator,  # noqa: F811
    alert_certs,
    https_receiver,
    tmp_path,
    capsys,
):
    """`https://user:password@host/...` (a proxy that wants a login): before, `alert test`
    and `config check` described the channel as 'Slack webhook at user:password@host'."""
    url = https_receiver.url.replace("https://", "https://agent:chat-pass-1@") + "/slack/x"
    config = write_config(
        tmp_path,
        simulator,
        alert_certs,
        licenseMonitor={
            "alert": {
                "enable": True,
                "licenseType": {"professional": {"availableBelow": 1}},
                "destination": {
                    "slack": {
                        "enable": True,
                        "webhookURL": url,
                        "caFile": str(alert_certs.root_cert),
                    }
                },
            }
        },
    )
    assert main(["alert", "test", "-c", str(config)]) == 0
    assert main(["config", "check", "-c", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "Slack webhook at 127.0.0.1" in out
    assert "chat-pass-1" not in out + err and "agent:" not in out + err


def test_a_broken_webhook_does_not_starve_the_others_of_its_group(
    alert_certs: CertPaths, https_receiver, servers: list[Server], tmp_path: Path
) -> None:
    """A group with an old URL that is down, then a working one: before, the first failure
    ended the alert's sending, so the working webhook never got any alert. Now every webhook
    is tried; the alert stays in the outbox for the broken one, and its retries go to that one
    only (no duplicate at the others), also from a new process."""
    from tests.alerts.conftest import free_port

    down = free_port()
    settings = WebhookNotification.model_validate(
        {
            "enable": True,
            "licenseAgentAlert": {
                "webhooks": [
                    {
                        "webhookURL": f"https://127.0.0.1:{down}/old",
                        "httpMethod": "POST",
                        "cert": {"enable": True, "certCA": str(alert_certs.root_cert)},
                    },
                    {
                        "webhookURL": https_receiver.url + "/hook",
                        "httpMethod": "POST",
                        "cert": {"enable": True, "certCA": str(alert_certs.root_cert)},
                    },
                ]
            },
        }
    )
    point = access_alert().to_point()
    with pytest.raises(DestinationError, match="cannot reach") as caught:
        webhook_channel(settings, tmp_path).write([point])
    assert caught.value.failed == (point,)
    assert len(https_receiver.wait(1)) == 1
    # The outbox retries (a new process: a new channel object): the working webhook is not
    # sent the alert again.
    with pytest.raises(DestinationError):
        webhook_channel(settings, tmp_path).write([point])
    # The old URL comes back: it gets the alert, once; the memo is cleared.
    revived = Server(alert_certs, plain_ok, port=down)
    servers.append(revived)
    webhook_channel(settings, tmp_path).write([point])
    assert revived.paths == ["/old"]
    assert len(https_receiver.wait(2, timeout=0.5)) == 1
    assert json.loads((tmp_path / "webhook-delivered.json").read_text("utf-8")) == {}
