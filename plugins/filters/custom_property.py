"""The ``neverRelease.customProperty`` rule: never release users holding a custom property value.

Each entry is a definition ``name`` and a ``value``; a user is protected when any of their
values for that definition equals it (a user can hold several values of one definition).
Names and values are matched ignoring case. A user deleted from QRS has no custom properties
any more, so this rule cannot protect the allocation such a user left behind.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.hookspecs import hookimpl
from agent.models import Candidate, ReleaseRule, Vetoes
from agent.release import fold


@hookimpl
def sla_release_rules(site) -> list[ReleaseRule] | None:
    entries = site.license_release.never_release.custom_property
    if not entries:
        return None  # an empty or null list means "no rule"
    protected = frozenset((fold(e.name), fold(e.value)) for e in entries)

    def judge(candidates: Sequence[Candidate]) -> Vetoes:
        vetoes: dict[str, str] = {}
        folded: dict[str, str] = {}  # names and values repeat: fold each once per batch

        def key(text: str) -> str:
            found = folded.get(text)
            if found is None:
                found = folded[text] = fold(text)
            return found

        for candidate in candidates:
            user = candidate.user
            if user is None or not user.custom_properties:
                continue
            matched = [
                f"{p.name}={p.value}"
                for p in user.custom_properties
                if (key(p.name), key(p.value)) in protected
            ]
            if matched:
                vetoes[candidate.allocation.id] = (
                    f"user has custom property {', '.join(sorted(set(matched)))}"
                    " (neverRelease.customProperty)"
                )
        return vetoes

    return [
        ReleaseRule(
            name="customProperty",
            judge=judge,
            description=f"never release users holding one of {len(protected)} property value(s)",
        )
    ]
