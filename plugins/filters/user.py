"""The ``neverRelease.user`` rule: never release the licenses of the listed users.

Each entry names a user by ``userDir`` and ``userId``. Matching ignores case (Sense treats
both case-insensitively). A user who was deleted from QRS is still matched, through the
``deletedUserDirectory`` / ``deletedUserId`` the allocation keeps.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from agent.config import OptionalList, SettingsModel, Text
from agent.hookspecs import Settings, hookimpl
from agent.models import Candidate, ReleaseRule, SettingsSection, Vetoes, fold

#: The key this plugin owns.
PATH = "qlikSenseLicense.licenseRelease.neverRelease.user"


class NeverReleaseUser(SettingsModel):
    """A user whose licenses are never released."""

    user_dir: Text = Field(
        alias="userDir", min_length=1, description="User directory, as in the QMC (INTERNAL)"
    )
    user_id: Text = Field(alias="userId", min_length=1, description="User ID, as in the QMC")


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [SettingsSection(PATH, OptionalList[NeverReleaseUser])]


@hookimpl
def sla_release_rules(settings: Settings) -> list[ReleaseRule] | None:
    entries = settings[PATH]
    if not entries:
        return None  # an empty or null list means "no rule"
    protected = frozenset((fold(e.user_dir), fold(e.user_id)) for e in entries)
    protected_ids = frozenset(user_id for _, user_id in protected)

    def judge(candidates: Sequence[Candidate]) -> Vetoes:
        vetoes: dict[str, str] = {}
        for candidate in candidates:
            # The owner as the allocation names it (the core only lets candidates through whose
            # user record names the same user), or the deleted user it names.
            allocation = candidate.allocation
            ref = allocation.user
            if ref is None:
                directory, user_id = allocation.deleted_user_directory, allocation.deleted_user_id
            else:
                directory, user_id = ref.user_directory, ref.user_id
            # Nearly no candidate is listed: test the user id first and fold the directory only
            # for the few whose id matches (a batch can hold 100,000 candidates).
            key = fold(user_id)
            if key in protected_ids and (fold(directory), key) in protected:
                who = "deleted user" if ref is None else "user"
                vetoes[allocation.id] = f"{who} {allocation.owner} is listed in neverRelease.user"
        return vetoes

    return [
        ReleaseRule(
            name="user",
            judge=judge,
            description=f"never release {len(protected)} listed user(s) (neverRelease.user)",
        )
    ]
