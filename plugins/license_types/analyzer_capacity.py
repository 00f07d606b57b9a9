"""The ``analyzer_capacity`` license type: analyzer capacity (minutes) licenses.

Reads the ``analyzerTimeAccess`` block of the access type overview. Capacity is consumed in
minutes, not allocated to users, so the agent only monitors it and never releases anything.
"""

from __future__ import annotations

from agent.hookspecs import hookimpl
from agent.models import LicenseType
from agent.monitor import block_extractor

#: ``qlik_sense_license`` field -> key in the ``analyzerTimeAccess`` block.
CAPACITY_FIELDS = {
    "allocated_minutes": "allocatedMinutes",
    "unavailable_minutes": "unavailableMinutes",
    "used_minutes": "usedMinutes",
}


@hookimpl
def sla_license_types() -> list[LicenseType]:
    return [
        LicenseType(
            name="analyzer_capacity",
            extract=block_extractor("analyzer_capacity", "analyzerTimeAccess", CAPACITY_FIELDS),
            description="Analyzer capacity minutes (overview block analyzerTimeAccess)",
        )
    ]
