"""Fixtures for the simulator tests: a shared cert dir, simulators serving the test site, a client."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # plain `pytest` from the repo root, with or without a pyproject
    sys.path.insert(0, str(ROOT))

from agent.simulator import Simulator, ensure_certs  # noqa: E402
from agent.simulator.certs import CertPaths  # noqa: E402

from .helpers import SITE, Qrs  # noqa: E402


@pytest.fixture(scope="session")
def cert_paths(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return ensure_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def make_sim(cert_paths: CertPaths) -> Iterator[Callable[..., Simulator]]:
    """Start simulators sharing the session's certificates; all are stopped after the test."""
    started: list[Simulator] = []

    def make(state: Any = None, **options: Any) -> Simulator:
        options.setdefault("cert_dir", cert_paths.cert_dir)
        if state is None and "users" not in options:
            state = SITE
        sim = Simulator(state, **options)
        sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        sim.stop()


@pytest.fixture
def sim(make_sim: Callable[..., Simulator]) -> Simulator:
    """A fresh simulator serving :data:`SITE`."""
    return make_sim()


@pytest.fixture
def qrs(sim: Simulator) -> Qrs:
    return Qrs(sim)
