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
        folded: dict[str, str] = {}  # few distinct directories: fold each once per batch
        for candidate in candidates:
            allocation = candidate.allocation
            names = [allocation.owner_directory]
            if candidate.user is not None and candidate.user.user_directory != names[0]:
                names.append(candidate.user.user_directory)
            for name in names:
                key = folded.get(name)
                if key is None:
                    key = folded[name] = fold(name)
                if key in protected:
                    vetoes[allocation.id] = (
                        f"user directory {name!r} is listed in neverRelease.userDirectory"
                    )
                    break
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
