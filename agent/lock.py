"""The release lock: only one agent may release licenses on a site at a time.

Two agents releasing on the same site would race on the same allocations and double the
release events. The lock is an OS file lock (``filelock``: ``fcntl`` on POSIX, ``msvcrt`` on
Windows) in the agent's state folder, so it is freed by the OS when the process dies, even by
SIGKILL: a crash never leaves a stale lock behind. Beside it a small JSON file says who holds it,
so the refusal message can name the other process.

The lock is per host. Two agents on two hosts pointing at one site do not see each other's
lock: run the release job on one host only (README, "Reliability").
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout


class LockBusy(RuntimeError):
    """Another agent holds the release lock of this site."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "site"


def lock_path(state_dir: Path, site: str) -> Path:
    return Path(state_dir) / f"release-{_safe(site)}.lock"


@contextmanager
def release_lock(state_dir: Path, site: str) -> Iterator[Path]:
    """Hold the release lock of ``site`` for the duration of the ``with`` block.

    Raises :class:`LockBusy` at once (no waiting) when another process holds it.
    """
    path = lock_path(state_dir, site)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner_file = path.with_suffix(".owner.json")
    lock = FileLock(str(path), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        holder = ""
        try:
            info = json.loads(owner_file.read_text(encoding="utf-8"))
            holder = (
                f" (held by pid {info.get('pid')} on {info.get('host')} since {info.get('since')})"
            )
        except (OSError, ValueError):
            pass
        raise LockBusy(
            f"another license agent is releasing licenses on site {site}{holder}; this"
            f" instance skips the release job. Lock file: {path}. Run one releasing agent per"
            " site; stop the other one, or disable licenseRelease here."
        ) from None
    try:
        owner_file.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
            ),
            encoding="utf-8",
        )
        yield path
    finally:
        with suppress(OSError):
            owner_file.unlink()
        lock.release()
