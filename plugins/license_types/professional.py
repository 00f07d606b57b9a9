"""The ``professional`` license type: Professional access allocations.

Reads the ``professionalAccess`` block of the access type overview into the six fields the
existing tool writes (``allocated, available, excess, quarantined, total, used``). Its
allocations are listed and deleted through ``/qrs/license/professionalaccesstype``.
"""

from __future__ import annotations

from agent.hookspecs import hookimpl
from agent.models import LicenseType
from agent.monitor import ACCESS_FIELDS, block_extractor


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
