"""The example third-party plugin (examples/sla-webhook-plugin), installed with pip.

pip builds the package from a copy of its folder into a temporary ``--target`` directory (so
neither the venv nor the source tree changes); putting that directory on ``sys.path`` or
``PYTHONPATH`` is enough for ``importlib.metadata`` to see the distribution and its entry
point. Then the agent lists it, validates its settings, and runs a real release against the
simulator in which the example's rules protect users and its webhook receives the events.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.models import Decision

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "sla-webhook-plugin"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
NOW_ISO = "2026-06-01T12:00:00.000Z"


def _builds_offline() -> bool:
    """setuptools can build a wheel without downloads when ``wheel`` is importable (or when
    setuptools is new enough to have bdist_wheel itself)."""
    if importlib.util.find_spec("wheel") is not None:
        return True
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    return (major, minor) >= (70, 1)


@pytest.fixture(scope="session")
def webhook_plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip install --no-deps --target DIR`` of the example; returns DIR (once per session:
    a pip build takes seconds)."""
    source = tmp_path_factory.mktemp("example-src") / "sla-webhook-plugin"
    shutil.copytree(
        EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    target = tmp_path_factory.mktemp("example-site")
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet"]
    command += ["--disable-pip-version-check", "--no-input", "--target", str(target)]
    if _builds_offline():
        command.append("--no-build-isolation")
    command.append(str(source))
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(f"pip install of the example failed:\n{done.stdout}\n{done.stderr}")
    assert (target / "sla_webhook_plugin-0.1.0.dist-info" / "entry_points.txt").is_file()
    return target


@pytest.fixture
def webhook_plugin(webhook_plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The installed example visible to this process (its dist-info on sys.path)."""
    monkeypatch.syspath_prepend(str(webhook_plugin_site))
    yield webhook_plugin_site
    sys.modules.pop("sla_webhook_plugin", None)


def run_cli(
    site_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "LICENSE_AGENT_CONFIG"}
    environment["PYTHONPATH"] = os.pathsep.join([str(site_dir), str(REPO)])
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=site_dir,  # no ./config.yaml here
        timeout=60,
    )


class Receiver:
    """A local webhook endpoint recording every JSON body; ``status`` is what it answers."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if receiver.status == 200:
                    receiver.bodies.append(json.loads(body))
                    receiver.headers.append(dict(self.headers))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/qlik?token=s3cr3t"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def events(self) -> list[dict[str, Any]]:
        return [event for body in self.bodies for event in body["events"]]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.stop()


# --------------------------------------------------------------------------- discovery


def test_plugins_command_lists_the_installed_package(webhook_plugin_site):
    done = run_cli(webhook_plugin_site, "plugins", "--json")
    assert done.returncode == 0, done.stderr
    listed = {p["name"]: p for p in json.loads(done.stdout)}
    assert listed["webhook"] == {
        "name": "webhook",
        "source": "package sla-webhook-plugin 0.1.0",
        "enabled": True,
        "hooks": ["sla_destinations", "sla_release_rules", "sla_settings"],
        "error": None,
        "switched_on": False,  # no config: its destination and rule are not configured
    }
    off = run_cli(
        webhook_plugin_site,
        "plugins",
        "--json",
        env={"LICENSE_AGENT_DISABLE_EXTERNAL_PLUGINS": "1"},
    )
    assert "webhook" not in {p["name"] for p in json.loads(off.stdout)}


def test_bad_plugin_settings_stop_the_agent_with_the_key_path(webhook_plugin_site, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "Butler": {
                    "qlikSenseLicense": {
                        "licenseRelease": {"neverRelease": {"userAttribute": [{"type": "Group"}]}}
                    },
                    "licenseAgent": {
                        "destinations": {"webhook": {"url": "ftp://example.invalid", "retries": 3}}
                    },
                }
            }
        )
    )
    done = run_cli(webhook_plugin_site, "plugins", "--config", str(config))
    assert done.returncode == 2
    for expected in (
        "Butler.licenseAgent.destinations.webhook.url: got 'ftp://example.invalid'; expected an"
        " http(s) URL",
        "Butler.qlikSenseLicense.licenseRelease.neverRelease.userAttribute[0].value: required key"
        " is missing",
        "Butler.licenseAgent.destinations.webhook.retries: unknown key; allowed keys here: enable,"
        " headers, timeout, url",
    ):
        assert expected in done.stderr
    assert "Traceback" not in done.stderr


# --------------------------------------------------------------------------- a release


def _iso(days_ago: float) -> str:
    moment = NOW - timedelta(days=days_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _uid(n: int) -> str:
    return f"33333333-0000-4000-8000-{n:012d}"


def _aid(n: int) -> str:
    return f"44444444-0000-4000-8000-{n:012d}"


def release_site() -> dict[str, Any]:
    """Five idle allocations: two protected by the example's rules, three to release."""
    admins = {"attributeType": "Group", "attributeValue": "Qlik Admins", "externalId": "g1"}
    users = [
        {"id": _uid(1), "userDirectory": "ACME", "userId": "svc_backup", "name": "Backup"},
        {"id": _uid(2), "userDirectory": "ACME", "userId": "boss", "attributes": [admins]},
        {"id": _uid(3), "userDirectory": "ACME", "userId": "jdoe", "name": "Jane Doe"},
        {"id": _uid(4), "userDirectory": "ACME", "userId": "rroe", "name": "Rick Roe"},
        {"id": _uid(5), "userDirectory": "EXT", "userId": "mmay", "name": "Mia May",
         "attributes": [{**admins, "attributeValue": "Qlik Users"}]},
    ]  # fmt: skip
    for user in users:
        user["createdDate"] = _iso(400)
    allocations = [
        {"id": _aid(n), "user": _uid(n), "createdDate": _iso(300), "lastUsed": _iso(90)}
        for n in (1, 2, 3, 4)
    ]
    analyzer = [{"id": _aid(5), "user": _uid(5), "createdDate": _iso(300), "lastUsed": _iso(60)}]
    return {
        "now": NOW_ISO,
        "users": users,
        "professionalaccesstype": allocations,
        "analyzeraccesstype": analyzer,
        "totals": {"professional": 10, "analyzer": 10},
    }


def test_release_with_the_example_rules_and_webhook(webhook_plugin, sim, sim_config, receiver):
    from agent.delivery import Delivery
    from agent.plugins import build_plugin_host
    from agent.qrs import QrsClient
    from agent.release import run_release

    sim.load_state(release_site())
    config = sim_config(
        {
            "qlikSenseLicense": {
                "licenseRelease": {
                    "enable": True,
                    "dryRun": False,
                    "licenseType": {
                        "professional": {"enable": True, "releaseThresholdDays": 30},
                        "analyzer": {"enable": True, "releaseThresholdDays": 30},
                    },
                    "neverRelease": {
                        "namePattern": ["acme\\svc_*"],
                        "userAttribute": [{"type": "group", "value": "QLIK ADMINS"}],
                    },
                }
            },
            "licenseAgent": {
                "destinations": {
                    "webhook": {
                        "enable": True,
                        "url": receiver.url,
                        "headers": {"X-Hook-Key": "k-123"},
                    }
                }
            },
        }
    )
    host = build_plugin_host(config)
    assert host.infos["webhook"].source == "package sla-webhook-plugin 0.1.0"
    site = config.sites()[0]
    delivery = Delivery.from_config(config, host)
    try:
        port = receiver.server.server_port
        # The token in the URL's query string is not shown.
        assert [d.describe() for d in delivery.destinations] == [
            f"webhook http://127.0.0.1:{port}/hooks/qlik"
        ]
        with QrsClient(site) as qrs:
            result = run_release(config, site, host, qrs, delivery=delivery, now=NOW)
    finally:
        delivery.close()

    by_user = {d.allocation.owner: d for d in result.decisions}
    kept = {
        u: [(r.rule, r.reason) for r in d.reasons]
        for u, d in by_user.items()
        if d.decision is Decision.KEPT
    }
    assert kept == {
        "ACME\\svc_backup": [("protect_name_pattern", "name matches 'acme\\\\svc_*'")],
        "ACME\\boss": [("protect_user_attribute", "user attribute group=QLIK ADMINS")],
    }
    released = sorted(u for u, d in by_user.items() if d.decision is Decision.RELEASED)
    assert released == ["ACME\\jdoe", "ACME\\rroe", "EXT\\mmay"]

    # The simulator really lost exactly those allocations ...
    remaining = sim.dump_state()
    left = {
        a["id"]
        for kind in ("professionalaccesstype", "analyzeraccesstype")
        for a in remaining[kind]
    }
    assert left == {_aid(1), _aid(2)}
    # ... and the webhook got one event per release, with the configured header.
    events = sorted(receiver.events, key=lambda e: e["user"])
    assert [(e["user"], e["license_type"], e["days_since_last_use"]) for e in events] == [
        ("ACME\\jdoe", "professional", 90.0),
        ("ACME\\rroe", "professional", 90.0),
        ("EXT\\mmay", "analyzer", 60.0),
    ]
    assert {e["allocation_id"] for e in events} == {_aid(3), _aid(4), _aid(5)}
    assert all(h.get("X-Hook-Key") == "k-123" for h in receiver.headers)


def test_events_the_webhook_refused_are_sent_again(webhook_plugin, make_config, receiver, tmp_path):
    """A 500 keeps the events in the agent's outbox; the next delivery sends them."""
    from agent.delivery import Delivery
    from agent.models import FEATURE_LICENSE_RELEASE, MEASUREMENT_RELEASE, Point
    from agent.plugins import build_plugin_host

    config = make_config(
        {
            "licenseAgent": {
                "stateDir": str(tmp_path / "state"),
                "destinations": {"webhook": {"enable": True, "url": receiver.url}},
            }
        }
    )
    host = build_plugin_host(config)
    event = Point(
        MEASUREMENT_RELEASE,
        {"license_type": "professional", "user": "ACME\\jdoe"},
        {"days_since_last_use": 45.0, "allocation_id": _aid(9), "quarantined": False},
        NOW,
        FEATURE_LICENSE_RELEASE,
    )
    delivery = Delivery.from_config(config, host)
    try:
        receiver.status = 500
        report = delivery.deliver([event])
        assert not report.ok and delivery.pending() == {"webhook": 1}
        receiver.status = 200
        assert delivery.flush().ok
        assert delivery.pending().get("webhook", 0) == 0
    finally:
        delivery.close()
    assert [e["allocation_id"] for e in receiver.events] == [_aid(9)]


# --------------------------------------------------------------------------- the pieces


def test_parse_user_reads_the_attributes_rules_can_use():
    from agent.models import QrsDataError, UserAttribute, parse_user

    base = {
        "id": _uid(1),
        "userDirectory": "ACME",
        "userId": "boss",
        "tags": [],
        "customProperties": [],
    }
    user = parse_user(
        {**base, "attributes": [{"attributeType": "Group", "attributeValue": "Qlik Admins"}]}
    )
    assert user.attributes == (UserAttribute("Group", "Qlik Admins"),)
    assert parse_user({**base, "attributes": []}).attributes == ()
    # Null or missing is not "no attributes": a rule on them could not judge the user.
    for bad in ("Group", None, [{"attributeValue": "x"}], [42]):
        with pytest.raises(QrsDataError, match="attribute"):
            parse_user({**base, "attributes": bad})
    with pytest.raises(QrsDataError, match="attributes"):
        parse_user(base)


def test_the_example_rules_judge_deleted_users_by_owner_only(webhook_plugin):
    import sla_webhook_plugin as example

    from agent.models import Allocation, Candidate, User, UserAttribute, UserRef

    def candidate(n: int, user: User | None) -> Candidate:
        ref = UserRef(user.id, user.user_directory, user.user_id, user.name) if user else None
        allocation = Allocation(
            id=_aid(n),
            license_type="professional",
            user=ref,
            created=NOW - timedelta(days=300),
            last_used=NOW - timedelta(days=90),
            deleted_user_directory="" if user else "ACME",
            deleted_user_id="" if user else "svc_gone",
        )
        return Candidate(allocation, user, 90)

    admins = User(_uid(2), "ACME", "boss", attributes=(UserAttribute("Group", "Qlik Admins"),))
    batch = [candidate(1, None), candidate(2, admins), candidate(3, User(_uid(3), "ACME", "x"))]
    by_name = example.name_pattern_judge(["ACME\\svc_*"])(batch)
    assert by_name == {_aid(1): "name matches 'ACME\\\\svc_*'"}
    by_attribute = example.attribute_judge([("group", "qlik admins")])(batch)
    assert by_attribute == {_aid(2): "user attribute group=qlik admins"}
