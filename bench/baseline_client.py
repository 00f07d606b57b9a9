"""The baseline: the existing tool's release algorithm, step by step, as a small sequential client.

It follows Butler's license release exactly as ``REFERENCE_BEHAVIOUR.md`` describes it, so the
benchmark can say how much faster the agent is than what users run today:

1. per license type, professional first: one ``GET /qrs/license/<type>accesstype/full`` with
   ``filter=lastUsed le '<cutoff>'``, the cutoff being the end of the day (host local time)
   ``releaseThresholdDays`` days ago;
2. for each returned allocation that is not quarantined, one ``GET /qrs/user/{id}``, one after
   the other (N+1 requests);
3. the checks in Butler's order, first match wins, exact and case-sensitive: ``neverRelease.user``
   -> ``tag`` -> ``customProperty`` -> ``userDirectory`` -> ``inactive`` -> ``blocked``
   -> ``removedExternally``;
4. unless dry run, one ``DELETE`` at a time; anything but 204 aborts the rest of the run.

One deviation, so that it can be measured at all: Butler crashes on an allocation whose user
was deleted (``user: null``); the baseline skips such an allocation and counts it.

For a large site the per-candidate loop can be run on an evenly spread **sample**: the list
requests are made in full, the loop runs for ``sample`` candidates, and the loop's time and
request counts are extrapolated linearly to all candidates (``estimated: true`` in the result).
Like Butler, it uses one connection; unlike a fresh connection per request, keep-alive makes the
baseline faster, so the agent's advantage is, if anything, understated.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

from agent.qrs import encode_query, new_xrfkey

#: Butler's types in Butler's order: (license type, QRS resource).
TYPES = (("professional", "professionalaccesstype"), ("analyzer", "analyzeraccesstype"))
#: Butler's QRS timeout.
TIMEOUT = 30.0


@dataclass
class NeverRelease:
    """``licenseRelease.neverRelease`` as Butler reads it (flags: ``yes``, ``no`` or ``ignore``)."""

    users: Sequence[tuple[str, str]] = ()
    tags: Sequence[str] = ()
    custom_properties: Sequence[tuple[str, str]] = ()
    user_directories: Sequence[str] = ()
    inactive: str = "ignore"
    blocked: str = "ignore"
    removed_externally: str = "ignore"

    @classmethod
    def from_config(cls, block: Mapping[str, Any]) -> NeverRelease:
        """From the YAML mapping ``Butler.qlikSenseLicense.licenseRelease.neverRelease``."""

        def flag(value: Any) -> str:
            if value is True:
                return "yes"
            if value is False:
                return "no"
            return str(value or "ignore").strip().lower()

        return cls(
            users=[(u["userDir"], u["userId"]) for u in block.get("user") or ()],
            tags=list(block.get("tag") or ()),
            custom_properties=[(p["name"], p["value"]) for p in block.get("customProperty") or ()],
            user_directories=list(block.get("userDirectory") or ()),
            inactive=flag(block.get("inactive")),
            blocked=flag(block.get("blocked")),
            removed_externally=flag(block.get("removedExternally")),
        )


def butler_check(user: Mapping[str, Any], rules: NeverRelease) -> str | None:
    """The first of Butler's checks that protects ``user`` (the rule name), or ``None``."""
    if (user.get("userDirectory"), user.get("userId")) in rules.users:
        return "user"
    names = {t.get("name") for t in user.get("tags") or ()}
    if any(tag in names for tag in rules.tags):
        return "tag"
    for prop in user.get("customProperties") or ():
        pair = ((prop.get("definition") or {}).get("name"), prop.get("value"))
        if pair in rules.custom_properties:
            return "customProperty"
    if user.get("userDirectory") in rules.user_directories:
        return "userDirectory"
    for name, key, setting in (
        ("inactive", "inactive", rules.inactive),
        ("blocked", "blacklisted", rules.blocked),
        ("removedExternally", "removedExternally", rules.removed_externally),
    ):
        if setting == "yes" and user.get(key) is True:
            return name
        if setting == "no" and user.get(key) is False:
            return name
    return None


def butler_cutoff(now_local: datetime, threshold_days: int) -> str:
    """The end of the day (host local time) ``threshold_days`` ago, as a QRS UTC timestamp."""
    day = (now_local - timedelta(days=threshold_days)).replace(
        hour=23, minute=59, second=59, microsecond=999000
    )
    return day.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class BaselineResult:
    """What one baseline run did, measured and (when sampled) extrapolated."""

    dry_run: bool
    #: Wall time: measured when ``estimated`` is false, else extrapolated.
    wall_s: float = 0.0
    measured_s: float = 0.0
    list_s: float = 0.0
    estimated: bool = False
    candidates: int = 0
    sampled: int = 0
    deleted_user_skipped: int = 0
    quarantined_skipped: int = 0
    kept_by: Counter[str] = field(default_factory=Counter)
    would_release: int = 0
    released: int = 0
    #: ``released`` scaled to all candidates when sampled.
    released_estimate: int = 0
    aborted: str | None = None
    #: Requests made / extrapolated to the whole run, by kind.
    requests_measured: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "wall_s": round(self.wall_s, 3),
            "measured_s": round(self.measured_s, 3),
            "list_s": round(self.list_s, 3),
            "estimated": self.estimated,
            "note": (
                f"sampled {self.sampled} of {self.candidates} candidates and extrapolated linearly"
                if self.estimated
                else "measured in full"
            ),
            "candidates": self.candidates,
            "sampled": self.sampled,
            "deleted_user_skipped": self.deleted_user_skipped,
            "quarantined_skipped": self.quarantined_skipped,
            "kept_by": dict(sorted(self.kept_by.items())),
            "would_release" if self.dry_run else "released": (
                self.would_release if self.dry_run else self.released
            ),
            "released_estimate": None if self.dry_run else self.released_estimate,
            "aborted": self.aborted,
            "requests_measured": self.requests_measured,
            "requests": self.requests,
        }


class BaselineClient:
    """A sequential QRS client on one keep-alive connection, as the existing tool uses QRS."""

    def __init__(
        self, url: str, client_pair: tuple[str, str], root_cert: str, qlik_user: str
    ) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.cert = client_pair
        self.session.verify = root_cert
        self.session.headers.update({"X-Qlik-User": qlik_user, "Accept": "application/json"})
        self.counts: Counter[str] = Counter()

    def close(self) -> None:
        self.session.close()

    def _request(self, method: str, path: str, kind: str, **params: str) -> requests.Response:
        key = new_xrfkey()
        query = encode_query({"xrfkey": key, **params})
        response = self.session.request(
            method, f"{self.url}{path}?{query}", headers={"X-Qlik-Xrfkey": key}, timeout=TIMEOUT
        )
        self.counts[f"{method} {kind}"] += 1
        return response

    def list_candidates(self, resource: str, cutoff: str) -> list[dict[str, Any]]:
        response = self._request(
            "GET",
            f"/qrs/license/{resource}/full",
            f"/qrs/license/{resource}/full",
            filter=f"lastUsed le '{cutoff}'",
        )
        response.raise_for_status()
        return response.json()

    def get_user(self, user_id: str) -> dict[str, Any]:
        response = self._request("GET", f"/qrs/user/{user_id}", "/qrs/user/{id}")
        response.raise_for_status()
        return response.json()

    def delete(self, resource: str, allocation_id: str) -> int:
        response = self._request(
            "DELETE", f"/qrs/license/{resource}/{allocation_id}", f"/qrs/license/{resource}/{{id}}"
        )
        return response.status_code


def run_baseline(
    client: BaselineClient,
    rules: NeverRelease,
    thresholds: Mapping[str, int],
    *,
    dry_run: bool,
    sample: int = 0,
    now_local: datetime | None = None,
) -> BaselineResult:
    """Butler's release run against ``client``; ``sample`` > 0 limits the per-candidate loop.

    :param thresholds: license type -> ``releaseThresholdDays`` for the enabled types.
    :param sample: run the per-candidate loop for at most this many candidates, spread evenly
        over all of them, and extrapolate; 0 runs it for all.
    """
    result = BaselineResult(dry_run=dry_run)
    now_local = now_local or datetime.now().astimezone()
    started = time.perf_counter()
    work: list[tuple[str, dict[str, Any]]] = []
    for license_type, resource in TYPES:
        if license_type not in thresholds:
            continue
        cutoff = butler_cutoff(now_local, thresholds[license_type])
        for allocation in client.list_candidates(resource, cutoff):
            if allocation.get("quarantined") is True:
                result.quarantined_skipped += 1  # skipped silently, as Butler does
                continue
            work.append((resource, allocation))
    result.list_s = time.perf_counter() - started
    list_counts = Counter(client.counts)

    result.candidates = len(work)
    chosen = work
    if 0 < sample < len(work):
        step = len(work) / sample
        chosen = [work[int(i * step)] for i in range(sample)]
        result.estimated = True
    result.sampled = len(chosen)

    loop_started = time.perf_counter()
    for resource, allocation in chosen:
        owner = allocation.get("user")
        if owner is None:
            result.deleted_user_skipped += 1  # Butler would crash here
            continue
        user = client.get_user(owner["id"])
        rule = butler_check(user, rules)
        if rule is not None:
            result.kept_by[rule] += 1
            continue
        if dry_run:
            result.would_release += 1
            continue
        status = client.delete(resource, allocation["id"])
        if status != 204:
            result.aborted = f"DELETE answered {status}; the rest of the run is abandoned"
            break
        result.released += 1
    loop_s = time.perf_counter() - loop_started
    result.measured_s = result.list_s + loop_s
    result.requests_measured = dict(sorted(client.counts.items()))

    scale = len(work) / len(chosen) if result.estimated and chosen else 1.0
    result.wall_s = result.list_s + loop_s * scale
    loop_counts = Counter(client.counts)
    loop_counts.subtract(list_counts)
    result.requests = dict(
        sorted(
            (kind, list_counts[kind] + round(loop_counts[kind] * scale))
            for kind in set(list_counts) | set(loop_counts)
        )
    )
    result.released_estimate = round(result.released * scale)
    if result.estimated:
        result.would_release = round(result.would_release * scale)
        result.kept_by = Counter({k: round(v * scale) for k, v in result.kept_by.items()})
    return result
