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

from agent.hookspecs import hookimpl
from agent.models import Candidate, ReleaseRule, Vetoes

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


@hookimpl
def sla_release_rules(site) -> list[ReleaseRule] | None:
    never_release = site.license_release.never_release
    settings = {
        "inactive": never_release.inactive,
        "blocked": never_release.blocked,
        "removedExternally": never_release.removed_externally,
    }
    rules = [flag_rule(name, setting) for name, setting in settings.items()]
    return [rule for rule in rules if rule is not None] or None
