"""The ``neverRelease.tag`` rule: never release the licenses of users who carry one of these tags.

Tag names are matched ignoring case. A user deleted from QRS has no tags any more, so this
rule cannot protect the allocation such a user left behind (the ``user`` and
``userDirectory`` rules can).
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.config import OptionalList, Text
from agent.hookspecs import Settings, hookimpl
from agent.models import Candidate, ReleaseRule, SettingsSection, Vetoes, fold

#: The key this plugin owns: a list of tag names.
PATH = "qlikSenseLicense.licenseRelease.neverRelease.tag"


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [SettingsSection(PATH, OptionalList[Text])]


@hookimpl
def sla_release_rules(settings: Settings) -> list[ReleaseRule] | None:
    tags = settings[PATH]
    if not tags:
        return None  # an empty or null list means "no rule"
    protected = frozenset(fold(t) for t in tags)

    def judge(candidates: Sequence[Candidate]) -> Vetoes:
        vetoes: dict[str, str] = {}
        folded: dict[str, bool] = {}  # tag names repeat: fold and test each once per batch
        for candidate in candidates:
            user = candidate.user
            if user is None:
                continue
            tags = user.tags
            if not tags:
                continue
            matched = []
            for tag in tags:
                hit = folded.get(tag)
                if hit is None:
                    hit = folded[tag] = fold(tag) in protected
                if hit:
                    matched.append(tag)
            if matched:
                names = ", ".join(repr(t) for t in sorted(set(matched)))
                vetoes[candidate.allocation.id] = f"user has tag {names} (neverRelease.tag)"
        return vetoes

    return [
        ReleaseRule(
            name="tag",
            judge=judge,
            description=f"never release users tagged with one of {len(protected)} tag(s)",
        )
    ]
