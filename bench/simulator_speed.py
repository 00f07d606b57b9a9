"""Timings of the QRS simulator with a large site (not a test: run it by hand).

    python bench/simulator_speed.py [--users 115000]

Generates the site, starts a simulator, and times over real mutual TLS (``requests``, one
keep-alive session): unfiltered ``/qrs/user/full`` and ``/qrs/license/professionalaccesstype/full``
(first and repeated call; "server+transfer" is until the body is received, "parse" is
``json.loads`` in the client), a 100-id ``id eq ... or ...`` user filter, a ``lastUsed le``
allocation filter, counts, and concurrent small requests from several threads.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.simulator import Simulator, generate_state  # noqa: E402

XRF = "abcdefghijklmnop"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=115_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    now = dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc)

    started = time.perf_counter()
    state = generate_state(args.users, args.seed, now)
    counts = {k: len(v) for k, v in state.allocations.items() if v}
    print(
        f"generate {args.users} users, allocations {counts}: {time.perf_counter() - started:.2f} s"
    )

    with (
        tempfile.TemporaryDirectory() as cert_dir,
        Simulator(state, now=now, cert_dir=cert_dir) as sim,
    ):
        started = time.perf_counter()
        sim.store.warm()
        print(
            f"warm the JSON cache (what warm_cache=True / the CLI do at start): {time.perf_counter() - started:.2f} s"
        )
        assert sim.certs is not None
        session = requests.Session()
        session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides session.verify
        session.cert = sim.certs.client_pair
        session.verify = str(sim.certs.root_cert)
        session.headers.update(
            {"X-Qlik-Xrfkey": XRF, "X-Qlik-User": "UserDirectory=INTERNAL; UserId=sa_api"}
        )

        def get(path: str, **params: str) -> tuple[float, float, object, int]:
            t0 = time.perf_counter()
            response = session.get(sim.url + path, params={"xrfkey": XRF, **params}, timeout=120)
            t1 = time.perf_counter()
            response.raise_for_status()
            data = json.loads(response.content)
            return t1 - t0, time.perf_counter() - t1, data, len(response.content)

        for path in (
            "/qrs/user/full",
            "/qrs/license/professionalaccesstype/full",
            "/qrs/license/analyzeraccesstype/full",
        ):
            for attempt in ("1st", "2nd"):
                fetch, parse, data, size = get(path)
                print(
                    f"GET {path} ({attempt}): {len(data)} objects, {size / 1e6:.1f} MB, "  # type: ignore[arg-type]
                    f"server+transfer {fetch:.3f} s, client parse {parse:.3f} s"
                )

        ids = list(state.users)[:: max(1, len(state.users) // 100)][:100]
        chunk_filter = " or ".join(f"id eq {user_id}" for user_id in ids)
        times = []
        for _ in range(20):
            fetch, parse, data, _size = get("/qrs/user/full", filter=chunk_filter)
            times.append(fetch + parse)
        print(
            f"GET /qrs/user/full 100-id OR filter: {len(data)} users, median {statistics.median(times) * 1000:.1f} ms"
        )  # type: ignore[arg-type]

        cutoff = (now - dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        fetch, parse, data, _size = get(
            "/qrs/license/professionalaccesstype/full", filter=f"lastUsed le '{cutoff}'"
        )
        print(
            f"GET professional/full lastUsed le 30 days ago: {len(data)} allocations, {fetch + parse:.3f} s"
        )  # type: ignore[arg-type]
        fetch, parse, data, _size = get(
            "/qrs/user/count",
            filter="tags.name eq 'License do not release' or customProperties.value eq 'do-not-release'",
        )
        print(f"GET /qrs/user/count collection filter: {data}, {fetch + parse:.3f} s")

        errors: list[BaseException] = []

        def worker(n: int) -> None:
            local = requests.Session()
            local.trust_env = False
            local.cert, local.verify, local.headers = session.cert, session.verify, session.headers
            try:
                for i in range(n):
                    user_id = ids[i % len(ids)]
                    local.get(
                        f"{sim.url}/qrs/user/{user_id}", params={"xrfkey": XRF}, timeout=30
                    ).raise_for_status()
            except BaseException as error:  # noqa: BLE001 - reported below
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(100,)) for _ in range(8)]
        t0 = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - t0
        print(
            f"8 threads x 100 GET /qrs/user/{{id}}: {800 / elapsed:.0f} req/s, errors {len(errors)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
