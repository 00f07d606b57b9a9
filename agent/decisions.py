"""What a release run decides, without I/O: the pure deciding functions.

Listed allocations and fetched users in, one decision per allocation (with every reason) and
the release candidates out: :func:`screen` sorts a type's listing by threshold and quarantine
and keeps unreadable or doubtful data; :func:`index_users` records the fetched owners and why
the others are unknown; :func:`decide_candidates` attaches the owners and lets every
neverRelease rule :func:`judge` the whole batch; :func:`plan_type` does all of it for one type.
The safety limit's verdicts (:func:`limit_exceeded`, :func:`limit_note`) and
:func:`hold_back` work on the per-type results. Whatever is uncertain keeps the allocation.

The I/O around these (listing, fetching, deleting) is :func:`agent.release.run_release`;
applying a reviewed plan to the decisions is :mod:`agent.apply`.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from loguru import logger

from agent.models import (
    UTC,
    Allocation,
    AllocationDecision,
    Candidate,
    Decision,
    Decoded,
    QrsDataError,
    Reason,
    ReleaseRule,
    User,
    format_qrs_time,
    parse_qrs_time,
)
from agent.qrs import UserFetch

#: The server-side filter reaches this much further than the threshold, so that a QRS that
#: compares dates slightly differently (time zone, rounding) can only return more allocations;
#: the exact decision is made here. The extra ones are reported as ``not_eligible``.
FILTER_MARGIN = timedelta(days=1)

# Names of the steps that can keep an allocation, as they appear in ``reasons[].rule``.
STEP_THRESHOLD = "threshold"
STEP_QUARANTINE = "quarantine"
STEP_DATA = "qrsData"
STEP_USER_LOOKUP = "userLookup"
STEP_LIMIT = "maxReleasesPerRun"
STEP_DELETE = "delete"
STEP_STOP = "stop"
STEP_PLAN = "plan"
STEP_CLOCK = "clock"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while deciding.

    A decision over 100,000 allocations creates a million small objects while the QRS answers
    are alive; each allocation burst would start a full collection that walks all of them
    (more than half the run time). Nothing in between creates reference cycles, so pausing is
    safe; reference counting still frees everything.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # Everything allocated meanwhile sits in the youngest generation, so the first
            # collections after enable() would walk all of it (0.4 s at 100,000 users).
            # freeze() + unfreeze() moves it to the oldest generation without a collection,
            # as if it had survived; cyclic garbage, if any, is still found by the next full one.
            gc.freeze()
            gc.unfreeze()
            gc.enable()


@dataclass(frozen=True)
class TypeSettings:
    """One enabled license type of a run."""

    license_type: str
    resource: str
    threshold_days: int


def release_cutoff(now: datetime, threshold_days: int) -> datetime:
    """The latest last activity that makes an allocation eligible at ``now``."""
    return now - timedelta(days=threshold_days)


def release_filter(now: datetime, threshold_days: int) -> str:
    """The QRS filter listing every allocation that may be past the threshold.

    It returns a superset: ``lastUsed`` up to :data:`FILTER_MARGIN` after the exact cutoff,
    plus never-used allocations (``lastUsed`` null, or QRS's 1753 sentinel, which is before
    any cutoff). The exact test, with ``createdDate`` for never-used ones, is :func:`screen`.
    """
    cutoff = release_cutoff(now, threshold_days) + FILTER_MARGIN
    return f"lastUsed le '{format_qrs_time(cutoff)}' or lastUsed eq null"


@dataclass
class Screening:
    """The allocations of one type sorted into eligible ones and final decisions."""

    eligible: list[tuple[Allocation, int]] = field(default_factory=list)
    decisions: list[AllocationDecision] = field(default_factory=list)

    def user_ids(self) -> set[str]:
        return {a.user.id for a, _ in self.eligible if a.user is not None}


def stub_allocation(raw: Any, license_type: str, now: datetime) -> tuple[Allocation, int]:
    """Whatever can be read of an allocation QRS returned in a shape we cannot trust.

    Only used to report it; ``days_since_last_use`` is -1 when it cannot be computed.
    """
    obj = raw if isinstance(raw, Mapping) else {}

    def text(key: str) -> str:
        value = obj.get(key)
        return value if isinstance(value, str) else ""

    def when(key: str) -> datetime | None:
        try:
            return parse_qrs_time(obj.get(key))
        except QrsDataError:
            return None

    user = obj.get("user") if isinstance(obj.get("user"), Mapping) else {}
    created = when("createdDate")
    last_used = when("lastUsed")
    if last_used is not None and created is not None and last_used < created:
        last_used = None
    activity = last_used or created
    days = (now - activity).days if activity else -1
    stub = Allocation(
        id=text("id") or "(no id)",
        license_type=license_type,
        user=None,
        created=created or datetime.fromtimestamp(0, UTC),
        last_used=last_used,
        deleted_user_directory=str(user.get("userDirectory") or text("deletedUserDirectory")),
        deleted_user_id=str(user.get("userId") or text("deletedUserId")),
    )
    return stub, days


def screen(
    listing: Decoded[Allocation], license_type: str, threshold_days: int, now: datetime
) -> Screening:
    """Sort the listed allocations: keep those past ``threshold_days`` at ``now``.

    Decides ``skipped_quarantined`` (already in quarantine), ``not_eligible`` (used too
    recently) and ``kept`` (unreadable data); the rest are eligible, with their
    ``days_since_last_use = floor((now - last activity) / 24 h)``.
    """
    with gc_paused():
        return _screen(listing, license_type, threshold_days, now)


def _screen(
    listing: Decoded[Allocation], license_type: str, threshold_days: int, now: datetime
) -> Screening:
    result = Screening()
    seen: dict[str, Allocation] = {}
    # Ids QRS listed more than once with different or unreadable data: never released.
    doubtful: set[str] = set()
    cutoff = release_cutoff(now, threshold_days)  # exact, to the microsecond
    eligible = result.eligible.append
    for odd in listing.unreadable:
        if odd.id is not None:
            doubtful.add(odd.id.lower())
        stub, days = stub_allocation(odd.raw, license_type, now)
        why = f"QRS returned allocation data that cannot be read: {odd.reason}"
        result.decisions.append(kept_for(stub, days, STEP_DATA, why))
    for allocation in listing.valid:
        key = allocation.id
        if not key.islower():  # QRS ids are lower-case GUIDs: keep the string (and its hash)
            key = key.lower()
        twin = seen.get(key)
        if twin is not None:
            if twin != allocation:
                doubtful.add(key)
            continue  # QRS listed it twice; one decision is enough
        seen[key] = allocation
        # Allocation.last_activity and days_since_last_use, inlined: once per listed allocation.
        last_used = allocation.last_used
        activity = allocation.created if last_used is None else last_used
        days = (now - activity).days
        if allocation.quarantined:
            until = (
                f" until {format_qrs_time(allocation.quarantine_end)}"
                if allocation.quarantine_end and allocation.quarantine_end.year > 1753
                else ""
            )
            result.decisions.append(
                AllocationDecision(
                    allocation,
                    Decision.SKIPPED_QUARANTINED,
                    days,
                    (Reason(STEP_QUARANTINE, f"already in quarantine{until}"),),
                )
            )
        elif activity <= cutoff:
            eligible((allocation, days))
        else:
            never = (
                " (never used; counted from its assignment)" if allocation.last_used is None else ""
            )
            result.decisions.append(
                AllocationDecision(
                    allocation,
                    Decision.NOT_ELIGIBLE,
                    days,
                    (
                        Reason(
                            STEP_THRESHOLD,
                            f"last activity {days} day(s) ago{never}; the threshold is"
                            f" {threshold_days} days",
                        ),
                    ),
                )
            )
    if doubtful and result.eligible:
        _keep_doubtful(result, doubtful)
    return result


def _keep_doubtful(result: Screening, doubtful: set[str]) -> None:
    """Keep eligible allocations that QRS also listed with other or unreadable data."""
    eligible = []
    for allocation, days in result.eligible:
        if allocation.id.lower() not in doubtful:
            eligible.append((allocation, days))
            continue
        result.decisions.append(
            kept_for(
                allocation,
                days,
                STEP_DATA,
                "QRS listed this allocation more than once with different or unreadable data;"
                " kept until QRS answers consistently",
            )
        )
    result.eligible = eligible


class UserIndex:
    """The fetched owners by lower-case id; and, for owners that are unknown, why.

    An owner is unknown when its look-up failed, when QRS answered it in a shape that cannot
    be used (see :func:`agent.models.decode_users`), or when QRS has no such user: the
    allocations of unknown owners are kept, with the step and reason given here.
    """

    def __init__(
        self,
        users: Mapping[str, User] | None = None,
        unavailable: Mapping[str, Reason] | None = None,
    ) -> None:
        self._users: dict[str, User] = {}
        self.unavailable: dict[str, Reason] = {k.lower(): v for k, v in (unavailable or {}).items()}
        if users:
            self.add(users)

    def add(self, users: Mapping[str, User], *, replace: bool = True) -> None:
        """Add users by id; with ``replace=False`` ids already known keep their first value."""
        if replace:
            ids = "".join(users)
            if ids == ids.lower():  # every id lower-case already (QRS's own): added in C
                self._users.update(users)
                return
        for user_id, user in users.items():
            key = user_id.lower()
            if replace or key not in self._users:
                self._users[key] = user

    def get(self, user_id: str) -> User | None:
        """The user, or ``None`` (then :meth:`why_unavailable` says why)."""
        # Fast path: QRS ids are lower-case already.
        user = self._users.get(user_id)
        if user is not None and user_id not in self.unavailable:
            return user
        key = user_id.lower()
        if key in self.unavailable:
            return None
        return self._users.get(key)

    def why_unavailable(self, user_id: str) -> Reason:
        return self.unavailable.get(
            user_id.lower(), Reason(STEP_USER_LOOKUP, "QRS did not return the user's details")
        )


def index_users(fetch: UserFetch, *, index: UserIndex | None = None) -> UserIndex:
    """A :class:`UserIndex` from a bulk fetch: its users, and why the others are unknown.

    :param index: complete this index (users it already holds stay as they are) instead of a
        new one.
    """
    unavailable = {
        k.lower(): Reason(STEP_USER_LOOKUP, f"the user could not be fetched: {why}")
        for k, why in fetch.failed.items()
    }
    for k, why in fetch.unreadable.items():
        unavailable[k.lower()] = Reason(STEP_DATA, why)
    for user_id in fetch.missing:
        unavailable.setdefault(
            user_id.lower(),
            Reason(
                STEP_USER_LOOKUP,
                "the allocation names this user, but QRS has no user with that id;"
                " kept until QRS is consistent",
            ),
        )
    if index is None:
        return UserIndex(fetch.users, unavailable)
    index.add(fetch.users, replace=False)
    for key, why in unavailable.items():
        index.unavailable.setdefault(key, why)
    return index


_allocation_id = attrgetter("allocation.id")


def judge(candidates: Sequence[Candidate], rules: Sequence[ReleaseRule]) -> dict[str, list[Reason]]:
    """Ask every rule about the whole batch; collect every veto with its reason.

    A rule that raises, or answers something other than a mapping, vetoes the whole batch:
    its protection is unknown.
    """
    batch = tuple(candidates)
    in_batch = set(map(_allocation_id, batch))
    vetoes: dict[str, list[Reason]] = {}
    for rule in rules:
        try:
            verdict = rule.judge(batch)
            if verdict is None:
                verdict = {}
            if not isinstance(verdict, Mapping):
                raise TypeError(f"judge returned {type(verdict).__name__}, not a mapping")
            found = [(aid, why) for aid, why in verdict.items() if aid in in_batch]
        except Exception as exc:  # a broken rule must keep, never release
            logger.error("release rule {} failed: {}: {}", rule.name, type(exc).__name__, exc)
            reason = Reason(
                rule.name,
                f"the rule failed ({type(exc).__name__}: {exc}); kept because its protection"
                " is unknown",
            )
            for candidate in batch:
                vetoes.setdefault(candidate.allocation.id, []).append(reason)
            continue
        for allocation_id, why in found:
            text = why if isinstance(why, str) and why else "protected by this rule"
            vetoes.setdefault(allocation_id, []).append(Reason(rule.name, text))
    return vetoes


def decide_candidates(
    eligible: Sequence[tuple[Allocation, int]],
    users: UserIndex,
    rules: Sequence[ReleaseRule],
) -> tuple[list[AllocationDecision], list[Candidate]]:
    """Attach owners, let the rules judge; return the kept decisions and what may be released."""
    with gc_paused():
        return _decide_candidates(eligible, users, rules)


def _decide_candidates(
    eligible: Sequence[tuple[Allocation, int]],
    users: UserIndex,
    rules: Sequence[ReleaseRule],
) -> tuple[list[AllocationDecision], list[Candidate]]:
    kept: list[AllocationDecision] = []
    candidates: list[Candidate] = []
    append = candidates.append
    lookup = users.get
    for allocation, days in eligible:
        ref = allocation.user
        if ref is None:
            append(Candidate(allocation, None, days))
            continue
        user = lookup(ref.id)
        if user is None:
            why = users.why_unavailable(ref.id)
            kept.append(kept_for(allocation, days, why.rule, why.reason, ref.name))
            continue
        if user.user_id != ref.user_id or user.user_directory != ref.user_directory:
            # One QRS user, two names: renamed between the listing and the look-up. Rules
            # match names, so neither can be trusted; the next run sees one name again.
            kept.append(
                kept_for(
                    allocation,
                    days,
                    STEP_DATA,
                    f"QRS named the owner {ref.user_directory}\\{ref.user_id} in the allocation"
                    f" but {user.user_directory}\\{user.user_id} in the user record; kept until"
                    " QRS answers consistently",
                    user.name or ref.name,
                )
            )
            continue
        append(Candidate(allocation, user, days))
    vetoes = judge(candidates, rules) if candidates and rules else {}
    if not vetoes:
        return kept, candidates
    to_release: list[Candidate] = []
    release = to_release.append
    keep = kept.append
    vetoed = vetoes.get
    for candidate in candidates:
        reasons = vetoed(candidate.allocation.id)
        if reasons is None:
            release(candidate)
        else:
            keep(
                AllocationDecision(
                    candidate.allocation,
                    Decision.KEPT,
                    candidate.days_since_last_use,
                    tuple(reasons),
                    user_name(candidate),
                )
            )
    return kept, to_release


def kept_for(
    allocation: Allocation, days: int, step: str, why: str, user_name: str = ""
) -> AllocationDecision:
    """A ``kept`` decision with one reason: the step (or rule) that kept it and why."""
    return AllocationDecision(allocation, Decision.KEPT, days, (Reason(step, why),), user_name)


def would_release(candidates: Iterable[Candidate]) -> list[AllocationDecision]:
    """The decisions a dry run records for the candidates it would release."""
    would = Decision.WOULD_RELEASE
    return [
        AllocationDecision(
            c.allocation,
            would,
            c.days_since_last_use,
            (),
            # user_name, inlined: a dry run at 100,000 users calls it for most of them.
            c.user.name if c.user is not None and c.user.name else user_name(c),
        )
        for c in candidates
    ]


def user_name(candidate: Candidate) -> str:
    if candidate.user is not None and candidate.user.name:
        return candidate.user.name
    ref = candidate.allocation.user
    return ref.name if ref is not None else ""


@dataclass
class TypeResult:
    """Everything one run decided for one license type."""

    settings: TypeSettings
    listed: int = 0
    decisions: list[AllocationDecision] = field(default_factory=list)
    #: Candidates nothing protects; emptied into ``decisions`` once the run acts on them.
    to_release: list[Candidate] = field(default_factory=list)
    #: Set when the type could not be fully examined (listing failed, plugin missing).
    error: str | None = None
    #: The safety limit for this type, and the allocation count it was computed from.
    limit: int | None = None
    allocated: int | None = None

    @property
    def license_type(self) -> str:
        return self.settings.license_type

    @property
    def to_release_count(self) -> int:
        return len(self.to_release)

    def counts(self) -> dict[str, int]:
        by_decision = Counter(d.decision.value for d in self.decisions)
        counts = {decision.value: by_decision.get(decision.value, 0) for decision in Decision}
        counts["considered"] = len(self.decisions) + len(self.to_release)
        counts["eligible"] = sum(
            1
            for d in self.decisions
            if d.decision not in (Decision.NOT_ELIGIBLE, Decision.SKIPPED_QUARANTINED)
        ) + len(self.to_release)
        return counts

    def kept_by_rule(self) -> dict[str, int]:
        """How many kept allocations each rule (or step) gave a reason for."""
        counter: Counter[str] = Counter()
        for decision in self.decisions:
            if decision.decision is Decision.KEPT:
                counter.update({r.rule for r in decision.reasons})
        return dict(sorted(counter.items()))


def plan_type(
    settings: TypeSettings,
    listing: Decoded[Allocation],
    users: UserIndex,
    rules: Sequence[ReleaseRule],
    now: datetime,
) -> TypeResult:
    """The whole decision for one type, without I/O: listed allocations and fetched users in,
    decisions and release candidates out."""
    screening = screen(listing, settings.license_type, settings.threshold_days, now)
    kept, to_release = decide_candidates(screening.eligible, users, rules)
    return TypeResult(
        settings=settings,
        listed=len(listing),
        decisions=screening.decisions + kept,
        to_release=to_release,
    )


def _over_limit(results: Sequence[TypeResult]) -> list[TypeResult]:
    return [r for r in results if r.limit is not None and r.to_release_count > r.limit]


def limit_exceeded(results: Sequence[TypeResult]) -> str | None:
    """Why the safety limit stops the run, or ``None`` if every type is within its limit."""
    over = [
        f"{r.to_release_count} {r.license_type} allocations (limit {r.limit}"
        + (f", computed from {r.allocated} allocated" if r.allocated is not None else "")
        + ")"
        for r in _over_limit(results)
    ]
    if not over:
        return None
    return (
        f"the run would release {' and '.join(over)}: more than licenseRelease.maxReleasesPerRun"
        " allows, so it released nothing. Review what qualifies with `license-agent release"
        " --once --dry-run --report plan.json`, then release exactly that with `license-agent"
        " release --once --apply plan.json`, or raise the limit"
    )


def limit_note(results: Sequence[TypeResult]) -> str | None:
    """What a dry run says when a live run would be stopped by the safety limit, else ``None``.

    The dry run still lists everything that qualifies: that list is what an admin reviews and
    applies (the approval replaces the circuit breaker for the planned set).
    """
    over = [
        f"{r.to_release_count} {r.license_type} allocations qualify (limit {r.limit})"
        for r in _over_limit(results)
    ]
    if not over:
        return None
    return (
        f"{' and '.join(over)}: a live run would release nothing (licenseRelease."
        "maxReleasesPerRun). Review this report, then apply it with `license-agent release"
        " --once --apply <this report>` (write it with --report), or raise the limit"
    )


def hold_back(results: Sequence[TypeResult], step: str, why: str) -> None:
    """Turn every release candidate into a ``kept`` decision with the given reason."""
    for result in results:
        for candidate in result.to_release:
            result.decisions.append(
                kept_for(
                    candidate.allocation,
                    candidate.days_since_last_use,
                    step,
                    why,
                    user_name(candidate),
                )
            )
        result.to_release = []


__all__ = [
    "FILTER_MARGIN",
    "STEP_CLOCK",
    "STEP_DATA",
    "STEP_DELETE",
    "STEP_LIMIT",
    "STEP_PLAN",
    "STEP_QUARANTINE",
    "STEP_STOP",
    "STEP_THRESHOLD",
    "STEP_USER_LOOKUP",
    "Screening",
    "TypeResult",
    "TypeSettings",
    "UserIndex",
    "decide_candidates",
    "gc_paused",
    "hold_back",
    "index_users",
    "judge",
    "kept_for",
    "limit_exceeded",
    "limit_note",
    "plan_type",
    "release_cutoff",
    "release_filter",
    "screen",
    "stub_allocation",
    "user_name",
    "would_release",
]
