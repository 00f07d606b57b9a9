"""The release lock: a second agent on the same host refuses; a killed holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.lock import LockBusy, release_lock

HOLDER = """
import sys, time
from pathlib import Path
from agent.lock import release_lock
with release_lock(Path(sys.argv[1]), "qs.example.com"):
    print("locked", flush=True)
    time.sleep(60)
"""


def _start_holder(state_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state_dir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_instance_is_refused_with_a_clear_message(tmp_path):
    holder = _start_holder(tmp_path)
    try:
        with pytest.raises(LockBusy) as info, release_lock(tmp_path, "qs.example.com"):
            pass
        message = str(info.value)
        assert f"pid {holder.pid}" in message
        assert "qs.example.com" in message and "one releasing agent per site" in message
        # Another site is not blocked.
        with release_lock(tmp_path, "other-site"):
            pass
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
def test_lock_is_freed_when_the_holder_is_killed(tmp_path):
    holder = _start_holder(tmp_path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    deadline = time.monotonic() + 5
    while True:
        try:
            with release_lock(tmp_path, "qs.example.com") as path:
                assert path.exists()
            break
        except LockBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_lock_is_reentrant_across_runs_in_one_process(tmp_path):
    for _ in range(3):
        with release_lock(tmp_path, "site"):
            pass
