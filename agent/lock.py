"""The release locks: only one agent may release licenses on a Sense site at a time.

Two agents releasing on one site race on the same allocations (every allocation gets two
DELETEs). A release run therefore holds two OS file locks (``filelock``: ``fcntl`` on POSIX,
``msvcrt`` on Windows), both freed by the OS when the process dies, even by SIGKILL, so a crash
never leaves a stale lock behind:

* the **site lock**, machine-wide, keyed by the site's QRS identity (``host:port``, the host in
  lower case): two config folders, or two ``licenseAgent.sites`` entries, that point at one
  Sense site on this machine exclude each other. It lives in :func:`machine_lock_dir`;
* the **state lock** in the agent's state folder (``stateDir``), per site name: one writer per
  release journal file.

Beside each lock a small JSON file says who holds it, so the refusal names the other process.
The holder of the state lock also holds an in-progress marker (:func:`release_in_progress`), so
that ``release runs`` can tell a run in progress from a killed one without touching the lock.

File locks are per host. Agents on two hosts that point at one site do not see each other; the
journal makes the audit trail survive that (a DELETE answered 404 writes no event), but each
allocation may then be sent two DELETEs: run the release job on one host only
(docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path

from filelock import FileLock, Timeout
from loguru import logger

from agent.statedir import prepare_state_dir

#: Overrides the machine-wide lock folder (tests; hosts whose default folder is unusable).
LOCK_DIR_ENV = "LICENSE_AGENT_LOCK_DIR"
_APP = "sense-license-agent"


class LockBusy(RuntimeError):
    """Another agent holds the release lock of this site."""


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "site"


def lock_path(state_dir: Path, site: str) -> Path:
    """The state lock of ``site`` in the agent's state folder."""
    return Path(state_dir) / f"release-{_safe(site)}.lock"


def site_identity(host: str, port: int) -> str:
    """The key of a Sense site on this machine: ``host:port`` as configured, host lower case.

    Names are not resolved: ``sense.example.com`` and its IP address are two identities.
    """
    return f"{host.strip().lower().rstrip('.')}:{int(port)}"


def machine_lock_dir() -> Path:
    """The folder of the machine-wide site locks, the same for every account on this machine.

    ``$LICENSE_AGENT_LOCK_DIR`` if set; else on Windows ``%ProgramData%\\sense-license-agent\\
    locks``; on Linux ``/run/lock`` (world-writable, sticky, not hidden by systemd's
    ``PrivateTmp``) when it is writable; otherwise the system temp folder.
    """
    configured = os.environ.get(LOCK_DIR_ENV, "").strip()
    if configured:
        return Path(configured)
    if os.name == "nt":
        base = (
            os.environ.get("PROGRAMDATA") or os.environ.get("ALLUSERSPROFILE") or r"C:\ProgramData"
        )
        return Path(base) / _APP / "locks"
    run_lock = Path("/run/lock")
    if run_lock.is_dir() and os.access(run_lock, os.W_OK | os.X_OK):
        return run_lock
    return Path(tempfile.gettempdir())


def site_lock_path(identity: str, folder: Path | None = None) -> Path:
    """The machine-wide lock file of a site identity (a hash: host names may hold anything)."""
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:20]
    return (folder or machine_lock_dir()) / f"{_APP}-site-{digest}.lock"


@contextmanager
def release_lock(state_dir: Path, site: str, identity: str | None = None) -> Iterator[Path]:
    """Hold the release locks of ``site`` for the duration of the ``with`` block.

    :param identity: the site's :func:`site_identity`; with it the machine-wide site lock is
        taken first, then the state lock.

    Raises :class:`LockBusy` at once (no waiting) when another process holds one of them, or
    when the machine-wide lock file cannot be opened (refusing is the safe side);
    :class:`~agent.statedir.StateDirError` when the state folder cannot be used.
    """
    with ExitStack() as stack:
        if identity is not None:
            stack.enter_context(
                _hold(site_lock_path(identity), f"site {site} (QRS {identity})", state_dir)
            )
        prepare_state_dir(Path(state_dir))
        path = lock_path(state_dir, site)
        stack.enter_context(_hold(path, f"site {site}", state_dir))
        stack.enter_context(_in_progress(site, in_progress_path(state_dir, site)))
        yield path


#: How long a run that holds the state lock waits for a ``release runs`` that is looking at
#: the in-progress marker (it holds it for a moment only).
IN_PROGRESS_WAIT = 10.0


def in_progress_path(state_dir: Path, site: str) -> Path:
    """The marker that the holder of ``site``'s state lock keeps locked while it runs."""
    return lock_path(state_dir, site).with_suffix(".running.lock")


@contextmanager
def _in_progress(site: str, marker: Path) -> Iterator[None]:
    """Keep the in-progress marker locked (see :func:`release_in_progress`).

    The run already holds the state lock, so it may wait: the only other taker is a reader
    that looks for a moment. A marker that cannot be taken does not stop the run (it only
    tells ``release runs`` whether a run is alive); it is logged.
    """
    lock = FileLock(str(marker), timeout=IN_PROGRESS_WAIT, thread_local=False)
    try:
        lock.acquire()
    except (Timeout, OSError) as exc:
        logger.warning(
            "release run on site {}: cannot take {} ({}); `release runs` may show this run as"
            " interrupted while it runs",
            site,
            marker,
            exc,
        )
        yield
        return
    try:
        yield
    finally:
        lock.release()


def release_in_progress(state_dir: Path, site: str) -> bool | None:
    """Whether a live process holds ``site``'s release lock in this state folder (a release run
    or a restore), asked without getting in its way; ``None`` when it cannot be told.

    The state lock cannot be asked: taking it even for a moment would make a run that starts
    in that moment refuse to run (it does not wait for it). The marker beside it is held for
    the same time, and a run waits for it; the OS frees it when the process dies, even by
    SIGKILL, so "not held" means no run of this site is alive.
    """
    marker = in_progress_path(state_dir, site)
    if not marker.exists():
        return False
    lock = FileLock(str(marker), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except Timeout:
        return True
    except OSError:
        return None
    lock.release()
    return False


@contextmanager
def _hold(path: Path, what: str, state_dir: Path) -> Iterator[None]:
    owner_file = path.with_suffix(".owner.json")
    # 0o666: the machine-wide folder is shared by every account; another account's agent must
    # be able to open the file to find it locked.
    lock = FileLock(str(path), timeout=0, mode=0o666, thread_local=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        holder = ""
        try:
            info = json.loads(owner_file.read_text(encoding="utf-8"))
            holder = (
                f" (held by pid {info.get('pid')} on {info.get('host')} since"
                f" {info.get('since')}, state folder {info.get('stateDir', '?')})"
            )
        except (OSError, ValueError, AttributeError):
            pass
        raise LockBusy(
            f"another license agent is releasing licenses on {what}{holder}; this"
            f" instance skips the release job. Lock file: {path}. Run one releasing agent per"
            " site; stop the other one, or disable licenseRelease here."
        ) from None
    except OSError as exc:
        raise LockBusy(
            f"cannot take the release lock of {what}: {path}: {exc.strerror or exc}; the"
            f" release job does not run without it. Make the folder writable for this account"
            f" (or set {LOCK_DIR_ENV} to a folder every agent on this machine can write)."
        ) from None
    try:
        with suppress(OSError):
            owner_file.write_text(
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "stateDir": str(Path(state_dir).resolve()),
                    }
                ),
                encoding="utf-8",
            )
        yield
    finally:
        with suppress(OSError):
            owner_file.unlink()
        lock.release()
