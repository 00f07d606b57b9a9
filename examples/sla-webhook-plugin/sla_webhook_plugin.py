"""sla-webhook-plugin: a complete third-party plugin for sense-license-agent.

It shows the three things most plugins do:

* read and validate its own settings (``Butler.licenseAgent.plugins.settings.webhook``) in
  ``sla_configure``, reporting mistakes as :class:`agent.config.ConfigError` with the key path;
* register a **destination** (``sla_destinations``): ``webhook`` POSTs release events as JSON;
* register **neverRelease rules** (``sla_release_rules``): ``protect_name_pattern`` and
  ``protect_user_attribute``, each judging a whole batch of candidates at once and returning
  the ones it protects with a reason.

The agent finds it through the entry point ``webhook`` in the group ``sense_license_agent``
(see ``pyproject.toml``). Hooks are plain functions: the plugin keeps no state between calls,
so several agents (and tests) can use it side by side.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from agent.config import AgentConfig, ConfigError
from agent.hookspecs import hookimpl
from agent.models import (
    FEATURE_LICENSE_RELEASE,
    MEASUREMENT_RELEASE,
    Candidate,
    Destination,
    DestinationError,
    Point,
    ReleaseRule,
    format_qrs_time,
)

#: The entry point's name: the key of this plugin's settings and of ``plugins.disable``.
NAME = "webhook"
SETTINGS_KEY = f"Butler.licenseAgent.plugins.settings.{NAME}"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class WebhookSettings:
    url: str | None
    timeout: float
    headers: Mapping[str, str]
    name_patterns: tuple[str, ...]
    attributes: tuple[tuple[str, str], ...]


def read_settings(raw: Mapping[str, Any]) -> WebhookSettings:
    """Validate the plugin's settings; every mistake is reported at once, by key path."""
    problems: list[str] = []
    allowed = {"url", "timeout", "headers", "protect"}
    for key in sorted(set(raw) - allowed):
        problems.append(f"{SETTINGS_KEY}.{key}: unknown key; allowed: {', '.join(sorted(allowed))}")

    url = raw.get("url")
    if url is not None:
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(f"{SETTINGS_KEY}.url: got {str(url)[:60]!r}; expected an http(s) URL")

    timeout = raw.get("timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        problems.append(f"{SETTINGS_KEY}.timeout: expected a number of seconds above 0")
        timeout = 10

    headers = raw.get("headers") or {}
    if not isinstance(headers, Mapping):
        problems.append(f"{SETTINGS_KEY}.headers: expected a mapping of header name to value")
        headers = {}

    protect = raw.get("protect") or {}
    if not isinstance(protect, Mapping):
        problems.append(f"{SETTINGS_KEY}.protect: expected namePatterns and/or attributes")
        protect = {}
    patterns = protect.get("namePatterns") or []
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
        problems.append(f"{SETTINGS_KEY}.protect.namePatterns: expected a list of patterns")
        patterns = []
    attributes = []
    for i, item in enumerate(protect.get("attributes") or []):
        if not isinstance(item, Mapping) or not item.get("type") or "value" not in item:
            problems.append(
                f"{SETTINGS_KEY}.protect.attributes[{i}]: expected {{type: ..., value: ...}}"
            )
            continue
        attributes.append((str(item["type"]), str(item["value"])))

    if problems:
        raise ConfigError(problems)
    return WebhookSettings(
        url=str(url) if url else None,
        timeout=float(timeout),
        headers={str(k): str(v) for k, v in headers.items()},
        name_patterns=tuple(patterns),
        attributes=tuple(attributes),
    )


def settings_of(config: AgentConfig) -> WebhookSettings:
    return read_settings(config.plugin_settings(NAME))


# --------------------------------------------------------------------------- the destination


def event_of(point: Point) -> dict[str, Any]:
    """One release event as the webhook receives it."""
    fields = point.fields
    return {
        "license_type": point.tags.get("license_type", ""),
        "user": point.tags.get("user", ""),
        "allocation_id": fields.get("allocation_id", ""),
        "days_since_last_use": fields.get("days_since_last_use"),
        "quarantined": fields.get("quarantined", False),
        "time": format_qrs_time(point.time),
        "tags": dict(point.tags),
    }


class WebhookDestination:
    """POSTs each batch of release events as one JSON document."""

    name = NAME
    features = frozenset({FEATURE_LICENSE_RELEASE})

    def __init__(self, settings: WebhookSettings) -> None:
        assert settings.url
        self.url = settings.url
        self.timeout = settings.timeout
        self.session = requests.Session()
        self.session.headers.update(settings.headers)

    def describe(self) -> str:
        # Only scheme, host and path: a query string or user info may hold a secret.
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"webhook {parts.scheme}://{parts.hostname}{port}{parts.path}"

    def write(self, points: Sequence[Point]) -> None:
        events = [event_of(p) for p in points if p.measurement == MEASUREMENT_RELEASE]
        if not events:
            return
        body = json.dumps({"source": "sense-license-agent", "events": events})
        try:
            response = self.session.post(
                self.url,
                data=body.encode("utf-8"),
                headers={"Content-Type": "application/json"},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise DestinationError(f"{self.describe()}: {type(exc).__name__}", points) from None
        if not 200 <= response.status_code < 300:
            raise DestinationError(
                f"{self.describe()} answered HTTP {response.status_code}", points
            )

    def close(self) -> None:
        self.session.close()


# --------------------------------------------------------------------------- the rules


def _fold(text: str) -> str:
    return text.casefold()


def name_pattern_judge(patterns: Sequence[str]):
    """Protect candidates whose ``DIR\\userId`` or display name matches a pattern."""
    folded = [_fold(p) for p in patterns]

    def judge(candidates: Sequence[Candidate]) -> dict[str, str]:
        vetoes = {}
        for candidate in candidates:
            # The owner still counts when the user was deleted (allocation.owner keeps it).
            names = [candidate.allocation.owner]
            if candidate.user is not None and candidate.user.name:
                names.append(candidate.user.name)
            for pattern, original in zip(folded, patterns, strict=True):
                if any(fnmatch.fnmatchcase(_fold(n), pattern) for n in names):
                    vetoes[candidate.allocation_id] = f"name matches {original!r}"
                    break
        return vetoes

    return judge


def attribute_judge(attributes: Sequence[tuple[str, str]]):
    """Protect candidates whose QRS user has one of the attributes (type and value)."""
    wanted = {(_fold(t), _fold(v)): f"{t}={v}" for t, v in attributes}

    def judge(candidates: Sequence[Candidate]) -> dict[str, str]:
        vetoes = {}
        for candidate in candidates:
            if candidate.user is None:
                continue  # a deleted user has no attributes left to protect it
            for attribute in candidate.user.attributes:
                label = wanted.get((_fold(attribute.type), _fold(attribute.value)))
                if label:
                    vetoes[candidate.allocation_id] = f"user attribute {label}"
                    break
        return vetoes

    return judge


# --------------------------------------------------------------------------- hooks


@hookimpl
def sla_configure(config: AgentConfig) -> None:
    settings_of(config)  # raises ConfigError: the agent stops with the message, exit code 2


@hookimpl
def sla_destinations(config: AgentConfig) -> list[Destination] | None:
    settings = settings_of(config)
    return [WebhookDestination(settings)] if settings.url else None


@hookimpl
def sla_release_rules(config: AgentConfig, site: Any) -> list[ReleaseRule] | None:
    settings = settings_of(config)
    rules = []
    if settings.name_patterns:
        rules.append(
            ReleaseRule(
                name="protect_name_pattern",
                judge=name_pattern_judge(settings.name_patterns),
                description="sla-webhook-plugin: users whose name matches a pattern",
            )
        )
    if settings.attributes:
        rules.append(
            ReleaseRule(
                name="protect_user_attribute",
                judge=attribute_judge(settings.attributes),
                description="sla-webhook-plugin: users with a given QRS user attribute",
            )
        )
    return rules or None
