"""The walk-through of docs/plugins.md, run as written: a drop-in plugin file that adds a
neverRelease rule with its own keys, a destination and a license type. Each is validated,
listed by ``config check``, present in the JSON Schema, and used by a release run against the
simulator (the third-party license type is listed, screened and decided like a built-in one)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.cli import main
from agent.models import format_qrs_time
from agent.plugins import json_schema, load_config
from agent.simulator import ensure_certs
from agent.simulator.certs import CertPaths
from tests.release.helpers import NOW, ReleaseHarness, ago, allocation, config_text, state, user

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "plugins.md"
HEADING = "## A third-party plugin, step by step"


def _walkthrough() -> tuple[str, dict[str, Any]]:
    text = GUIDE.read_text(encoding="utf-8")
    part = text[text.index(HEADING) :]
    code = re.search(r"```python\n(.*?)```", part, re.S)
    config = re.search(r"```yaml\n(.*?)```", part, re.S)
    assert code and config, "the walk-through lost its code or its config"
    return code.group(1), yaml.safe_load(config.group(1))


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return ensure_certs(tmp_path_factory.mktemp("walkthrough-certs"))


@pytest.fixture
def harness(certs: CertPaths, tmp_path: Path) -> Iterator[ReleaseHarness]:
    h = ReleaseHarness(certs, tmp_path)
    admin = user("boss", attributes=[{"attributeType": "Group", "attributeValue": "Qlik Admins"}])
    idle, recent = user("jdoe"), user("rroe")
    h.start(
        {
            **state([admin, idle, recent]),
            "useraccesstype": [
                allocation(admin, ago(90), key="u"),
                allocation(idle, ago(90), key="u"),
                allocation(recent, ago(3), key="u"),
            ],
        }
    )
    yield h
    h.stop()


def _write(harness: ReleaseHarness, change: dict[str, Any] | None = None) -> Path:
    """The walk-through's plugin file and config, with this simulator's connection."""
    code, walk_config = _walkthrough()
    folder = harness.tmp_path / "plugins.d"
    folder.mkdir(exist_ok=True)
    (folder / "acme.py").write_text(code, encoding="utf-8")
    base = yaml.safe_load(config_text("enable: false", **harness.config_options()))
    document = _merge(_merge(base, walk_config), change or {})
    path = harness.tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_config_check_validates_and_lists_the_plugin(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(harness)
    assert main(["config", "check", str(config)]) == 0
    out = capsys.readouterr().out
    assert (
        "acme reads qlikSenseLicense.licenseRelease.neverRelease.acmeGroup = set,"
        " licenseAgent.destinations.auditLog = enabled,"
        " qlikSenseLicense.licenseRelease.licenseType.userPass = enabled"
    ) in out
    assert "userPass unused for 30 days" in out
    assert "never release: users of 1 group(s)" in out
    assert f"auditLog: audit log {harness.tmp_path / 'audit.jsonl'}" in out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"neverRelease": {"acmeGroup": {"group": ["x"]}}},
            "Butler.qlikSenseLicense.licenseRelease.neverRelease.acmeGroup.group: unknown key;"
            " did you mean 'groups'? allowed keys here: groups",
        ),
        (
            {"licenseType": {"userPass": {"releaseThresholdDays": 0}}},
            "Butler.qlikSenseLicense.licenseRelease.licenseType.userPass.releaseThresholdDays:"
            " got 0; expected a number >= 1",
        ),
    ],
)
def test_each_key_is_validated_with_its_path(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str], change: dict, expected: str
) -> None:
    config = _write(harness, {"Butler": {"qlikSenseLicense": {"licenseRelease": change}}})
    assert main(["config", "check", str(config)]) == 2
    assert expected in capsys.readouterr().err


def test_a_mistake_in_the_destination_is_reported(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    change = {"Butler": {"licenseAgent": {"destinations": {"auditLog": {"path": ""}}}}}
    assert main(["config", "check", str(_write(harness, change))]) == 2
    assert (
        "Butler.licenseAgent.destinations.auditLog.path: got ''; expected a non-empty value"
    ) in capsys.readouterr().err


def test_the_schema_has_the_plugins_keys(harness: ReleaseHarness) -> None:
    schema = json_schema(load_config(_write(harness)))
    defs = schema["$defs"]
    assert "acmeGroup" in defs["NeverRelease"]["properties"]
    assert "userPass" in defs["LicenseTypes"]["properties"]
    assert "auditLog" in defs["Destinations"]["properties"]
    assert defs["AcmeGroup"]["additionalProperties"] is False


def test_a_dry_run_releases_the_third_party_type_and_keeps_the_rule(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(harness)
    report = harness.tmp_path / "report.json"
    args = ["release", "--once", "--dry-run", "--report", str(report), "-c", str(config)]
    assert main([*args, "--now", format_qrs_time(NOW)]) == 0, capsys.readouterr()
    document = json.loads(report.read_text(encoding="utf-8"))
    assert document["run"]["thresholds"] == {"userPass": 30}
    decisions = {d["user_id"]: d for d in document["decisions"]}
    assert {d["license_type"] for d in decisions.values()} == {"userPass"}
    assert decisions["jdoe"]["decision"] == "would_release"
    assert decisions["boss"]["decision"] == "kept"
    assert decisions["boss"]["reasons"] == [
        {"rule": "acmeGroup", "reason": "user is in group Qlik Admins (neverRelease.acmeGroup)"}
    ]
    # Used 3 days ago: not even listed (QRS filters it), never would_release.
    assert decisions.get("rroe", {}).get("decision") != "would_release"
    assert harness.requests("DELETE") == 0


def test_without_the_plugin_its_keys_stop_the_agent(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write(harness, {"Butler": {"licenseAgent": {"plugins": {"disable": ["acme"]}}}})
    assert main(["config", "check", str(config)]) == 2
    err = capsys.readouterr().err
    for key in (
        "neverRelease.acmeGroup: unknown key; no loaded plugin reads it",
        # A near miss of the built-in userAccess: the hint names it instead.
        "licenseType.userPass: unknown key; did you mean 'userAccess'?",
        "destinations.auditLog: unknown key; no loaded plugin reads it",
    ):
        assert key in err
