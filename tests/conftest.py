"""Fixtures shared by the whole suite."""

from __future__ import annotations

import sys

import pytest
from loguru import logger

pytest_plugins = ["tests.fixtures_servers"]


@pytest.fixture(autouse=True)
def _loguru_to_current_stderr():
    """Commands under test call setup_logging, which binds loguru to the stderr of that
    moment (pytest's capture). Reset after each test so no sink points at a closed stream."""
    yield
    logger.remove()
    logger.add(lambda message: sys.stderr.write(message), level="DEBUG")
