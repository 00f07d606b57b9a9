"""``license-agent run`` gives a collector with its own frequency (the site license) a job of its
own, and runs the others with every monitor run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main, run_cmd
from agent.simulator import Simulator


class RecordingLoop:
    """Stands in for RunLoop: records the jobs, runs each once, returns."""

    instances: list[RecordingLoop] = []

    def __init__(self, run_at_start: bool = True) -> None:
        self.jobs: list[tuple[str, str, Any]] = []
        self.stopping = False
        RecordingLoop.instances.append(self)

    def add_job(self, name: str, frequency: Any, job: Any) -> None:
        self.jobs.append((name, frequency.text, job))

    def run(self) -> None:
        for _, _, job in self.jobs:
            job()

    def stop(self) -> None:
        self.stopping = True


@pytest.fixture
def simulator(tmp_path: Path):
    with Simulator(users=40, seed=3, cert_dir=tmp_path / "certs") as sim:
        yield sim


def test_site_license_job_runs_on_its_own_schedule(simulator, tmp_path, monkeypatch):
    out = tmp_path / "points.jsonl"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
Butler:
  configQRS:
    host: {simulator.host}
    port: {simulator.port}
  cert:
    clientCert: certs/client.pem
    clientCertKey: certs/client_key.pem
    clientCertCA: certs/root.pem
  qlikSenseLicense:
    serverLicenseMonitor:
      enable: true
      frequency: every 24 hours
    licenseMonitor:
      enable: true
      frequency: every 6 hours
  licenseAgent:
    destinations:
      jsonl: {{enable: true, path: {out.as_posix()}}}
""",
        encoding="utf-8",
    )
    RecordingLoop.instances.clear()
    monkeypatch.setattr(run_cmd, "RunLoop", RecordingLoop)
    assert main(["run", "-c", str(config)]) == 0
    (loop,) = RecordingLoop.instances
    assert [(name, text) for name, text, _ in loop.jobs] == [
        ("monitor", "every 6 hours"),
        ("server_license", "every 24 hours"),
    ]
    measurements = [json.loads(line)["measurement"] for line in out.read_text().splitlines()]
    # The monitor run wrote license points only; the site license came from its own job, once.
    assert measurements.count("qlik_sense_server_license") == 1
    assert measurements.index("qlik_sense_server_license") > measurements.index(
        "qlik_sense_license"
    )
    stats = simulator.get_stats()["requests"]
    assert stats.get("GET /qrs/license") == 1
    assert stats.get("GET /qrs/license/accesstypeoverview") == 1
