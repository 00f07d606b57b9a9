"""Logging with loguru: level, optional rotating file, optional JSON lines. (Being completed.)"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from loguru import logger

if TYPE_CHECKING:
    from agent.config import AgentConfig


def setup_logging(config: AgentConfig | None, level: str | None = None) -> None:
    logger.remove()
    logger.add(sys.stderr, level=level or "INFO")
