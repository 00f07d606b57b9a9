"""Two simulated Sense sites, each with its own CA, and a config naming both."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.simulator import Simulator


@pytest.fixture
def two_sites(tmp_path: Path) -> Iterator[dict[str, Simulator]]:
    sims = {
        "prod": Simulator(users=400, seed=3, cert_dir=tmp_path / "prod-certs"),
        "test": Simulator(users=150, seed=8, cert_dir=tmp_path / "test-certs"),
    }
    for sim in sims.values():
        sim.start()
    yield sims
    for sim in sims.values():
        sim.stop()


def site_yaml(name: str, sim: Simulator, extra: str = "") -> str:
    certs = sim.certs
    assert certs is not None
    return (
        f"      - name: {name}\n"
        "        configQRS:\n"
        "          host: 127.0.0.1\n"
        f"          port: {sim.port}\n"
        "          retries: 0\n"
        "          connectTimeout: 2\n"
        "          headers:\n"
        "            static:\n"
        "              - name: X-Qlik-User\n"
        "                value: UserDirectory=INTERNAL; UserId=sa_api\n"
        "        cert:\n"
        f"          clientCert: {json.dumps(str(certs.client_cert))}\n"
        f"          clientCertKey: {json.dumps(str(certs.client_key))}\n"
        f"          clientCertCA: {json.dumps(str(certs.root_cert))}\n"
        f"        tags:\n          - name: environment\n            value: {name}-env\n" + extra
    )


#: The test site releases Analyzer licenses only, after 60 days, and protects the Finance tag.
TEST_OVERRIDE = """\
        qlikSenseLicense:
          licenseRelease:
            neverRelease:
              tag: [Finance]
            licenseType:
              professional:
                enable: false
              analyzer:
                releaseThresholdDays: 60
"""


@pytest.fixture
def sites_config(tmp_path: Path, two_sites: dict[str, Simulator]) -> Callable[..., Path]:
    def make(dry_run: bool = True, extra_agent: str = "") -> Path:
        text = (
            "Butler:\n"
            "  influxDb:\n"
            "    tag:\n"
            "      static:\n"
            "        - name: butler_instance\n"
            "          value: agent-1\n"
            "  qlikSenseLicense:\n"
            "    licenseMonitor:\n"
            "      enable: true\n"
            "    licenseRelease:\n"
            "      enable: true\n"
            f"      dryRun: {'true' if dry_run else 'false'}\n"
            "      maxReleasesPerRun: 60%\n"
            "      neverRelease:\n"
            "        tag: [License do not release]\n"
            "        userDirectory: [INTERNAL, ADMIN]\n"
            "      licenseType:\n"
            "        professional: {enable: true, releaseThresholdDays: 30}\n"
            "        analyzer: {enable: true, releaseThresholdDays: 30}\n"
            "  licenseAgent:\n"
            "    destinations:\n"
            "      sqlite:\n"
            "        enable: true\n"
            "    sites:\n"
            + site_yaml("prod", two_sites["prod"])
            + site_yaml("test", two_sites["test"], TEST_OVERRIDE)
            + extra_agent
        )
        path = tmp_path / "config.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return make
