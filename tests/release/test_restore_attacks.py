"""Attacks on ``release restore``'s guarantees through the simulator over mutual TLS: odd
answers to the POST, odd selections. A restore is recorded only when QRS confirmed it; what
QRS did not confirm is asked again, never counted as given back."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.reliability.helpers import spawn, wait_until

from .test_plan import Site, cli, report
from .test_restore import RESTORE_MEASUREMENT, applied_run, holdings, posts, restore


def other_allocation(site: Site) -> dict[str, object]:
    """An allocation QRS holds for a user the restore is not about (a protected VIP)."""
    vip = next(u for u in site.users if u["userId"] == "vip1")
    held = site.sim.state.allocations["professionalaccesstype"].values()
    allocation = next(a for a in held if a["user"] and a["user"]["id"] == vip["id"])
    return {"id": allocation["id"], "user": {"id": vip["id"], "userId": "vip1"}}


@pytest.mark.parametrize(
    "answer",
    ["another user's allocation", "an allocation without its user", "an empty id", "204"],
)
def test_a_post_answer_that_does_not_confirm_the_restore_is_not_recorded(
    site: Site, answer: str
) -> None:
    """QRS answers the POST with a success status but not with the user's new allocation (it
    did not apply it): the restore is not recorded as done, no restore event is sent, and the
    next restore asks QRS and gives it back then, once."""
    config = site.config()
    held_before = holdings(site)
    run_id, released = applied_run(site, config)
    body, status = {
        "another user's allocation": (json.dumps(other_allocation(site)), 201),
        "an allocation without its user": (json.dumps({"id": other_allocation(site)["id"]}), 200),
        "an empty id": (json.dumps({"id": "", "user": {"id": "x"}}), 201),
        "204": ("", 204),
    }[answer]
    site.sim.add_fault("POST /qrs/license/*", "error", status=status, body=body, count=1)
    out = site.tmp_path / "restore.json"
    assert restore("--run", run_id, "--report", str(out), "-c", str(config)) == 1
    document = report(out)
    counts = document["restore"]["counts"]
    assert counts["restored"] == len(released) - 1 and counts["failed"] == 1
    (failed,) = [d for d in document["decisions"] if d["decision"] == "failed"]
    assert "outcome is unknown" in failed["reason"]
    assert len(site.events(RESTORE_MEASUREMENT)) == len(released) - 1

    # The next restore asks QRS (the POST was not applied) and gives it back, once.
    again = site.tmp_path / "again.json"
    assert restore("--run", run_id, "--report", str(again), "-c", str(config)) == 0
    assert report(again)["restore"]["counts"]["restored"] == 1
    assert holdings(site) == held_before
    events = site.events(RESTORE_MEASUREMENT)
    assert sorted(e["fields"]["released_allocation_id"] for e in events) == sorted(released)


def test_restore_of_a_dry_run_gives_nothing_back_and_says_so(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site.config()
    plan = site.tmp_path / "plan.json"
    assert cli("--dry-run", "--report", str(plan), "-c", str(config)) == 0
    dry_id = report(plan)["run"]["id"]
    capsys.readouterr()
    code = restore("--run", dry_id, "-c", str(config))
    out, err = capsys.readouterr()
    assert posts(site) == 0
    assert code == 0, err
    assert "dry run" in (out + err) and "nothing" in (out + err), out + err


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("2026-02-30", "is not a date"),
        ("yesterday", "is not a date"),
        ("2026-06-01 08:00", "is not a date"),
        ("2026-06-01T08:00:00+25:00", "is not a date"),
        ("2026-06-01T08:00:00", None),  # no offset: UTC, as the help says
    ],
)
def test_restore_since_odd_dates(
    site: Site, since: str, message: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site.config()
    code = restore("--since", since, "--dry-run", "-c", str(config))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if message is None:
        assert code == 0, err
    else:
        assert code == 2 and message in err and since in err


def test_restore_since_in_the_future_or_another_time_zone(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site.config()
    run_id, released = applied_run(site, config)
    capsys.readouterr()
    preview = site.tmp_path / "future.json"
    assert (
        restore("--since", "2999-01-01", "--dry-run", "--report", str(preview), "-c", str(config))
        == 0
    )
    assert report(preview)["decisions"] == [] and posts(site) == 0
    # An hour ago, written in UTC+02:00, selects this run.
    moment = (datetime.now(UTC) - timedelta(hours=1)).astimezone(timezone(timedelta(hours=2)))
    zoned = site.tmp_path / "zoned.json"
    assert (
        restore(
            "--since", moment.isoformat(), "--dry-run", "--report", str(zoned), "-c", str(config)
        )
        == 0
    )
    assert {d["released_allocation_id"] for d in report(zoned)["decisions"]} == released
    # Written in UTC+14 two hours from now is in the future: nothing.
    later = (datetime.now(UTC) + timedelta(hours=2)).astimezone(timezone(timedelta(hours=14)))
    assert (
        restore(
            "--since", later.isoformat(), "--dry-run", "--report", str(zoned), "-c", str(config)
        )
        == 0
    )
    assert report(zoned)["decisions"] == []


def test_restore_user_in_odd_case_and_with_spaces(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    config = site.config()
    run_id, released = applied_run(site, config)
    out = site.tmp_path / "user.json"
    assert (
        restore("--user", "corp\\U000", "--dry-run", "--report", str(out), "-c", str(config)) == 0
    )
    chosen = {(d["user_directory"], d["user_id"]) for d in report(out)["decisions"]}
    assert chosen == {("CORP", "u000")}, chosen  # a Professional and an Analyzer release
    assert len(report(out)["decisions"]) == 2
    # Spaces are part of a name: no user is selected by a name with spaces around it.
    assert (
        restore("--user", " CORP\\u000 ", "--dry-run", "--report", str(out), "-c", str(config)) == 0
    )
    assert report(out)["decisions"] == [] and posts(site) == 0


@pytest.mark.parametrize(("action", "status"), [("error", 503), ("reset", 500), ("error", 409)])
def test_a_post_that_fails_is_never_sent_twice_in_one_restore(
    site: Site, action: str, status: int
) -> None:
    """A 5xx or a reset leaves the outcome unknown: no second POST for that user in this
    restore (it could allocate twice); a 4xx is a refusal. The next restore settles it."""
    config = site.config()
    held_before = holdings(site)
    run_id, released = applied_run(site, config)
    site.sim.add_fault("POST /qrs/license/*", action, status=status, count=1)
    sent = posts(site)
    out = site.tmp_path / "restore.json"
    assert restore("--run", run_id, "--report", str(out), "-c", str(config)) == 1
    assert posts(site) - sent == len(released)  # one POST per allocation, none repeated
    counts = report(out)["restore"]["counts"]
    assert counts["restored"] == len(released) - 1
    assert counts["failed" if status >= 500 else "refused"] == 1
    assert restore("--run", run_id, "-c", str(config)) == 0
    assert holdings(site) == held_before
    assert len(site.events(RESTORE_MEASUREMENT)) == len(released)


def test_a_post_answered_429_is_sent_again_and_counted_once(site: Site) -> None:
    """429 says QRS did not take the request: the one case where a POST is sent again."""
    config = site.config()
    held_before = holdings(site)
    run_id, released = applied_run(site, config)
    site.sim.add_fault("POST /qrs/license/*", "error", status=429, retry_after=0, count=1)
    sent = posts(site)
    assert restore("--run", run_id, "-c", str(config)) == 0
    assert posts(site) - sent == len(released) + 1
    assert holdings(site) == held_before
    assert len(site.events(RESTORE_MEASUREMENT)) == len(released)


def test_restore_user_without_its_directory_is_a_usage_error(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--user CORP\\u000` unquoted reaches the agent as CORPu000: before, 'Nothing selected.'
    and exit 0, as if that user had nothing to give back."""
    config = site.config()
    applied_run(site, config)
    capsys.readouterr()
    assert restore("--user", "CORPu000", "-c", str(config)) == 2
    err = capsys.readouterr().err
    assert "names no user directory" in err and "single quotes" in err
    assert posts(site) == 0


@pytest.mark.skipif(os.name == "nt", reason="the restore runs as a POSIX subprocess here")
def test_two_restores_at_once_give_back_once(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two restores of one run as two processes: the second finds the site's release lock
    taken, sends no POST and says who holds it; the first gives everything back, once."""
    config = site.config()
    held_before = holdings(site)
    run_id, released = applied_run(site, config)
    site.sim.add_fault("POST /qrs/license/*", "latency", seconds=0.1)
    first = spawn("release", "restore", "--run", run_id, "-c", str(config), cwd=site.tmp_path)
    try:
        wait_until(lambda: posts(site) >= 2, timeout=60, what="the first restore's POSTs")
        capsys.readouterr()
        assert restore("--run", run_id, "-c", str(config)) == 1
        err = capsys.readouterr().err
        assert "another license agent" in err and str(first.pid) in err
        out, first_err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, first_err
    assert posts(site) == len(released)
    assert holdings(site) == held_before
    assert len(site.events(RESTORE_MEASUREMENT)) == len(released)
