"""One release event per allocation the agent removed: whatever the timing, whatever QRS answers.

Attacks reproduced here:

* a DELETE in flight when the agent is killed (SIGKILL) lands *after* the next run's recovery
  asked QRS about it (QRS still listed the allocation), so the journal must not settle it as
  "not released" for good: the next run's own DELETE gets a 404, or the allocation simply
  disappears, and the dead run's DELETE gets its one event;
* QRS answers a DELETE with 202 (or another 2xx) and deletes nothing: nothing is counted as
  released, no event is written, and when QRS finally removes the allocation it gets one event;
* QRS answers 204 but keeps the allocation: the next run deletes it again, but the journal
  already holds its release, so no second event is written.
"""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from agent.journal import (
    ALREADY_GONE,
    EVENT_STATES,
    NOT_RELEASED,
    OPEN,
    RELEASED,
    SUPERSEDED,
    UNCONFIRMED,
    SqliteJournal,
    journal_path,
)
from agent.models import Decision
from agent.qrs import QrsClient
from tests.fixtures_servers import free_port

from .helpers import (
    NOW,
    PRO,
    build_site,
    config_document,
    deletes,
    journal_entry,
    load,
    present,
    real_now,
    release_rows,
    release_section,
    run_agent,
    spawn,
    wait_until,
    write_config,
)


def _fired(sim) -> int:
    return sum(rule["fired"] for rule in sim.get_faults()["rules"])


def _report(workdir: Path) -> dict:
    return json.loads((workdir / "r.json").read_text("utf-8"))


def _decisions(report: dict, decision: str) -> set[str]:
    return {d["allocation_id"] for d in report["decisions"] if d["decision"] == decision}


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX (TerminateProcess is the same)")
def test_a_delete_that_lands_after_the_recovery_asked_gets_its_one_event(
    simulator, certs, workdir
) -> None:
    """Issue 13, item 2: 86 removed, 82 events. Every DELETE of one allocation takes 8 s in
    QRS. The agent is killed while the first one is in flight; the restarted agent's recovery
    asks QRS within those 8 s (still listed), lists the allocation again and sends its own
    DELETE, which QRS answers 404 because the dead run's DELETE landed meanwhile."""
    now = real_now()
    site = build_site(4, now=now, analyzer_every=0)
    slow = sorted(site.candidates)[0]
    sim = simulator(site, now=now, port=free_port())
    sim.add_fault(f"DELETE /qrs/license/{PRO}/{slow}", "latency", seconds=8)
    document = config_document(
        sim.port,
        certs,
        workdir,
        qrs={"readTimeout": 30, "retries": 0},
        release=release_section(deleteConcurrency=1),
    )
    config = write_config(workdir / "config.yaml", document)
    history = workdir / "history.sqlite"

    proc = spawn("release", "--once", "-c", str(config), cwd=workdir)
    try:
        wait_until(lambda: _fired(sim) >= 1 or proc.poll() is not None, what="the slow DELETE")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert slow in present(sim)  # in flight: QRS has not applied it yet

    restarted = run_agent("release", "--once", "-c", str(config), "--report", "r.json", cwd=workdir)
    assert restarted.returncode == 0, restarted.stderr
    report = _report(workdir)
    assert _decisions(report, "already_gone") == {slow}  # its own DELETE came second
    assert set(site.candidates).isdisjoint(present(sim))
    # One event per removed allocation, the slow one's from the dead run's DELETE.
    assert Counter(r["allocation_id"] for r in release_rows(history)) == Counter(
        list(site.candidates)
    )
    with SqliteJournal(journal_path(workdir, "127.0.0.1")) as journal:
        assert journal.records(OPEN) == []
        rows = [(r.state, r.event_sent) for r in journal.records() if r.entry.allocation_id == slow]
    assert rows == [(RELEASED, True), (ALREADY_GONE, False)]

    again = run_agent("release", "--once", "-c", str(config), cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert len(release_rows(history)) == len(site.candidates)


# --------------------------------------------------------------------------- in process


class _Recorder:
    def __init__(self) -> None:
        self.points: list = []

    def deliver(self, points) -> None:
        self.points.extend(points)


def test_a_late_delete_that_nobody_lists_again_gets_its_event_at_the_next_run(
    simulator, certs, workdir
) -> None:
    """The dead run's DELETE lands after the recovery asked and before the run listed: the
    allocation is simply gone, no run sends another DELETE. The next recovery finds it gone
    and sends its one event; a DELETE still not applied after the landing window is settled
    as not released."""
    site = build_site(3, analyzer_every=0)
    sim = simulator(site)
    config = load(write_config(workdir / "c.yaml", config_document(sim.port, certs, workdir)))
    late, never = sorted(site.candidates)[:2]
    clock = [NOW]
    journal = SqliteJournal(workdir / "j.sqlite", clock=lambda: clock[0])
    journal.intent(journal_entry(late, NOW))
    journal.intent(journal_entry(never, NOW))
    sink = _Recorder()
    with QrsClient(config.sites()[0]) as qrs:
        clock[0] = NOW + timedelta(seconds=5)  # the restart, seconds after the kill
        first = journal.recover(qrs, journal.sink(sink))
        assert (first.unconfirmed, first.not_released, first.events) == (2, 0, 0)
        assert journal.counts() == {UNCONFIRMED: 2}
        qrs.delete_allocation(PRO, late)  # the dead run's DELETE lands now
        clock[0] = NOW + timedelta(days=1)  # the next scheduled run
        second = journal.recover(qrs, journal.sink(sink))
        third = journal.recover(qrs, journal.sink(sink))
    assert (second.released, second.not_released, second.events) == (1, 1, 1)
    assert [p.fields["allocation_id"] for p in sink.points] == [late]
    assert sink.points[0].time == NOW  # the time of the DELETE that did it
    assert not third.changed and not journal.needs_recovery()
    assert {r.entry.allocation_id: r.state for r in journal.records()} == {
        late: RELEASED,
        never: NOT_RELEASED,
    }
    journal.close()


def test_several_deletes_of_one_allocation_give_one_event(simulator, certs, workdir) -> None:
    """A dead run's DELETE (superseded), a failed one of the next run: QRS shows it gone. One
    question to QRS, one event, from the newest DELETE; the older one is not released."""
    site = build_site(2, analyzer_every=0)
    sim = simulator(site)
    config = load(write_config(workdir / "c.yaml", config_document(sim.port, certs, workdir)))
    target = sorted(site.candidates)[0]
    journal = SqliteJournal(workdir / "j.sqlite", clock=lambda: NOW + timedelta(minutes=2))
    journal.intent(journal_entry(target, NOW))
    later = journal_entry(target, NOW + timedelta(minutes=1))
    journal.intent(later)
    assert journal.outcome(later, Decision.FAILED, "QRS answered 500") is True
    assert [r.state for r in journal.records()] == [SUPERSEDED, "failed"]
    sink = _Recorder()
    with QrsClient(config.sites()[0]) as qrs:
        qrs.delete_allocation(PRO, target)
        sim.reset_stats()
        report = journal.recover(qrs, journal.sink(sink))
    assert sim.get_stats()["requests"] == {f"GET /qrs/license/{PRO}/{{id}}": 1}
    assert (report.released, report.events) == (1, 1)
    assert [p.time for p in sink.points] == [later.at]
    assert [r.state for r in journal.records()] == [NOT_RELEASED, RELEASED]
    journal.close()


def test_the_journal_never_accepts_a_second_release_of_one_allocation(tmp_path) -> None:
    with SqliteJournal(tmp_path / "j.sqlite") as journal:
        first, second = journal_entry("a1", NOW), journal_entry("a1", NOW + timedelta(days=1))
        journal.intent(first)
        assert journal.outcome(first, Decision.RELEASED) is True
        journal.intent(second)  # QRS listed it again (it answered 204 but kept it)
        assert journal.outcome(second, Decision.RELEASED) is False
        assert [r.state for r in journal.records(EVENT_STATES)] == [RELEASED]
        third = journal_entry("a1", NOW + timedelta(days=2))
        journal.intent(third)
        assert journal.outcome(third, Decision.QUARANTINED) is False
        assert [r.state for r in journal.records()] == [RELEASED, ALREADY_GONE, ALREADY_GONE]


# --------------------------------------------------------------------------- odd 2xx answers


def _cli_config(sim, certs, workdir: Path) -> Path:
    return write_config(
        workdir / "config.yaml",
        config_document(sim.port, certs, workdir, release=release_section(deleteConcurrency=2)),
    )


def test_a_202_that_deletes_nothing_is_not_a_release(simulator, certs, workdir) -> None:
    """Issue 13, item 3: QRS answers 202 and deletes nothing. Nothing is reported released, no
    event is written, the run fails; twice. When QRS deletes for real, each allocation gets
    exactly one event."""
    now = real_now()
    site = build_site(5, now=now)
    sim = simulator(site, now=now)
    sim.add_fault("DELETE *", "error", status=202, body="")
    config = _cli_config(sim, certs, workdir)
    history = workdir / "history.sqlite"
    for attempt in range(2):
        done = run_agent("release", "--once", "-c", str(config), "--report", "r.json", cwd=workdir)
        assert done.returncode == 1, (attempt, done.stderr)
        report = _report(workdir)
        assert _decisions(report, "released") == set()
        assert _decisions(report, "failed") == set(site.candidates)
        assert "without confirming it (no 204)" in done.stdout + done.stderr + json.dumps(report)
        assert release_rows(history) == []
        assert set(site.candidates) <= set(present(sim))
    assert deletes(sim) == 2 * len(site.candidates)

    sim.clear_faults()  # QRS deletes again
    done = run_agent("release", "--once", "-c", str(config), "--report", "r.json", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert _decisions(_report(workdir), "released") == set(site.candidates)
    again = run_agent("release", "--once", "-c", str(config), cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert Counter(r["allocation_id"] for r in release_rows(history)) == Counter(
        list(site.candidates)
    )


def test_a_202_that_does_delete_is_confirmed_with_a_get(simulator, certs, workdir) -> None:
    """A 202 whose removal a GET confirms (404) is a release, with its event."""
    now = real_now()
    site = build_site(3, now=now, analyzer_every=0)
    sim = simulator(site, now=now)
    config = load(_cli_config(sim, certs, workdir))
    from agent.plugins import build_plugin_host
    from agent.release import run_release

    class Accepting(QrsClient):
        """QRS applies the DELETE but answers 202 (a proxy that rewrites the status)."""

        def delete_allocation(self, resource, allocation_id):
            from agent.qrs import DeleteOutcome

            super().delete_allocation(resource, allocation_id)
            return DeleteOutcome.UNCONFIRMED

    with Accepting(config.sites()[0]) as qrs:
        result = run_release(config, config.sites()[0], build_plugin_host(config), qrs)
    released = {d.allocation.id for d in result.decisions if d.decision is Decision.RELEASED}
    assert released == set(site.candidates) and result.ok
    assert len(result.events) == len(site.candidates)
    assert sim.get_stats()["requests"][f"GET /qrs/license/{PRO}/{{id}}"] == len(site.candidates)


def test_a_204_that_keeps_the_allocation_gets_no_second_event(simulator, certs, workdir) -> None:
    """QRS answers 204 but keeps the allocation: the next run lists it again and deletes it;
    the journal already holds its release, so no second event (two DELETEs, one event)."""
    now = real_now()
    site = build_site(4, now=now)
    sim = simulator(site, now=now)
    lie = sim.add_fault("DELETE *", "error", status=204, count=len(site.candidates))
    config = _cli_config(sim, certs, workdir)
    history = workdir / "history.sqlite"
    first = run_agent("release", "--once", "-c", str(config), cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert lie.count == 0 and set(site.candidates) <= set(present(sim))
    second = run_agent("release", "--once", "-c", str(config), "--report", "r.json", cwd=workdir)
    assert second.returncode == 0, second.stderr
    assert _decisions(_report(workdir), "already_gone") == set(site.candidates)
    assert set(site.candidates).isdisjoint(present(sim))
    assert deletes(sim) == 2 * len(site.candidates)
    assert Counter(r["allocation_id"] for r in release_rows(history)) == Counter(
        list(site.candidates)
    )


def test_a_dry_run_neither_settles_nor_sends_what_a_killed_run_left(
    simulator, certs, workdir
) -> None:
    """A killed run left an intent whose DELETE QRS applied. A dry run (flag or config) sends
    no DELETE, no event and leaves the journal as it is; the next live run sends that
    release's event, once."""
    now = real_now()
    site = build_site(3, now=now, analyzer_every=0)
    sim = simulator(site, now=now)
    config = _cli_config(sim, certs, workdir)
    history = workdir / "history.sqlite"
    landed = sorted(site.candidates)[0]
    with SqliteJournal(journal_path(workdir, "127.0.0.1")) as journal:
        journal.intent(journal_entry(landed, now - timedelta(hours=2)))
    with QrsClient(load(config).sites()[0]) as qrs:
        qrs.delete_allocation(PRO, landed)
    sim.reset_stats()
    dry = write_config(
        workdir / "dry.yaml",
        config_document(
            sim.port, certs, workdir, release=release_section(deleteConcurrency=2, dryRun=True)
        ),
    )
    for args in (("-c", str(config), "--dry-run"), ("-c", str(dry))):
        done = run_agent("release", "--once", *args, cwd=workdir)
        assert done.returncode == 0, done.stderr
        assert deletes(sim) == 0 and release_rows(history) == []
        with SqliteJournal(journal_path(workdir, "127.0.0.1")) as journal:
            assert [r.state for r in journal.records()] == ["intent"]
    live = run_agent("release", "--once", "-c", str(config), cwd=workdir)
    assert live.returncode == 0, live.stderr
    assert Counter(r["allocation_id"] for r in release_rows(history)) == Counter(
        list(site.candidates)
    )
    assert deletes(sim) == len(site.candidates) - 1  # the landed one is not deleted again
