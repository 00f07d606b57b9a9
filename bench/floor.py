"""The floor: how long QRS itself takes to hand over the data a dry-run release needs.

A release run cannot be faster than downloading what it must read: each enabled type's
allocation list (with the agent's own filter) and the full user objects of the candidates' owners
(in the agent's chunks of ``id eq ... or ...`` filters). :func:`measure_floor` downloads exactly
those responses with the agent's concurrency (``configQRS.concurrency`` parallel requests, the
lists first, then the user chunks, all through one pool) and does nothing else: bodies are read
as bytes and never parsed. It sends them through the agent's own transport
(:class:`agent.qrs_transport.QrsTransport`: certificates, Xrfkey, URL encoding, connection
pool), so the floor moves with every change to the transport and the ratio agent / floor is the
cost of everything else. Because it ignores that the user ids are only known once the lists are
read, it is a strict lower bound for the agent.

:func:`agent_reads` works out which requests those are, the way the agent does (its filter, its
screening of eligible allocations, ids sorted and cut into chunks of
:data:`agent.qrs.DEFAULT_CHUNK_SIZE`). It makes the list requests itself, untimed.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common import Site  # type: ignore[import-not-found]

from agent.decisions import release_filter, screen
from agent.models import read_allocations
from agent.plugins import load_config
from agent.qrs import DEFAULT_CHUNK_SIZE, QrsClient, filter_any_id

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


def _client(site: Site, concurrency: int) -> QrsClient:
    config = load_config(site.config_file)
    site_config = config.sites()[0]
    qrs = site_config.qrs.model_copy(update={"concurrency": concurrency})
    return QrsClient(site_config.model_copy(update={"qrs": qrs}))


def _get(client: QrsClient, path: str, params: Mapping[str, str]) -> bytes:
    # The agent's transport without its JSON handling: what every agent request costs anyway.
    response, _ = client.transport.send("GET", path, params=params)
    return response.content


def agent_reads(
    site: Site,
    thresholds: Mapping[str, int],
    now: datetime,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> AgentReads:
    """Which list and user requests the agent makes at ``now`` (lists fetched here, untimed)."""
    lists: list[tuple[str, dict[str, str]]] = []
    user_ids: set[str] = set()
    listed = eligible = 0
    with _client(site, 1) as client:
        for license_type, resource in TYPES:
            if license_type not in thresholds:
                continue
            path = f"/qrs/license/{resource}/full"
            params = {"filter": release_filter(now, thresholds[license_type])}
            lists.append((path, params))
            body = json.loads(_get(client, path, params))
            listing = read_allocations(body, license_type)
            screening = screen(listing, license_type, thresholds[license_type], now)
            listed += len(body)
            eligible += len(screening.eligible)
            user_ids |= {uid.lower() for uid in screening.user_ids()}
    ordered = sorted(user_ids)
    chunks = [
        ("/qrs/user/full", {"filter": filter_any_id(ordered[i : i + chunk_size])})
        for i in range(0, len(ordered), chunk_size)
    ]
    return AgentReads(lists, chunks, listed, eligible, len(ordered))


def measure_floor(
    site: Site, requests: Sequence[tuple[str, Mapping[str, str]]], concurrency: int
) -> dict[str, Any]:
    """Download every response of ``requests`` through ``concurrency`` workers; bytes only."""
    received = [0]
    lock = threading.Lock()
    with _client(site, concurrency) as client:

        def fetch(request: tuple[str, Mapping[str, str]]) -> None:
            size = len(_get(client, request[0], request[1]))
            with lock:
                received[0] += size

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            list(pool.map(fetch, requests))
        wall = time.perf_counter() - started
    return {
        "wall_s": round(wall, 3),
        "requests_sent": len(requests),
        "megabytes": round(received[0] / 1e6, 2),
        "concurrency": concurrency,
    }
