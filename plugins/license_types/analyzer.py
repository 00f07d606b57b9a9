"""The ``analyzer`` license type: Analyzer access allocations.

Reads the ``analyzerAccess`` block of the access type overview into the same six fields as
``professional``. Its allocations are listed and deleted through
``/qrs/license/analyzeraccesstype``.
"""

from __future__ import annotations

from agent.config import LicenseTypeRelease
from agent.hookspecs import hookimpl
from agent.models import LicenseType, SettingsSection
from agent.monitor import ACCESS_FIELDS, block_extractor

#: The key of this type's release settings (``enable``, ``releaseThresholdDays``).
PATH = "qlikSenseLicense.licenseRelease.licenseType.analyzer"


@hookimpl
def sla_settings() -> list[SettingsSection]:
    return [SettingsSection(PATH, LicenseTypeRelease)]


@hookimpl
def sla_license_types() -> list[LicenseType]:
    return [
        LicenseType(
            name="analyzer",
            extract=block_extractor("analyzer", "analyzerAccess", ACCESS_FIELDS),
            allocation_resource="analyzeraccesstype",
            description="Analyzer access allocations (overview block analyzerAccess)",
        )
    ]
