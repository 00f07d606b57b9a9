"""Helpers for the release tests: hand-built states, configs from YAML text, a fixed "now".

Two levels: *pure* helpers build parsed candidates and run the decision functions without HTTP;
the :class:`ReleaseHarness` starts the QRS simulator over mutual TLS with a hand-built state and
runs :func:`agent.release.run_release` against it with the real client, plugins and rules.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from agent.config import AgentConfig, SiteConfig
from agent.decisions import TypeResult, TypeSettings, index_users, plan_type
from agent.models import UTC, Point, format_qrs_time, read_allocations, read_users
from agent.plugins import build_plugin_host, parse_config
from agent.qrs import QrsClient, UserFetch, users_by_id
from agent.release import ReleaseResult, run_release
from agent.simulator import Simulator
from agent.simulator.certs import CertPaths
from agent.simulator.state import SimulatorState

#: The fixed moment every test measures from.
NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
NEVER = "1753-01-01T00:00:00.000Z"

DEFAULT_RELEASE = """
enable: true
dryRun: false
licenseType:
  professional:
    enable: true
    releaseThresholdDays: 30
  analyzer:
    enable: true
    releaseThresholdDays: 30
"""


def ago(days: float, now: datetime = NOW) -> str:
    """A QRS timestamp ``days`` before ``now``."""
    return format_qrs_time(now - timedelta(days=days))


def uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def user(user_id: str, directory: str = "CORP", **fields: Any) -> dict[str, Any]:
    """A state-file user. ``tags=["a"]``; ``props=[("LicenseManage", "keep")]``."""
    tags = fields.pop("tags", [])
    props = fields.pop("props", [])
    return {
        "id": uid("user", directory, user_id),
        "userId": user_id,
        "userDirectory": directory,
        "name": fields.pop("name", user_id.title()),
        "tags": [{"name": t} for t in tags],
        "customProperties": [{"definition": n, "value": v} for n, v in props],
        **fields,
    }


def allocation(
    owner: dict[str, Any] | None,
    last_used: str | None,
    *,
    created: str | None = None,
    key: str = "",
    **fields: Any,
) -> dict[str, Any]:
    """A state-file allocation of ``owner`` (``None``: a deleted user, give deletedUser*)."""
    name = owner["userId"] if owner else fields.get("deletedUserId", "deleted")
    return {
        "id": uid("allocation", name, key),
        "user": owner["id"] if owner else None,
        "createdDate": created or ago(400),
        "lastUsed": last_used,
        **fields,
    }


def state(
    users: Sequence[dict[str, Any]],
    professional: Sequence[dict[str, Any]] = (),
    analyzer: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "now": format_qrs_time(NOW),
        "users": list(users),
        "professionalaccesstype": list(professional),
        "analyzeraccesstype": list(analyzer),
        "totals": {"professional": 1000, "analyzer": 1000},
    }


def config_text(
    release: str = DEFAULT_RELEASE,
    *,
    port: int = 4242,
    certs: CertPaths | None = None,
    state_dir: Path | None = None,
    agent: str = "",
) -> str:
    """A config file's YAML text; ``release`` is the body of ``licenseRelease``, ``agent``
    more ``licenseAgent`` keys."""
    cert_dir = certs.cert_dir if certs else Path("/nonexistent")
    text = textwrap.dedent(
        f"""
        Butler:
          configQRS:
            host: 127.0.0.1
            port: {port}
          cert:
            clientCert: {certs.client_cert if certs else cert_dir / "client.pem"}
            clientCertKey: {certs.client_key if certs else cert_dir / "client_key.pem"}
            clientCertCA: {certs.root_cert if certs else cert_dir / "root.pem"}
          licenseAgent:
            stateDir: {state_dir or cert_dir}
        """
    )
    if agent:
        text += textwrap.indent(textwrap.dedent(agent).strip("\n"), "    ") + "\n"
    text += "  qlikSenseLicense:\n    licenseRelease:\n"
    text += textwrap.indent(textwrap.dedent(release).strip("\n"), "      ") + "\n"
    return text


def make_config(release: str = DEFAULT_RELEASE, **options: Any) -> AgentConfig:
    """A config parsed from YAML text, exactly as a user's file is (unquoted yes/no included)."""
    return parse_config(yaml.safe_load(config_text(release, **options)))


def release_block(
    never_release: str = "",
    threshold: int = 30,
    extra: str = "",
    *,
    analyzer: bool = True,
    dry_run: bool = False,
) -> str:
    """A licenseRelease body with a neverRelease block and one threshold for both types."""
    body = textwrap.dedent(
        f"""
        enable: true
        dryRun: {str(dry_run).lower()}
        licenseType:
          professional:
            enable: true
            releaseThresholdDays: {threshold}
          analyzer:
            enable: {str(analyzer).lower()}
            releaseThresholdDays: {threshold}
        """
    )
    if never_release.strip():
        body += (
            "neverRelease:\n"
            + textwrap.indent(textwrap.dedent(never_release).strip("\n"), "  ")
            + "\n"
        )
    if extra.strip():
        body += textwrap.dedent(extra).strip("\n") + "\n"
    return body


class RecordingDelivery:
    """Collects delivered points (the release core accepts any ``deliver(points)``)."""

    def __init__(self) -> None:
        self.points: list[Point] = []

    def deliver(self, points: Sequence[Point]) -> None:
        self.points.extend(points)


class ReleaseHarness:
    """A simulator with a hand-built state plus the real client, plugins and release core."""

    def __init__(self, certs: CertPaths, tmp_path: Path) -> None:
        self.certs = certs
        self.tmp_path = tmp_path
        self.sim: Simulator | None = None
        self.delivery = RecordingDelivery()

    def start(self, document: dict[str, Any], **options: Any) -> Simulator:
        if self.sim is not None:
            self.sim.stop()
        self.sim = Simulator(document, cert_dir=self.certs.cert_dir, now=NOW, **options)
        self.sim.start()
        return self.sim

    def config(
        self,
        release: str = DEFAULT_RELEASE,
        agent: str = "",
        patch: Callable[[dict[str, Any]], None] | None = None,
    ) -> AgentConfig:
        """The config for this simulator; ``patch`` edits the parsed document (any section)."""
        assert self.sim is not None, "start the simulator first"
        config = make_config(release, **self.config_options(agent))
        if patch is None:
            return config
        data = config.model_dump(by_alias=True, mode="json")
        patch(data["Butler"])
        return parse_config(data)

    def config_options(self, agent: str = "") -> dict[str, Any]:
        assert self.sim is not None, "start the simulator first"
        return {
            "port": self.sim.port,
            "certs": self.certs,
            "state_dir": self.tmp_path,
            "agent": agent,
        }

    def run(
        self,
        release: str = DEFAULT_RELEASE,
        *,
        dry_run: bool | None = None,
        extra: Sequence[tuple[str, object]] = (),
        now: datetime = NOW,
        patch: Callable[[dict[str, Any]], None] | None = None,
        wrap: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> ReleaseResult:
        """One release run; ``wrap`` may wrap the QRS client (to fail one call, say)."""
        config = self.config(release, patch=patch)
        host = build_plugin_host(config, extra=extra)
        site: SiteConfig = config.sites()[0]
        with QrsClient(site, sleep=lambda seconds: None) as qrs:
            return run_release(
                config,
                site,
                host,
                wrap(qrs) if wrap else qrs,
                dry_run=dry_run,
                delivery=kwargs.pop("delivery", self.delivery),
                now=now,
                clock=kwargs.pop("clock", lambda: now),
                **kwargs,
            )

    def remaining(self, collection: str = "professionalaccesstype") -> dict[str, dict[str, Any]]:
        assert self.sim is not None
        return self.sim.state.allocations[collection]

    def requests(self, prefix: str) -> int:
        assert self.sim is not None
        counts = self.sim.get_stats()["requests"]
        return sum(n for key, n in counts.items() if key.startswith(prefix))

    def stop(self) -> None:
        if self.sim is not None:
            self.sim.stop()


def decisions_by_user(result: ReleaseResult) -> dict[str, str]:
    """``{"CORP\\\\jdoe/professional": "released", ...}``."""
    return {
        f"{d.allocation.owner}/{d.allocation.license_type}": d.decision.value
        for d in result.decisions
    }


def by_user(result: ReleaseResult, license_type: str = "professional") -> dict[str, Any]:
    """``{"CORP\\\\jdoe": AllocationDecision}`` for one type."""
    return {
        d.allocation.owner: d for d in result.decisions if d.allocation.license_type == license_type
    }


# --------------------------------------------------------------------------- pure level

RESOURCES = {"professional": "professionalaccesstype", "analyzer": "analyzeraccesstype"}
_PURE_HOST = None


def pure_host() -> Any:
    """One plugin host for pure tests: the built-in rules read the config given per call."""
    global _PURE_HOST
    if _PURE_HOST is None:
        _PURE_HOST = build_plugin_host(None)
    return _PURE_HOST


def qrs_objects(document: dict[str, Any]) -> SimulatorState:
    """The full QRS objects the simulator would serve for a state document (no HTTP)."""
    return SimulatorState.from_dict(document, NOW)


def fetch_of(users: Iterable[Any]) -> UserFetch:
    """What the QRS client hands over when QRS answers these user objects."""
    found, odd = users_by_id(read_users(users))
    return UserFetch(users=found, unreadable=odd)


def decide(
    document: dict[str, Any],
    release: str = DEFAULT_RELEASE,
    *,
    license_type: str = "professional",
    now: datetime = NOW,
    host: Any = None,
) -> TypeResult:
    """The pure decision for one type: every allocation of the document, all its users."""
    config = make_config(release)
    site = config.sites()[0]
    rules, errors = (host or pure_host()).release_rules(config, site)
    assert not errors
    objects = qrs_objects(document)
    threshold = getattr(site.license_release.license_type, license_type).release_threshold_days
    resource = RESOURCES[license_type]
    return plan_type(
        TypeSettings(license_type, resource, threshold),
        read_allocations(objects.allocations[resource].values(), license_type),
        index_users(fetch_of(objects.users.values())),
        rules,
        now,
    )


def outcome(result: TypeResult) -> dict[str, str]:
    """``{"CORP\\\\jdoe": "kept" | "release" | "not_eligible" | ...}`` from a pure decision."""
    found = {d.allocation.owner: d.decision.value for d in result.decisions}
    found.update({c.allocation.owner: "release" for c in result.to_release})
    return found
