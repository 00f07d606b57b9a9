"""One release run: candidates -> vetoes -> deletes -> events.

A run works on one site. It lists each enabled license type's allocations with a server-side
filter that can only return too many (never too few), decides exactly in Python which ones are
past their threshold, fetches the owners of all of them in one bulk call, lets every
neverRelease rule judge the whole batch, checks the safety limit, and only then deletes (or,
in a dry run, reports what it would delete). Every allocation it looked at ends with one
:class:`~agent.models.AllocationDecision` and every reason that led to it.

This module is the run's I/O: listing, fetching, the DELETEs with the release journal, the
release events and the summary. The deciding itself is pure and lives in
:mod:`agent.decisions`; applying a reviewed plan is :mod:`agent.apply`. Whatever is uncertain
keeps the allocation: unreadable data, a user that could not be fetched, a rule that raised, a
plugin that failed to load or to give its rules (then nothing at all is released), a safety
limit that was exceeded (then nothing at all is released).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from loguru import logger

from agent.apply import PlannedSet, apply_plan, decision_settings
from agent.clockskew import check_clock
from agent.decisions import (
    STEP_CLOCK,
    STEP_DATA,
    STEP_DELETE,
    STEP_LIMIT,
    STEP_STOP,
    STEP_USER_LOOKUP,
    Screening,
    TypeResult,
    TypeSettings,
    UserIndex,
    decide_candidates,
    gc_paused,
    hold_back,
    index_users,
    limit_exceeded,
    limit_note,
    release_filter,
    screen,
    user_name,
    would_release,
)
from agent.journal import EventSink, JournalEntry, NullJournal, ReleaseJournal, release_event
from agent.models import (
    FEATURE_LICENSE_RELEASE,
    UTC,
    Allocation,
    AllocationDecision,
    Candidate,
    Decision,
    Decoded,
    Point,
    Reason,
    ReleaseRule,
)
from agent.qrs import DeleteOutcome, ReleaseQrs

if TYPE_CHECKING:
    from agent.config import AgentConfig, SiteConfig
    from agent.plugins import PluginHost

#: QRS quarantines an allocation removed within this time of its last use (QRS.md).
QUARANTINE = timedelta(days=7)
#: After deletes, the quarantine list is re-read only if some deleted allocation was used
#: this recently: older ones cannot have been quarantined, even with some clock skew.
VERIFY_WITHIN = QUARANTINE + timedelta(days=1)

#: ``progress(stage, done, total)``: called while a run lists, fetches and deletes.
Progress = Callable[[str, int, int], None]


@dataclass
class ReleaseResult:
    """The outcome of one release run on one site; the report is made from it."""

    site: str
    started: datetime
    now: datetime
    dry_run: bool
    types: list[TypeResult] = field(default_factory=list)
    finished: datetime | None = None
    #: Why the run released nothing at all (rule plugin failure, safety limit), else None.
    aborted: str | None = None
    #: True when ``aborted`` is the safety limit (the scheduler logs it as an error).
    limit_tripped: bool = False
    #: A dry run over the safety limit: what a live run would do and what to do instead.
    limit_note: str | None = None
    #: This run's id: in the report, the journal, the release events and the log.
    run_id: str = ""
    #: What the decisions depended on (:func:`agent.apply.decision_settings`); a plan records it.
    settings: dict[str, Any] = field(default_factory=dict)
    #: Whether this run applied a reviewed plan (``--apply``).
    plan_applied: bool = False
    #: Problems that did not stop the run but left it incomplete or unverified.
    errors: list[str] = field(default_factory=list)
    #: Why no candidate with an owner could be judged (every user look-up failed), else None.
    judged_none: str | None = None
    events: list[Point] = field(default_factory=list)

    @property
    def decisions(self) -> list[AllocationDecision]:
        return [d for t in self.types for d in t.decisions]

    @property
    def ok(self) -> bool:
        """False when something needs attention: exit code 1 in ``--once`` mode."""
        failed = any(d.decision is Decision.FAILED for d in self.decisions)
        return not (self.aborted or self.judged_none or failed or any(t.error for t in self.types))

    @property
    def exit_code(self) -> int:
        """``release --once``'s exit code for this run: 0 done; 3 a live run that the safety
        limit stopped (and nothing else went wrong); 1 anything else that needs attention."""
        if self.ok:
            return 0
        failed = any(d.decision is Decision.FAILED for d in self.decisions)
        other = failed or any(t.error for t in self.types) or self.errors
        return 3 if self.limit_tripped and not other else 1

    def thresholds(self) -> dict[str, int]:
        return {t.license_type: t.settings.threshold_days for t in self.types}

    def counts(self) -> dict[str, dict[str, Any]]:
        return {
            t.license_type: {**t.counts(), "kept_by_rule": t.kept_by_rule()} for t in self.types
        }


def _utc_now() -> datetime:
    return datetime.now(UTC)


def new_run_id(moment: datetime | None = None) -> str:
    """A run id: the start time to the second (UTC, sortable) and 6 random hex digits,
    e.g. ``20260601T120000Z-3f9a0c``. Short enough to type in ``release restore --run``."""
    moment = (moment or _utc_now()).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _check_clock(
    result: ReleaseResult, site: SiteConfig, qrs: ReleaseQrs, real_started: datetime, dry: bool
) -> None:
    """Days since last use are counted from ``result.now``; QRS wrote ``lastUsed`` with its own
    clock. When the two differ by more than ``configQRS.maxClockSkewMinutes``, or QRS's clock
    cannot be read, a live run releases nothing (an error); a dry run only warns."""
    # Where the run measures from, as of the moment the reading's answer arrived.
    offset = result.now - real_started
    bound = timedelta(minutes=site.qrs.max_clock_skew_minutes)
    check = check_clock(qrs.server_clock(), bound, offset=offset)
    if check.problem is None:
        return
    if dry:
        logger.warning("release run on {} (dry run): {}", site.name, check.problem)
        return
    why = f"{check.problem}. Nothing was released"
    result.aborted = result.aborted or why
    result.errors.append(why)
    logger.error("release run on {}: {}", site.name, why)
    hold_back(result.types, STEP_CLOCK, "held back: " + check.problem)


def _enabled_types(
    site: SiteConfig, host: PluginHost
) -> tuple[list[TypeSettings], list[TypeResult]]:
    """The enabled types that a license-type plugin can release, and errors for the others."""
    known = {lt.name: lt for lt in host.license_types()}
    ready: list[TypeSettings] = []
    broken: list[TypeResult] = []
    for name, settings in site.license_release.license_type.enabled().items():
        license_type = known.get(name)
        resource = license_type.allocation_resource if license_type else None
        type_settings = TypeSettings(name, resource or "", settings.release_threshold_days)
        if not resource:
            why = (
                f"licenseRelease.licenseType.{name} is enabled, but no loaded license-type plugin"
                f" can list and delete {name} allocations (is the plugin disabled in"
                " Butler.licenseAgent.plugins.disable?)"
            )
            broken.append(TypeResult(type_settings, error=why))
        else:
            ready.append(type_settings)
    return ready, broken


def _fetch_users(qrs: ReleaseQrs, user_ids: set[str], index: UserIndex) -> None:
    """Fetch ``user_ids`` into ``index``; what cannot be fetched is marked unavailable there.

    Never raises: a failed look-up keeps the allocations of those users.
    """
    if not user_ids:
        return
    try:
        fetched = qrs.get_users(sorted(user_ids))
    except Exception as exc:
        why = f"user look-up failed: {type(exc).__name__}: {exc}"
        logger.error("{}; the candidates are kept", why)
        for user_id in user_ids:
            index.unavailable.setdefault(user_id.lower(), Reason(STEP_USER_LOOKUP, why))
        return
    index_users(fetched, index=index)


def _set_limits(
    results: Sequence[TypeResult], site: SiteConfig, qrs: ReleaseQrs, host: PluginHost
) -> None:
    limits = site.license_release.max_releases_per_run
    if limits is None:
        return
    overview: Mapping[str, Any] | None = None
    if limits.percent is not None and any(r.to_release for r in results):
        try:
            overview = qrs.access_type_overview()
        except Exception as exc:
            logger.warning(
                "cannot read the license overview for the percentage limit ({}); using the"
                " number of listed allocations instead, which can only lower the limit",
                exc,
            )
    extractors = {lt.name: lt.extract for lt in host.license_types()}
    for result in results:
        allocated: int | None = None
        if limits.percent is not None:
            allocated = result.listed
            extract = extractors.get(result.license_type)
            if overview is not None and extract is not None:
                try:
                    fields = extract(overview) or {}
                    if "allocated" in fields:
                        # The listing is a subset of what is allocated: never go below it.
                        allocated = max(int(fields["allocated"]), result.listed)
                except Exception as exc:
                    logger.warning("cannot read {} from the overview: {}", result.license_type, exc)
        result.allocated = allocated
        result.limit = limits.limit_for(allocated or 0)


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says QRS cannot be used at all (down, TLS refused, no rights)."""
    from agent.qrs import QrsAuthError, QrsConnectionError, QrsTimeout, QrsTlsError

    return isinstance(exc, QrsConnectionError | QrsTlsError | QrsAuthError | QrsTimeout)


def run_release(
    config: AgentConfig,
    site: SiteConfig,
    host: PluginHost,
    qrs: ReleaseQrs,
    *,
    dry_run: bool | None = None,
    delivery: EventSink | None = None,
    journal: ReleaseJournal | None = None,
    now: datetime | None = None,
    clock: Callable[[], datetime] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    run_id: str | None = None,
    planned: PlannedSet | None = None,
) -> ReleaseResult:
    """One release run on ``site``.

    :param dry_run: ``None`` takes ``licenseRelease.dryRun``; ``True`` forces a dry run.
    :param delivery: receives the release events; ``None`` sends them nowhere.
    :param journal: records each DELETE before and after it is sent.
    :param now: the moment thresholds are measured from (default: the clock at start).
    :param clock: the time source for ``started``/``finished`` and for each DELETE, whose
        moment is its release event's time (default: real UTC time).
    :param should_stop: asked before each DELETE; once it returns true (the agent is
        stopping) no further DELETE is sent: those in flight finish, the others are kept
        for the next run.
    :param run_id: this run's id (default: a new one, see :func:`new_run_id`).
    :param planned: apply a reviewed plan (``--apply``): release only what it lists and what
        still qualifies (:func:`apply_plan`); the safety limit does not apply to it.
    """
    clock = clock or _utc_now
    started = clock()
    real_started = _utc_now()  # the clock check compares with this machine's real clock
    dry = bool(site.license_release.dry_run or dry_run)
    result = ReleaseResult(
        site=site.name,
        started=started,
        now=now or started,
        dry_run=dry,
        run_id=run_id or new_run_id(),
    )
    report = progress or _no_progress

    ready, broken = _enabled_types(site, host)
    rules = _rules(result, config, site, host)
    if rules is None:  # a rule plugin failed: its protection is unknown, nothing is released
        result.types = [TypeResult(t) for t in ready] + broken
        result.finished = clock()
        return result
    # The collector is paused while listing and deciding (see gc_paused): at 100,000 users
    # its full collections over the parsed answers cost a sixth of the run.
    with gc_paused():
        screened = _list_and_screen(result, qrs, ready, report)
        if result.aborted:  # QRS cannot be used at all
            result.types = [t for t, _ in screened.values()] + broken
            result.errors.append(result.aborted)
            result.finished = clock()
            return result
        _decide(result, qrs, screened, rules, report)
    result.types = [t for t, _ in screened.values()] + broken
    result.errors.extend(t.error for t in result.types if t.error)
    _fail_if_nothing_judged(result, screened)
    result.settings = decision_settings(site, (r.name for r in rules))
    if planned is not None:
        result.plan_applied = True
        apply_plan(result.types, planned, qrs, result.now)
    _apply_limit(result, site, qrs, host, planned is not None)
    _check_clock(result, site, qrs, real_started, dry)
    if dry:
        for type_result in result.types:
            type_result.decisions.extend(would_release(type_result.to_release))
            type_result.to_release = []
    else:
        for type_result in result.types:
            if type_result.to_release:
                _release_type(
                    type_result,
                    result,
                    qrs,
                    journal or NullJournal(),
                    clock,
                    site,
                    report,
                    should_stop,
                )
        _deliver_events(result, delivery)
    result.finished = clock()
    _log_summary(result)
    return result


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def _rules(
    result: ReleaseResult, config: AgentConfig, site: SiteConfig, host: PluginHost
) -> list[ReleaseRule] | None:
    """The neverRelease rules of this run, or ``None`` (and the run aborted) when a plugin
    that may give rules failed to load or to give them."""
    rules, rule_errors = host.release_rules(config, site)
    # A plugin that failed to load may have been a rule plugin: its protection is unknown too.
    load_errors = {
        name: f"failed to load: {info.error}"
        for name, info in getattr(host, "infos", {}).items()
        if info.error
    }
    if rule_errors or load_errors:
        problems = {**load_errors, **rule_errors}
        result.aborted = (
            "plugin(s) that may give neverRelease rules failed: "
            + "; ".join(f"{name}: {why}" for name, why in sorted(problems.items()))
            + ". Nothing was released: the protection they give is unknown. Fix the plugin, or"
            " disable it in Butler.licenseAgent.plugins.disable (see license-agent plugins)"
        )
        logger.error("{}", result.aborted)
        return None
    logger.info(
        "release run {} on {}: {} rule(s): {}{}",
        result.run_id,
        result.site,
        len(rules),
        ", ".join(r.name for r in rules) or "none",
        " (dry run)" if result.dry_run else "",
    )
    return list(rules)


def _list_and_screen(
    result: ReleaseResult, qrs: ReleaseQrs, ready: Sequence[TypeSettings], report: Progress
) -> dict[str, tuple[TypeResult, Screening]]:
    """List each type's allocations that may be past the threshold and screen them.

    A listing that fails leaves its type with an error (nothing of it is released); when QRS
    cannot be used at all, ``result.aborted`` says so and the remaining types are not listed.
    Only the count of listed allocations is kept: the raw QRS objects (a third of the run's
    peak memory at 100,000 users) are dropped as soon as they are screened.
    """
    screened: dict[str, tuple[TypeResult, Screening]] = {}

    def list_type(settings: TypeSettings) -> Decoded[Allocation]:
        return qrs.list_allocations(
            settings.resource,
            release_filter(result.now, settings.threshold_days),
            license_type=settings.license_type,
        )

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="qrs-list") as ahead:
        pending: Future[Decoded[Allocation]] | None = None
        for index, settings in enumerate(ready):
            report(f"listing {settings.license_type} allocations", index, len(ready))
            type_result = TypeResult(settings)
            screened[settings.license_type] = (type_result, Screening())
            try:
                raw = pending.result() if pending is not None else list_type(settings)
            except Exception as exc:
                pending = None
                why = (
                    f"listing {settings.license_type} allocations failed:"
                    f" {type(exc).__name__}: {exc}"
                )
                type_result.error = why
                if _unreachable(exc):
                    # QRS is down or refuses us: every other request would fail the same way,
                    # and the scheduled job logs this once (not once per type and per retry).
                    result.aborted = f"QRS cannot be used: {exc}. Nothing was released"
                    for other in ready[index + 1 :]:
                        screened[other.license_type] = (TypeResult(other, error=why), Screening())
                    break
                logger.error(
                    "{}; no {} allocation is released this run", why, settings.license_type
                )
                continue
            # The next type's list downloads while this one is screened. Started only after a
            # listing worked, so an unreachable QRS still costs one failed request, not two.
            pending = ahead.submit(list_type, ready[index + 1]) if index + 1 < len(ready) else None
            type_result.listed = len(raw)
            screened[settings.license_type] = (
                type_result,
                screen(raw, settings.license_type, settings.threshold_days, result.now),
            )
            del raw
    return screened


def _decide(
    result: ReleaseResult,
    qrs: ReleaseQrs,
    screened: Mapping[str, tuple[TypeResult, Screening]],
    rules: Sequence[ReleaseRule],
    report: Progress,
) -> None:
    """Fetch the owners of every eligible allocation in one bulk call, then let the rules
    judge each type's candidates."""
    user_ids: set[str] = set().union(*(s.user_ids() for _, s in screened.values()))
    report("fetching users", 0, len(user_ids))
    users = UserIndex()
    _fetch_users(qrs, user_ids, users)
    report("fetching users", len(user_ids), len(user_ids))
    for type_result, screening in screened.values():
        if type_result.error:
            continue
        kept, to_release = decide_candidates(screening.eligible, users, rules)
        type_result.decisions = screening.decisions + kept
        type_result.to_release = to_release


#: Steps that keep an allocation before any rule has seen it: its owner is unknown or unclear.
_UNJUDGED_STEPS = frozenset({STEP_USER_LOOKUP, STEP_DATA})


def _fail_if_nothing_judged(
    result: ReleaseResult, screened: Mapping[str, tuple[TypeResult, Screening]]
) -> None:
    """A run that could not judge a single candidate whose owner it had to look up (every user
    look-up failed, for example) did not do its job, even though it released nothing wrongly:
    it is a failed run. (Allocations of deleted users need no look-up and prove nothing.)"""
    owned = {
        allocation.id
        for _, screening in screened.values()
        for allocation, _ in screening.eligible
        if allocation.user is not None
    }
    if not owned:
        return
    unjudged = [
        decision
        for type_result, _ in screened.values()
        for decision in type_result.decisions
        if decision.allocation.id in owned
        and decision.reasons
        and decision.reasons[0].rule in _UNJUDGED_STEPS
    ]
    if len(unjudged) < len(owned):
        return
    why = (
        f"could not judge any of the {len(owned)} release candidate(s) with an owner:"
        f" {unjudged[0].reasons[0].reason}. They were all kept"
    )
    logger.error("release run on {}: {}", result.site, why)
    result.judged_none = why
    result.errors.append(why)


def _apply_limit(
    result: ReleaseResult, site: SiteConfig, qrs: ReleaseQrs, host: PluginHost, planned: bool
) -> None:
    """The safety limit, over the whole run. Past it, a live run holds every candidate back;
    a dry run still lists all that qualifies (that list is what gets reviewed and applied) and
    says so. An applied plan was approved by an admin: the approval replaces the limit."""
    _set_limits(result.types, site, qrs, host)
    why = None if planned else limit_exceeded(result.types)
    if not why:
        return
    if result.dry_run:
        result.limit_note = limit_note(result.types)
        logger.warning("release run {} on {}: {}", result.run_id, site.name, result.limit_note)
        return
    result.aborted = why
    result.limit_tripped = True
    logger.error("release run {} on {}: {}", result.run_id, site.name, why)
    hold_back(
        result.types,
        STEP_LIMIT,
        "held back: this run would exceed licenseRelease.maxReleasesPerRun, so it releases nothing",
    )


def _deliver_events(result: ReleaseResult, delivery: EventSink | None) -> None:
    if not result.events or delivery is None:
        return
    try:
        delivery.deliver(result.events)
    except Exception as exc:
        msg = f"release events could not be handed to delivery: {type(exc).__name__}: {exc}"
        logger.error("{}", msg)
        result.errors.append(msg)


@dataclass
class _Deleted:
    candidate: Candidate
    entry: JournalEntry
    decision: Decision
    detail: str = ""


def _release_type(
    type_result: TypeResult,
    run: ReleaseResult,
    qrs: ReleaseQrs,
    journal: ReleaseJournal,
    clock: Callable[[], datetime],
    site: SiteConfig,
    report: Progress,
    should_stop: Callable[[], bool] | None = None,
) -> None:
    """Delete one type's candidates, tell quarantined removals from freed ones, and record
    each outcome: a decision, the journal's outcome and (for a removal) a release event."""
    candidates, type_result.to_release = type_result.to_release, []
    results = _send_deletes(
        candidates,
        type_result.settings,
        lambda candidate: _delete_one(
            candidate, type_result.settings, qrs, journal, clock, site.name, run.run_id, should_stop
        ),
        site.license_release.delete_concurrency,
        report,
    )
    _mark_quarantined(results, qrs, type_result.settings, run)
    stopped = sum(1 for done in results if done.decision is Decision.KEPT)
    if stopped:
        logger.info(
            "stopping: {} {} allocation(s) not deleted; the next run decides again",
            stopped,
            type_result.license_type,
        )
    static_tags = site.static_tags(FEATURE_LICENSE_RELEASE)
    for done in results:
        _record_outcome(done, type_result, run, journal, static_tags)


def _delete_one(
    candidate: Candidate,
    settings: TypeSettings,
    qrs: ReleaseQrs,
    journal: ReleaseJournal,
    clock: Callable[[], datetime],
    site_name: str,
    run_id: str,
    should_stop: Callable[[], bool] | None,
) -> _Deleted:
    """Journal the intent, send the DELETE, and say what QRS answered. Never raises."""
    allocation = candidate.allocation
    entry = JournalEntry(
        site=site_name,
        license_type=settings.license_type,
        resource=settings.resource,
        allocation_id=allocation.id,
        user=allocation.owner,
        days_since_last_use=candidate.days_since_last_use,
        last_used=allocation.last_used,
        at=clock(),
        run_id=run_id,
        owner_id=allocation.user.id if allocation.user is not None else "",
    )
    if should_stop is not None and should_stop():
        return _Deleted(
            candidate,
            entry,
            Decision.KEPT,
            "the agent is stopping: not deleted; the next run decides again",
        )
    try:
        journal.intent(entry)
    except Exception as exc:
        return _Deleted(
            candidate,
            entry,
            Decision.FAILED,
            f"not deleted: the release journal could not record it ({exc})",
        )
    try:
        outcome = qrs.delete_allocation(settings.resource, allocation.id)
    except Exception as exc:
        return _Deleted(
            candidate, entry, Decision.FAILED, f"DELETE failed: {type(exc).__name__}: {exc}"
        )
    if outcome is DeleteOutcome.NOT_FOUND:
        return _Deleted(
            candidate,
            entry,
            Decision.ALREADY_GONE,
            "QRS answered 404: the allocation was already removed",
        )
    if outcome is DeleteOutcome.UNCONFIRMED:
        return _confirm(qrs, candidate, entry)
    if outcome is DeleteOutcome.DELETED:
        return _Deleted(candidate, entry, Decision.RELEASED)
    return _Deleted(candidate, entry, Decision.FAILED, f"unexpected DELETE outcome {outcome!r}")


def _send_deletes(
    candidates: Sequence[Candidate],
    settings: TypeSettings,
    delete_one: Callable[[Candidate], _Deleted],
    concurrency: int,
    report: Progress,
) -> list[_Deleted]:
    """``delete_one`` for every candidate on up to ``concurrency`` threads, in order."""
    total = len(candidates)
    results: list[_Deleted] = []
    report(f"releasing {settings.license_type}", 0, total)
    pool = ThreadPoolExecutor(
        max_workers=max(1, min(concurrency, total)), thread_name_prefix="release-delete"
    )
    try:
        for done in pool.map(delete_one, candidates):
            results.append(done)
            report(f"releasing {settings.license_type}", len(results), total)
    except BaseException:
        # Ctrl+C or a bug: send no further DELETE; those in flight finish (the journal has
        # their intent, so a later run can account for them).
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results


def _record_outcome(
    done: _Deleted,
    type_result: TypeResult,
    run: ReleaseResult,
    journal: ReleaseJournal,
    static_tags: Mapping[str, str],
) -> None:
    allocation = done.candidate.allocation
    if done.decision is not Decision.KEPT:  # a DELETE was sent: the journal learns how it went
        try:
            # False: the journal already holds this allocation's release event (one per
            # allocation, whichever DELETE removed it).
            if journal.outcome(done.entry, done.decision, done.detail) is False:
                done.decision = Decision.ALREADY_GONE
                done.detail = "already released by an earlier run (the release journal has it)"
        except Exception as exc:
            logger.error(
                "the release journal could not record the outcome of {}: {}", allocation.id, exc
            )
    reasons: tuple[Reason, ...] = ()
    if done.decision is Decision.FAILED:
        reasons = (Reason(STEP_DELETE, done.detail),)
        logger.error("release of {} ({}) failed: {}", allocation.id, allocation.owner, done.detail)
    elif done.decision is Decision.ALREADY_GONE:
        reasons = (Reason(STEP_DELETE, done.detail),)
    elif done.decision is Decision.KEPT:
        reasons = (Reason(STEP_STOP, done.detail),)
    type_result.decisions.append(
        AllocationDecision(
            allocation,
            done.decision,
            done.candidate.days_since_last_use,
            reasons,
            user_name(done.candidate),
        )
    )
    if done.decision in (Decision.RELEASED, Decision.QUARANTINED):
        run.events.append(
            release_event(done.entry, done.decision is Decision.QUARANTINED, static_tags)
        )


def _confirm(qrs: ReleaseQrs, candidate: Candidate, entry: JournalEntry) -> _Deleted:
    """QRS answered the DELETE with a 2xx other than 204: ask it whether the allocation is gone.

    Only a removal QRS confirms is counted and gets an event; otherwise the DELETE is a failure
    whose row the journal keeps asking about (it may still be applied later).
    """
    try:
        found = qrs.get_allocation(entry.resource, entry.allocation_id)
    except Exception as exc:
        return _Deleted(
            candidate,
            entry,
            Decision.FAILED,
            "QRS did not confirm the DELETE (no 204) and could not be asked whether the"
            f" allocation is gone ({type(exc).__name__}: {exc}); the next run checks again",
        )
    if found is None:
        return _Deleted(candidate, entry, Decision.RELEASED)
    if isinstance(found, Mapping) and found.get("quarantined") is True:
        return _Deleted(
            candidate, entry, Decision.QUARANTINED, "QRS put the allocation into its quarantine"
        )
    return _Deleted(
        candidate,
        entry,
        Decision.FAILED,
        "QRS accepted the DELETE without confirming it (no 204) and still lists the allocation:"
        " not counted as released; the next run checks again",
    )


def _mark_quarantined(
    results: list[_Deleted], qrs: ReleaseQrs, settings: TypeSettings, run: ReleaseResult
) -> None:
    """Tell quarantined removals from freed ones.

    QRS quarantines an allocation removed within 7 days of its last use. Allocations last
    used longer ago than :data:`VERIFY_WITHIN` cannot have been quarantined, so in the usual
    case (threshold of 8 days or more) this costs no request. Otherwise the type's
    quarantined allocations are listed once and are the truth; if that read fails, the
    7-day rule decides from the data.
    """
    recent = [
        d
        for d in results
        if d.decision is Decision.RELEASED
        and d.candidate.allocation.last_used is not None
        and d.entry.at - d.candidate.allocation.last_used < VERIFY_WITHIN
    ]
    if not recent:
        return
    try:
        listed = qrs.list_allocations(
            settings.resource, "quarantined eq true", license_type=settings.license_type
        )
        # An unreadable one is listed as quarantined all the same.
        quarantined = {a.id.lower() for a in listed.valid}
        quarantined.update(i.lower() for i in (o.id for o in listed.unreadable) if i is not None)
    except Exception as exc:
        logger.warning(
            "could not re-read quarantined {} allocations ({}); deciding from last use",
            settings.license_type,
            exc,
        )
        run.errors.append(
            f"quarantine of {settings.license_type} removals not verified with QRS ({exc});"
            " decided from the 7-day rule"
        )
        quarantined = {
            d.candidate.allocation.id.lower()
            for d in recent
            if d.entry.at - d.candidate.allocation.last_used < QUARANTINE  # type: ignore[operator]
        }
    for done in recent:
        if done.candidate.allocation.id.lower() in quarantined:
            done.decision = Decision.QUARANTINED
            done.detail = "QRS put the allocation into its 7-day quarantine"


def _log_summary(result: ReleaseResult) -> None:
    for type_result in result.types:
        counts = type_result.counts()
        done = counts["would_release"] if result.dry_run else counts["released"]
        logger.info(
            "run {} on {} {}: considered {}, eligible {}, {} {}, quarantined {}, kept {}, failed {}",
            result.run_id,
            result.site,
            type_result.license_type,
            counts["considered"],
            counts["eligible"],
            "would release" if result.dry_run else "released",
            done,
            counts["quarantined"],
            counts["kept"],
            counts["failed"],
        )


__all__ = [
    "QUARANTINE",
    "Progress",
    "ReleaseResult",
    "new_run_id",
    "run_release",
]
