"""The floor: how long QRS itself takes to hand over the data a dry-run release needs.

A release run cannot be faster than downloading what it must read: each enabled type's
allocation list (with the agent's own filter) and the full user objects of the candidates' owners
(in the agent's chunks of ``id eq ... or ...`` filters). :func:`measure_floor` downloads exactly
those responses with the agent's concurrency (``configQRS.concurrency`` parallel requests, the
lists first, then the user chunks, all through one pool) and does nothing else: bodies are read
as bytes and never parsed. Because it ignores that the user ids are only known once the lists
are read, it is a strict lower bound for the agent.

:func:`agent_reads` works out which requests those are, the way the agent does (its filter, its
screening of eligible allocations, ids sorted and cut into chunks of
:data:`agent.qrs.DEFAULT_CHUNK_SIZE`). It makes the list requests itself, untimed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common import Site  # type: ignore[import-not-found]

from agent.qrs import DEFAULT_CHUNK_SIZE, encode_query, filter_any_id, new_xrfkey
from agent.release import release_filter, screen

#: Enabled types in the agent's order: (license type, QRS resource).
TYPES = (("professional", "professionalaccesstype"), ("analyzer", "analyzeraccesstype"))


@dataclass
class AgentReads:
    """The GET requests a dry-run release makes, as (path, params), and what they cover."""

    lists: list[tuple[str, dict[str, str]]]
    user_chunks: list[tuple[str, dict[str, str]]]
    listed: int
    eligible: int
    user_ids: int


def agent_reads(
    site: Site,
    thresholds: Mapping[str, int],
    now: datetime,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> AgentReads:
    """Which list and user requests the agent makes at ``now`` (lists fetched here, untimed)."""
    session = site.session()
    lists: list[tuple[str, dict[str, str]]] = []
    user_ids: set[str] = set()
    listed = eligible = 0
    try:
        for license_type, resource in TYPES:
            if license_type not in thresholds:
                continue
            path = f"/qrs/license/{resource}/full"
            params = {"filter": release_filter(now, thresholds[license_type])}
            lists.append((path, params))
            body = _get(session, site.url, path, params).json()
            screening = screen(body, license_type, thresholds[license_type], now)
            listed += len(body)
            eligible += len(screening.eligible)
            user_ids |= {uid.lower() for uid in screening.user_ids()}
    finally:
        session.close()
    ordered = sorted(user_ids)
    chunks = [
        ("/qrs/user/full", {"filter": filter_any_id(ordered[i : i + chunk_size])})
        for i in range(0, len(ordered), chunk_size)
    ]
    return AgentReads(lists, chunks, listed, eligible, len(ordered))


def _get(session: Any, url: str, path: str, params: Mapping[str, str]) -> Any:  # requests.Response
    key = new_xrfkey()
    response = session.get(
        f"{url}{path}?{encode_query({'xrfkey': key, **params})}",
        headers={"X-Qlik-Xrfkey": key},
        timeout=300,
    )
    response.raise_for_status()
    return response


def measure_floor(
    site: Site, requests: Sequence[tuple[str, Mapping[str, str]]], concurrency: int
) -> dict[str, Any]:
    """Download every response of ``requests`` through ``concurrency`` workers; bytes only."""
    session = site.session(pool=concurrency)
    received = [0]
    lock = threading.Lock()

    def fetch(request: tuple[str, Mapping[str, str]]) -> None:
        body = _get(session, site.url, request[0], request[1]).content
        with lock:
            received[0] += len(body)

    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            list(pool.map(fetch, requests))
    finally:
        session.close()
    wall = time.perf_counter() - started
    return {
        "wall_s": round(wall, 3),
        "requests_sent": len(requests),
        "megabytes": round(received[0] / 1e6, 2),
        "concurrency": concurrency,
    }
