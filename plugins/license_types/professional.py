"""The ``professional`` license type: Professional access allocations.

Reads the ``professionalAccess`` block of the access type overview into the six fields the
existing tool writes (``allocated, available, excess, quarantined, total, used``). Its
allocations are listed and deleted through ``/qrs/license/professionalaccesstype``.
"""

from __future__ import annotations

from agent.config import LicenseTypeRelease
from agent.hookspecs import hookimpl
from agent.models import LicenseType, SettingsSection
from agent.monitor import ACCESS_FIELDS, block_extractor

#: The key of this type's release settings (``enable``, ``releaseThresholdDays``).
PATH = "qlikSenseLicense.licenseRelease.licenseType.professional"


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [SettingsSection(PATH, LicenseTypeRelease)]


@hookimpl
def sla_license_types() -> list[LicenseType]:
    return [
        LicenseType(
            name="professional",
            extract=block_extractor("professional", "professionalAccess", ACCESS_FIELDS),
            allocation_resource="professionalaccesstype",
            description="Professional access allocations (overview block professionalAccess)",
        )
    ]
