"""A known access type overview and the points it must give.

``OVERVIEW`` gives every block distinct numbers, so a field read from the wrong key shows.
"""

from __future__ import annotations

from typing import Any

NOW = "2026-06-01T12:00:00.000Z"

OVERVIEW: dict[str, Any] = {
    "tokensEnabled": True,
    "totalTokens": 100,
    "availableTokens": 72,
    "professionalAccess": {
        "enabled": True,
        "total": 25,
        "allocated": 5,
        "used": 3,
        "quarantined": 1,
        "excess": 0,
        "available": 20,
    },
    "analyzerAccess": {
        "enabled": True,
        "total": 30,
        "allocated": 4,
        "used": 2,
        "quarantined": 0,
        "excess": 1,
        "available": 26,
    },
    "analyzerTimeAccess": {
        "enabled": True,
        "allocatedMinutes": 700,
        "usedMinutes": 12,
        "unavailableMinutes": 3,
    },
    "userAccess": {
        "enabled": True,
        "tokenCost": 1,
        "allocatedTokens": 8,
        "usedTokens": 6,
        "quarantinedTokens": 2,
    },
    "loginAccess": {
        "enabled": True,
        "tokenCost": 0.1,
        "allocatedTokens": 10,
        "usedTokens": 4,
        "unavailableTokens": 1,
    },
}

#: The fields each license type must write for OVERVIEW (REFERENCE_BEHAVIOUR.md names).
EXPECTED: dict[str, dict[str, float]] = {
    "professional": {
        "allocated": 5.0,
        "available": 20.0,
        "excess": 0.0,
        "quarantined": 1.0,
        "total": 25.0,
        "used": 3.0,
    },
    "analyzer": {
        "allocated": 4.0,
        "available": 26.0,
        "excess": 1.0,
        "quarantined": 0.0,
        "total": 30.0,
        "used": 2.0,
    },
    "analyzer_capacity": {
        "allocated_minutes": 700.0,
        "unavailable_minutes": 3.0,
        "used_minutes": 12.0,
    },
    "token_login": {
        "allocated_tokens": 10.0,
        "token_cost": 0.1,
        "unavailable_tokens": 1.0,
        "used_tokens": 4.0,
    },
    "token_user": {
        "allocated_tokens": 8.0,
        "quarantined_tokens": 2.0,
        "token_cost": 1.0,
        "used_tokens": 6.0,
    },
    "tokens_available": {"available_tokens": 72.0, "total_tokens": 100.0},
}
