"""The ``neverRelease.user`` rule: never release the licenses of the listed users.

Each entry names a user by ``userDir`` and ``userId``. Matching ignores case (Sense treats
both case-insensitively). A user who was deleted from QRS is still matched, through the
``deletedUserDirectory`` / ``deletedUserId`` the allocation keeps.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.hookspecs import hookimpl
from agent.models import Candidate, ReleaseRule, Vetoes
from agent.release import fold


@hookimpl
def sla_release_rules(site) -> list[ReleaseRule] | None:
    entries = site.license_release.never_release.user
    if not entries:
        return None  # an empty or null list means "no rule"
    protected = frozenset((fold(e.user_dir), fold(e.user_id)) for e in entries)

    def judge(candidates: Sequence[Candidate]) -> Vetoes:
        vetoes: dict[str, str] = {}
        for candidate in candidates:
            allocation = candidate.allocation
            user = candidate.user
            # The full user record is authoritative; matching either it or the name the
            # allocation carries is the safe side.
            matched = (fold(allocation.owner_directory), fold(allocation.owner_id)) in protected
            if not matched and user is not None:
                matched = (fold(user.user_directory), fold(user.user_id)) in protected
            if matched:
                who = "deleted user" if allocation.user is None else "user"
                vetoes[allocation.id] = f"{who} {allocation.owner} is listed in neverRelease.user"
        return vetoes

    return [
        ReleaseRule(
            name="user",
            judge=judge,
            description=f"never release {len(protected)} listed user(s) (neverRelease.user)",
        )
    ]
