"""What the alert channels share: the settings base, HTTPS calls with the channel's own CA,
and the plain-text rendering of an alert.

Private to the channel plugins (the leading underscore): third-party channels implement the
:class:`agent.models.Destination` protocol and may render alerts as they like.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from agent import config
from agent.alerts import Alert
from agent.models import FEATURE_ALERT, MEASUREMENT_ALERT, DestinationError, Point
from agent.text import printable

FEATURES = frozenset({FEATURE_ALERT})
#: Seconds; Butler's outgoing webhooks use 10 s as well.
TIMEOUT = 10


class Settings(config.SettingsModel):
    """Strict: a misspelt key is an error with a did-you-mean, never silently ignored (and,
    as everywhere in the config, true or false is no number)."""


class ButlerSection(config.ButlerSection):
    """A section Butler shares with its other features: the keys the agent does not read are
    allowed (they belong to Butler's reload-failure or service monitor alerts)."""


class Unreachable(DestinationError):
    """The channel's server cannot be reached at all (down, silent, TLS refused): the other
    alerts of the batch are not tried (each would wait for the timeout again); they wait in
    the outbox with it."""


def verify_option(ca_file: Path | None, reject_unauthorized: bool = True) -> bool | str:
    """``requests``' ``verify``: the channel's CA file, the system store, or no check."""
    if not reject_unauthorized:
        return False
    return str(ca_file) if ca_file is not None else True


def url_host(url: str) -> str:
    """``host:port`` of a URL, without a ``user:password@`` part (what messages may show)."""
    return requests.utils.urlparse(url).netloc.rsplit("@", 1)[-1]


def call(
    method: str,
    url: str,
    *,
    channel: str,
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
    verify: bool | str = True,
    session: requests.Session | None = None,
) -> requests.Response:
    """One HTTP(S) call; any failure is a :class:`DestinationError` that names the host (never
    the whole URL: Teams and Slack URLs carry their secret in the path).

    Redirects are not followed: a receiver's 3xx is a failure, so an alert (and a GET
    webhook's query) never travels on to another host or to plain ``http://`` on the word of
    an answer. The answer's body is not read: only its status counts, so a receiver that
    sends a body without end cannot hold the channel."""
    host = url_host(url)
    sender = session or requests
    try:
        response = sender.request(
            method.upper(),
            url,
            json=json_body,
            params=params,
            timeout=TIMEOUT,
            verify=verify,
            allow_redirects=False,
            stream=True,
        )
        response.close()
    except requests.exceptions.SSLError as exc:
        raise Unreachable(
            f"{channel}: TLS with {host} failed: the server certificate is not trusted or does"
            f" not match ({_reason(exc)}); check the channel's CA file (cert.certCA)"
        ) from None
    except requests.RequestException as exc:
        raise Unreachable(f"{channel}: cannot reach {host}: {_reason(exc)}") from None
    if response.status_code >= 300:
        moved = " (a redirect; the agent does not follow it)" if response.is_redirect else ""
        raise DestinationError(
            f"{channel}: {host} answered HTTP {response.status_code}"
            f" {printable(response.reason or '', 80)}{moved}"
        )
    return response


def _reason(exc: BaseException) -> str:
    # The innermost reason, without the URL that requests puts in its messages.
    while exc.__context__ is not None and exc.__context__ is not exc:
        exc = exc.__context__
    text = str(exc)
    return text.split(": ", 1)[-1][:200] if text else type(exc).__name__


def plain_text(alert: Alert) -> str:
    """Title and text, as e-mail bodies and MQTT messages show them."""
    lines = [alert.title, "", alert.text]
    if alert.site:
        lines += ["", f"Site: {alert.site}"]
    lines += [f"Time: {alert.time:%Y-%m-%d %H:%M} UTC", "", "-- sense-license-agent"]
    return "\n".join(lines)


def emoji(alert: Alert) -> str:
    return {"resolved": "✅", "test": "🔔"}.get(alert.state) or (
        "🚨" if alert.severity == "critical" else "⚠️"
    )


def send_each(points: Sequence[Point], send: Callable[[Alert], None]) -> None:
    """Send every alert among ``points``; raise one :class:`DestinationError` naming the
    points that failed, so the outbox keeps exactly those for later."""
    failed: list[Point] = []
    errors: list[str] = []
    alerts = [p for p in points if p.measurement == MEASUREMENT_ALERT]
    for number, point in enumerate(alerts):
        try:
            send(Alert.from_point(point))
        except Unreachable as exc:
            # The server is not there: the rest of the batch waits too, untried.
            failed.extend(alerts[number:])
            errors.append(str(exc))
            break
        except DestinationError as exc:
            failed.append(point)
            errors.append(str(exc))
        except Exception as exc:
            # One alert the channel cannot render (a bug, odd text): that one waits in the
            # outbox; the others of the batch still go, instead of all waiting behind it.
            failed.append(point)
            errors.append(f"cannot send the alert {point.tags.get('alert', '')!r}: {exc}")
    if errors:
        raise DestinationError("; ".join(dict.fromkeys(errors)), failed=failed)
