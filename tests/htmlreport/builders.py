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
    """A site whose allocations creep up until releases start, ``days`` long."""
    points: list[Point] = []
    runs = days * 24 // every_hours
    for s, site in enumerate(sites):
        for i in range(runs + 1):
            t = end - timedelta(hours=every_hours * (runs - i))
            day = i * every_hours / 24
            wave = 6 * math.sin(day / 2.5)
            released = max(0.0, day - days * 0.55) * 9  # releases start after 55 % of the time
            pro_alloc = 1540 + day * 4.2 + wave - released - s * 300
            ana_alloc = 930 + day * 2.1 - wave - released * 0.6 - s * 200
            points.append(
                usage_point(
                    "professional",
                    t,
                    1743 - s * 300,
                    pro_alloc,
                    pro_alloc * 0.93,
                    3 + (i % 5),
                    site,
                )
            )
            points.append(
                usage_point(
                    "analyzer", t, 1124 - s * 200, ana_alloc, ana_alloc * 0.9, 2 + (i % 3), site
                )
            )
        if releases:
            first_day = int(days * 0.55)
            for d in range(first_day, days + 1):
                when = end - timedelta(days=days - d, hours=1)
                for n in range(3 + (d * 7) % 11):
                    points.append(
                        release_point("professional", when, f"ACME\\p{d}-{n}", n == 0, site)
                    )
                for n in range(1 + (d * 5) % 6):
                    points.append(release_point("analyzer", when, f"ACME\\a{d}-{n}", False, site))
    destination = SqliteDestination(
        path, frozenset(("license_monitor", "license_release", "server_license"))
    )
    try:
        destination.write(points)
    finally:
        destination.close()
    return points


def decision_document(site: str = "sense.example.com", dry_run: bool = True) -> dict:
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
                    done: 504,
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
                    done: 329,
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
