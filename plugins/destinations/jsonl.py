"""The ``jsonl`` destination: one JSON object per point, for log shippers.

Enabled by ``Butler.licenseAgent.destinations.jsonl.enable``. ``path`` is a file (appended to,
created if missing, relative to the config's folder) or ``-`` for standard output. Each line is
:meth:`agent.models.Point.to_dict`::

    {"measurement": "qlik_sense_license", "tags": {"license_type": "professional"},
     "fields": {"allocated": 5.0, ...}, "time": "2026-01-23T04:56:07.000Z",
     "feature": "license_monitor"}

The file is opened for each write and flushed before the write returns, so log rotation by
another tool is safe. A line cannot be taken back: a point re-sent after a failure may appear
twice, and a consumer that needs exactly-once counts should de-duplicate on (measurement, tags,
time).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.config import AGENT_FEATURES, AgentConfig, Features, SettingsModel
from agent.hookspecs import Settings, hookimpl
from agent.models import Destination, DestinationError, Point, SettingsSection
from agent.text import json_safe

NAME = "jsonl"
STDOUT = "-"


class JsonlDestination:
    """Appends points as JSON lines to a file or standard output."""

    name = NAME

    def __init__(self, path: Path | None, features: frozenset[str]) -> None:
        #: ``None`` means standard output.
        self.path = path
        self.features = features

    def describe(self) -> str:
        return (
            "JSON lines on standard output" if self.path is None else f"JSON lines file {self.path}"
        )

    def write(self, points: Sequence[Point]) -> None:
        # Escaped so that names from QRS cannot act on the terminal showing standard output.
        text = "".join(
            json_safe(json.dumps(p.to_dict(), ensure_ascii=False)) + "\n" for p in points
        )
        if self.path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One write call for the batch: a reader never sees half of a line from us.
            with self.path.open("a", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
        except OSError as exc:
            raise DestinationError(f"cannot append to {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        pass


#: The key this plugin owns.
PATH = "licenseAgent.destinations.jsonl"


class JsonlSettings(SettingsModel):
    """``Butler.licenseAgent.destinations.jsonl``: JSON lines to a file or standard output."""

    enable: bool = False
    #: A file, or ``-`` for standard output.
    path: str = STDOUT
    features: Features = list(AGENT_FEATURES)


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [SettingsSection(PATH, JsonlSettings, per_site=False)]


@hookimpl
def sla_destinations(config: AgentConfig, settings: Settings) -> list[Destination] | None:
    jsonl = settings[PATH]
    if jsonl is None or not jsonl.enable:
        return None
    path = None
    if jsonl.path.strip() != STDOUT:
        path = Path(jsonl.path.strip()).expanduser()
        if not path.is_absolute():
            path = config.base_dir / path
    return [JsonlDestination(path, frozenset(jsonl.features))]
