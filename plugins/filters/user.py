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
    protected_ids = frozenset(user_id for _, user_id in protected)

    def listed(directory: str, user_id: str) -> bool:
        # Nearly no candidate is listed: test the user id first and fold the directory only
        # for the few whose id matches (a batch can hold 100,000 candidates).
        key = fold(user_id)
        return key in protected_ids and (fold(directory), key) in protected

    def judge(candidates: Sequence[Candidate]) -> Vetoes:
        vetoes: dict[str, str] = {}
        for candidate in candidates:
            allocation = candidate.allocation
            user = candidate.user
            owner_directory, owner_id = allocation.owner_directory, allocation.owner_id
            # The full user record is authoritative; matching either it or the name the
            # allocation carries is the safe side (the record is only checked when it differs).
            matched = listed(owner_directory, owner_id)
            if (
                not matched
                and user is not None
                and (user.user_id != owner_id or user.user_directory != owner_directory)
            ):
                matched = listed(user.user_directory, user.user_id)
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
