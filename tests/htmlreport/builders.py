"""Histories for the report tests, written through the real ``sqlite`` destination."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from agent.models import (
    FEATURE_LICENSE_MONITOR,
    FEATURE_LICENSE_RELEASE,
    MEASUREMENT_LICENSE,
    MEASUREMENT_RELEASE,
    UTC,
    Point,
)
from plugins.destinations.sqlite import SqliteDestination

END = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def usage_point(
    license_type: str,
    time: datetime,
    total: float,
    allocated: float,
    used: float,
    quarantined: float,
    site: str = "",
) -> Point:
    tags = {"license_type": license_type, **({"site": site} if site else {})}
    return Point(
        MEASUREMENT_LICENSE,
        tags,
        {
            "total": float(round(total)),
            "allocated": float(round(allocated)),
            "used": float(round(used)),
            "quarantined": float(round(quarantined)),
            "available": float(max(round(total) - round(allocated), 0)),
            "excess": 0.0,
        },
        time,
        FEATURE_LICENSE_MONITOR,
    )


def release_point(
    license_type: str, time: datetime, user: str, quarantined: bool = False, site: str = ""
) -> Point:
    tags = {"license_type": license_type, "user": user, **({"site": site} if site else {})}
    return Point(
        MEASUREMENT_RELEASE,
        tags,
        {"days_since_last_use": 45.0, "quarantined": quarantined, "allocation_id": user},
        time,
        FEATURE_LICENSE_RELEASE,
    )


def write_history(
    path: Path,
    *,
    days: int = 45,
    every_hours: int = 6,
    end: datetime = END,
    sites: Sequence[str] = ("",),
    releases: bool = True,
) -> list[Point]:
    """A site whose allocations creep up towards the total until releases start (after 55 %
    of the period) and bring them down again, ``days`` long, one run every ``every_hours``."""
    points: list[Point] = []
    runs = days * 24 // every_hours
    first_release_day = int(days * 0.55)
    for s, site in enumerate(sites):
        # Releases per day: (professional, analyzer); professional's first of a day went into
        # QRS's quarantine.
        per_day = {
            d: (3 + (d * 7) % 11, 1 + (d * 5) % 6) for d in range(first_release_day, days + 1)
        }
        for i in range(runs + 1):
            t = end - timedelta(hours=every_hours * (runs - i))
            day = i * every_hours / 24
            done = [sum(n[k] for d, n in per_day.items() if d <= day) for k in (0, 1)]
            if not releases:
                done = [0, 0]
            wave = 5 * math.sin(day / 2.5)
            pro_total, ana_total = 1743 - s * 300, 1124 - s * 200
            pro_alloc = min(pro_total, 1520 - s * 300 + day * 5.5 + wave) - done[0]
            ana_alloc = min(ana_total, 930 - s * 200 + day * 3.2 - wave) - done[1]
            points.append(
                usage_point(
                    "professional", t, pro_total, pro_alloc, pro_alloc * 0.93, 3 + (i % 5), site
                )
            )
            points.append(
                usage_point("analyzer", t, ana_total, ana_alloc, ana_alloc * 0.9, 2 + (i % 3), site)
            )
        if releases:
            for d, (pro, ana) in per_day.items():
                when = end - timedelta(days=days - d, hours=1)
                for n in range(pro):
                    user = f"ACME\\p{d}-{n}"
                    points.append(release_point("professional", when, user, n == 0, site))
                for n in range(ana):
                    points.append(release_point("analyzer", when, f"ACME\\a{d}-{n}", False, site))
    destination = SqliteDestination(
        path, frozenset(("license_monitor", "license_release", "server_license"))
    )
    try:
        destination.write(points)
    finally:
        destination.close()
    return points


def decision_document(
    site: str = "sense.example.com", dry_run: bool = True, done_counts: tuple[int, int] = (504, 329)
) -> dict:
    """A decision report as ``agent.report.report_document`` writes it (counts part)."""
    done = "would_release" if dry_run else "released"
    return {
        "run": {
            "site": site,
            "started": "2026-06-01T12:00:05.000Z",
            "finished": "2026-06-01T12:00:06.000Z",
            "now": "2026-06-01T12:00:05.000Z",
            "dry_run": dry_run,
            "thresholds": {"professional": 30, "analyzer": 30},
            "counts": {
                "professional": {
                    "released": 0,
                    "quarantined": 0,
                    done: done_counts[0],
                    "kept": 66,
                    "skipped_quarantined": 2,
                    "failed": 0,
                    "not_eligible": 68,
                    "already_gone": 0,
                    "considered": 640,
                    "eligible": 570,
                    "kept_by_rule": {"customProperty": 35, "tag": 25, "userDirectory": 7},
                },
                "analyzer": {
                    "released": 0,
                    "quarantined": 0,
                    done: done_counts[1],
                    "kept": 50,
                    "skipped_quarantined": 0,
                    "failed": 0,
                    "not_eligible": 31,
                    "already_gone": 0,
                    "considered": 410,
                    "eligible": 379,
                    "kept_by_rule": {
                        "customProperty": 17,
                        "tag": 26,
                        "user": 1,
                        "userDirectory": 8,
                    },
                },
            },
            "aborted": None,
            "errors": [],
            "events": 0,
        },
        "decisions": [],
    }
