"""Scale benchmark: the agent's monitor and release runs on a site of N users, with QRS latency.

    python bench/release_scale.py                      # 100,000 users, 20 ms per request
    python bench/release_scale.py --users 10000 --growth 3000,10000 --json out.json

It starts the QRS simulator in its own process (``python -m agent.simulator``) with N generated
users and a fixed latency per QRS request, picks the release threshold that puts about
``--past-threshold-share`` of the allocations past it, and measures in one run:

1. the agent's monitor run;
2. the agent's release run, dry run;
3. the agent's real release run (after a simulator reset);
4. the baseline (``bench/baseline_client.py``: the existing tool's sequential algorithm), dry
   run and real, on a sample of the candidates extrapolated linearly when there are more than
   ``--baseline-sample``;
5. the floor (``bench/floor.py``): only downloading the lists and user objects the agent reads,
   with the agent's concurrency; and the same at 0 ms latency, which is what the simulator
   itself costs.

Each agent phase runs in a fresh process (``bench/agent_phase.py``) so its peak RSS is its own.
QRS requests by kind come from the simulator's ``/_simulator/stats``, reset before each phase.
Then, for each size of ``--growth``, a dry-run release, the floor and the sampled baseline show
how time grows with N, and ``bench/decision_logic.py`` times the pure decision logic on 100,000
allocations. It prints a table, checks the targets of issue 6, and writes everything as JSON
(default ``bench/results/release_scale.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from common import (  # type: ignore[import-not-found]
    QLIK_USER,
    ROOT,
    SimulatorProcess,
    ceil_div,
    read_requests,
    requests_by_kind,
)
from loguru import logger

from agent.models import format_qrs_time

BENCH = Path(__file__).resolve().parent
DEFAULT_JSON = BENCH / "results" / "release_scale.json"
RESOURCES = {"professional": "professionalaccesstype", "analyzer": "analyzeraccesstype"}

#: The neverRelease rules of the benchmark: the seven built-in rules of the existing tool's
#: documented example, with the flag rules on, plus one drop-in plugin rule (bench/plugins).
NEVER_RELEASE: dict[str, Any] = {
    "user": [
        {"userDir": "INTERNAL", "userId": "sa_repository"},
        {"userDir": "INTERNAL", "userId": "sa_api"},
        {"userDir": "USERDIR", "userId": "qs_admin_account"},
    ],
    "tag": ["License do not release", "some other tag"],
    "customProperty": [{"name": "LicenseManage", "value": "do-not-release"}],
    "userDirectory": ["INTERNAL", "ADMIN"],
    "inactive": "Yes",
    "blocked": "Yes",
    "removedExternally": "Yes",
}
PLUGIN_SETTINGS = {"email_domain": {"domains": ["example.com"]}}


# --------------------------------------------------------------------------- set-up


def calibrate_threshold(sim: SimulatorProcess, share: float) -> tuple[int, float]:
    """The whole number of days that puts the share of allocations past it closest to ``share``.

    Bisects on ``lastUsed le '<now - days>'`` counts (never-used allocations with the 1753
    sentinel count as past it, those with a null ``lastUsed`` do not: close enough for "about").
    """
    now = datetime.now(timezone.utc)
    total = sum(sim.count(resource) for resource in RESOURCES.values())
    if total == 0:
        return 30, 0.0

    def share_at(days: int) -> float:
        cutoff = format_qrs_time(now - timedelta(days=days))
        past = sum(
            sim.count(resource, f"lastUsed le '{cutoff}'") for resource in RESOURCES.values()
        )
        return past / total

    low, high = 1, 2000  # share_at falls as days grow
    while high - low > 1:
        middle = (low + high) // 2
        if share_at(middle) >= share:
            low = middle
        else:
            high = middle
    best = min((low, high), key=lambda d: abs(share_at(d) - share))
    return best, share_at(best)


def write_agent_config(
    sim: SimulatorProcess,
    workdir: Path,
    threshold_days: int,
    concurrency: int,
    delete_concurrency: int,
) -> Path:
    """The agent's config for this simulator: 8 rules, both types, jsonl events to a file."""
    assert sim.site is not None
    connection = sim.site.connection
    qrs = dict(connection["configQRS"], concurrency=concurrency)
    state_dir = workdir / f"state-{sim.users}"
    state_dir.mkdir(exist_ok=True)
    document = {
        "Butler": {
            "configQRS": qrs,
            "cert": connection["cert"],
            "qlikSenseLicense": {
                "licenseMonitor": {"enable": True},
                "licenseRelease": {
                    "enable": True,
                    "dryRun": False,
                    "deleteConcurrency": delete_concurrency,
                    "neverRelease": NEVER_RELEASE,
                    "licenseType": {
                        name: {"enable": True, "releaseThresholdDays": threshold_days}
                        for name in ("professional", "analyzer")
                    },
                },
            },
            "licenseAgent": {
                "stateDir": str(state_dir),
                "logging": {"level": "INFO"},
                "plugins": {"paths": [str(BENCH / "plugins")], "settings": PLUGIN_SETTINGS},
                "destinations": {
                    "jsonl": {"enable": True, "path": str(state_dir / "points.jsonl")}
                },
            },
        }
    }
    path = workdir / f"agent-{sim.users}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- phases


def agent_phase(
    sim: SimulatorProcess,
    config: Path,
    phase: str,
    workdir: Path,
    *,
    dry_run: bool = False,
    profile: Path | None = None,
) -> dict[str, Any]:
    """Run one agent phase in a fresh process; its own figures plus the simulator's counts."""
    sim.reset()  # the initial site (a real run deleted some of it) and zero counts
    label = f"{phase}{'-dry' if dry_run else ''}-{sim.users}"
    out = workdir / f"{label}.json"
    command = [sys.executable, str(BENCH / "agent_phase.py"), phase, "--config", str(config)]
    command += ["--out", str(out)] + (["--dry-run"] if dry_run else [])
    if profile is not None:
        command += ["--profile", str(profile)]
    started = time.perf_counter()
    with (workdir / f"{label}.log").open("w", encoding="utf-8") as log:
        completed = subprocess.run(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=_env(), check=False
        )
    process_s = time.perf_counter() - started
    if completed.returncode != 0:
        tail = (workdir / f"{label}.log").read_text(encoding="utf-8")[-2000:]
        raise RuntimeError(f"agent phase {label} failed (exit {completed.returncode}):\n{tail}")
    result = json.loads(out.read_text(encoding="utf-8"))
    by_kind = requests_by_kind(sim.stats())
    result.update(
        process_s=round(process_s, 3),
        requests=by_kind,
        read_requests=read_requests(by_kind),
        deletes=sum(n for k, n in by_kind.items() if k.startswith("DELETE ")),
    )
    return result


def baseline_phase(
    sim: SimulatorProcess, threshold_days: int, *, dry_run: bool, sample: int
) -> dict[str, Any]:
    from baseline_client import BaselineClient, NeverRelease, run_baseline

    sim.reset()
    assert sim.site is not None
    client = BaselineClient(sim.site.url, sim.site.client_pair, sim.site.root_cert, QLIK_USER)
    try:
        result = run_baseline(
            client,
            NeverRelease.from_config(NEVER_RELEASE),
            {name: threshold_days for name in RESOURCES},
            dry_run=dry_run,
            sample=sample,
        )
    finally:
        client.close()
    out = result.to_dict()
    out["simulator_requests"] = requests_by_kind(sim.stats())
    out["read_requests"] = read_requests(out["requests"])
    out["deletes"] = sum(n for k, n in out["requests"].items() if k.startswith("DELETE "))
    return out


def floor_phase(sim: SimulatorProcess, threshold_days: int, concurrency: int) -> dict[str, Any]:
    from floor import agent_reads, measure_floor

    assert sim.site is not None
    sim.reset()
    reads = agent_reads(
        sim.site, {name: threshold_days for name in RESOURCES}, datetime.now(timezone.utc)
    )
    requests = reads.lists + reads.user_chunks
    sim.reset_stats()
    floor = measure_floor(sim.site, requests, concurrency)
    floor["requests"] = requests_by_kind(sim.stats())
    floor["read_requests"] = read_requests(floor["requests"])
    floor["deletes"] = 0
    floor.update(listed=reads.listed, eligible=reads.eligible, user_ids=reads.user_ids)
    # The same downloads without the added latency: what the simulator (and TLS, and the
    # client library) cost by themselves. If this is close to the floor, the simulator is
    # the bottleneck, not the latency.
    sim.set_latency(0)
    try:
        floor["no_latency_s"] = measure_floor(sim.site, requests, concurrency)["wall_s"]
    finally:
        sim.set_latency(sim.latency_ms)
    return floor


def decision_logic_phase(workdir: Path, allocations: int) -> dict[str, Any]:
    out = workdir / "decision_logic.json"
    command = [
        sys.executable,
        str(BENCH / "decision_logic.py"),
        "--allocations",
        str(allocations),
        "--json",
        str(out),
    ]
    with (workdir / "decision_logic.log").open("w", encoding="utf-8") as log:
        completed = subprocess.run(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=_env(), check=False
        )
    if completed.returncode != 0:
        tail = (workdir / "decision_logic.log").read_text(encoding="utf-8")[-2000:]
        raise RuntimeError(f"decision_logic.py failed:\n{tail}")
    return json.loads(out.read_text(encoding="utf-8"))


def _env() -> dict[str, str]:
    existing = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) + (os.pathsep + existing if existing else "")}


# --------------------------------------------------------------------------- the run


def eligible_of(counts: dict[str, dict[str, int]]) -> int:
    return sum(c.get("eligible", 0) for c in counts.values())


def measure_size(
    users: int,
    args: argparse.Namespace,
    workdir: Path,
    *,
    full: bool,
    threshold_days: int | None = None,
) -> dict[str, Any]:
    """All phases for one site size (``full``), or the growth subset (dry run, floor, baseline)."""
    size: dict[str, Any] = {"users": users}
    with SimulatorProcess(workdir, users=users, seed=args.seed, latency_ms=args.latency_ms) as sim:
        size["simulator_startup_s"] = round(sim.startup_s, 1)
        size["allocations"] = {name: sim.count(res) for name, res in RESOURCES.items()}
        if threshold_days is None:
            threshold_days, share = calibrate_threshold(sim, args.past_threshold_share)
            size["past_threshold_share"] = round(share, 3)
        size["threshold_days"] = threshold_days
        config = write_agent_config(
            sim, workdir, threshold_days, args.concurrency, args.delete_concurrency
        )
        phases: dict[str, Any] = {}
        _say(f"[{users}] simulator up in {sim.startup_s:.1f} s; threshold {threshold_days} days")
        if full:
            phases["monitor"] = agent_phase(sim, config, "monitor", workdir)
            _say(f"[{users}] monitor: {phases['monitor']['wall_s']:.3f} s")
        profile = workdir / f"release-dry-{users}.prof" if args.profile else None
        phases["release_dry_run"] = agent_phase(
            sim, config, "release", workdir, dry_run=True, profile=profile
        )
        _say(f"[{users}] release dry run: {phases['release_dry_run']['wall_s']:.2f} s")
        if full and not args.skip_real:
            phases["release_real"] = agent_phase(sim, config, "release", workdir)
            _say(f"[{users}] release real: {phases['release_real']['wall_s']:.2f} s")
        phases["baseline_dry_run"] = baseline_phase(
            sim, threshold_days, dry_run=True, sample=args.baseline_sample
        )
        _say(f"[{users}] baseline dry run: {phases['baseline_dry_run']['wall_s']:.1f} s")
        if full and not args.skip_real:
            phases["baseline_real"] = baseline_phase(
                sim, threshold_days, dry_run=False, sample=args.baseline_sample
            )
            _say(f"[{users}] baseline real: {phases['baseline_real']['wall_s']:.1f} s")
        phases["floor"] = floor_phase(sim, threshold_days, args.concurrency)
        _say(f"[{users}] floor: {phases['floor']['wall_s']:.2f} s")
        size["phases"] = phases
        size["candidates"] = eligible_of(phases["release_dry_run"].get("counts", {}))
    return size


def ratios(phases: dict[str, Any]) -> dict[str, float | None]:
    def ratio(a: str, b: str) -> float | None:
        if a not in phases or b not in phases or not phases[b]["wall_s"]:
            return None
        return round(phases[a]["wall_s"] / phases[b]["wall_s"], 4)

    return {
        "dry_run_agent_over_baseline": ratio("release_dry_run", "baseline_dry_run"),
        "dry_run_agent_over_floor": ratio("release_dry_run", "floor"),
        "real_agent_over_baseline": ratio("release_real", "baseline_real"),
    }


def delete_stage_s(result: dict[str, Any]) -> float | None:
    """Seconds from the first DELETE stage's start to the end of the run, from the progress."""
    starts = [v for k, v in result.get("stages_s", {}).items() if k.startswith("releasing ")]
    return round(result["wall_s"] - min(starts), 3) if starts else None


def check_targets(main: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    phases = main["phases"]
    targets: list[dict[str, Any]] = []

    def add(name: str, wanted: str, value: Any, met: bool | None, note: str = "") -> None:
        targets.append(
            {"target": name, "wanted": wanted, "measured": value, "met": met, "note": note}
        )

    if "monitor" in phases:
        monitor = sum(phases["monitor"]["requests"].values())
        add("monitor QRS requests", "1", monitor, monitor == 1)
    dry = phases["release_dry_run"]
    types = len(dry.get("counts", {})) or 2
    candidates = main["candidates"]
    allowed = 2 * types + ceil_div(candidates, 50)
    add(
        "dry-run read requests",
        f"<= 2 x {types} types + ceil({candidates} / 50) = {allowed}",
        dry["read_requests"],
        dry["read_requests"] <= allowed,
    )
    ratio = main["ratios"]["dry_run_agent_over_baseline"]
    add(
        "dry-run wall vs baseline",
        "<= 1/100 of the baseline",
        _fmt_ratio(ratio) or None,
        None if ratio is None else ratio <= 0.01,
        phases["baseline_dry_run"]["note"],
    )
    ratio = main["ratios"]["dry_run_agent_over_floor"]
    add(
        "dry-run wall vs floor",
        "<= 1.5 x the floor",
        None if ratio is None else f"{ratio:.2f} x",
        None if ratio is None else ratio <= 1.5,
    )
    rss = dry.get("peak_rss_mb")
    add("dry-run peak RSS", "< 300 MB", rss, None if rss is None else rss < 300)
    real = phases.get("release_real")
    if real is not None:
        deletes = real["deletes"]
        ideal = deletes * args.latency_ms / 1000 / args.delete_concurrency
        stage = delete_stage_s(real)
        add(
            "real release: DELETE time",
            f"close to {deletes} x {args.latency_ms:g} ms / {args.delete_concurrency}"
            f" = {ideal:.1f} s (within 1.5 x)",
            stage,
            None if stage is None else stage <= max(1.5 * ideal, ideal + 1.0),
            "measured from the first DELETE to the end of the run",
        )
    logic = main.get("decision_logic")
    if logic is not None:
        add(
            f"decision logic, {logic['allocations']:,} allocations, {logic['rules']} rules",
            "< 1 s",
            logic["decide_s"],
            logic["decide_s"] < 1.0,
            f"QRS models to decisions, median of {len(logic['runs'])} runs; decoding the"
            f" {logic['megabytes']} MB of QRS JSON into models adds {logic['decode_s']} s",
        )
    return targets


# --------------------------------------------------------------------------- output


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _fmt_ratio(value: float | None) -> str:
    if not value:
        return ""
    return f"1/{1 / value:,.0f}" if value < 0.5 else f"{value:.2f} x"


def _fmt_s(value: float | None, estimated: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value:.3f} s" if value < 10 else f"{value:,.1f} s"
    return text + ("*" if estimated else "")


def table(result: dict[str, Any]) -> str:
    main = result["main"]
    phases = main["phases"]
    settings = result["settings"]
    lines = [
        f"N = {main['users']:,} users ({sum(main['allocations'].values()):,} allocations), "
        f"{settings['latency_ms']:g} ms per QRS request, threshold {main['threshold_days']} days "
        f"({main.get('past_threshold_share', 0):.0%} of allocations past it, "
        f"{main['candidates']:,} candidates), concurrency {settings['concurrency']}, "
        f"delete concurrency {settings['delete_concurrency']}, 8 rules",
        "",
        "| phase | wall | QRS reads | DELETEs | peak RSS | agent / baseline | agent / floor |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = [
        ("agent monitor", "monitor"),
        ("agent release, dry run", "release_dry_run"),
        ("agent release, real", "release_real"),
        ("baseline, dry run", "baseline_dry_run"),
        ("baseline, real", "baseline_real"),
        ("floor (download only)", "floor"),
    ]
    ratio = main["ratios"]
    for label, key in rows:
        phase = phases.get(key)
        if phase is None:
            continue
        est = bool(phase.get("estimated"))
        vs_base = vs_floor = ""
        if key == "release_dry_run":
            vs_base = _fmt_ratio(ratio["dry_run_agent_over_baseline"])
            vs_floor = _fmt_ratio(ratio["dry_run_agent_over_floor"])
        if key == "release_real":
            vs_base = _fmt_ratio(ratio["real_agent_over_baseline"])
        rss = phase.get("peak_rss_mb")
        lines.append(
            f"| {label} | {_fmt_s(phase['wall_s'], est)} | {phase['read_requests']:,}"
            f"{'*' if est else ''} | {phase['deletes']:,}{'*' if est and phase['deletes'] else ''}"
            f" | {f'{rss:.0f} MB' if rss else '-'} | {vs_base} | {vs_floor} |"
        )
    floor = phases["floor"]
    lines.append(
        f"| floor at 0 ms latency (simulator alone) | {_fmt_s(floor['no_latency_s'])} |"
        f" {floor['read_requests']:,} | 0 | - | | |"
    )
    notes = [
        f"* baseline {k.split('_', 1)[1].replace('_', ' ')}: {phases[k]['note']}"
        for k in ("baseline_dry_run", "baseline_real")
        if k in phases and phases[k].get("estimated")
    ]
    lines += [""] + notes if notes else []
    dry = phases["release_dry_run"]
    if dry.get("stages_s"):
        stages = ", ".join(f"{k} {v:.2f}" for k, v in dry["stages_s"].items())
        lines += ["", f"dry-run stages (s from start): {stages}"]
    lines += ["", "QRS requests by kind:"]
    for label, key in rows:
        if key in phases:
            kinds = ", ".join(f"{k} {n:,}" for k, n in phases[key]["requests"].items())
            lines.append(f"  {label}: {kinds or 'none'}")
    if result.get("growth"):
        lines += [
            "",
            "| N users | allocations | candidates | agent dry run | floor | baseline dry run |"
            " agent peak RSS |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in result["growth"]:
            lines.append(
                f"| {row['users']:,} | {row['allocations']:,} | {row['candidates']:,} |"
                f" {_fmt_s(row['agent_dry_run_s'])} | {_fmt_s(row['floor_s'])} |"
                f" {_fmt_s(row['baseline_dry_run_s'], row['baseline_estimated'])} |"
                f" {row['peak_rss_mb'] or 0:.0f} MB |"
            )
    logic = main.get("decision_logic")
    if logic is not None:
        lines += [
            "",
            f"decision logic without network: {logic['allocations']:,} allocations,"
            f" {logic['candidates']:,} candidates, {logic['rules']} rules: {logic['decide_s']:.3f} s"
            f" (screen {logic['screen_s']:.3f} s; users {logic['index_users_s']:.3f} s;"
            f" rules {logic['rules_s']:.3f} s; would-release {logic['would_release_s']:.3f} s);"
            f" decoding {logic['megabytes']} MB of QRS JSON into models first:"
            f" {logic['decode_s']:.3f} s",
        ]
    lines += ["", "| target | wanted | measured | met |", "|---|---|---|---|"]
    for t in result["targets"]:
        met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
        lines.append(f"| {t['target']} | {t['wanted']} | {t['measured']} | {met} |")
    return "\n".join(lines)


def growth_row(size: dict[str, Any]) -> dict[str, Any]:
    phases = size["phases"]
    return {
        "users": size["users"],
        "allocations": sum(size["allocations"].values()),
        "candidates": size["candidates"],
        "agent_dry_run_s": phases["release_dry_run"]["wall_s"],
        "agent_dry_run_reads": phases["release_dry_run"]["read_requests"],
        "floor_s": phases["floor"]["wall_s"],
        "baseline_dry_run_s": phases["baseline_dry_run"]["wall_s"],
        "baseline_estimated": phases["baseline_dry_run"]["estimated"],
        "peak_rss_mb": phases["release_dry_run"].get("peak_rss_mb"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Scale benchmark of the agent's monitor and release runs (issue 6)."
    )
    parser.add_argument("--users", type=int, default=100_000, help="site size (100000)")
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="latency per QRS request (20)"
    )
    parser.add_argument(
        "--past-threshold-share",
        type=float,
        default=0.30,
        help="share of allocations past the release threshold (0.30)",
    )
    parser.add_argument(
        "--threshold-days", type=int, help="use this threshold instead of calibrating one"
    )
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (1)")
    parser.add_argument(
        "--baseline-sample",
        type=int,
        default=500,
        help="candidates the baseline looks up before extrapolating; 0 = all (500)",
    )
    parser.add_argument(
        "--growth",
        default="10000,30000,100000",
        help="comma-separated sizes for the growth table; empty for none (10000,30000,100000)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="configQRS.concurrency (agent default 4)"
    )
    parser.add_argument(
        "--delete-concurrency",
        type=int,
        default=4,
        help="licenseRelease.deleteConcurrency (agent default 4)",
    )
    parser.add_argument(
        "--decision-allocations",
        type=int,
        default=100_000,
        help="allocations for bench/decision_logic.py; 0 skips it (100000)",
    )
    parser.add_argument("--skip-real", action="store_true", help="skip the real release runs")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the dry-run release (.prof in workdir)"
    )
    parser.add_argument("--workdir", type=Path, help="keep configs, logs and profiles here")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"({DEFAULT_JSON})")
    args = parser.parse_args(argv)
    # The floor and the calibration use the agent's QRS client in this process: its per-request
    # debug lines would cost time and flood the terminal.
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    growth = sorted({int(n) for n in args.growth.replace(" ", "").split(",") if n})

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="release-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    _say(f"working in {workdir}")
    started = time.perf_counter()
    main_size = measure_size(
        args.users, args, workdir, full=True, threshold_days=args.threshold_days
    )
    main_size["ratios"] = ratios(main_size["phases"])
    if args.decision_allocations:
        main_size["decision_logic"] = decision_logic_phase(workdir, args.decision_allocations)
        _say(f"decision logic: {main_size['decision_logic']['decide_s']:.3f} s")
    rows = []
    for users in growth:
        if users == args.users:
            rows.append(growth_row(main_size))
            continue
        size = measure_size(
            users, args, workdir, full=False, threshold_days=main_size["threshold_days"]
        )
        rows.append(growth_row(size))
    result: dict[str, Any] = {
        "command": " ".join(["python", "bench/release_scale.py", *(argv or sys.argv[1:])]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "settings": {
            "users": args.users,
            "latency_ms": args.latency_ms,
            "seed": args.seed,
            "past_threshold_share": args.past_threshold_share,
            "threshold_days": main_size["threshold_days"],
            "concurrency": args.concurrency,
            "delete_concurrency": args.delete_concurrency,
            "baseline_sample": args.baseline_sample,
            "never_release": NEVER_RELEASE,
            "plugin_rules": PLUGIN_SETTINGS,
        },
        "main": main_size,
        "growth": rows,
    }
    result["targets"] = check_targets(main_size, args)
    result["benchmark_s"] = round(time.perf_counter() - started, 1)
    print(table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, default=str), encoding="utf-8")
    _say(f"figures written to {args.json} (benchmark took {result['benchmark_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
