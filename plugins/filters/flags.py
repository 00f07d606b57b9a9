"""The ``neverRelease`` flag rules: ``inactive``, ``blocked`` and ``removedExternally``.

Each takes ``Yes``, ``No`` or ``Ignore`` (any case; unquoted YAML ``yes``/``no`` work too):
``Yes`` protects users whose flag is set, ``No`` protects users whose flag is not set, and
``Ignore`` adds no rule. So ``inactive: No`` keeps every active user's license and releases
only those of users marked Inactive. ``blocked`` is the QRS field ``blacklisted`` (the QMC's
"Blocked"). When QRS did not report a flag at all, a ``Yes`` or ``No`` rule protects the user:
an unknown flag cannot justify a release. A deleted user has no flags, so these rules cannot
protect the allocation such a user left behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Annotated

from pydantic import BeforeValidator, Field

from agent.config import FlagRule
from agent.hookspecs import Settings, hookimpl
from agent.models import Candidate, ReleaseRule, SettingsSection, Vetoes

#: rule name (the config key) -> (User attribute, what the QMC calls the flag)
FLAGS: dict[str, tuple[str, str]] = {
    "inactive": ("inactive", "Inactive"),
    "blocked": ("blocked", "Blocked"),
    "removedExternally": ("removed_externally", "Removed externally"),
}


def flag_rule(name: str, setting: str) -> ReleaseRule | None:
    """The rule for one flag and its setting (``yes``, ``no`` or ``ignore``), or ``None``."""
    if setting == "ignore":
        return None
    if setting not in ("yes", "no"):
        raise ValueError(f"neverRelease.{name} must be Yes, No or Ignore, not {setting!r}")
    attribute, label = FLAGS[name]
    protects = setting == "yes"  # the flag value this rule protects
    shown = "Yes" if protects else "No"

    unknown = (
        f"QRS did not report the user's {label} flag, and neverRelease.{name}"
        f" is {shown}: an unknown flag is not a reason to release"
    )
    hit = f"user's {label} flag is {'Yes' if protects else 'No'} (neverRelease.{name}: {shown})"
    value_of = attrgetter(attribute)

    def judge(candidates: Sequence[Candidate]) -> Vetoes:
        vetoes: dict[str, str] = {}
        for candidate in candidates:
            user = candidate.user
            if user is None:
                continue
            value = value_of(user)
            if value is protects:
                vetoes[candidate.allocation.id] = hit
            elif value is None:
                vetoes[candidate.allocation.id] = unknown
        return vetoes

    return ReleaseRule(
        name=name,
        judge=judge,
        description=f"never release users whose {label} flag is {shown}",
    )


#: The keys this plugin owns, below ``licenseRelease.neverRelease``.
BASE = "qlikSenseLicense.licenseRelease.neverRelease"

#: What each flag rule's Yes and No mean (for the JSON Schema and editors).
_DESCRIPTIONS = {
    "inactive": "Yes: keep the licenses of users marked Inactive in the QMC; No: keep those of"
    " active users; Ignore: disregard the flag",
    "blocked": "Yes: keep the licenses of blocked users; No: keep those of users not blocked;"
    " Ignore: disregard the flag",
    "removedExternally": "Yes: keep the licenses of users removed externally; No: keep those of"
    " the others; Ignore: disregard the flag",
}


def _empty_is_ignore(value: object) -> object:
    return "ignore" if value is None else value


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [
        # An empty value (``inactive:``) is Ignore, as an absent key is.
        SettingsSection(
            f"{BASE}.{name}",
            Annotated[FlagRule, BeforeValidator(_empty_is_ignore), Field(description=text)],
        )
        for name, text in _DESCRIPTIONS.items()
    ]


@hookimpl
def sla_release_rules(settings: Settings) -> list[ReleaseRule] | None:
    # An absent key is Ignore, as in Butler.
    rules = [flag_rule(name, settings[f"{BASE}.{name}"] or "ignore") for name in FLAGS]
    return [rule for rule in rules if rule is not None] or None
