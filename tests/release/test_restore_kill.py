"""Killed (SIGKILL) while applying a plan and while restoring: the next run settles what the
dead one left, nothing is lost and nothing is done twice.

Real ``license-agent`` subprocesses run against the simulator, whose DELETEs or POSTs are slowed
down, and are killed after a few of them. A request in flight when the agent died still reaches
QRS: restarting the simulator cuts its delay short, so it lands before the next run rather than
during it (as in tests/reliability/test_crash.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.journal import UNRESOLVED, SqliteJournal, journal_path
from agent.restore import UNRESOLVED as RESTORE_UNRESOLVED
from agent.restore import RestoreJournal
from agent.runs import RunLog
from agent.simulator.certs import CertPaths
from tests.fixtures_servers import free_port
from tests.reliability.helpers import run_agent, spawn, wait_until

from .helpers import release_block
from .test_plan import LIMIT, Site, cli, decided, report
from .test_restore import holdings, posts

pytestmark = pytest.mark.skipif(
    os.name == "nt", reason="SIGKILL is POSIX (TerminateProcess is the same)"
)
SLOW = release_block("tag: [VIP]", extra=LIMIT + "\ndeleteConcurrency: 1")


@pytest.fixture
def site(release_certs: CertPaths, tmp_path: Path) -> Iterator[Site]:
    made = Site(release_certs, tmp_path, port=free_port())  # a fixed port: restarted below
    yield made
    made.sim.stop()


def kill_when(proc: subprocess.Popen[str], condition: Callable[[], bool], what: str) -> None:
    try:
        wait_until(lambda: condition() or proc.poll() is not None, timeout=60, what=what)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"


def land_in_flight(site: Site) -> None:
    site.sim.clear_faults()
    site.sim.stop()
    site.sim.start()


def killed_apply(site: Site) -> tuple[Path, Path, str, set[str]]:
    """Run A applies a plan and is killed after four DELETEs; the one in flight lands. Returns
    (config, plan, A's run id, what A's DELETEs removed). A wrote no release event; its run-log
    row is the one it wrote when it started (``running``) and its journal rows carry its id."""
    config = site.config(SLOW)
    plan = site.tmp_path / "plan.json"
    assert cli("--dry-run", "--report", str(plan), "-c", str(config)) == 0
    planned = decided(report(plan), "would_release")
    site.sim.add_fault("DELETE *", "latency", seconds=0.25)
    proc = spawn("release", "--once", "--apply", str(plan), "-c", str(config), cwd=site.tmp_path)
    kill_when(proc, lambda: len(planned - site.present()) >= 4, "four deletes")
    land_in_flight(site)
    with SqliteJournal(journal_path(site.tmp_path, "127.0.0.1")) as journal:
        intents = len(journal.records(UNRESOLVED))
        (run_a,) = {r.entry.run_id for r in journal.records()}
    with contextlib.suppress(AssertionError):
        wait_until(lambda: site.deletes() >= intents, timeout=3, what="the in-flight DELETE")
    removed = planned - site.present()
    assert 4 <= len(removed) < len(planned)
    assert site.events("qlik_sense_license_release") == []
    return config, plan, run_a, removed


def test_killed_while_applying_a_plan(site: Site) -> None:
    config, plan, _, gone_before = killed_apply(site)
    planned = decided(report(plan), "would_release")

    again = run_agent(
        "release", "--once", "--apply", str(plan), "-c", str(config), "--report", "r.json",
        cwd=site.tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    document = report(site.tmp_path / "r.json")
    released_now = decided(document, "released")
    assert released_now == planned - gone_before  # not counted twice
    assert decided(document, "already_gone") == gone_before
    assert site.deletes() == len(planned)  # each planned allocation deleted exactly once
    assert site.present() & planned == set()
    events = site.events("qlik_sense_license_release")
    assert Counter(e["fields"]["allocation_id"] for e in events) == Counter(planned)
    with SqliteJournal(journal_path(site.tmp_path, "127.0.0.1")) as journal:
        assert journal.records(UNRESOLVED) == []
        run_ids = {r.entry.run_id for r in journal.records(("released",))}
    assert len(run_ids) == 2  # the killed run and the one that finished its work


def test_killed_while_restoring(site: Site) -> None:
    config = site.config(SLOW)
    before, held_before = site.overview(), holdings(site)
    plan, applied = site.tmp_path / "plan.json", site.tmp_path / "applied.json"
    assert cli("--dry-run", "--report", str(plan), "-c", str(config)) == 0
    assert cli("--apply", str(plan), "--report", str(applied), "-c", str(config)) == 0
    run_id = report(applied)["run"]["id"]
    released = decided(report(applied), "released")
    assert released == site.candidates
    site.sim.add_fault("POST /qrs/license/*", "latency", seconds=0.25)

    proc = spawn("release", "restore", "--run", run_id, "-c", str(config), cwd=site.tmp_path)
    kill_when(proc, lambda: posts(site) >= 5, "five POSTs")
    land_in_flight(site)
    with RestoreJournal(journal_path(site.tmp_path, "127.0.0.1")) as journal:
        intents = len(journal.records(RESTORE_UNRESOLVED))
    assert intents >= 1  # the dead run left at least one POST whose outcome it never saw
    with contextlib.suppress(AssertionError):
        wait_until(lambda: posts(site) >= 5, timeout=3, what="the in-flight POST")
    assert site.events("qlik_sense_license_restore") == []
    sent_before = posts(site)

    again = run_agent(
        "release", "restore", "--run", run_id, "-c", str(config), "--report", "r.json",
        cwd=site.tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    document = report(site.tmp_path / "r.json")
    counts = document["restore"]["counts"]
    recovered = document["restore"]["recovered"]
    # Every POST of the dead run is accounted for: settled from QRS, none sent again.
    assert recovered.get("restored", 0) + recovered.get("not_restored", 0) == intents
    assert counts["already_restored"] + counts["restored"] == len(site.candidates)
    assert posts(site) - sent_before == counts["restored"]
    # One POST per user in all: an interrupted one that QRS applied was not sent again, one
    # that never left the dead process was sent once by the second run.
    assert posts(site) == len(site.candidates)
    # Nothing done twice: every user holds exactly what they held before the release.
    assert holdings(site) == held_before
    assert site.overview() == before
    events = site.events("qlik_sense_license_restore")
    assert Counter(e["fields"]["released_allocation_id"] for e in events) == Counter(
        site.candidates
    )
    with RestoreJournal(journal_path(site.tmp_path, "127.0.0.1")) as journal:
        assert journal.records(RESTORE_UNRESOLVED) == []


def assert_restored_once(site: Site, config: Path, run_a: str, removed: set[str]) -> None:
    """``release restore --run A`` gives back exactly what A's DELETEs removed, once, and
    each of them has exactly one release event, with A's run id."""
    sent = posts(site)
    out = site.tmp_path / "restore-a.json"
    again = run_agent(
        "release", "restore", "--run", run_a, "-c", str(config), "--report", str(out),
        cwd=site.tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    decisions = report(out)["decisions"]
    assert {d["released_allocation_id"] for d in decisions} == removed
    assert {d["decision"] for d in decisions} == {"restored"}
    assert posts(site) - sent == len(removed)
    restored = site.events("qlik_sense_license_restore")
    assert Counter(e["fields"]["released_allocation_id"] for e in restored) == Counter(removed)
    assert {e["fields"]["release_run_id"] for e in restored} == {run_a}
    released = [
        e for e in site.events("qlik_sense_license_release")
        if e["fields"]["allocation_id"] in removed
    ]  # fmt: skip
    assert Counter(e["fields"]["allocation_id"] for e in released) == Counter(removed)
    assert {e["fields"]["run_id"] for e in released} == {run_a}
    # Exactly once: the same restore again sends nothing.
    repeat = run_agent("release", "restore", "--run", run_a, "-c", str(config), cwd=site.tmp_path)
    assert repeat.returncode == 0, repeat.stderr
    assert posts(site) - sent == len(removed)
    assert len(site.events("qlik_sense_license_restore")) == len(removed)


def test_a_killed_run_recovered_by_the_next_one_is_restored_under_its_own_id(site: Site) -> None:
    """Run A dies with DELETEs sent; run B's journal recovery finds them applied and writes
    their release events. Those carry A's run id, so `release restore --run A` gives them
    back (and only them: B's own releases stay released)."""
    config, plan, run_a, removed = killed_apply(site)
    run_b = run_agent(
        "release", "--once", "--apply", str(plan), "-c", str(config), cwd=site.tmp_path
    )
    assert run_b.returncode == 0, run_b.stderr
    released_by_b = site.candidates - removed - site.present()
    assert released_by_b  # B released the rest under its own id
    assert_restored_once(site, config, run_a, removed)
    assert site.present() & released_by_b == set()


def test_a_killed_run_is_restorable_before_any_other_release_run(site: Site) -> None:
    """No release run since A died: the restore settles the release journal itself (as a
    release run would) before it selects, so `--run A` is not "no run A" and A's removals
    come back, each with its one release event."""
    config, _, run_a, removed = killed_apply(site)
    preview = site.tmp_path / "preview.json"
    dry = run_agent(
        "release", "restore", "--run", run_a, "--dry-run", "--report", str(preview),
        "-c", str(config), cwd=site.tmp_path,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert {d["released_allocation_id"] for d in report(preview)["decisions"]} == removed
    assert posts(site) == 0 and site.events("qlik_sense_license_release") == []
    assert_restored_once(site, config, run_a, removed)


# --------------------------------------------------------------------------- `release runs`


def listed_runs(site: Site, config: Path) -> dict[str, dict[str, object]]:
    """``license-agent release runs --json``, by run id."""
    done = run_agent("release", "runs", "--json", "-c", str(config), cwd=site.tmp_path)
    assert done.returncode == 0, done.stderr
    return {r["id"]: r for r in json.loads(done.stdout)}


def journal_rows(site: Site, run_id: str) -> int:
    with SqliteJournal(journal_path(site.tmp_path, "127.0.0.1")) as journal:
        return sum(1 for r in journal.records() if r.entry.run_id == run_id)


def test_a_killed_run_is_listed_as_interrupted_with_its_id(site: Site) -> None:
    """Issue 14: an admin looks at `release runs` after a crash to find what to restore. The
    killed run A is listed, interrupted, with what the journal knows of its DELETEs (none
    verified before anything asked QRS; then what QRS showed); `release restore --run` with
    the listed id gives back exactly what A removed."""
    config, _, run_a, removed = killed_apply(site)
    sent = journal_rows(site, run_a)
    shown = listed_runs(site, config)[run_a]
    assert shown["kind"] == "apply" and shown["status"] == "interrupted"
    assert shown["finished"] is None
    # Nothing asked QRS yet: every DELETE A recorded is unverified.
    assert shown["counts"] == {"deletes_sent": sent, "unverified": sent}
    assert str(shown["outcome"]).startswith(f"interrupted after {sent} DELETE(s) sent")
    table = run_agent("release", "runs", "-c", str(config), cwd=site.tmp_path)
    assert table.returncode == 0, table.stderr
    (line,) = [row for row in table.stdout.splitlines() if run_a in row]
    assert "apply" in line and f"interrupted after {sent} DELETE(s) sent" in line

    # A dry restore settles the release journal (it asks QRS) and sends nothing: the listing
    # now says which of A's DELETEs removed an allocation.
    dry = run_agent("release", "restore", "--run", run_a, "--dry-run", "-c", str(config),
                    cwd=site.tmp_path)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    counts = listed_runs(site, config)[run_a]["counts"]
    assert isinstance(counts, dict)
    assert counts["deletes_sent"] == sent and counts["released"] == len(removed)
    # A DELETE that never left the dead process is still listed by QRS: within the landing
    # window it is asked about again, so it stays unverified rather than "not released".
    assert counts.get("unverified", 0) == sent - len(removed)

    assert_restored_once(site, config, run_a, removed)
    runs = listed_runs(site, config)
    assert runs[run_a]["status"] == "interrupted"
    restores = [r for r in runs.values() if r["kind"] == "restore"]
    assert len(restores) == 2 and all(r["status"] == "finished" for r in restores)


def test_a_run_in_progress_is_listed_as_running_and_marks_the_killed_one(site: Site) -> None:
    """While run B applies the plan (holding the site's release lock), `release runs` shows
    B running and the killed run A interrupted, and looking does not get in B's way: B ends
    normally and is then listed as before (finished, its counts, ok). B's journal recovery
    verified A's DELETEs, which A's entry now shows."""
    config, plan, run_a, removed = killed_apply(site)
    site.sim.add_fault("DELETE *", "latency", seconds=0.25)
    deletes_before = site.deletes()
    proc = spawn("release", "--once", "--apply", str(plan), "-c", str(config), cwd=site.tmp_path)
    try:
        wait_until(lambda: site.deletes() > deletes_before, timeout=60, what="B's first DELETE")
        runs = listed_runs(site, config)
        (run_b,) = [run_id for run_id, r in runs.items() if r["status"] == "running"]
        assert runs[run_b]["kind"] == "apply" and runs[run_b]["finished"] is None
        assert runs[run_a]["status"] == "interrupted"
        # B marked A's row when it started: A is interrupted in the log itself.
        with RunLog(journal_path(site.tmp_path, "127.0.0.1")) as log:
            stored = log.get(run_a)
        assert stored is not None and stored.outcome == "interrupted"
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    runs = listed_runs(site, config)
    finished = runs[run_b]
    assert finished["status"] == "finished" and finished["outcome"] == "ok"
    assert finished["finished"] is not None
    assert finished["counts"]["released"] == len(site.candidates - removed)
    assert runs[run_a]["counts"]["released"] == len(removed)
    assert [r for r in runs.values() if r["status"] == "running"] == []


def test_a_killed_dry_run_is_listed_as_interrupted(site: Site) -> None:
    """A dry run is logged when it starts too; killed while listing, it is interrupted (and
    deleted nothing)."""
    config = site.config(SLOW)
    site.sim.add_fault("GET *", "latency", seconds=0.5)
    proc = spawn("release", "--once", "--dry-run", "-c", str(config), cwd=site.tmp_path)
    path = journal_path(site.tmp_path, "127.0.0.1")

    def logged() -> bool:
        if not path.exists():
            return False
        with RunLog(path) as log:
            return bool(log.recent())

    kill_when(proc, logged, "the dry run's row")
    ((run_id, shown),) = listed_runs(site, config).items()
    assert shown["kind"] == "dry_run" and shown["status"] == "interrupted"
    assert shown["outcome"] == "interrupted (a dry run: nothing was deleted)"
    assert site.deletes() == 0
