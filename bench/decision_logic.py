"""The release decision logic alone, without network: 100,000 allocations, 8 rules.

    python bench/decision_logic.py [--allocations 100000] [--threshold-days 1] [--repeat 5]
                                   [--json OUT]

Builds a generated site (the simulator's generator, untimed) with the requested number of
Professional and Analyzer allocations and turns it into the HTTP bodies the agent receives: one
allocation list per type, and the candidates' owners in chunks of 50 (``/qrs/user/full`` with
the agent's filter chunks). Then it times, in one process and with nothing on the network, what
a release run does between those bodies and its first DELETE:

* ``decode``: the bodies' JSON into the agent's models (:func:`agent.models.decode_allocations`
  and :func:`agent.models.decode_users`, what :class:`agent.qrs.QrsClient` does as each response
  arrives: in a real run the user chunks are decoded while later ones still download);
* ``decide``, the decision logic proper, from models in memory to every allocation's decision:
  ``screen`` (threshold, quarantine, duplicates), ``users`` (index the owners), ``rules`` (attach
  the owners, let every rule judge the whole batch: :func:`agent.decisions.decide_candidates`)
  and the ``would_release`` decisions of a dry run.

The rules are the benchmark's eight (``bench/release_scale.py``): the seven built-in
``neverRelease`` rules, flag rules on, plus the drop-in ``bench/plugins/email_domain.py``, loaded
through the real plugin host. The default threshold of 1 day makes nearly every allocation a
candidate, the worst case for the rules. The timed part runs ``--repeat`` times; the figures are
the median run's (``runs`` lists every run's ``decide_s`` and ``total_s``). Prints them and
writes them as JSON.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common import peak_rss_mb  # type: ignore[import-not-found]

from agent.decisions import decide_candidates, gc_paused, index_users, screen, would_release
from agent.models import decode_allocations, decode_users
from agent.plugins import build_plugin_host, parse_config
from agent.qrs import DEFAULT_CHUNK_SIZE, UserFetch, users_by_id
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
    parser.add_argument("--repeat", type=int, default=5, help="timed runs; the median is shown")
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
    bodies = {name: json.dumps(objects).encode() for name, objects in listed.items()}
    # The owners the agent would ask for: those of the eligible allocations, as the client
    # chunks them (sorted ids, DEFAULT_CHUNK_SIZE per request).
    owners = sorted(
        set().union(
            *(
                screen(decode_allocations(body, name), name, args.threshold_days, now).user_ids()
                for name, body in bodies.items()
            )
        )
    )
    user_bodies = [
        json.dumps(
            [state.users[uid] for uid in owners[i : i + DEFAULT_CHUNK_SIZE] if uid in state.users]
        ).encode()
        for i in range(0, len(owners), DEFAULT_CHUNK_SIZE)
    ]
    rules, rule_count = rules_for(args.threshold_days)

    runs = []
    for _ in range(max(1, args.repeat)):
        gc.collect()
        # run_release decides with the cyclic collector paused; so does this measurement.
        with gc_paused():
            runs.append(_measure(bodies, user_bodies, rules, args.threshold_days, now))
    runs.sort(key=lambda run: run["decide_s"])
    result = dict(runs[len(runs) // 2])
    result.update(
        rules=rule_count,
        rule_names=[r.name for r in rules],
        threshold_days=args.threshold_days,
        megabytes=round((sum(map(len, bodies.values())) + sum(map(len, user_bodies))) / 1e6, 1),
        user_requests=len(user_bodies),
        runs=[{"decide_s": r["decide_s"], "total_s": r["total_s"]} for r in runs],
        peak_rss_mb=round(peak_rss_mb() or 0, 1),
    )
    decide = [r["decide_s"] for r in runs]
    print(
        f"{result['allocations']:,} allocations, {result['candidates']:,} candidates,"
        f" {rule_count} rules ({', '.join(result['rule_names'])}), median of {len(runs)} runs:"
        f" decision logic {result['decide_s']:.3f} s (screen {result['screen_s']:.3f}"
        f" + users {result['index_users_s']:.3f} + rules {result['rules_s']:.3f}"
        f" + would-release {result['would_release_s']:.3f}; runs {min(decide):.3f}-{max(decide):.3f});"
        f" decoding {result['megabytes']} MB of QRS JSON {result['decode_s']:.3f} s"
        f" (allocations {result['decode_allocations_s']:.3f}, users {result['decode_users_s']:.3f});"
        f" total {result['total_s']:.3f} s; kept {result['kept']:,},"
        f" to release {result['to_release']:,}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


def _measure(
    bodies: dict[str, bytes],
    user_bodies: list[bytes],
    rules: list[Any],
    threshold_days: int,
    now: datetime,
) -> dict[str, Any]:
    clock = time.perf_counter
    t0 = clock()
    decoded = {name: decode_allocations(body, name) for name, body in bodies.items()}
    t1 = clock()
    fetched: dict[str, Any] = {}
    for body in user_bodies:
        found, _ = users_by_id(decode_users(body))  # as the client sorts each chunk
        fetched.update(found)
    t2 = clock()

    screenings = {
        name: screen(objects, name, threshold_days, now) for name, objects in decoded.items()
    }
    t3 = clock()
    users = index_users(UserFetch(users=fetched))
    t4 = clock()
    kept = 0
    to_release = []
    for screening in screenings.values():
        kept_decisions, releasable = decide_candidates(screening.eligible, users, rules)
        kept += len(kept_decisions)
        to_release.append(releasable)
    t5 = clock()
    # What a dry run records for the rest (run_release, step 5).
    would = [decision for batch in to_release for decision in would_release(batch)]
    t6 = clock()
    return {
        "allocations": sum(len(v) for v in decoded.values()),
        "candidates": sum(len(s.eligible) for s in screenings.values()),
        "users_decoded": len(fetched),
        "kept": kept,
        "to_release": len(would),
        #: JSON bodies -> models (the client's part, as responses arrive).
        "decode_allocations_s": round(t1 - t0, 4),
        "decode_users_s": round(t2 - t1, 4),
        "decode_s": round(t2 - t0, 4),
        #: the decision logic proper: models -> decisions.
        "screen_s": round(t3 - t2, 4),
        "index_users_s": round(t4 - t3, 4),
        "rules_s": round(t5 - t4, 4),
        "would_release_s": round(t6 - t5, 4),
        "decide_s": round(t6 - t2, 4),
        "total_s": round(t6 - t0, 4),
    }


if __name__ == "__main__":
    sys.exit(main())
