"""The release lock: a second agent on the same host refuses; a killed holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from agent.lock import (
    LOCK_DIR_ENV,
    LockBusy,
    in_progress_path,
    release_in_progress,
    release_lock,
)

from .helpers import (
    build_site,
    config_document,
    deletes,
    present,
    real_now,
    release_rows,
    release_section,
    run_agent,
    spawn,
    wait_until,
    write_config,
)

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


def test_a_run_in_progress_is_seen_until_its_holder_is_killed(tmp_path):
    """`release runs` asks whether a run is alive: yes while a process holds the release lock,
    no once it is killed (the OS frees the marker, as it frees the locks)."""
    assert release_in_progress(tmp_path, "qs.example.com") is False  # never run here
    holder = _start_holder(tmp_path)
    try:
        assert release_in_progress(tmp_path, "qs.example.com") is True
        assert release_in_progress(tmp_path, "other-site") is False
    finally:
        holder.kill()
        holder.wait()
    wait_until(lambda: release_in_progress(tmp_path, "qs.example.com") is False, timeout=5)
    with release_lock(tmp_path, "qs.example.com"):
        assert release_in_progress(tmp_path, "qs.example.com") is True
    assert release_in_progress(tmp_path, "qs.example.com") is False


def test_asking_whether_a_run_is_in_progress_never_makes_a_run_refuse(tmp_path):
    """The question takes the marker for a moment; a run that starts in that moment waits for
    it instead of refusing (it already holds the state lock). Here the marker is held far
    longer than a question takes."""
    from filelock import FileLock

    with release_lock(tmp_path, "site"):
        pass  # the marker file exists now, as after any run
    asking = FileLock(str(in_progress_path(tmp_path, "site")), timeout=0, thread_local=False)
    asking.acquire()
    releaser = threading.Timer(0.5, asking.release)
    releaser.start()
    try:
        started = time.monotonic()
        with release_lock(tmp_path, "site"):
            waited = time.monotonic() - started
            assert release_in_progress(tmp_path, "site") is True
    finally:
        releaser.join()
    assert waited >= 0.4


def test_lock_is_reentrant_across_runs_in_one_process(tmp_path):
    for _ in range(3):
        with release_lock(tmp_path, "site"):
            pass


# --------------------------------------------------------------------------- one site, two folders


def test_site_identity_ignores_case_and_a_trailing_dot_but_not_the_port() -> None:
    from agent.lock import site_identity, site_lock_path

    assert site_identity("Sense.Example.COM.", 4242) == site_identity("sense.example.com", 4242)
    assert site_identity("sense.example.com", 4242) != site_identity("sense.example.com", 4243)
    one, other = site_lock_path("a:1"), site_lock_path("a:2")
    assert one != other and one.parent == other.parent


def test_the_machine_wide_folder_is_shared_by_every_state_folder(tmp_path, monkeypatch) -> None:
    """Two config folders that point at one site: the second refuses although its stateDir (and
    so its state lock) differs. The machine-wide folder comes from the environment here."""
    from agent.lock import machine_lock_dir, site_identity

    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "machine"))
    assert machine_lock_dir() == tmp_path / "machine"
    identity = site_identity("127.0.0.1", 4242)
    with release_lock(tmp_path / "one", "sense", identity):
        with pytest.raises(LockBusy) as info, release_lock(tmp_path / "two", "sense", identity):
            pass
        assert "127.0.0.1:4242" in str(info.value)
        assert str(tmp_path / "one") in str(info.value)  # the holder's state folder is named
        # Another site identity, or the same name on another port, is not blocked.
        with release_lock(tmp_path / "two", "sense", site_identity("127.0.0.1", 4243)):
            pass


@pytest.mark.skipif(os.name == "nt", reason="the default folder on Windows is %ProgramData%")
def test_the_default_machine_wide_folder_is_not_per_account(monkeypatch) -> None:
    from agent.lock import machine_lock_dir

    monkeypatch.delenv(LOCK_DIR_ENV, raising=False)
    folder = machine_lock_dir()
    assert folder in (Path("/run/lock"), Path(tempfile.gettempdir()))
    assert not str(folder).startswith(str(Path.home()))


def test_an_unusable_machine_wide_folder_refuses_instead_of_running_unlocked(
    tmp_path, monkeypatch
) -> None:
    from agent.lock import site_identity

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(LOCK_DIR_ENV, str(blocker / "locks"))
    with (
        pytest.raises(LockBusy) as info,
        release_lock(tmp_path / "state", "sense", site_identity("127.0.0.1", 4242)),
    ):
        pass
    assert "cannot take the release lock" in str(info.value) and LOCK_DIR_ENV in str(info.value)


def _two_folders(sim, certs, root: Path, candidates: int) -> list[Path]:
    configs = []
    for name in ("first", "second"):
        folder = root / name
        configs.append(
            write_config(
                folder / "config.yaml",
                config_document(
                    sim.port, certs, folder, release=release_section(deleteConcurrency=1)
                ),
            )
        )
    return configs


def _fired(sim) -> int:
    return sum(rule["fired"] for rule in sim.get_faults()["rules"])


def test_two_config_folders_on_one_site_release_each_allocation_once(
    simulator, certs, tmp_path
) -> None:
    """Two agents with their own config folder (own stateDir, own journal) and one Sense site,
    run concurrently as real processes: the second one is refused by the machine-wide site
    lock while the first one releases, so every allocation gets one DELETE and one event."""
    now = real_now()
    site = build_site(10, now=now)
    sim = simulator(site, now=now)
    sim.add_fault("DELETE *", "latency", seconds=0.3)
    first, second = _two_folders(sim, certs, tmp_path, 10)

    one = spawn("release", "--once", "-c", str(first), cwd=first.parent)
    try:
        wait_until(lambda: _fired(sim) >= 1 or one.poll() is not None, what="the first DELETE")
        other = run_agent("release", "--once", "-c", str(second), cwd=second.parent)
        out, err = one.communicate(timeout=60)
    finally:
        if one.poll() is None:
            one.kill()
            one.communicate()
    assert one.returncode == 0, err
    assert other.returncode == 1
    assert "another license agent is releasing licenses on site" in other.stderr
    assert f"pid {one.pid}" in other.stderr and str(first.parent) in other.stderr
    assert deletes(sim) == len(site.candidates)  # not one DELETE more
    assert set(site.candidates).isdisjoint(present(sim))
    events = release_rows(first.parent / "history.sqlite") + release_rows(
        second.parent / "history.sqlite"
    )
    assert Counter(e["allocation_id"] for e in events) == Counter(list(site.candidates))


def test_two_hosts_on_one_site_send_duplicate_deletes_but_one_event_each(
    simulator, certs, tmp_path
) -> None:
    """What the lock cannot protect: agents on two hosts (here: two machine-wide lock folders)
    both release. Each allocation may get two DELETEs, but only the one QRS answers 204 writes
    an event; the other gets 404 and is reported as already gone."""
    now = real_now()
    site = build_site(10, now=now)
    sim = simulator(site, now=now)
    sim.add_fault("DELETE *", "latency", seconds=0.2)
    first, second = _two_folders(sim, certs, tmp_path, 10)
    procs = [
        spawn(
            "release",
            "--once",
            "-c",
            str(config),
            cwd=config.parent,
            env={**os.environ, LOCK_DIR_ENV: str(config.parent / "host-locks")},
        )
        for config in (first, second)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
    assert set(site.candidates).isdisjoint(present(sim))
    assert deletes(sim) >= len(site.candidates)
    events = release_rows(first.parent / "history.sqlite") + release_rows(
        second.parent / "history.sqlite"
    )
    assert Counter(e["allocation_id"] for e in events) == Counter(list(site.candidates))
