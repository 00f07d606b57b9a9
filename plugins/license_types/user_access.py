"""The ``userAccess`` license type: token-based User access allocations (older sites).

A site on the token model assigns User access passes; each one is an allocation listed and
deleted through ``/qrs/license/useraccesstype``, with the fields of a Professional allocation
minus ``excess``, and QRS quarantines one removed within 7 days of its last use, as it does for
the other types. This plugin lets the agent release them, like Professional and Analyzer
allocations: ``qlikSenseLicense.licenseRelease.licenseType.userAccess`` (``enable`` defaults to
false, so nothing changes until an admin turns it on).

The overview's ``userAccess`` block is monitored by ``token_user``
(:mod:`plugins.license_types.tokens`, the existing tool's name and fields), so this type writes
no point of its own: one block, one point. A ``maxReleasesPerRun`` percentage for it is taken
of the allocations the release run lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.config import LicenseTypeRelease
from agent.hookspecs import hookimpl
from agent.models import LicenseType, SettingsSection

#: The license type's name: the ``license_type`` tag of its release events and its key under
#: ``licenseRelease.licenseType``.
NAME = "userAccess"
#: The key of this type's release settings (``enable``, default false; ``releaseThresholdDays``).
PATH = f"qlikSenseLicense.licenseRelease.licenseType.{NAME}"


def no_point(overview: Mapping[str, Any]) -> None:
    """``token_user`` writes the ``userAccess`` block; a second point would count it twice."""
    return None


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [SettingsSection(PATH, LicenseTypeRelease)]


@hookimpl
def sla_license_types() -> list[LicenseType]:
    return [
        LicenseType(
            name=NAME,
            extract=no_point,
            allocation_resource="useraccesstype",
            description="User access allocations, token model (monitored as token_user)",
        )
    ]
