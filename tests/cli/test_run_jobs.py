"""One path runs every job (agent/jobs.py): what a job reports, to the user, to the heartbeat and to
plugins through ``sla_job_result``, against the simulator over mutual TLS with its fault rules."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.heartbeat import Heartbeat, read_heartbeat
from agent.jobs import run_monitor_job, run_release_job
from agent.plugins import build_plugin_host, load_config
from agent.simulator import Simulator

#: A drop-in plugin that writes every sla_job_result call to a JSON-lines file.
RECORDER = textwrap.dedent(
    """
    import json, os
    from agent.hookspecs import hookimpl

    @hookimpl
    def sla_job_result(job, ok, finished, qrs_errors, error, destinations):
        with open(os.environ["JOB_RESULTS"], "a", encoding="utf-8") as out:
            out.write(json.dumps({
                "job": job, "ok": ok, "qrs_errors": qrs_errors, "error": error,
                "finished": finished.isoformat(),
                "destinations": sorted(d.name for d in destinations),
            }) + "\\n")
    """
)


@pytest.fixture
def simulator(tmp_path: Path) -> Iterator[Simulator]:
    with Simulator(users=60, seed=5, cert_dir=tmp_path / "certs") as sim:
        yield sim


@pytest.fixture
def results_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "job_recorder.py").write_text(RECORDER, encoding="utf-8")
    path = tmp_path / "job-results.jsonl"
    monkeypatch.setenv("JOB_RESULTS", str(path))
    return path


def write_config(tmp_path: Path, sim: Simulator, *, prometheus_port: int | None = None) -> Path:
    certs = sim.certs
    assert certs is not None
    prometheus = (
        f"      prometheus: {{enable: true, port: {prometheus_port}}}\n" if prometheus_port else ""
    )
    text = (
        "Butler:\n"
        "  configQRS:\n"
        "    host: 127.0.0.1\n"
        f"    port: {sim.port}\n"
        "    retries: 1\n"
        "  cert:\n"
        f"    clientCert: {json.dumps(str(certs.client_cert))}\n"
        f"    clientCertKey: {json.dumps(str(certs.client_key))}\n"
        f"    clientCertCA: {json.dumps(str(certs.root_cert))}\n"
        "  qlikSenseLicense:\n"
        "    licenseMonitor: {enable: true}\n"
        "    licenseRelease:\n"
        "      enable: true\n"
        "      dryRun: true\n"
        "      licenseType:\n"
        "        professional: {enable: true, releaseThresholdDays: 10}\n"
        "        analyzer: {enable: true, releaseThresholdDays: 10}\n"
        "  licenseAgent:\n"
        "    plugins:\n"
        f"      paths: [{json.dumps(str(tmp_path / 'plugins'))}]\n"
        "    destinations:\n"
        "      sqlite: {enable: true}\n" + prometheus
    )
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def recorded(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --------------------------------------------------------------------------- total failure


def test_a_release_that_could_judge_no_candidate_is_a_failed_run(
    tmp_path, simulator, results_file, capsys
):
    """Issue 13 item 7: every user look-up fails. Nothing may be released, and the run must say
    it failed: exit 1, an error in the report, the heartbeat and the job result."""
    config_path = write_config(tmp_path, simulator)
    simulator.add_fault("GET /qrs/user/full", "error", status=500)
    report = tmp_path / "release-report.json"

    code = main(["release", "--once", "-c", str(config_path), "--report", str(report)])

    assert code == 1
    run = json.loads(report.read_text(encoding="utf-8"))["run"]
    assert any("could not judge any of the" in e for e in run["errors"]), run["errors"]
    assert run["counts"]["professional"]["kept_by_rule"] == {"userLookup": 21}
    assert simulator.get_stats()["requests"].get("DELETE /qrs/license/{type}/{id}", 0) == 0
    (result,) = recorded(results_file)
    assert result["job"] == "license_release" and result["ok"] is False
    assert "could not judge any of the" in result["error"]
    # Each failed look-up is a failed QRS request, counted by the client (not "1 failed job").
    failed_lookups = simulator.get_stats()["statuses"]["500"] // 2  # each tried twice (retries: 1)
    assert result["qrs_errors"] == failed_lookups >= 1

    # The scheduled job: the same verdict reaches the heartbeat.
    config = load_config(config_path)
    beat = Heartbeat(tmp_path / "hb.json")
    beat.started({"release": "every 24 hours"})
    job = run_release_job(config, build_plugin_host(config), heartbeat=beat)
    assert not job.ok
    entry = read_heartbeat(tmp_path / "hb.json")["jobs"]["release"]
    assert entry["last_run"]["ok"] is False
    assert "could not judge any of the" in entry["last_error"]


def test_a_release_that_judged_its_candidates_is_not_failed_by_that_check(
    tmp_path, simulator, results_file
):
    """The guard that fails a blind run must not fail a run that saw its candidates."""
    config_path = write_config(tmp_path, simulator)
    report = tmp_path / "release-report.json"
    assert main(["release", "--once", "-c", str(config_path), "--report", str(report)]) == 0
    assert "could not judge" not in report.read_text(encoding="utf-8")
    (result,) = recorded(results_file)
    assert result == {**result, "job": "license_release", "ok": True, "qrs_errors": 0}


# --------------------------------------------------------------------------- sla_job_result


def test_job_results_carry_the_real_count_of_failed_qrs_requests(tmp_path, simulator, results_file):
    config_path = write_config(tmp_path, simulator)
    config = load_config(config_path)
    host = build_plugin_host(config)

    assert run_monitor_job(config, host).ok
    simulator.add_fault("GET /qrs/license/accesstypeoverview", "error", status=503, count=2)
    failed = run_monitor_job(config, host)  # one request, retried once, fails for good
    assert not failed.ok and failed.qrs_errors == 1

    first, second = recorded(results_file)
    assert first == {**first, "job": "license_monitor", "ok": True, "qrs_errors": 0, "error": None}
    assert second["ok"] is False and second["qrs_errors"] == 1
    assert "accesstypeoverview" in second["error"] or "overview" in second["error"]
    assert first["destinations"] == ["sqlite"]


def test_prometheus_counts_failed_qrs_requests_not_failed_jobs(tmp_path, simulator):
    """docs/destinations.md: license_agent_qrs_errors_total counts QRS requests that failed."""
    pytest.importorskip("prometheus_client")
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "plugins").mkdir()
    config = load_config(write_config(tmp_path, simulator, prometheus_port=port))
    host = build_plugin_host(config)
    from agent.delivery import Delivery

    delivery = Delivery.from_config(config, host)
    try:
        # Three distinct user look-ups fail for good in one job: one failed job, three errors.
        simulator.add_fault("GET /qrs/user/full", "error", status=500)
        job = run_release_job(config, host, delivery)
        assert not job.ok and job.qrs_errors >= 1
        (prometheus,) = [d for d in delivery.destinations if d.name == "prometheus"]
        text = prometheus.metrics_text()
    finally:
        delivery.close()
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples["license_agent_qrs_errors_total"] == job.qrs_errors
    assert samples['license_agent_job_runs_total{job_name="license_release",result="failure"}'] == 1
