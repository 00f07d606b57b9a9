"""Fixtures for the destination tests: configs, points and recording destinations."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import AgentConfig
from agent.models import UTC, DestinationError, Point
from agent.plugins import load_config

T0 = datetime(2026, 6, 1, 12, 0, 0, 250001, tzinfo=UTC)


def monitor_point(run: int, license_type: str = "professional", **tags: str) -> Point:
    """The point of monitor run ``run`` (runs are one hour apart)."""
    return Point(
        "qlik_sense_license",
        {"license_type": license_type, **tags},
        {"allocated": float(run), "total": 25.0},
        T0 + timedelta(hours=run),
        "license_monitor",
    )


def release_point(n: int) -> Point:
    return Point(
        "qlik_sense_license_release",
        {"license_type": "professional", "user": f"ACME\\user{n}"},
        {"days_since_last_use": 40.0 + n, "allocation_id": f"id-{n}", "quarantined": False},
        T0 + timedelta(minutes=n),
        "license_release",
    )


class Recording:
    """A destination that records what it wrote; ``fail`` decides what to refuse."""

    def __init__(
        self,
        name: str = "recording",
        features: Sequence[str] = ("license_monitor", "license_release", "server_license"),
        fail: Callable[[Sequence[Point]], None] | None = None,
    ) -> None:
        self.name = name
        self.features = frozenset(features)
        self.fail = fail
        self.written: list[Point] = []
        self.calls = 0

    def write(self, points: Sequence[Point]) -> None:
        self.calls += 1
        if self.fail is not None:
            self.fail(points)
        self.written.extend(points)

    def describe(self) -> str:
        return f"recording {self.name}"

    def close(self) -> None:
        pass


def down(points: Sequence[Point]) -> None:
    raise DestinationError("server down")


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[[dict[str, Any]], AgentConfig]:
    """``make_config(butler)`` writes and loads a config in ``tmp_path`` (state there too)."""

    def make(butler: dict[str, Any]) -> AgentConfig:
        document = {"Butler": {**butler}}
        agent = document["Butler"].setdefault("licenseAgent", {})
        agent.setdefault("stateDir", str(tmp_path / "state"))
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return load_config(path)

    return make
