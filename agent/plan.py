"""Release plans: a dry run's report that ``release --once --apply FILE`` releases later.

A dry run's report (``--report FILE``) carries a ``plan`` block beside ``run`` and
``decisions``: the format and version, the run id, when it was made, and what its decisions
depended on (:func:`agent.apply.decision_settings`: the site, the thresholds, the rule names
and a digest of the other licenseRelease settings). Before a plan is applied,
:func:`check_plan` compares that record with the current config and refuses, naming every
difference at once, a plan for another site, one made with other rules or thresholds, one
older than ``licenseRelease.planMaxAgeHours`` (24 by default), and a file that is not a plan.
Applying releases only allocations the plan lists as ``would_release`` that still qualify now
(:func:`agent.apply.apply_plan`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from agent.apply import PlannedAllocation, decision_settings
from agent.lock import site_identity
from agent.models import Decision, QrsDataError, format_qrs_time, parse_qrs_time
from agent.qrs import is_guid
from agent.release import ReleaseResult

PLAN_FORMAT = "sense-license-agent/release-plan"
PLAN_VERSION = 1
#: Plans older than this are refused unless ``licenseRelease.planMaxAgeHours`` says otherwise.
DEFAULT_MAX_AGE_HOURS = 24.0
#: A plan file larger than this is refused unread.
MAX_PLAN_BYTES = 512 * 1024 * 1024
#: A plan "made" later than now by more than this comes from a clock that cannot be trusted.
_FUTURE_SLACK = timedelta(minutes=5)
_MAKE_ONE = "make a new plan with `license-agent release --once --dry-run --report FILE`"


class PlanError(ValueError):
    """A plan that cannot be applied; the message says why and what to do (exit code 2)."""


@dataclass(frozen=True)
class Plan:
    """One site's plan, as read from a plan file."""

    source: str
    run_id: str
    made: datetime
    site: Mapping[str, Any]
    thresholds: Mapping[str, int]
    rules: Sequence[str]
    settings_digest: str
    #: The ``would_release`` allocations by (license type, lower-case allocation id).
    allocations: dict[tuple[str, str], PlannedAllocation] = field(default_factory=dict)

    @property
    def site_name(self) -> str:
        return str(self.site.get("name", ""))


def plan_block(result: ReleaseResult) -> dict[str, Any] | None:
    """The ``plan`` block of a dry run's report, or ``None`` for a run that cannot be a plan
    (a live run, or one that stopped before it knew its rules)."""
    if not result.dry_run or not result.settings:
        return None
    return {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "run_id": result.run_id,
        "made": format_qrs_time(result.finished or result.started),
        "now": format_qrs_time(result.now),
        **result.settings,
    }


def load_plans(path: Path) -> list[Plan]:
    """Every site's plan in a plan file. :raises PlanError: when it is not a usable plan."""
    name = str(path)
    try:
        # A plan is a file a dry run wrote: not a device or a pipe (which may never end),
        # and far below the bound (a site of 100,000 users gives some 50 MB).
        if Path(path).exists() and not Path(path).is_file():
            raise PlanError(f"{name} is not a plan: it is not a regular file; {_MAKE_ONE}")
        size = Path(path).stat().st_size
        if size > MAX_PLAN_BYTES:
            raise PlanError(
                f"{name} is not a plan: it is {size:,} bytes, more than any dry run writes"
                f" ({MAX_PLAN_BYTES:,}); {_MAKE_ONE}"
            )
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read the plan {name}: {exc}") from None
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise PlanError(f"{name} is not a plan: it is not JSON ({exc}); {_MAKE_ONE}") from None
    documents = payload if isinstance(payload, list) else [payload]
    if not documents:
        raise PlanError(f"{name} is not a plan: it is an empty list; {_MAKE_ONE}")
    return [_plan(document, name, index) for index, document in enumerate(documents)]


def _plan(document: Any, name: str, index: int) -> Plan:
    where = name if index == 0 else f"{name} (document {index + 1})"
    if not isinstance(document, Mapping):
        raise PlanError(f"{where} is not a plan: expected a JSON object; {_MAKE_ONE}")
    block = document.get("plan")
    if not isinstance(block, Mapping) or block.get("format") != PLAN_FORMAT:
        run = document.get("run")
        if isinstance(run, Mapping) and run.get("dry_run") is False:
            why = "it is the report of a live run, not of a dry run"
        else:
            why = "it has no plan block"
        raise PlanError(f"{where} is not a plan: {why}; {_MAKE_ONE}")
    version = block.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise PlanError(f"{where}: plan.version must be a positive whole number; {_MAKE_ONE}")
    if version > PLAN_VERSION:
        raise PlanError(
            f"{where} was written by a newer agent (plan version {version}, this one reads"
            f" {PLAN_VERSION}): upgrade the agent, or {_MAKE_ONE}"
        )
    try:
        made = parse_qrs_time(block.get("made"))
    except QrsDataError:
        made = None
    site, thresholds, rules = block.get("site"), block.get("thresholds"), block.get("rules")
    digest, run_id = block.get("settings_digest"), block.get("run_id")
    if (
        made is None
        or not isinstance(site, Mapping)
        or not isinstance(thresholds, Mapping)
        or not all(isinstance(v, int) for v in thresholds.values())
        or not isinstance(rules, list)
        or not all(isinstance(r, str) for r in rules)
        or not isinstance(digest, str)
        or not isinstance(run_id, str)
    ):
        raise PlanError(
            f"{where}: the plan block is incomplete or damaged (it needs made, site, thresholds,"
            f" rules, settings_digest and run_id); {_MAKE_ONE}"
        )
    decisions = document.get("decisions")
    if not isinstance(decisions, list):
        raise PlanError(f"{where}: the plan has no decisions list; {_MAKE_ONE}")
    allocations: dict[tuple[str, str], PlannedAllocation] = {}
    for number, item in enumerate(decisions):
        if not isinstance(item, Mapping) or item.get("decision") != Decision.WOULD_RELEASE.value:
            continue
        planned = _planned(item)
        if planned is None:
            raise PlanError(
                f"{where}: decisions[{number}] is a would_release entry without a readable"
                " license_type, allocation_id (a QRS id), user_directory, user_id or last_used;"
                f" the file was changed or damaged: {_MAKE_ONE}"
            )
        key = (planned.license_type, planned.allocation_id.lower())
        if allocations.get(key, planned) != planned:
            # A dry run lists each allocation once: which copy was reviewed cannot be told.
            raise PlanError(
                f"{where}: decisions[{number}] lists allocation {planned.allocation_id}"
                f" ({planned.license_type}) twice, with another owner or last use; the file"
                f" was changed or damaged: {_MAKE_ONE}"
            )
        allocations[key] = planned
    return Plan(
        source=name,
        run_id=run_id,
        made=made,
        site=dict(site),
        thresholds=dict(thresholds),
        rules=list(rules),
        settings_digest=digest,
        allocations=allocations,
    )


def _planned(item: Mapping[str, Any]) -> PlannedAllocation | None:
    texts = [item.get(k) for k in ("license_type", "allocation_id", "user_directory", "user_id")]
    if not all(isinstance(t, str) for t in texts) or not texts[0] or not is_guid(texts[1]):
        return None
    try:
        last_used = parse_qrs_time(item.get("last_used"))
    except QrsDataError:
        return None
    license_type, allocation_id, directory, user_id = texts
    return PlannedAllocation(license_type, allocation_id, f"{directory}\\{user_id}", last_used)


def plan_for_site(plans: Sequence[Plan], site: Mapping[str, Any]) -> Plan:
    """The plan made for ``site`` (``decision_settings(...)["site"]``).

    :raises PlanError: when the file holds no plan for this site.
    """
    for plan in plans:
        if str(plan.site.get("name", "")).casefold() == str(site.get("name", "")).casefold():
            return plan
    made_for = ", ".join(sorted({_site_text(p.site) for p in plans}))
    raise PlanError(
        f"{plans[0].source} is a plan for another site ({made_for}), not for"
        f" {_site_text(site)}: apply it with that site's config, or {_MAKE_ONE}"
    )


def _site_text(site: Mapping[str, Any]) -> str:
    return f"{site.get('name', '?')} ({site.get('host', '?')}:{site.get('port', '?')})"


def check_plan(plan: Plan, current: Mapping[str, Any], now: datetime, max_age_hours: float) -> None:
    """Refuse a plan that no longer describes this site, its rules or its thresholds.

    :param current: :func:`agent.apply.decision_settings` for the site now.
    :raises PlanError: naming every difference at once.
    """
    problems: list[str] = []
    site = current.get("site") or {}
    if not _same_site(plan.site, site):
        problems.append(
            f"it was made for site {_site_text(plan.site)}, this config's site is"
            f" {_site_text(site)}"
        )
    thresholds = dict(current.get("thresholds") or {})
    if dict(plan.thresholds) != thresholds:
        problems.append(
            f"it was made with the thresholds {_thresholds_text(plan.thresholds)}; they are now"
            f" {_thresholds_text(thresholds)}"
        )
    rules = sorted(current.get("rules") or [])
    if sorted(plan.rules) != rules:
        added = sorted(set(rules) - set(plan.rules))
        removed = sorted(set(plan.rules) - set(rules))
        changes = [f"added {', '.join(added)}"] if added else []
        changes += [f"removed {', '.join(removed)}"] if removed else []
        problems.append(f"the neverRelease rules changed since it was made ({'; '.join(changes)})")
    elif plan.settings_digest != current.get("settings_digest"):
        problems.append(
            "the licenseRelease settings its decisions depend on (neverRelease values, license"
            " types) changed since it was made"
        )
    age = now - plan.made
    if age > timedelta(hours=max_age_hours):
        problems.append(
            f"it is {age.total_seconds() / 3600:.1f} hours old (made"
            f" {format_qrs_time(plan.made)}); plans older than {max_age_hours:g} hours are"
            " refused (licenseRelease.planMaxAgeHours)"
        )
    elif age < -_FUTURE_SLACK:
        problems.append(
            f"it was made in the future ({format_qrs_time(plan.made)}): check this machine's clock"
        )
    if problems:
        raise PlanError(
            f"the plan {plan.source} (run {plan.run_id}) cannot be applied: "
            + "; ".join(problems)
            + f". Nothing was released; {_MAKE_ONE}, review it, then apply it"
        )


def _same_site(made_for: Mapping[str, Any], site: Mapping[str, Any]) -> bool:
    """The same site as the release lock sees it (:func:`agent.lock.site_identity`: the host
    in any case, with or without its trailing dot, the port as a number) under the same name
    (site names are unique whatever their case)."""
    try:
        identities = {
            site_identity(str(s.get("host", "")), int(s.get("port"))) for s in (made_for, site)
        }
    except (TypeError, ValueError):
        return False
    names = {str(s.get("name", "")).casefold() for s in (made_for, site)}
    return len(identities) == 1 and len(names) == 1


def _thresholds_text(thresholds: Mapping[str, Any]) -> str:
    if not thresholds:
        return "(no license type enabled)"
    return ", ".join(f"{name} {days} days" for name, days in sorted(thresholds.items()))


__all__ = [
    "DEFAULT_MAX_AGE_HOURS",
    "PLAN_FORMAT",
    "PLAN_VERSION",
    "Plan",
    "PlanError",
    "check_plan",
    "load_plans",
    "plan_block",
    "plan_for_site",
    "plans_for_sites",
]


def plans_for_sites(
    path: Path, config: Any, host: Any, now: datetime
) -> dict[str, dict[tuple[str, str], PlannedAllocation]]:
    """Read a plan file and check it against every configured site; the allocations to apply
    per site name. :raises PlanError: for the first site whose plan is missing or refused."""
    plans = load_plans(path)
    applied: dict[str, dict[tuple[str, str], PlannedAllocation]] = {}
    for site in config.sites():
        rules, _errors = host.release_rules(config, site)  # the run itself reports the errors
        current = decision_settings(site, (r.name for r in rules))
        plan = plan_for_site(plans, current["site"])
        check_plan(plan, current, now, site.license_release.plan_max_age_hours)
        applied[site.name] = plan.allocations
    return applied
