"""Graceful stop: SIGTERM or SIGINT while ``license-agent run`` is releasing.

The DELETEs in flight finish, nothing is left half done (every allocation QRS no longer has is
in the journal as released and has its event in the destinations), the outbox is flushed, and
the process exits 0. Ctrl+C / Ctrl+Break on Windows take the same path (SIGINT / SIGBREAK);
this test sends POSIX signals.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from agent.journal import EVENT_STATES, UNRESOLVED, SqliteJournal, journal_path
from agent.models import Decision
from agent.outbox import Outbox
from agent.plugins import build_plugin_host
from agent.qrs import QrsClient
from agent.release import run_release

from .helpers import (
    NOW,
    build_site,
    config_document,
    deletes,
    jsonl_events,
    load,
    present,
    real_now,
    release_rows,
    release_section,
    spawn,
    wait_until,
    write_config,
)


@pytest.mark.skipif(os.name == "nt", reason="sends POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_during_release_finishes_cleanly(signum: int, simulator, certs, workdir) -> None:
    now = real_now()
    site = build_site(16, now=now)
    sim = simulator(site, now=now)
    sim.add_fault("DELETE *", "latency", seconds=0.3)
    config = write_config(
        workdir / "config.yaml",
        config_document(
            sim.port,
            certs,
            workdir,
            monitor={"enable": True, "frequency": "every 24 hours"},
            release=release_section(deleteConcurrency=1),
        ),
    )
    proc = spawn("run", "-c", str(config), cwd=workdir)
    try:
        wait_until(
            lambda: len(set(site.candidates) - set(present(sim))) >= 3 or proc.poll() is not None,
            timeout=60,
            what="three deletes",
        )
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signum)
        signalled = time.monotonic()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    stopped_after = time.monotonic() - signalled
    assert proc.returncode == 0, err
    assert f"{signal.Signals(signum).name} received" in err
    assert "Traceback" not in err

    gone = set(site.all()) - set(present(sim))
    assert gone and gone <= set(site.candidates)
    with SqliteJournal(journal_path(workdir, "127.0.0.1")) as journal:
        assert journal.records(UNRESOLVED) == []  # no DELETE with an unknown outcome
        released = journal.records(EVENT_STATES)
    assert {r.entry.allocation_id for r in released} == gone
    assert all(r.event_sent for r in released)
    # Every delete that happened has its event, once, in both destinations; nothing is pending.
    assert Counter(r["allocation_id"] for r in release_rows(workdir / "history.sqlite")) == Counter(
        gone
    )
    assert Counter(
        e["fields"]["allocation_id"] for e in jsonl_events(workdir / "events.jsonl")
    ) == Counter(gone)
    outbox = Outbox(workdir / "outbox.sqlite")
    assert outbox.count() == 0
    outbox.close()
    # In-flight deletes finished, the rest were left for the next run: the stop was prompt.
    assert len(gone) < len(site.candidates)
    assert stopped_after < 5


def test_a_stop_request_sends_no_further_delete(simulator, certs, workdir) -> None:
    """In process: once ``should_stop`` says so, no DELETE is sent; the rest are kept with the
    reason, the journal has no intent for them, and the next run releases them."""
    site = build_site(6, analyzer_every=0)
    sim = simulator(site)
    config = load(
        write_config(
            workdir / "c.yaml",
            config_document(sim.port, certs, workdir, release=release_section(deleteConcurrency=1)),
        )
    )
    site_config = config.sites()[0]
    host = build_plugin_host(config)
    journal = SqliteJournal(workdir / "j.sqlite")

    def stop_after_two() -> bool:
        return deletes(sim) >= 2

    with QrsClient(site_config) as qrs:
        first = run_release(
            config, site_config, host, qrs, journal=journal, now=NOW, should_stop=stop_after_two
        )
        kept = [
            d
            for d in first.decisions
            if d.decision is Decision.KEPT and d.allocation.id in site.candidates
        ]
        assert deletes(sim) == 2 and len(kept) == 4
        assert all(r.rule == "stop" for d in kept for r in d.reasons)
        assert len(journal.records()) == 2
        second = run_release(config, site_config, host, qrs, journal=journal, now=NOW)
    released = [d for d in second.decisions if d.decision is Decision.RELEASED]
    assert len(released) == 4 and deletes(sim) == 6
    journal.close()
