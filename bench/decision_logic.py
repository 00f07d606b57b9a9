"""The release decision logic alone, without network: 100,000 allocations, 8 rules.

    python bench/decision_logic.py [--allocations 100000] [--threshold-days 1] [--json OUT]

Builds a generated site (the simulator's generator, untimed) with the requested number of
Professional and Analyzer allocations, in the raw QRS JSON shape the agent receives, and times
the pure functions a release run calls between the last response and the first DELETE:

* ``screen``: parse every listed allocation and sort out the quarantined and not-yet-eligible
  (the parsing alone is also timed on its own, so the split can be shown);
* ``users``: parse the full user objects of the eligible allocations' owners (the index may
  parse lazily; every owner is looked up once so that parsing is counted here);
* ``decide``: attach the users and let every rule judge the whole batch
  (:func:`agent.release.decide_candidates`).

``total_s`` is all three; ``without_parsing_s`` leaves out turning QRS JSON into models. The
rules are the benchmark's eight (``bench/release_scale.py``): the seven built-in
``neverRelease`` rules, flag rules on, plus the drop-in ``bench/plugins/email_domain.py``, loaded
through the real plugin host. The default threshold of 1 day makes nearly every allocation a
candidate, the worst case for the rules. Prints the times and writes them as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common import peak_rss_mb  # type: ignore[import-not-found]

from agent import release
from agent.config import parse_config
from agent.models import parse_allocation
from agent.plugins import build_plugin_host
from agent.release import decide_candidates, index_users, screen
from agent.simulator import generate_state

BENCH = Path(__file__).resolve().parent
TYPES = (("professional", "professionalaccesstype"), ("analyzer", "analyzeraccesstype"))


def rules_for(threshold_days: int) -> tuple[list[Any], int]:
    """The benchmark's eight rules, through the real config and plugin host."""
    from release_scale import NEVER_RELEASE, PLUGIN_SETTINGS  # type: ignore[import-not-found]

    folder = Path(tempfile.mkdtemp(prefix="decision-logic-"))
    document = {
        "Butler": {
            "configQRS": {"host": "qrs.example.com"},
            "cert": {
                "clientCert": str(folder / "client.pem"),
                "clientCertKey": str(folder / "client_key.pem"),
                "clientCertCA": str(folder / "root.pem"),
            },
            "qlikSenseLicense": {
                "licenseRelease": {
                    "enable": True,
                    "neverRelease": NEVER_RELEASE,
                    "licenseType": {
                        name: {"enable": True, "releaseThresholdDays": threshold_days}
                        for name, _ in TYPES
                    },
                }
            },
            "licenseAgent": {
                "plugins": {"paths": [str(BENCH / "plugins")], "settings": PLUGIN_SETTINGS}
            },
        }
    }
    config = parse_config(document)
    host = build_plugin_host(config)
    rules, errors = host.release_rules(config, config.sites()[0])
    if errors:
        raise RuntimeError(f"rule plugins failed: {errors}")
    return rules, len(rules)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allocations", type=int, default=100_000)
    parser.add_argument("--threshold-days", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    now = datetime.now(timezone.utc)
    # Regular users hold 0.9 allocations on average; generate a few more and cut.
    state = generate_state(math.ceil(args.allocations / 0.88) + 20, args.seed, now)
    pools = {name: list(state.allocations[resource].values()) for name, resource in TYPES}
    generated = sum(len(objects) for objects in pools.values())
    professional = min(
        len(pools["professional"]),
        round(args.allocations * len(pools["professional"]) / max(1, generated)),
    )
    listed = {
        "professional": pools["professional"][:professional],
        "analyzer": pools["analyzer"][: args.allocations - professional],
    }
    rules, rule_count = rules_for(args.threshold_days)

    # run_release decides with the cyclic collector paused; so does this measurement.
    pause = getattr(release, "gc_paused", contextlib.nullcontext)
    with pause():
        result = _measure(listed, state, rules, rule_count, args.threshold_days, now)
    result["peak_rss_mb"] = round(peak_rss_mb() or 0, 1)
    print(
        f"{result['allocations']:,} allocations, {result['candidates']:,} candidates,"
        f" {rule_count} rules ({', '.join(result['rule_names'])}): total {result['total_s']:.3f} s"
        f" = screen {result['screen_s']:.3f} (of which parsing {result['parse_allocations_s']:.3f})"
        f" + users {result['index_users_s']:.3f} + rules {result['decide_s']:.3f};"
        f" without parsing {result['without_parsing_s']:.3f} s;"
        f" kept {result['kept']:,}, to release {result['to_release']:,}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


def _measure(
    listed: dict[str, list[dict[str, Any]]],
    state: Any,
    rules: list[Any],
    rule_count: int,
    threshold_days: int,
    now: datetime,
) -> dict[str, Any]:
    # Parsing alone, for the split below (the run parses inside screen, once).
    t0 = time.perf_counter()
    for name, objects in listed.items():
        for raw in objects:
            parse_allocation(raw, name)
    parse_s = time.perf_counter() - t0

    started = time.perf_counter()
    screenings = {
        name: screen(objects, name, threshold_days, now) for name, objects in listed.items()
    }
    screen_s = time.perf_counter() - started

    # What get_users hands over: raw user objects by lower-case id (fetching is not timed).
    # Parsing them is timed on its own: the index may parse lazily, on first use.
    owners = set().union(*(s.user_ids() for s in screenings.values()))
    fetched = {uid.lower(): state.users[uid] for uid in owners if uid in state.users}
    t0 = time.perf_counter()
    users = index_users(fetched)
    lookup = getattr(users, "get", None)
    if callable(lookup):
        for uid in fetched:
            lookup(uid)
    users_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    kept = releasable = 0
    for screening in screenings.values():
        kept_decisions, to_release = decide_candidates(screening.eligible, users, rules)
        kept += len(kept_decisions)
        releasable += len(to_release)
    decide_s = time.perf_counter() - t0
    total = time.perf_counter() - started

    result = {
        "allocations": sum(len(v) for v in listed.values()),
        "candidates": sum(len(s.eligible) for s in screenings.values()),
        "users_parsed": len(fetched),
        "rules": rule_count,
        "rule_names": [r.name for r in rules],
        "threshold_days": threshold_days,
        "kept": kept,
        "to_release": releasable,
        #: screen = parse every allocation + the threshold decision.
        "screen_s": round(screen_s, 4),
        "parse_allocations_s": round(parse_s, 4),
        "index_users_s": round(users_s, 4),
        #: the rules' verdicts and the decisions, on parsed users.
        "decide_s": round(decide_s, 4),
        "total_s": round(total, 4),
        #: the same without turning QRS JSON into models (screen minus parsing, plus decide).
        "without_parsing_s": round(max(screen_s - parse_s, 0.0) + decide_s, 4),
    }
    return result


if __name__ == "__main__":
    sys.exit(main())
