"""QRS faults against the simulator: the agent survives them, says what is wrong once, and never
releases an allocation whose data it could not fully read.

Every release test compares three views that must agree: the run's decisions (what the report
shows), the simulator's state afterwards, and the simulator's request counters.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from agent.delivery import Delivery
from agent.jobs import run_monitor_job, run_release_job
from agent.journal import SqliteJournal
from agent.models import Decision
from agent.plugins import build_plugin_host
from agent.qrs import QrsClient
from agent.release import ReleaseResult, run_release
from agent.report import report_document
from agent.schedule import RunLoop, parse_frequency
from agent.simulator import XSRF_MESSAGE, Simulator, ensure_certs

from .helpers import (
    ANA,
    DELETE_ANA,
    DELETE_PRO,
    NOW,
    PRO,
    FakeClock,
    Site,
    build_site,
    captured_logs,
    config_document,
    deletes,
    load,
    loud,
    no_sleep,
    present,
    real_now,
    release_section,
    wait_until,
    write_config,
)

UTC = NOW.tzinfo


# --------------------------------------------------------------------------- QRS down for hours


def test_qrs_down_for_hours_one_line_per_failed_run_then_back(simulator, certs, workdir) -> None:
    """The monitor (hourly) and the release (every 2 hours) on a fake clock, QRS down for the
    first six hours: each failed run logs exactly one line, the loop never stops, and the first
    runs after QRS is back work (the release releases what it must)."""
    now = real_now()  # the release measures thresholds from the real clock
    site = build_site(3, now=now)
    sim = simulator(site, now=now)
    port = sim.port
    sim.stop()  # QRS is down when the agent starts
    monitor = {"enable": True, "frequency": "every 1 hours"}
    release = release_section(frequency="every 2 hours")
    config = load(
        write_config(
            workdir / "c.yaml",
            config_document(port, certs, workdir, monitor=monitor, release=release, jsonl=False),
        )
    )
    host = build_plugin_host(config)
    delivery = Delivery.from_config(config, host)
    clock = FakeClock(datetime(2026, 6, 1, 0, 30, tzinfo=UTC))
    loop = RunLoop(now=clock.now, sleep=clock.sleep, name="test", max_sleep=86400)
    clock.loop = loop
    outcomes: dict[str, list[bool]] = {"monitor": [], "release": []}
    attempts: list[float] = []

    def factory(site_config: Any) -> QrsClient:
        return QrsClient(site_config, sleep=attempts.append)

    def monitor_job() -> None:
        results = run_monitor_job(config, host, delivery, qrs_factory=factory)
        outcomes["monitor"].append(all(r.ok for r in results))

    def release_job() -> None:
        results = run_release_job(config, host, delivery, qrs_factory=factory)
        outcomes["release"].append(bool(results) and all(r.ok for r in results))

    loop.add_job("monitor", parse_frequency("every 1 hours"), monitor_job)
    loop.add_job("release", parse_frequency("every 2 hours"), release_job)
    back = Simulator(site.document, cert_dir=certs.cert_dir, port=port, now=now)

    def tick(clock: FakeClock) -> None:
        if clock.moment.hour == 6 and back._server is None:
            back.start()  # QRS is back after six hours
        if clock.moment.hour == 9:
            loop.stop()

    clock.on_tick = tick
    try:
        with captured_logs() as lines:
            loop.run()
    finally:
        back.stop()
        delivery.close()

    # Runs at 00:30 (start), then at every full hour up to 09:00; QRS is back right after
    # the 06:00 runs.
    assert outcomes["monitor"] == [False] * 7 + [True] * 3
    assert outcomes["release"] == [False] * 4 + [True]  # 00:30, 02, 04, 06 | 08
    for job in ("monitor", "release"):
        alerts = [a for a in loud(lines) if a.thread == f"test-{job}"]
        failed = outcomes[job].count(False)
        # Exactly one line per failed run, naming host:port and what to check; none after.
        assert len(alerts) == failed, [a.message for a in alerts]
        assert all(a.level == "ERROR" for a in alerts)
        assert all(f"127.0.0.1:{port}" in a.message and "4242" in a.message for a in alerts)
        assert all("gave up after 3 attempts" in a.message for a in alerts)
    # The retries were real (2 per failed request; one request per failed run), just quiet.
    assert len(attempts) == 2 * (7 + 4)
    assert loop.skipped == {"monitor": 0, "release": 0}
    assert back.get_stats()["requests"]["GET /qrs/license/accesstypeoverview"] == 3
    assert set(site.candidates).isdisjoint(present(back))  # released once QRS was back


# --------------------------------------------------------------------------- refused requests


def _other_ca(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return ensure_certs(tmp_path_factory.mktemp("other-ca"))


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("wrong_ca", "is not signed by"),
        ("foreign_client_cert", "refused the client certificate"),
        ("forbidden", "lacks the rights"),
        ("xrfkey", "the Xrfkey check failed"),
        ("unauthorized", "401 Unauthorized"),
    ],
)
def test_refusals_are_diagnosed_once_without_retries(
    case: str, expect: str, simulator, certs, workdir, tmp_path_factory
) -> None:
    sim = simulator(build_site(2))
    document = config_document(sim.port, certs, workdir, monitor={"enable": True})
    other = _other_ca(tmp_path_factory)
    cert = document["Butler"]["cert"]
    if case == "wrong_ca":
        cert["clientCertCA"] = str(other.root_cert)
    elif case == "foreign_client_cert":
        cert["clientCert"], cert["clientCertKey"] = str(other.client_cert), str(other.client_key)
    elif case == "forbidden":
        sim.add_fault("*", "error", status=403, body="Forbidden")
    elif case == "xrfkey":
        sim.add_fault("*", "error", status=403, body=XSRF_MESSAGE)
    else:
        sim.add_fault("*", "error", status=401, body="Unauthorized")
    config = load(write_config(workdir / "c.yaml", document))
    host = build_plugin_host(config)
    waits: list[float] = []
    with captured_logs() as lines:
        (result,) = run_monitor_job(
            config, host, qrs_factory=lambda s: QrsClient(s, sleep=waits.append)
        )
    assert not result.ok
    alerts = loud(lines)
    assert len(alerts) == 1 and expect in alerts[0].message, [a.message for a in alerts]
    assert waits == []  # no retry at all
    http_requests = sim.get_stats()["total"]
    assert http_requests == (0 if case in ("wrong_ca", "foreign_client_cert") else 1)


# --------------------------------------------------------------------------- faults mid-release


class Recorder:
    def __init__(self) -> None:
        self.points: list[Any] = []

    def deliver(self, points: Any) -> None:
        self.points.extend(points)


def release_once(
    sim: Simulator, certs: Any, workdir: Any, *, wrap: Callable[[Any], Any] | None = None, **qrs
) -> tuple[ReleaseResult, Recorder, SqliteJournal]:
    document = config_document(
        sim.port,
        certs,
        workdir,
        qrs={"readTimeout": 0.3, "retries": 2, **qrs},
        release=release_section(deleteConcurrency=1),
    )
    config = load(write_config(workdir / "c.yaml", document))
    site_config = config.sites()[0]
    host = build_plugin_host(config)
    recorder = Recorder()
    journal = SqliteJournal(workdir / "journal.sqlite")
    with QrsClient(site_config, sleep=no_sleep) as qrs_client:
        result = run_release(
            config,
            site_config,
            host,
            wrap(qrs_client) if wrap else qrs_client,
            delivery=journal.sink(recorder),
            journal=journal,
            now=NOW,
        )
    return result, recorder, journal


def check_consistency(
    result: ReleaseResult,
    recorder: Recorder,
    sim: Simulator,
    site: Site,
    before: set[str] | None = None,
) -> dict[str, Decision]:
    """The report, the simulator and the events agree; nothing outside the candidates went.

    ``before``: the allocations QRS had when the run started (default: all of the site's).
    """
    decisions = {d.allocation.id: d.decision for d in result.decisions}
    after = present(sim)
    removed = {Decision.RELEASED, Decision.QUARANTINED}
    for allocation_id, decision in decisions.items():
        if decision is Decision.RELEASED:
            assert allocation_id not in after, allocation_id
        elif decision is Decision.QUARANTINED:
            assert after[allocation_id]["quarantined"] is True
        elif decision is not Decision.FAILED:
            assert allocation_id in after and after[allocation_id]["quarantined"] is False
    released = {a for a, d in decisions.items() if d in removed}
    assert released <= set(site.candidates), "released something not releasable"
    assert set(site.protected) <= set(after) and set(site.recent) <= set(after)
    # Every allocation QRS no longer has was released by this run (or failed uncertainly).
    gone = (set(site.all()) if before is None else before) - set(after)
    assert gone - released <= {a for a, d in decisions.items() if d is Decision.FAILED}
    # One event per release, none for anything else.
    events = Counter(p.fields["allocation_id"] for p in recorder.points)
    assert events == Counter(released)
    # The report document counts what the decisions say.
    document = report_document(result)
    counts = Counter(d["decision"] for d in document["decisions"])
    assert counts == Counter(d.decision.value for d in result.decisions)
    for type_counts in document["run"]["counts"].values():
        assert type_counts["released"] + type_counts["quarantined"] <= len(released)
    return decisions


def _by(decisions: dict[str, Decision], site: Site, resource: str | None = None) -> Counter:
    return Counter(
        d.value
        for a, d in decisions.items()
        if a in site.candidates and (resource is None or site.candidates[a] == resource)
    )


def test_5xx_burst_on_listing_is_retried_and_the_run_completes(simulator, certs, workdir) -> None:
    site = build_site(6)
    sim = simulator(site)
    sim.add_fault(f"GET /qrs/license/{PRO}/full", "error", status=503, count=2)
    result, recorder, _ = release_once(sim, certs, workdir)
    decisions = check_consistency(result, recorder, sim, site)
    assert _by(decisions, site) == {"released": 6}
    assert sim.get_stats()["requests"][f"GET /qrs/license/{PRO}/full"] == 3
    assert deletes(sim) == 6


def test_listing_that_keeps_failing_releases_nothing_of_that_type(simulator, certs, workdir):
    site = build_site(6)
    sim = simulator(site)
    sim.add_fault(f"GET /qrs/license/{PRO}/full", "error", status=500, count=3)
    result, recorder, _ = release_once(sim, certs, workdir)
    decisions = check_consistency(result, recorder, sim, site)
    assert _by(decisions, site, PRO) == {}  # never looked at: kept by default
    assert _by(decisions, site, ANA) == {"released": 2}
    assert sim.get_stats()["requests"].get(DELETE_PRO, 0) == 0
    assert not result.ok and "listing professional allocations failed" in result.errors[0]


def test_429_on_deletes_is_retried_and_each_is_deleted_once(simulator, certs, workdir) -> None:
    site = build_site(6)
    sim = simulator(site)
    sim.add_fault("DELETE *", "error", status=429, retry_after=0, count=2)
    result, recorder, _ = release_once(sim, certs, workdir)
    decisions = check_consistency(result, recorder, sim, site)
    assert _by(decisions, site) == {"released": 6}
    assert deletes(sim) == 6 + 2
    assert sim.get_stats()["statuses"]["429"] == 2


def test_a_500_on_a_delete_fails_that_one_only_and_is_not_repeated(simulator, certs, workdir):
    site = build_site(6)
    sim = simulator(site)
    sim.add_fault("DELETE *", "error", status=500, count=1)
    result, recorder, journal = release_once(sim, certs, workdir)
    decisions = check_consistency(result, recorder, sim, site)
    assert _by(decisions, site) == {"released": 5, "failed": 1}
    assert deletes(sim) == 6  # the failed one was not sent again
    assert not result.ok
    # The journal keeps the failure to verify before the next run: QRS still has it.
    (failed,) = [a for a, d in decisions.items() if d is Decision.FAILED]
    assert failed in present(sim)
    with QrsClient(load(workdir / "c.yaml").sites()[0]) as qrs:
        report = journal.recover(qrs, recorder)
    # Still listed seconds after the DELETE: it may still land, so it is asked about again
    # at the next run (settled as not released once the landing window has passed).
    assert (report.unconfirmed, report.not_released, report.released, report.events) == (1, 0, 0, 0)


def test_a_connection_reset_on_a_delete_is_retried_once(simulator, certs, workdir) -> None:
    site = build_site(6)
    sim = simulator(site)
    sim.add_fault("DELETE *", "reset", count=1)
    result, recorder, _ = release_once(sim, certs, workdir)
    decisions = check_consistency(result, recorder, sim, site)
    assert _by(decisions, site) == {"released": 6}
    assert deletes(sim) == 6 + 1 and sim.get_stats()["statuses"]["reset"] == 1


def test_a_delete_reset_twice_fails_and_is_not_repeated_again(simulator, certs, workdir):
    """The outcome of a reset DELETE is unknown: one retry only, then a failure to verify."""
    site = build_site(6)
    sim = simulator(site)
    sim.add_fault("DELETE *", "reset", count=2)
    result, recorder, journal = release_once(sim, certs, workdir)
    decisions = check_consistency(result, recorder, sim, site)
    assert _by(decisions, site) == {"released": 5, "failed": 1}
    assert deletes(sim) == 6 + 1
    with QrsClient(load(workdir / "c.yaml").sites()[0]) as qrs:
        report = journal.recover(qrs, recorder)
    # A reset changes nothing in QRS: still listed, no event (asked again at the next run).
    assert (report.unconfirmed, report.released, report.events) == (1, 0, 0)


def test_a_delete_hanging_past_the_timeout_is_confirmed_by_its_retry(simulator, certs, workdir):
    site = build_site(4, analyzer_every=0)
    sim = simulator(site)
    sim.add_fault("DELETE *", "hang", seconds=0.6, count=1)
    result, recorder, _ = release_once(sim, certs, workdir)
    decisions = check_consistency(result, recorder, sim, site)
    # The hung DELETE and its retry both reached QRS; the allocation went once, one event.
    assert _by(decisions, site) == {"released": 4}
    wait_until(lambda: deletes(sim) == 4 + 1, timeout=5, what="the hung DELETE to end")
    assert sim.get_stats()["statuses"]["404"] == 1  # it found the retry had done the work
    assert len(recorder.points) == 4


@pytest.mark.parametrize(
    "fault",
    [
        {"action": "malformed", "count": 1},
        {"action": "hang", "seconds": 0.5, "count": 3},
        {"action": "reset", "count": 3},
        {"action": "error", "status": 502, "count": 3},
    ],
    ids=["malformed", "hang", "reset", "502"],
)
def test_owners_that_cannot_be_fetched_keep_their_allocations(
    fault: dict[str, Any], simulator, certs, workdir
) -> None:
    site = build_site(6)
    sim = simulator(site)
    sim.add_fault("GET /qrs/user/full", **fault)
    result, recorder, _ = release_once(sim, certs, workdir)
    decisions = check_consistency(result, recorder, sim, site)
    assert _by(decisions, site) == {"kept": 6}
    assert deletes(sim) == 0 and recorder.points == []
    reasons = {
        r.rule for d in result.decisions for r in d.reasons if d.allocation.id in site.candidates
    }
    assert reasons == {"userLookup"}


def test_malformed_listing_json_releases_nothing_of_that_type(simulator, certs, workdir) -> None:
    site = build_site(6)
    sim = simulator(site)
    sim.add_fault(f"GET /qrs/license/{ANA}/full", "malformed", count=1)
    result, recorder, _ = release_once(sim, certs, workdir)
    decisions = check_consistency(result, recorder, sim, site)
    assert _by(decisions, site, ANA) == {}
    assert _by(decisions, site, PRO) == {"released": 4}
    assert sim.get_stats()["requests"].get(DELETE_ANA, 0) == 0
    assert any("not valid JSON" in e for e in result.errors)


def test_random_faults_everywhere_never_release_anything_wrong(simulator, certs, workdir) -> None:
    """A storm: a quarter of all QRS requests fail in one of five ways."""
    site = build_site(12)
    sim = simulator(site)
    for action, options in (
        ("error", {"status": 503}),
        ("error", {"status": 429, "retry_after": 0}),
        ("reset", {}),
        ("malformed", {}),
        ("hang", {"seconds": 0.4}),
    ):
        sim.add_fault("*", action, rate=0.05, **options)
    settled: set[str] = set()
    for _ in range(4):  # a few runs; every run must be consistent on its own
        before = set(present(sim))
        result, recorder, journal = release_once(sim, certs, workdir)
        decisions = check_consistency(result, recorder, sim, site, before)
        settled |= {a for a, d in decisions.items() if d in (Decision.RELEASED,)}
        journal.close()
    assert settled <= set(site.candidates)


# --------------------------------------------------------------------------- older and newer Sense


class Mutating:
    """Changes the JSON bodies of QRS's answers on the wire, through a hook on the real client's
    session (shapes the simulator refuses to serve: nulls and wrong types where QRS has dates
    and flags). The client decodes the changed bodies itself, so its fast path and its
    fallback are both exercised. Pass :meth:`wrap` as ``release_once(wrap=...)``."""

    def __init__(self, allocations: Callable, users: Callable = lambda found: None) -> None:
        self.allocations = allocations
        self.users = users
        self.changed: list[str] = []

    def wrap(self, qrs: QrsClient) -> QrsClient:
        qrs.transport.session.hooks["response"].append(self._rewrite)
        return qrs

    def _rewrite(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = urlsplit(response.url).path
        if response.request.method != "GET" or response.status_code != 200:
            return
        if path.endswith("accesstype/full"):
            listed = self.allocations(response.json())
        elif path == "/qrs/user/full":
            listed = response.json()
            self.users({u["id"].lower(): u for u in listed})
        else:
            return
        response._content = json.dumps(listed).encode()
        self.changed.append(path)


def test_missing_extra_and_null_fields_keep_what_cannot_be_read(simulator, certs, workdir):
    site = build_site(9, analyzer_every=0)
    sim = simulator(site)
    ids = list(site.candidates)
    broken_allocation = {
        ids[0]: lambda a: a.pop("createdDate"),
        ids[2]: lambda a: a.update(lastUsed="yesterday"),
        ids[3]: lambda a: a.update(quarantined=None),
        ids[4]: lambda a: a.update(user={"id": a["user"]["id"]}),  # no userId / directory
    }
    newer = ids[5]  # a newer Sense adds fields: read as usual

    def allocations(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for allocation in listed:
            allocation["someFutureField"] = {"nested": [1, None]}
            change = broken_allocation.get(allocation["id"])
            if change:
                change(allocation)
            if allocation["id"] == newer:
                allocation.pop("excess", None)
                allocation["quarantineEnd"] = None
        return listed

    owner_of = {a["id"]: a["user"] for a in site.document[PRO]}
    broken_user = {owner_of[ids[6]]: lambda u: u.update(tags="Finance")}
    odd_user = {owner_of[ids[7]]: lambda u: u.update(inactive=None, customProperties=None)}

    def users(found: dict[str, dict[str, Any]]) -> None:
        for user_id, user in found.items():
            user["roles"] = None
            for table in (broken_user, odd_user):
                change = table.get(user_id)
                if change:
                    change(user)

    mutating = Mutating(allocations, users)
    result, recorder, _ = release_once(sim, certs, workdir, wrap=mutating.wrap)
    assert mutating.changed  # the bodies were changed on the wire, and decoded by the client
    decisions = check_consistency(result, recorder, sim, site)
    kept = {a for a, d in decisions.items() if d is Decision.KEPT and a in site.candidates}
    assert kept == {ids[0], ids[2], ids[3], ids[4], ids[6], ids[7]}
    reasons = {
        d.allocation.id: {r.rule for r in d.reasons}
        for d in result.decisions
        if d.allocation.id in kept
    }
    assert reasons[ids[0]] == reasons[ids[6]] == {"qrsData"}
    # Null custom properties are not "no custom properties": a rule might protect the user.
    assert reasons[ids[7]] == {"qrsData"}
    # Extra fields, a missing 'excess', a null quarantineEnd, null roles and flags (with the
    # flag rules set to Ignore) are read as usual and released.
    assert {ids[1], ids[5], ids[8]} <= {a for a, d in decisions.items() if d is Decision.RELEASED}


def test_monitor_reads_an_older_and_a_newer_overview(simulator, certs, workdir) -> None:
    site = build_site(3)
    older = {
        "analyzerTimeAccess": None,
        "loginAccess": None,
        "professionalAccess": {"excess": None, "quarantined": None},
    }
    newer = {"futureAccess": {"enabled": True, "total": 5}, "analyzerAccess": {"burst": 3}}
    for overview in (older, newer):
        sim = simulator({**site.document, "overview": overview})
        config = load(
            write_config(
                workdir / "c.yaml",
                config_document(sim.port, certs, workdir, monitor={"enable": True}),
            )
        )
        with captured_logs() as lines:
            (result,) = run_monitor_job(config, build_plugin_host(config))
        assert result.ok and loud(lines) == []
        fields = {p.tags["license_type"]: set(p.fields) for p in result.points}
        assert "professional" in fields and "analyzer" in fields
        if overview is older:
            assert "analyzer_capacity" not in fields
            assert fields["professional"] == {"allocated", "available", "total", "used"}
        sim.stop()


def test_a_run_after_the_storm_releases_normally(simulator, certs, workdir) -> None:
    site = build_site(5)
    sim = simulator(site)
    sim.add_fault("*", "error", status=503, count=100)
    first, _, journal = release_once(sim, certs, workdir)
    journal.close()
    assert not first.ok and deletes(sim) == 0
    sim.clear_faults()
    second, recorder, _ = release_once(sim, certs, workdir)
    decisions = check_consistency(second, recorder, sim, site)
    assert _by(decisions, site) == {"released": 5} and second.ok
    assert timedelta(0) <= second.finished - second.started  # type: ignore[operator]


def test_an_allocation_listed_twice_with_different_data_is_kept(simulator, certs, workdir):
    """A QRS that answers inconsistently (the same id twice, once quarantined, once broken)
    gives no certainty about that allocation: it is kept, the others are released."""
    site = build_site(4, analyzer_every=0)
    sim = simulator(site)
    twin, broken, fine = list(site.candidates)[:3]

    def allocations(listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        extra = []
        for allocation in listed:
            if allocation["id"] == twin:
                extra.append({**allocation, "quarantined": True})
            if allocation["id"] == broken:
                extra.append({**allocation, "createdDate": "not a date"})
            if allocation["id"] == fine:
                extra.append(dict(allocation))  # an identical repeat is harmless
        return listed + extra

    result, recorder, _ = release_once(sim, certs, workdir, wrap=Mutating(allocations).wrap)
    decisions = check_consistency(result, recorder, sim, site)
    assert decisions[twin] is Decision.KEPT and decisions[broken] is Decision.KEPT
    assert decisions[fine] is Decision.RELEASED
    reasons = [r.reason for d in result.decisions if d.allocation.id == twin for r in d.reasons]
    assert any("more than once" in r for r in reasons)
