"""Fault injection and request statistics.

:class:`Faults` holds a base latency (fixed + uniform jitter, in ms) and an ordered list of
:class:`FaultRule`. For each QRS request the rules whose ``match`` pattern fits are tried in
order: ``latency`` and ``hang`` rules add their delay and evaluation goes on; the first
``error``, ``malformed``, ``duplicate`` or ``reset`` rule that fires ends it. A rule fires with probability
``rate``; with ``count`` set it fires for the next ``count`` matching requests only, which gives
tests deterministic faults. Patterns are ``fnmatch`` patterns, case-insensitive, tried against
both ``"METHOD /actual/path"`` and ``"METHOD /path/{id}"`` (the template); a pattern starting
with ``/`` is matched against the path alone. :class:`Stats` counts requests per template and
per status.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from typing import Any

ACTIONS = ("duplicate", "error", "hang", "latency", "malformed", "reset")
TERMINAL_ACTIONS = frozenset({"duplicate", "error", "malformed", "reset"})


class FaultConfigError(ValueError):
    """A fault document that does not fit the schema; the message names the key."""


@dataclass
class FaultRule:
    """One fault. See ``docs/simulator.md`` for the JSON schema (same field names)."""

    match: str = "*"
    action: str = "error"
    status: int = 500
    rate: float = 1.0
    count: int | None = None
    seconds: float = 0.0
    body: str | None = None
    retry_after: int | None = None
    fired: int = field(default=0)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "rule") -> FaultRule:
        if not isinstance(data, Mapping):
            raise FaultConfigError(f"{where}: a rule must be an object")
        unknown = set(data) - {f for f in cls.__dataclass_fields__ if f != "fired"}
        if unknown:
            raise FaultConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
        rule = cls(**{key: value for key, value in data.items()})
        rule.validate(where)
        return rule

    def validate(self, where: str = "rule") -> None:
        if not isinstance(self.match, str) or not self.match:
            raise FaultConfigError(f"{where}: 'match' must be a non-empty pattern")
        if self.action not in ACTIONS:
            raise FaultConfigError(f"{where}: 'action' must be one of {', '.join(ACTIONS)}")
        if not isinstance(self.status, int) or not 100 <= self.status <= 599:
            raise FaultConfigError(f"{where}: 'status' must be an HTTP status code")
        if not isinstance(self.rate, (int, float)) or not 0 <= self.rate <= 1:
            raise FaultConfigError(f"{where}: 'rate' must be between 0 and 1")
        if self.count is not None and (not isinstance(self.count, int) or self.count < 0):
            raise FaultConfigError(f"{where}: 'count' must be a non-negative integer or null")
        if not isinstance(self.seconds, (int, float)) or self.seconds < 0:
            raise FaultConfigError(f"{where}: 'seconds' must be a non-negative number")
        if self.action in ("hang", "latency") and self.seconds <= 0:
            raise FaultConfigError(f"{where}: a '{self.action}' rule needs 'seconds' > 0")
        if self.action == "duplicate" and self.body is not None:
            try:
                overlay = json.loads(self.body)
            except ValueError:
                overlay = None
            if not isinstance(overlay, dict):
                raise FaultConfigError(
                    f"{where}: a 'duplicate' rule's 'body' must be a JSON object (the fields"
                    " that differ in the second copy)"
                )

    def matches(self, keys: Iterable[str]) -> bool:
        pattern = self.match.lower()
        if pattern.startswith("/"):
            return any(fnmatchcase(key.split(" ", 1)[-1], pattern) for key in keys)
        return any(fnmatchcase(key, pattern) for key in keys)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FaultDecision:
    """What to do with one request: wait ``delay`` seconds, then apply ``rule`` if any."""

    delay: float
    rule: FaultRule | None


class Faults:
    """The fault configuration of one simulator; thread-safe, changeable while serving."""

    def __init__(self, config: Mapping[str, Any] | None = None, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.rules: list[FaultRule] = []
        if config:
            self.update(config)

    def update(self, config: Mapping[str, Any]) -> None:
        """Apply a fault document: keys present replace, ``append_rules`` appends.

        :raises FaultConfigError: on an unknown key or invalid value; nothing is changed then.
        """
        if not isinstance(config, Mapping):
            raise FaultConfigError("the fault configuration must be an object")
        unknown = set(config) - {"latency_ms", "jitter_ms", "rules", "append_rules"}
        if unknown:
            raise FaultConfigError(f"unknown key(s) {sorted(unknown)}")
        latency = config.get("latency_ms", self.latency_ms)
        jitter = config.get("jitter_ms", self.jitter_ms)
        for name, value in (("latency_ms", latency), ("jitter_ms", jitter)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise FaultConfigError(f"'{name}' must be a non-negative number")
        rules = None
        if "rules" in config:
            rules = [
                FaultRule.from_dict(r, f"rules[{i}]") for i, r in enumerate(config["rules"] or [])
            ]
        extra = [
            FaultRule.from_dict(r, f"append_rules[{i}]")
            for i, r in enumerate(config.get("append_rules") or [])
        ]
        with self._lock:
            self.latency_ms, self.jitter_ms = float(latency), float(jitter)
            if rules is not None:
                self.rules = rules
            self.rules.extend(extra)

    def add(self, rule: FaultRule) -> FaultRule:
        rule.validate()
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """No latency, no rules."""
        with self._lock:
            self.latency_ms = self.jitter_ms = 0.0
            self.rules = []

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency_ms": self.latency_ms,
                "jitter_ms": self.jitter_ms,
                "rules": [rule.to_dict() for rule in self.rules],
            }

    def decide(self, method: str, path: str, template: str) -> FaultDecision:
        """Pick the faults for one request and count them as fired."""
        keys = (f"{method} {path}".lower(), f"{method} {template}".lower())
        with self._lock:
            delay = self.latency_ms / 1000.0
            if self.jitter_ms:
                delay += self._rng.uniform(0, self.jitter_ms) / 1000.0
            for rule in self.rules:
                if rule.count == 0 or not rule.matches(keys):
                    continue
                if rule.rate < 1 and self._rng.random() >= rule.rate:
                    continue
                rule.fired += 1
                if rule.count is not None:
                    rule.count -= 1
                if rule.action in TERMINAL_ACTIONS:
                    return FaultDecision(delay, FaultRule(**asdict(rule)))
                delay += rule.seconds
            return FaultDecision(delay, None)


class Stats:
    """Requests per ``"METHOD /path/{id}"`` template and per response status (``"reset"`` for
    connections dropped by a ``reset`` fault)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()

    def record(self, key: str, status: int | str) -> None:
        with self._lock:
            self._requests[key] += 1
            self._statuses[str(status)] += 1

    def reset(self) -> None:
        with self._lock:
            self._requests.clear()
            self._statuses.clear()

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self._requests),
                "statuses": dict(self._statuses),
                "total": sum(self._requests.values()),
            }
