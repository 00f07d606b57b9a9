"""Fixtures for the monitor tests: a QRS simulator with a known overview, and configs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config import AgentConfig
from agent.plugins import load_config
from agent.simulator import Simulator

from .data import NOW, OVERVIEW


@pytest.fixture(scope="session")
def sim_cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sim-certs")


@pytest.fixture
def simulator(sim_cert_dir: Path) -> Iterator[Simulator]:
    """A running QRS simulator whose overview is ``OVERVIEW`` (no users or allocations)."""
    with Simulator(state={"now": NOW, "overview": OVERVIEW}, cert_dir=sim_cert_dir) as sim:
        yield sim


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base``."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., AgentConfig]:
    """``make_config(sim, butler_extra)`` writes ``config.yaml`` for ``sim`` in ``tmp_path``
    (state in ``tmp_path``) and loads it, as the CLI would."""

    def make(sim: Simulator | None, extra: dict[str, Any] | None = None) -> AgentConfig:
        butler: dict[str, Any] = {"licenseAgent": {"stateDir": str(tmp_path / "state")}}
        if sim is None:  # a site that is never contacted (tests with a stand-in QRS client)
            butler["configQRS"] = {"host": "sense.example.com"}
            butler["cert"] = {
                "clientCert": "c.pem",
                "clientCertKey": "k.pem",
                "clientCertCA": "r.pem",
            }
        else:
            assert sim.certs is not None
            butler["configQRS"] = {"host": "127.0.0.1", "port": sim.port, "retries": 0}
            butler["cert"] = {
                "clientCert": str(sim.certs.client_cert),
                "clientCertKey": str(sim.certs.client_key),
                "clientCertCA": str(sim.certs.root_cert),
            }
        butler = merge(butler, extra or {})
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({"Butler": butler}), encoding="utf-8")
        return load_config(path)

    return make


def influx_v1(server: Any, database: str, **extra: Any) -> dict[str, Any]:
    """The Butler block writing license points to an InfluxDB 1.x ``server``."""
    return merge(
        {
            "influxDb": {
                "enable": True,
                "version": 1,
                "hostIP": server.host,
                "hostPort": server.port,
                "dbName": database,
            },
            "qlikSenseLicense": {"licenseMonitor": {"destination": {"influxDb": {"enable": True}}}},
        },
        extra,
    )
