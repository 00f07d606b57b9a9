"""Fixtures for the release tests; the builders they use live in ``helpers.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agent.simulator import ensure_certs
from agent.simulator.certs import CertPaths

from .helpers import ReleaseHarness

if TYPE_CHECKING:
    from .test_plan import Site


@pytest.fixture(scope="session")
def release_certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return ensure_certs(tmp_path_factory.mktemp("release-certs"))


@pytest.fixture
def harness(release_certs: CertPaths, tmp_path: Path) -> Iterator[ReleaseHarness]:
    h = ReleaseHarness(release_certs, tmp_path)
    yield h
    h.stop()


@pytest.fixture
def site(release_certs: CertPaths, tmp_path: Path) -> Iterator[Site]:
    """A simulator site with a backlog and its config folder (see ``test_plan.Site``); the plan,
    apply, restore and run-log tests share it."""
    from .test_plan import Site

    made = Site(release_certs, tmp_path)
    yield made
    made.sim.stop()
