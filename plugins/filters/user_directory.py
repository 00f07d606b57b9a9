"""The ``neverRelease.userDirectory`` rule: never release licenses of users in these directories.

Matching ignores case. A deleted user is matched through the allocation's
``deletedUserDirectory``.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.hookspecs import hookimpl
from agent.models import Candidate, ReleaseRule, Vetoes, fold


@hookimpl
def sla_release_rules(site) -> list[ReleaseRule] | None:
    directories = site.license_release.never_release.user_directory
    if not directories:
        return None  # an empty or null list means "no rule"
    protected = frozenset(fold(d) for d in directories)

    def judge(candidates: Sequence[Candidate]) -> Vetoes:
        vetoes: dict[str, str] = {}
        folded: dict[str, bool] = {}  # few distinct directories: fold and test each once
        for candidate in candidates:
            # The allocation's owner (the core only lets candidates through whose user record
            # names the same user), or the deleted user it names.
            allocation = candidate.allocation
            ref = allocation.user
            name = allocation.deleted_user_directory if ref is None else ref.user_directory
            hit = folded.get(name)
            if hit is None:
                hit = folded[name] = fold(name) in protected
            if hit:
                vetoes[allocation.id] = (
                    f"user directory {name!r} is listed in neverRelease.userDirectory"
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
