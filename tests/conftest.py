"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from loguru import logger

pytest_plugins = ["tests.fixtures_servers"]


@pytest.fixture(autouse=True, scope="session")
def _machine_lock_dir(tmp_path_factory: pytest.TempPathFactory):
    """The machine-wide release locks of this test session in a folder of its own (inherited
    by the agents it starts): test sites share names such as ``qs.example.com:4242``, and two
    sessions on one machine must not refuse each other's releases."""
    from agent.lock import LOCK_DIR_ENV

    folder: Path = tmp_path_factory.mktemp("machine-locks")
    previous = os.environ.get(LOCK_DIR_ENV)
    os.environ[LOCK_DIR_ENV] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop(LOCK_DIR_ENV, None)
    else:
        os.environ[LOCK_DIR_ENV] = previous


@pytest.fixture(autouse=True)
def _loguru_to_current_stderr():
    """Commands under test call setup_logging, which binds loguru to the stderr of that
    moment (pytest's capture). Reset after each test so no sink points at a closed stream."""
    yield
    logger.remove()
    logger.add(lambda message: sys.stderr.write(message), level="DEBUG")
