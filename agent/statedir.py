"""The agent's state folder (``Butler.licenseAgent.stateDir``): checked once, explained clearly.

The outbox, the release journals and the state locks live there. A folder that cannot be used
(a regular file on its path, a read-only file system, a full disk, no write permission) is a
configuration problem: :func:`prepare_state_dir` raises :class:`StateDirError`, a
:class:`~agent.config.ConfigError` (exit code 2), with one message naming the folder and the
cause. Failures while writing later (the disk fills up during a run) are described with
:func:`describe_os_error` / :func:`describe_sqlite_error`, so the operator reads "the disk is
full" instead of an SQLite or ``OSError`` code.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from agent.config import ConfigError

SETTING = "Butler.licenseAgent.stateDir"

# SQLite's primary result codes (sqlite3.h) the operator can act on.
_SQLITE_CAUSES = {
    3: "permission denied",  # SQLITE_PERM
    8: "the file or its folder is read-only",  # SQLITE_READONLY
    10: "a disk input/output error",  # SQLITE_IOERR
    13: "the disk is full",  # SQLITE_FULL
    14: "the file cannot be opened",  # SQLITE_CANTOPEN
    23: "access denied",  # SQLITE_AUTH
    26: "the file is not an SQLite database",  # SQLITE_NOTADB
    11: "the file is corrupt",  # SQLITE_CORRUPT
}


class StateDirError(ConfigError):
    """The state folder cannot be used; the message names it, the cause and the fix."""


def describe_os_error(exc: OSError) -> str:
    """The cause of an ``OSError`` in an operator's words."""
    code = exc.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return "the disk is full"
    if code == errno.EROFS:
        return "it is on a read-only file system"
    if code in (errno.EACCES, errno.EPERM) or isinstance(exc, PermissionError):
        return "this account may not write there (permission denied)"
    if code == errno.ENOTDIR or isinstance(exc, NotADirectoryError):
        return "a part of the path is a regular file, not a folder"
    return exc.strerror or str(exc)


def describe_sqlite_error(exc: sqlite3.Error, file: Path | str | None = None) -> str:
    """The cause of an SQLite error in an operator's words, with SQLite's own text.

    Opening a database on a full disk fails as an I/O error or "unable to open" (creating its
    ``-wal``/``-shm`` files fails), not as SQLITE_FULL: given the ``file``, such an error on a
    disk with almost no free space left is reported as the full disk it is.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    cause = _SQLITE_CAUSES.get(primary) if primary is not None else None
    text = str(exc)
    if cause is None and "disk is full" in text:
        cause = "the disk is full"
    if primary in (_SQLITE_IOERR, _SQLITE_CANTOPEN) and file is not None:
        free = _free_bytes(Path(file).parent)
        if free is not None and free < _NEARLY_FULL:
            cause = f"the disk is full ({free} bytes free)"
    return f"{cause} ({text})" if cause else text


_SQLITE_IOERR = 10
_SQLITE_CANTOPEN = 14
#: Less free space than this and SQLite cannot create its WAL index (32 KB) or grow a file.
_NEARLY_FULL = 64 * 1024


def _free_bytes(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


@contextmanager
def sqlite_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` on an autocommit connection; rolled back on error.

    When ``COMMIT`` itself fails (the disk is full), SQLite may already have rolled the
    transaction back: a blind ``ROLLBACK`` would then fail with "no transaction is active" and
    hide the real cause. So it is only sent while a transaction is open, and its own failure
    never replaces the original error.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


@contextmanager
def sqlite_errors(doing: str, path: Path | str, error: type[Exception]) -> Iterator[None]:
    """SQLite's failures while ``doing`` (e.g. "write the run log") on the file ``path``,
    raised as ``error`` with one message naming the file, the cause and the setting."""
    try:
        yield
    except sqlite3.Error as exc:
        cause = describe_sqlite_error(exc, path)
        raise error(f"cannot {doing} {path}: {cause} ({SETTING})") from exc


def _first_file_on(folder: Path) -> Path | None:
    """The regular file that sits where a folder of ``folder``'s path should be, if any."""
    for part in [folder, *folder.parents]:
        if part.exists():
            return None if part.is_dir() else part
    return None


def prepare_state_dir(folder: Path) -> Path:
    """Create ``folder`` if needed and prove it takes a small durable write.

    Raises :class:`StateDirError` naming the folder and the cause.
    """
    folder = Path(folder)

    def fail(cause: str, fix: str) -> StateDirError:
        return StateDirError([f"{SETTING}: the folder {folder} cannot be used: {cause}; {fix}"])

    blocker = _first_file_on(folder)
    if blocker is not None:
        raise fail(
            f"{blocker} is a regular file, not a folder",
            "point stateDir at a folder (or remove the file)",
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Write and sync a few bytes: a folder that exists may still be read-only or full.
        probe = folder / f".write-test-{uuid.uuid4().hex}"
        try:
            with open(probe, "wb") as handle:
                handle.write(b"\0" * 4096)
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            with suppress(FileNotFoundError):
                probe.unlink()
    except OSError as exc:
        cause = describe_os_error(exc)
        if cause == "the disk is full":
            fix = "free space on that disk or point stateDir at another one"
        else:
            fix = "make it writable by the agent's account or point stateDir at a folder that is"
        raise fail(cause, fix) from None
    return folder


__all__ = [
    "SETTING",
    "StateDirError",
    "describe_os_error",
    "describe_sqlite_error",
    "prepare_state_dir",
    "sqlite_errors",
    "sqlite_transaction",
]
