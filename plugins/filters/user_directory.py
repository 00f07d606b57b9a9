"""The ``neverRelease.userDirectory`` rule: never release licenses of users in these directories.

Matching ignores case. A deleted user is matched through the allocation's
``deletedUserDirectory``.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.config import OptionalList, Text
from agent.hookspecs import Settings, hookimpl
from agent.models import Candidate, ReleaseRule, SettingsSection, Vetoes, fold

#: The key this plugin owns: a list of user directory names.
PATH = "qlikSenseLicense.licenseRelease.neverRelease.userDirectory"


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [SettingsSection(PATH, OptionalList[Text])]


@hookimpl
def sla_release_rules(settings: Settings) -> list[ReleaseRule] | None:
    directories = settings[PATH]
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
