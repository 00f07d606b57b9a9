"""Applying a reviewed plan (``release --once --apply FILE``) to a run's decisions.

:func:`decision_settings` is what a run's decisions depend on (the site, the thresholds, the
rules and a digest of the other licenseRelease settings): a plan records it, and
:mod:`agent.plan` refuses a plan whose record differs from the current one. :func:`apply_plan`
then releases only the allocations the plan lists as ``would_release`` that still qualify now;
every other candidate is kept, and every planned allocation ends with a decision that says
what became of it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent.decisions import (
    STEP_PLAN,
    TypeResult,
    TypeSettings,
    kept_for,
    stub_allocation,
    user_name,
)
from agent.models import (
    Allocation,
    AllocationDecision,
    Candidate,
    Decision,
    Reason,
    format_qrs_time,
)
from agent.qrs import ReleaseQrs

if TYPE_CHECKING:
    from agent.config import SiteConfig


@dataclass(frozen=True)
class PlannedAllocation:
    """One allocation a reviewed plan lists as ``would_release`` (see :mod:`agent.plan`)."""

    license_type: str
    allocation_id: str
    owner: str
    last_used: datetime | None


#: A plan's allocations by (license type, lower-case allocation id).
PlannedSet = Mapping[tuple[str, str], PlannedAllocation]

#: licenseRelease settings that do not change what a run decides: a plan made before one of
#: them changed is still the same plan.
_OPERATIONAL = {
    "enable",
    "dry_run",
    "frequency",
    "destination",
    "max_releases_per_run",
    "delete_concurrency",
    "plan_max_age_hours",
}


def decision_settings(site: SiteConfig, rule_names: Iterable[str]) -> dict[str, Any]:
    """What a run's decisions depend on: the site, its thresholds, its rules and their settings.

    A plan records this; ``--apply`` refuses a plan whose record differs from the current one.
    ``settings_digest`` is a SHA-256 over every licenseRelease setting except the operational
    ones (schedule, limit, concurrency, destinations), so a changed neverRelease value counts.
    """
    release = site.license_release
    settings = release.model_dump(mode="json", exclude=_OPERATIONAL)
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {
        "site": {"name": site.name, "host": site.qrs.host, "port": site.qrs.port},
        "thresholds": {
            name: t.release_threshold_days for name, t in release.license_type.enabled().items()
        },
        "rules": sorted(set(rule_names)),
        "settings_digest": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }


def _planned_reason(planned: PlannedAllocation, allocation: Allocation) -> str | None:
    """Why a planned allocation that still qualifies must not be released, else ``None``."""
    if allocation.owner.casefold() != planned.owner.casefold():
        return (
            f"in the plan for {planned.owner}, but QRS now names {allocation.owner} as the owner;"
            " kept: it is not what was reviewed"
        )
    if allocation.last_used is not None and (
        planned.last_used is None or allocation.last_used > planned.last_used
    ):
        seen = format_qrs_time(planned.last_used) if planned.last_used else "never used"
        return (
            f"the user used it since the plan was made (last used"
            f" {format_qrs_time(allocation.last_used)}; the plan saw {seen})"
        )
    return None


def apply_plan(
    results: Sequence[TypeResult], planned: PlannedSet, qrs: ReleaseQrs, now: datetime
) -> None:
    """Release only what the plan lists and what still qualifies; explain everything else.

    Candidates outside the plan are kept (``plan``: not in the plan). Planned allocations that no
    longer qualify keep their decision with a ``plan`` reason added; one the listing no longer
    returned (the user used it since, or it was removed) is looked up by id, so the report
    names every planned allocation and what became of it.
    """
    seen: set[tuple[str, str]] = set()
    for result in results:
        license_type = result.license_type
        keep: list[Candidate] = []
        kept: list[AllocationDecision] = []
        for candidate in result.to_release:
            key = (license_type, candidate.allocation.id.lower())
            seen.add(key)
            entry = planned.get(key)
            why = (
                "not in the plan: --apply releases only allocations the plan lists as would_release"
                if entry is None
                else _planned_reason(entry, candidate.allocation)
            )
            if why is None:
                keep.append(candidate)
            else:
                kept.append(
                    kept_for(
                        candidate.allocation,
                        candidate.days_since_last_use,
                        STEP_PLAN,
                        why,
                        user_name(candidate),
                    )
                )
        result.to_release = keep
        decisions: list[AllocationDecision] = []
        for decision in result.decisions:
            key = (license_type, decision.allocation.id.lower())
            seen.add(key)
            entry = planned.get(key)
            if entry is not None:
                decision = _no_longer_qualifies(decision, entry)
            decisions.append(decision)
        result.decisions = decisions + kept
    missing: dict[str, list[PlannedAllocation]] = {}
    for key, entry in planned.items():
        if key not in seen:
            missing.setdefault(entry.license_type, []).append(entry)
    by_type = {r.license_type: r for r in results}
    for license_type, entries in missing.items():
        result = by_type.get(license_type)
        if result is not None:
            result.decisions.extend(_look_up_planned(entries, result.settings, qrs, now))


def _no_longer_qualifies(
    decision: AllocationDecision, entry: PlannedAllocation
) -> AllocationDecision:
    reason = _planned_reason(entry, decision.allocation) or (
        "in the plan, but it no longer qualifies (see the other reasons)"
    )
    verdict = decision.decision
    if verdict is Decision.NOT_ELIGIBLE:
        verdict = Decision.KEPT  # planned, and kept because the user came back
    return AllocationDecision(
        decision.allocation,
        verdict,
        decision.days_since_last_use,
        (*decision.reasons, Reason(STEP_PLAN, reason)),
        decision.user_name,
    )


def _look_up_planned(
    entries: Sequence[PlannedAllocation], settings: TypeSettings, qrs: ReleaseQrs, now: datetime
) -> list[AllocationDecision]:
    """Decisions for planned allocations the listing did not return (used since, or removed)."""
    from agent.qrs import filter_any_id, is_guid

    found: dict[str, Allocation] = {}
    failure = ""
    ids = [e.allocation_id for e in entries if is_guid(e.allocation_id)]
    try:
        for start in range(0, len(ids), 50):
            listing = qrs.list_allocations(
                settings.resource,
                filter_any_id(ids[start : start + 50]),
                license_type=settings.license_type,
            )
            for allocation in listing.valid:
                found[allocation.id.lower()] = allocation
    except Exception as exc:
        failure = f"{type(exc).__name__}: {exc}"
    decisions = []
    for entry in entries:
        allocation = found.get(entry.allocation_id.lower())
        if allocation is not None:
            days = allocation.days_since_last_use(now)
            why = _planned_reason(entry, allocation) or (
                f"in the plan, but no longer past the threshold ({days} day(s) since last use)"
            )
            verdict = Decision.SKIPPED_QUARANTINED if allocation.quarantined else Decision.KEPT
            decisions.append(
                AllocationDecision(allocation, verdict, days, (Reason(STEP_PLAN, why),))
            )
            continue
        directory, _, user_id = entry.owner.partition("\\")
        stub, days = stub_allocation(
            {
                "id": entry.allocation_id,
                "lastUsed": format_qrs_time(entry.last_used) if entry.last_used else None,
                "deletedUserDirectory": directory,
                "deletedUserId": user_id,
            },
            settings.license_type,
            now,
        )
        if failure:
            decisions.append(
                kept_for(
                    stub,
                    days,
                    STEP_PLAN,
                    f"in the plan, but not listed now and QRS could not be asked about it"
                    f" ({failure}); kept",
                )
            )
        else:
            decisions.append(
                AllocationDecision(
                    stub,
                    Decision.ALREADY_GONE,
                    days,
                    (Reason(STEP_PLAN, "in the plan, but QRS no longer has it: removed since"),),
                )
            )
    return decisions


__all__ = ["PlannedAllocation", "PlannedSet", "apply_plan", "decision_settings"]
