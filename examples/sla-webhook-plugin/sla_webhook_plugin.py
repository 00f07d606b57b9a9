"""sla-webhook-plugin: a complete third-party plugin for sense-license-agent.

It shows the three things most plugins do:

* declare the config keys it owns, each with a pydantic model (``sla_settings``): the agent
  validates them with its own error messages (key path, value, what is expected,
  did-you-mean), puts them in the JSON Schema and lists them in ``config check``;
* register a **destination** (``sla_destinations``): ``webhook`` POSTs release events as JSON,
  configured at ``Butler.licenseAgent.destinations.webhook``;
* register **neverRelease rules** (``sla_release_rules``): ``protect_name_pattern`` and
  ``protect_user_attribute`` (``neverRelease.namePattern`` and ``neverRelease.userAttribute``),
  each judging a whole batch of candidates at once and returning the ones it protects.

The agent finds it through the entry point ``webhook`` in the group ``sense_license_agent``
(see ``pyproject.toml``). Hooks receive their validated settings and keep no state between
calls, so several agents (and tests) can use it side by side.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
from pydantic import Field, field_validator, model_validator

from agent.config import OptionalList, SettingsModel
from agent.hookspecs import Settings, hookimpl
from agent.models import (
    FEATURE_LICENSE_RELEASE,
    MEASUREMENT_RELEASE,
    Candidate,
    Destination,
    DestinationError,
    Point,
    ReleaseRule,
    SettingsSection,
    format_qrs_time,
)

#: The entry point's name, as in ``Butler.licenseAgent.plugins.disable``.
NAME = "webhook"

#: The keys this plugin owns, below ``Butler``.
DESTINATION = "licenseAgent.destinations.webhook"
NAME_PATTERNS = "qlikSenseLicense.licenseRelease.neverRelease.namePattern"
ATTRIBUTES = "qlikSenseLicense.licenseRelease.neverRelease.userAttribute"


# --------------------------------------------------------------------------- settings


class WebhookSettings(SettingsModel):
    """POST release events as JSON to a URL (the webhook destination)."""

    enable: bool = False
    url: str | None = Field(default=None, description="http(s) URL the events are POSTed to")
    timeout: float = Field(default=10, gt=0, le=600, description="Seconds to wait for an answer")
    headers: dict[str, str] = Field(
        default={}, description="Sent with every POST; ${env:NAME} keeps a token out of the file"
    )

    @field_validator("url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("expected an http(s) URL such as https://hooks.example.com/x")
        return url

    @model_validator(mode="after")
    def _url_when_enabled(self) -> WebhookSettings:
        if self.enable and not self.url:
            raise ValueError("url is required when enable is true")
        return self


class UserAttribute(SettingsModel):
    """A QRS user attribute (``attributeType`` and ``attributeValue``), matched ignoring case."""

    type: str = Field(min_length=1)
    value: str


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [
        # One webhook for every site; a site may protect other names.
        SettingsSection(DESTINATION, WebhookSettings, per_site=False),
        SettingsSection(NAME_PATTERNS, OptionalList[str]),
        SettingsSection(ATTRIBUTES, OptionalList[UserAttribute]),
    ]


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
        assert settings.url  # the model requires it when the destination is enabled
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
def sla_destinations(settings: Settings) -> list[Destination] | None:
    webhook = settings[DESTINATION]
    return [WebhookDestination(webhook)] if webhook is not None and webhook.enable else None


@hookimpl
def sla_release_rules(settings: Settings) -> list[ReleaseRule] | None:
    # Per site: a site of Butler.licenseAgent.sites may set its own lists.
    rules = []
    patterns = settings[NAME_PATTERNS]
    if patterns:
        rules.append(
            ReleaseRule(
                name="protect_name_pattern",
                judge=name_pattern_judge(patterns),
                description="sla-webhook-plugin: users whose name matches a pattern",
            )
        )
    attributes = settings[ATTRIBUTES]
    if attributes:
        rules.append(
            ReleaseRule(
                name="protect_user_attribute",
                judge=attribute_judge([(a.type, a.value) for a in attributes]),
                description="sla-webhook-plugin: users with a given QRS user attribute",
            )
        )
    return rules or None
