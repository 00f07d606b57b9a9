"""The token-model license types of older sites: ``token_login``, ``token_user`` and
``tokens_available``.

``token_login`` reads ``loginAccess`` (login access passes), ``token_user`` reads
``userAccess`` (user access passes) and ``tokens_available`` reads the overview's top-level
``totalTokens`` / ``availableTokens``, only when ``tokensEnabled`` is true. Unlike the existing
tool, ``token_user.used_tokens`` comes from ``usedTokens``, the key QRS actually returns. The
agent monitors these types and never releases them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loguru import logger

from agent.hookspecs import hookimpl
from agent.models import LicenseType
from agent.monitor import block_extractor, numeric_fields

LOGIN_FIELDS = {
    "allocated_tokens": "allocatedTokens",
    "token_cost": "tokenCost",
    "unavailable_tokens": "unavailableTokens",
    "used_tokens": "usedTokens",
}
USER_FIELDS = {
    "allocated_tokens": "allocatedTokens",
    "quarantined_tokens": "quarantinedTokens",
    "token_cost": "tokenCost",
    "used_tokens": "usedTokens",
}
AVAILABLE_FIELDS = {"available_tokens": "availableTokens", "total_tokens": "totalTokens"}


def extract_tokens_available(overview: Mapping[str, Any]) -> dict[str, float] | None:
    """The site's token totals, or ``None`` unless ``tokensEnabled`` is true."""
    if overview.get("tokensEnabled") is not True:
        logger.debug("license type tokens_available: tokensEnabled is not true; no point")
        return None
    return numeric_fields(overview, AVAILABLE_FIELDS, license_type="tokens_available")


@hookimpl
def sla_license_types() -> list[LicenseType]:
    return [
        LicenseType(
            name="token_login",
            extract=block_extractor("token_login", "loginAccess", LOGIN_FIELDS),
            description="Login access passes (overview block loginAccess)",
        ),
        LicenseType(
            name="token_user",
            extract=block_extractor("token_user", "userAccess", USER_FIELDS),
            description="User access passes (overview block userAccess)",
        ),
        LicenseType(
            name="tokens_available",
            extract=extract_tokens_available,
            description="Total and available tokens, when the site uses tokens",
        ),
    ]
