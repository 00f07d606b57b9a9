"""Schedule text (the later.js subset Butler users write) -> jobs; the run loop.

(Placeholder: being completed.)
"""

from __future__ import annotations

import re


class ScheduleError(ValueError):
    """A ``frequency`` text the agent does not understand."""


_EVERY = re.compile(r"^every\s+(\d+)\s+(sec|secs|second|seconds|min|mins|minute|minutes|hour|hours|day|days)$")


def parse_frequency(text: str):
    if not isinstance(text, str) or not _EVERY.match(text.strip().lower()):
        raise ScheduleError(f"unsupported schedule {text!r}")
    return text
