"""The issue's "done means", with the example config (its maxReleasesPerRun: 50, its rules and
its sqlite destination) on a generated simulator site with a backlog: the dry run lists the full
set and exits 0, a live run exits 3 and deletes nothing, applying the dry run's plan releases
exactly the planned set, and restoring that run brings the overview back to its earlier counts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.cli import main
from agent.models import UTC
from agent.simulator import Simulator
from agent.simulator.certs import CertPaths

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


@pytest.fixture
def sim(release_certs: CertPaths) -> Iterator[Simulator]:
    # Real time: a live run checks QRS's clock against this machine's.
    now = datetime.now(UTC).replace(microsecond=0)
    with Simulator(users=500, seed=3, now=now, cert_dir=release_certs.cert_dir) as started:
        yield started


def example_config(sim: Simulator, certs: CertPaths, folder: Path, **release: Any) -> Path:
    document = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    butler = document["Butler"]
    butler["configQRS"].update({"host": "127.0.0.1", "port": sim.port})
    butler["cert"] = {
        "clientCert": str(certs.client_cert),
        "clientCertKey": str(certs.client_key),
        "clientCertCA": str(certs.root_cert),
    }
    butler["licenseAgent"]["stateDir"] = str(folder)
    butler["qlikSenseLicense"]["licenseRelease"].update(release)
    path = folder / ("live.yaml" if release else "config.yaml")
    path.write_text(yaml.safe_dump(document, allow_unicode=True), "utf-8")
    return path


def counts(sim: Simulator) -> dict[str, tuple[int, int, int]]:
    overview = sim.store.overview()
    return {
        key: tuple(overview[key][k] for k in ("allocated", "quarantined", "available"))
        for key in ("professionalAccess", "analyzerAccess")
    }


def deletes(sim: Simulator) -> int:
    return sum(n for k, n in sim.get_stats()["requests"].items() if k.startswith("DELETE"))


def test_the_workflow_with_the_example_config(
    sim: Simulator, release_certs: CertPaths, tmp_path: Path
) -> None:
    assert (
        yaml.safe_load(EXAMPLE.read_text("utf-8"))["Butler"]["qlikSenseLicense"]["licenseRelease"][
            "maxReleasesPerRun"
        ]
        == 50
    )
    dry_config = example_config(sim, release_certs, tmp_path)
    live_config = example_config(sim, release_certs, tmp_path, dryRun=False)
    before = counts(sim)
    state = sim.state
    deleted_owner = {
        a["id"] for items in state.allocations.values() for a in items.values() if not a["user"]
    }

    plan = tmp_path / "plan.json"
    assert main(["release", "--once", "--report", str(plan), "-c", str(dry_config)]) == 0
    document = json.loads(plan.read_text("utf-8"))
    would = {d["allocation_id"] for d in document["decisions"] if d["decision"] == "would_release"}
    per_type = document["run"]["counts"]
    assert per_type["professional"]["would_release"] > 50  # a backlog over the limit, all listed
    assert document["run"]["limit_note"] and document["plan"]

    assert main(["release", "--once", "-c", str(live_config)]) == 3
    assert deletes(sim) == 0

    applied = tmp_path / "applied.json"
    code = main(
        [
            "release",
            "--once",
            "--apply",
            str(plan),
            "--report",
            str(applied),
            "-c",
            str(live_config),
        ]
    )
    assert code == 0
    result = json.loads(applied.read_text("utf-8"))
    done = {
        d["allocation_id"]
        for d in result["decisions"]
        if d["decision"] in ("released", "quarantined")
    }
    assert done == would and deletes(sim) == len(would)
    assert counts(sim) != before

    # Allocations of users deleted from Sense were released too (no rule keeps them); they
    # cannot be given back to anyone. Everything else comes back.
    orphans = {
        d["allocation_id"]: d["license_type"]
        for d in result["decisions"]
        if d["allocation_id"] in done and d["allocation_id"] in deleted_owner
    }
    restored = tmp_path / "restored.json"
    run_id = result["run"]["id"]
    code = main(
        ["release", "restore", "--run", run_id, "--report", str(restored), "-c", str(live_config)]
    )
    assert code == 0
    decisions = json.loads(restored.read_text("utf-8"))["decisions"]
    back = {d["released_allocation_id"] for d in decisions if d["decision"] == "restored"}
    assert back == done - set(orphans)
    skipped = {
        d["released_allocation_id"]: d["reason"] for d in decisions if d["decision"] == "skipped"
    }
    assert set(skipped) == set(orphans)
    assert all("the allocation of a deleted user" in why for why in skipped.values())
    expected = dict(before)
    for license_type in orphans.values():
        key = f"{license_type}Access"
        allocated, quarantined, available = expected[key]
        expected[key] = (allocated - 1, quarantined, available + 1)
    assert counts(sim) == expected
