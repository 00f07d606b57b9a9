"""The release journal: intents before DELETEs, outcomes after, and recovery after a crash.

Recovery is checked against the simulator over mutual TLS: the journal asks QRS what became of
each DELETE whose outcome it does not know, and hands exactly one release event per applied
DELETE to the real delivery (outbox + sqlite destination).
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from agent.delivery import Delivery
from agent.journal import (
    FAILED,
    INTENT,
    NOT_RELEASED,
    QUARANTINED,
    RELEASED,
    SUPERSEDED,
    JournalEntry,
    JournalError,
    SqliteJournal,
    journal_path,
    release_event,
)
from agent.models import Decision
from agent.outbox import Outbox
from agent.plugins import build_plugin_host
from agent.qrs import QrsClient
from agent.release import run_release
from plugins.destinations.sqlite import SqliteDestination

from .helpers import (
    ANA,
    NOW,
    PRO,
    build_site,
    config_document,
    deletes,
    journal_entry,
    load,
    present,
    release_rows,
    release_section,
    write_config,
)

RELEASE_FEATURE = frozenset({"license_release"})


def entry(allocation_id: str, *, seconds: int = 0, resource: str = PRO) -> JournalEntry:
    at = NOW + timedelta(seconds=seconds, microseconds=123456)
    return journal_entry(allocation_id, at, resource=resource)


def test_intent_is_on_disk_before_the_delete_and_outcome_after(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = SqliteJournal(path)
    first = entry("a1")
    journal.intent(first)
    # A second connection (another process after a crash) sees the intent at once.
    other = sqlite3.connect(str(path))
    assert other.execute("SELECT allocation_id, state FROM release_journal").fetchall() == [
        ("a1", INTENT)
    ]
    journal.outcome(first, Decision.RELEASED)
    assert other.execute("SELECT state, event_sent FROM release_journal").fetchall() == [
        (RELEASED, 0)
    ]
    other.close()
    journal.close()
    # The entry comes back exactly, microseconds included: its event's time depends on it.
    with SqliteJournal(path) as reopened:
        (record,) = reopened.records()
    assert record.entry == first


def test_a_new_intent_supersedes_an_unresolved_one_for_the_same_allocation(tmp_path) -> None:
    with SqliteJournal(tmp_path / "j.sqlite") as journal:
        journal.intent(entry("A1"))  # a run died here
        journal.intent(entry("b2"))
        journal.outcome(entry("b2"), Decision.FAILED, "QRS answered 503")
        # The next run lists both again (so neither DELETE was applied) and deletes again.
        journal.intent(entry("a1", seconds=60))
        journal.intent(entry("b2", seconds=60))
        states = [(r.entry.allocation_id, r.state) for r in journal.records()]
    assert states == [("A1", SUPERSEDED), ("b2", SUPERSEDED), ("a1", INTENT), ("b2", INTENT)]


def test_a_journal_from_a_newer_agent_is_refused(tmp_path) -> None:
    path = tmp_path / "j.sqlite"
    db = sqlite3.connect(str(path))
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(JournalError, match="newer version"):
        SqliteJournal(path)


def test_journal_file_sits_beside_the_site_lock(tmp_path) -> None:
    assert journal_path(tmp_path, "qs.example.com").name == "release-qs.example.com.journal.sqlite"
    assert journal_path(tmp_path, "a b/c").parent == tmp_path


def test_prune_keeps_unresolved_rows_and_unsent_events(tmp_path) -> None:
    clock = [NOW]
    with SqliteJournal(tmp_path / "j.sqlite", keep_days=30, clock=lambda: clock[0]) as journal:
        for name, decision in (("done", Decision.RELEASED), ("gone", Decision.ALREADY_GONE)):
            journal.intent(entry(name))
            journal.outcome(entry(name), decision)
        journal.mark_events([release_event(entry("done"), False, {})])
        journal.intent(entry("pending"))
        journal.intent(entry("unsent"))
        journal.outcome(entry("unsent"), Decision.RELEASED)
        clock[0] = NOW + timedelta(days=31)
        assert journal.prune() == 2
        assert {r.entry.allocation_id for r in journal.records()} == {"pending", "unsent"}


# --------------------------------------------------------------------------- against QRS


def _delivery(state_dir: Path) -> tuple[Delivery, Path]:
    history = state_dir / "history.sqlite"
    destination = SqliteDestination(history, RELEASE_FEATURE)
    return Delivery([destination], Outbox(state_dir / "outbox.sqlite")), history


def test_recover_asks_qrs_and_delivers_one_event_per_applied_delete(
    simulator, certs, workdir
) -> None:
    site = build_site(6, analyzer_every=0)
    sim = simulator(site)
    config = load(write_config(workdir / "c.yaml", config_document(sim.port, certs, workdir)))
    ids = list(site.candidates)
    gone, untouched, unknown = ids[0], ids[3], ids[4]
    quarantine = next(a for a, kind in site.recent.items() if kind == PRO)  # used 2 days ago
    # Before the crash QRS removed one allocation and quarantined another (used within 7
    # days); two DELETEs never arrived.
    with QrsClient(config.sites()[0]) as qrs:
        qrs.delete_allocation(PRO, gone)
        qrs.delete_allocation(PRO, quarantine)
    assert present(sim)[quarantine]["quarantined"] is True

    journal = SqliteJournal(workdir / "j.sqlite")
    for n, allocation_id in enumerate((gone, quarantine, untouched)):
        journal.intent(entry(allocation_id, seconds=n))  # killed mid-release: no outcomes
    journal.intent(entry(unknown, seconds=9))
    journal.outcome(entry(unknown, seconds=9), Decision.FAILED, "QRS answered 500")
    delivery, history = _delivery(workdir)
    sim.reset_stats()
    with QrsClient(config.sites()[0]) as qrs:
        report = journal.recover(qrs, journal.sink(delivery), {"env": "test"})
        again = journal.recover(qrs, journal.sink(delivery), {"env": "test"})
    delivery.close()

    assert (report.released, report.quarantined, report.not_released, report.events) == (
        1,
        1,
        2,
        2,
    )
    assert not again.changed and again.pending == 0  # settled for good, nothing re-sent
    assert sim.get_stats()["requests"] == {f"GET /qrs/license/{PRO}/{{id}}": 4}
    states = {r.entry.allocation_id: (r.state, r.event_sent) for r in journal.records()}
    assert states == {
        gone: (RELEASED, True),
        quarantine: (QUARANTINED, True),
        untouched: (NOT_RELEASED, False),
        unknown: (NOT_RELEASED, False),
    }
    rows = release_rows(history)
    assert sorted((r["allocation_id"], r["quarantined"]) for r in rows) == sorted(
        [(gone, 0), (quarantine, 1)]
    )
    # Deterministic event time: the intent's, to the microsecond.
    by_id = {r["allocation_id"]: r for r in rows}
    assert by_id[gone]["time_ns"] == int(NOW.timestamp() * 1e6 + 123456) * 1000
    journal.close()


def test_recover_leaves_everything_pending_while_qrs_is_down(simulator, certs, workdir) -> None:
    site = build_site(3, analyzer_every=0)
    sim = simulator(site)
    config = load(
        write_config(
            workdir / "c.yaml", config_document(sim.port, certs, workdir, qrs={"retries": 0})
        )
    )
    sim.stop()  # QRS unreachable: connection refused
    journal = SqliteJournal(workdir / "j.sqlite")
    for n, allocation_id in enumerate(site.candidates):
        journal.intent(entry(allocation_id, seconds=n))
    delivery, history = _delivery(workdir)
    with QrsClient(config.sites()[0], sleep=lambda s: None) as qrs:
        report = journal.recover(qrs, journal.sink(delivery))
    assert (report.pending, report.released, report.events) == (3, 0, 0)
    assert journal.counts() == {INTENT: 3}
    assert release_rows(history) == []
    delivery.close()
    journal.close()


def test_a_delete_that_failed_but_was_applied_gets_its_event_next_run(
    simulator, certs, workdir
) -> None:
    """Both attempts of one DELETE outlive the read timeout: the client reports a failure, but
    QRS applied the first. The next run's recovery finds it gone and sends its event."""
    site = build_site(4, analyzer_every=0)
    sim = simulator(site)
    document = config_document(
        sim.port,
        certs,
        workdir,
        qrs={"readTimeout": 0.3, "retries": 2},
        release=release_section(deleteConcurrency=1),
        jsonl=False,
    )
    config = load(write_config(workdir / "c.yaml", document))
    site_config = config.sites()[0]
    host = build_plugin_host(config)
    sim.add_fault(f"DELETE /qrs/license/{PRO}/*", "hang", seconds=0.6, count=2)
    journal = SqliteJournal(workdir / "j.sqlite")
    delivery, history = _delivery(workdir)
    with QrsClient(site_config, sleep=lambda s: None) as qrs:
        first = run_release(
            config,
            site_config,
            host,
            qrs,
            delivery=journal.sink(delivery),
            journal=journal,
            now=NOW,
        )
    failed = [d.allocation.id for d in first.decisions if d.decision is Decision.FAILED]
    released = [d.allocation.id for d in first.decisions if d.decision is Decision.RELEASED]
    assert len(failed) == 1 and len(released) == len(site.candidates) - 1
    assert failed[0] not in present(sim)  # QRS did apply it
    assert journal.counts() == {RELEASED: 3, FAILED: 1}
    assert {r["allocation_id"] for r in release_rows(history)} == set(released)

    with QrsClient(site_config, sleep=lambda s: None) as qrs:
        report = journal.recover(qrs, journal.sink(delivery))
        second = run_release(
            config,
            site_config,
            host,
            qrs,
            delivery=journal.sink(delivery),
            journal=journal,
            now=NOW,
        )
    delivery.close()
    assert (report.released, report.events) == (1, 1)
    assert [d for d in second.decisions if d.decision is Decision.RELEASED] == []
    events = release_rows(history)
    assert sorted(r["allocation_id"] for r in events) == sorted(site.candidates)
    assert journal.counts() == {RELEASED: 4}
    journal.close()


def test_events_not_handed_to_delivery_before_a_crash_are_sent_by_recovery(
    simulator, certs, workdir
) -> None:
    """The run deleted and recorded its outcomes, then died before the outbox got its events."""
    site = build_site(5, analyzer_every=2)
    sim = simulator(site)
    config = load(write_config(workdir / "c.yaml", config_document(sim.port, certs, workdir)))
    site_config = config.sites()[0]
    host = build_plugin_host(config)
    journal = SqliteJournal(workdir / "j.sqlite")

    class Crash:
        def deliver(self, points):
            raise SystemExit("killed before the outbox stored anything")

    with QrsClient(site_config) as qrs, pytest.raises(SystemExit):
        run_release(
            config,
            site_config,
            host,
            qrs,
            delivery=journal.sink(Crash()),
            journal=journal,
            now=NOW,
        )
    assert set(site.candidates).isdisjoint(present(sim))
    assert deletes(sim) == len(site.candidates)
    delivery, history = _delivery(workdir)
    with QrsClient(site_config) as qrs:
        report = journal.recover(
            qrs, journal.sink(delivery), site_config.static_tags("license_release")
        )
    delivery.close()
    assert (report.events, report.released) == (5, 0)  # outcomes known: no QRS question needed
    assert sorted(r["allocation_id"] for r in release_rows(history)) == sorted(site.candidates)
    assert {r["license_type"] for r in release_rows(history)} == {"professional", "analyzer"}
    assert {ANA, PRO} == set(site.candidates.values())
    journal.close()


def test_a_late_delete_of_a_dead_run_is_released_again_when_the_next_run_finds_it_gone(
    tmp_path,
) -> None:
    """The dead run's DELETE was still on its way when the next run listed the allocation; the
    next run's DELETE then gets a 404. The release happened (once), so its event is due."""
    with SqliteJournal(tmp_path / "j.sqlite") as journal:
        journal.intent(entry("a1"))  # the run that died
        journal.intent(entry("a1", seconds=60))  # the next run listed it and tries again
        journal.outcome(entry("a1", seconds=60), Decision.ALREADY_GONE, "404")
        states = [(r.state, r.entry.at) for r in journal.records()]
        assert states == [(RELEASED, entry("a1").at), ("already_gone", entry("a1", seconds=60).at)]
        assert journal.needs_recovery()
        recorder: list = []

        class Sink:
            def deliver(self, points):
                recorder.extend(points)

        report = journal.recover(object(), journal.sink(Sink()))
        assert report.events == 1 and recorder[0].time == entry("a1").at
        assert not journal.needs_recovery()
