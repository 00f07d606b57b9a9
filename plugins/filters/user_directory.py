"""The ``neverRelease.userDirectory`` rule: never release licenses of users in these directories.

Matching ignores case. A deleted user is matched through the allocation's
``deletedUserDirectory``.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.hookspecs import hookimpl
from agent.models import Candidate, ReleaseRule, Vetoes
from agent.release import fold


@hookimpl
def sla_release_rules(site) -> list[ReleaseRule] | None:
    directories = site.license_release.never_release.user_directory
    if not directories:
        return None  # an empty or null list means "no rule"
    protected = frozenset(fold(d) for d in directories)

    def judge(candidates: Sequence[Candidate]) -> Vetoes:
        vetoes: dict[str, str] = {}
        for candidate in candidates:
            allocation = candidate.allocation
            found = {allocation.owner_directory}
            if candidate.user is not None:
                found.add(candidate.user.user_directory)
            matched = sorted(d for d in found if fold(d) in protected)
            if matched:
                vetoes[allocation.id] = (
                    f"user directory {matched[0]!r} is listed in neverRelease.userDirectory"
                )
        return vetoes

    return [
        ReleaseRule(
            name="userDirectory",
            judge=judge,
            description=(
                f"never release users of {len(protected)} directory(ies)"
                " (neverRelease.userDirectory)"
            ),
        )
    ]
