"""The benchmark scripts still run end to end (a tiny site, no latency) and write their figures.

Not a performance test: it asserts that ``bench/release_scale.py`` and ``bench/decision_logic.py``
complete against the real simulator and agent, that the JSON has the keys the README table and
the issue's targets are read from, and that the figures are consistent with each other (the
agent's read requests, the monitor's single request, the baseline's N+1 pattern).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agent.qrs import DEFAULT_CHUNK_SIZE

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"

PHASE_KEYS = {"wall_s", "requests", "read_requests", "deletes"}
AGENT_KEYS = PHASE_KEYS | {"peak_rss_mb", "process_s", "stages_s"}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=240, check=False
    )


def test_release_scale_runs_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "release_scale.json"
    done = _run(
        str(BENCH / "release_scale.py"),
        "--users", "300",
        "--latency-ms", "0",
        "--growth", "200,300",
        "--baseline-sample", "40",
        "--decision-allocations", "1000",
        "--workdir", str(tmp_path / "work"),
        "--json", str(out),
        cwd=tmp_path,  # a clean working directory: nothing may depend on the checkout's cwd
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| agent release, dry run |" in done.stdout

    result = json.loads(out.read_text(encoding="utf-8"))
    assert {"command", "machine", "settings", "main", "growth", "targets"} <= set(result)
    main = result["main"]
    phases = main["phases"]
    assert {
        "monitor",
        "release_dry_run",
        "release_real",
        "baseline_dry_run",
        "baseline_real",
        "floor",
    } <= set(phases)
    for name in ("monitor", "release_dry_run", "release_real"):
        assert set(phases[name]) >= AGENT_KEYS, name
        assert phases[name]["peak_rss_mb"] > 0
    assert "counts" in phases["release_dry_run"] and "counts" in phases["release_real"]
    for name in ("baseline_dry_run", "baseline_real", "floor"):
        assert set(phases[name]) >= PHASE_KEYS, name

    assert phases["monitor"]["requests"] == {"GET /qrs/license/accesstypeoverview": 1}
    dry = phases["release_dry_run"]
    assert dry["deletes"] == 0
    # The agent reads one list per type and the users in chunks of 50: never one per user.
    assert dry["requests"]["GET /qrs/license/professionalaccesstype/full"] == 1
    owners = phases["floor"]["user_ids"]
    assert dry["requests"]["GET /qrs/user/full"] == -(-owners // DEFAULT_CHUNK_SIZE)
    assert dry["read_requests"] <= 2 * 2 + -(-main["candidates"] // 50)  # issue 6's bound
    assert "GET /qrs/user/{id}" not in dry["requests"]
    # The floor downloads exactly what the dry run reads.
    assert phases["floor"]["requests"] == dry["requests"]
    # The baseline looks users up one by one, as the existing tool does.
    assert phases["baseline_dry_run"]["requests"]["GET /qrs/user/{id}"] > 1
    real = phases["release_real"]
    assert real["deletes"] > 0
    assert real["deletes"] == sum(c["released"] + c["quarantined"] for c in real["counts"].values())

    assert {"dry_run_agent_over_baseline", "dry_run_agent_over_floor"} <= set(main["ratios"])
    assert {"total_s", "decide_s", "decode_s", "allocations", "rules"} <= set(
        main["decision_logic"]
    )
    assert main["decision_logic"]["rules"] == 8
    assert [row["users"] for row in result["growth"]] == [200, 300]
    assert {t["target"] for t in result["targets"]} >= {
        "monitor QRS requests",
        "dry-run read requests",
        "dry-run wall vs baseline",
        "dry-run wall vs floor",
        "dry-run peak RSS",
    }


def test_decision_logic_runs(tmp_path: Path) -> None:
    out = tmp_path / "decision.json"
    done = _run(
        str(BENCH / "decision_logic.py"), "--allocations", "500", "--json", str(out), cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["allocations"] == 500
    assert result["rules"] == 8
    assert result["kept"] + result["to_release"] == result["candidates"]
    assert result["total_s"] >= result["decide_s"]
    assert result["user_requests"] == -(-result["users_decoded"] // 50)
    assert len(result["runs"]) == 5
