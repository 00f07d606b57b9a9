"""Killed mid-release (SIGKILL): the journal lets the next run finish the job exactly once.

A real ``license-agent release --once`` runs in a subprocess against the simulator, whose
DELETEs are slowed down, and is killed after a few of them. The next run must deliver the
events of the deletes that happened (once each), must not count those allocations again, must
release the rest, and the run after that must find nothing left to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections import Counter

import pytest

from agent.journal import EVENT_STATES, UNRESOLVED, SqliteJournal, journal_path
from tests.fixtures_servers import free_port

from .helpers import (
    build_site,
    config_document,
    deletes,
    jsonl_events,
    present,
    real_now,
    release_rows,
    release_section,
    run_agent,
    spawn,
    wait_until,
    write_config,
)


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX (TerminateProcess is the same)")
def test_killed_mid_release_then_restarted(simulator, certs, workdir) -> None:
    now = real_now()
    site = build_site(12, now=now)
    sim = simulator(site, now=now, port=free_port())  # a fixed port: restarted below
    sim.add_fault("DELETE *", "latency", seconds=0.25)
    config = write_config(
        workdir / "config.yaml",
        config_document(sim.port, certs, workdir, release=release_section(deleteConcurrency=1)),
    )
    history, events_file = workdir / "history.sqlite", workdir / "events.jsonl"

    proc = spawn("release", "--once", "-c", str(config), cwd=workdir)
    try:
        wait_until(
            lambda: len(set(site.candidates) - set(present(sim))) >= 4 or proc.poll() is not None,
            timeout=60,
            what="four deletes",
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # A DELETE in flight when the agent died still reaches QRS. Restarting the simulator cuts
    # its latency short, so it lands now rather than during the next run.
    sim.clear_faults()
    sim.stop()
    sim.start()
    with SqliteJournal(journal_path(workdir, "127.0.0.1")) as journal:
        intents = len(journal.records(UNRESOLVED))
    # (If the last intent's DELETE never left the dying process, nothing lands: fine too.)
    with contextlib.suppress(AssertionError):
        wait_until(lambda: deletes(sim) >= intents, timeout=3, what="the in-flight DELETE")
    gone_before = set(site.candidates) - set(present(sim))
    assert 4 <= len(gone_before) < len(site.candidates)
    with SqliteJournal(journal_path(workdir, "127.0.0.1")) as journal:
        pending = journal.records(UNRESOLVED)
    # Each DELETE that happened has an intent on disk; no event was delivered yet.
    assert gone_before <= {r.entry.allocation_id for r in pending}
    assert release_rows(history) == []

    restarted = run_agent("release", "--once", "-c", str(config), "--report", "r.json", cwd=workdir)
    assert restarted.returncode == 0, restarted.stderr
    report = json.loads((workdir / "r.json").read_text("utf-8"))
    released_now = {d["allocation_id"] for d in report["decisions"] if d["decision"] == "released"}
    assert released_now == set(site.candidates) - gone_before  # not counted twice
    assert sum(c["released"] for c in report["run"]["counts"].values()) == len(released_now)
    # One event per released allocation, from either process, in both destinations.
    assert Counter(r["allocation_id"] for r in release_rows(history)) == Counter(
        list(site.candidates)
    )
    jsonl = Counter(e["fields"]["allocation_id"] for e in jsonl_events(events_file))
    assert jsonl == Counter(list(site.candidates))
    assert deletes(sim) == len(site.candidates)  # each allocation was deleted exactly once
    assert set(site.protected) | set(site.recent) <= set(present(sim))
    with SqliteJournal(journal_path(workdir, "127.0.0.1")) as journal:
        assert journal.records(UNRESOLVED) == []
        done = [r for r in journal.records(EVENT_STATES)]
    assert Counter(r.entry.allocation_id for r in done) == Counter(list(site.candidates))
    assert all(r.event_sent for r in done)

    # And the next run carries on normally: nothing left, nothing sent again.
    again = run_agent("release", "--once", "-c", str(config), cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert deletes(sim) == len(site.candidates)
    assert len(release_rows(history)) == len(site.candidates)
    assert len(jsonl_events(events_file)) == len(site.candidates)
