"""Fixtures for the reliability tests: certificates, simulators and the real database servers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.simulator import Simulator, ensure_certs
from agent.simulator.certs import CertPaths

from .helpers import NOW, Site, build_site


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    paths = ensure_certs(tmp_path_factory.mktemp("reliability-certs"))
    if os.name != "nt":
        # ensure_certs writes keys 0o600; keep it so (a key readable by others is warned about).
        os.chmod(paths.client_key, 0o600)
    return paths


@pytest.fixture
def simulator(certs: CertPaths) -> Iterator[Callable[..., Simulator]]:
    """``simulator(site_or_document, **options)`` -> a started simulator, stopped after the test."""
    started: list[Simulator] = []

    def start(site: Site | dict[str, Any] | None = None, **options: Any) -> Simulator:
        document = (site or build_site()).document if not isinstance(site, dict) else site
        options.setdefault("now", NOW)
        sim = Simulator(document, cert_dir=certs.cert_dir, **options)
        sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The folder configs, state and outputs go to (also the subprocesses' cwd)."""
    path = tmp_path / "agent"
    path.mkdir()
    return path
