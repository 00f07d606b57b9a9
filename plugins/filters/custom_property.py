"""The ``neverRelease.customProperty`` rule: never release users holding a custom property value.

Each entry is a definition ``name`` and a ``value``; a user is protected when any of their
values for that definition equals it (a user can hold several values of one definition).
Names and values are matched ignoring case. A user deleted from QRS has no custom properties
any more, so this rule cannot protect the allocation such a user left behind.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from agent.config import OptionalList, SettingsModel, Text
from agent.hookspecs import Settings, hookimpl
from agent.models import Candidate, ReleaseRule, SettingsSection, Vetoes, fold

#: The key this plugin owns.
PATH = "qlikSenseLicense.licenseRelease.neverRelease.customProperty"


class NeverReleaseCustomProperty(SettingsModel):
    """A custom property value whose holders' licenses are never released."""

    name: Text = Field(min_length=1)
    value: Text


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [SettingsSection(PATH, OptionalList[NeverReleaseCustomProperty])]


@hookimpl
def sla_release_rules(settings: Settings) -> list[ReleaseRule] | None:
    entries = settings[PATH]
    if not entries:
        return None  # an empty or null list means "no rule"
    protected = frozenset((fold(e.name), fold(e.value)) for e in entries)
    protected_values = frozenset(value for _, value in protected)

    def judge(candidates: Sequence[Candidate]) -> Vetoes:
        vetoes: dict[str, str] = {}
        # Users share few distinct names and values: fold each once per batch, and test the
        # value first (most values are not protected under any name).
        folded: dict[str, str] = {}
        maybe: dict[str, bool] = {}

        def key(text: str) -> str:
            found = folded.get(text)
            if found is None:
                found = folded[text] = fold(text)
            return found

        for candidate in candidates:
            user = candidate.user
            if user is None:
                continue
            properties = user.custom_properties
            if not properties:
                continue
            matched = []
            for p in properties:
                value = p.value
                hit = maybe.get(value)
                if hit is None:
                    hit = maybe[value] = key(value) in protected_values
                if hit and (key(p.name), key(value)) in protected:
                    matched.append(f"{p.name}={value}")
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
