"""One agent phase in a fresh process, for ``bench/release_scale.py``: monitor or release.

    python bench/agent_phase.py monitor --config agent.yaml --out result.json
    python bench/agent_phase.py release --config agent.yaml [--dry-run] --out result.json

It does what ``license-agent monitor --once`` / ``license-agent release --once`` do (load the
config, set up logging, load the plugins, open the QRS client and, when the run may write, the
delivery), times the run itself, records when the run reaches each stage (through the
``progress`` callback of :func:`agent.release.run_release`), and writes a JSON object with the
wall time, the stage times, the run's counts and the process's peak RSS. A fresh process per
phase makes the peak RSS the phase's own. With ``--profile FILE`` it also writes cProfile data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from common import current_rss_mb, peak_rss_mb  # type: ignore[import-not-found]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=["monitor", "release"])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--profile", type=Path, help="write cProfile data of the run here")
    args = parser.parse_args(argv)

    process_started = time.perf_counter()
    from agent.delivery import Delivery
    from agent.logging import setup_logging
    from agent.plugins import build_plugin_host, load_config
    from agent.qrs import QrsClient

    config = load_config(args.config)
    setup_logging(config)
    host = build_plugin_host(config)
    site = config.sites()[0]
    rss_before = current_rss_mb()
    stages: dict[str, float] = {}
    out: dict[str, Any] = {"phase": args.phase, "dry_run": args.dry_run}

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()

    started = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        # The first time a stage is seen, and the moment it is complete.
        stamp = time.perf_counter() - started
        stages.setdefault(f"{stage} start", stamp)
        if total and done >= total:
            stages[f"{stage} done"] = stamp

    delivery = None
    if args.phase == "monitor" or not args.dry_run:
        delivery = Delivery.from_config(config, host)
    try:
        if profiler is not None:
            profiler.enable()
        with QrsClient(site) as qrs:
            if args.phase == "monitor":
                from agent.monitor import run_monitor

                result = run_monitor(site, qrs, host, delivery, config=config)
                out["ok"] = result.ok
                out["error"] = result.error
                out["points"] = len(result.points)
            else:
                from agent.release import run_release

                result = run_release(
                    config,
                    site,
                    host,
                    qrs,
                    dry_run=True if args.dry_run else None,
                    delivery=delivery,
                    progress=progress,
                )
                out["ok"] = result.ok
                out["aborted"] = result.aborted
                out["errors"] = result.errors[:5]
                out["counts"] = {t.license_type: t.counts() for t in result.types}
                out["events"] = len(result.events)
        wall = time.perf_counter() - started
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(args.profile))
    finally:
        if delivery is not None:
            delivery.close()
        host.shutdown(config)
    out.update(
        wall_s=round(wall, 4),
        stages_s={k: round(v, 4) for k, v in stages.items()},
        setup_s=round(started - process_started, 4),
        rss_before_run_mb=_round(rss_before),
        peak_rss_mb=_round(peak_rss_mb()),
    )
    args.out.write_text(json.dumps(out, indent=1), encoding="utf-8")
    return 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


if __name__ == "__main__":
    sys.exit(main())
