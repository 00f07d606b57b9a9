"""A configured neverRelease rule whose plugin is disabled stops every command with exit code 2.

The bug this guards against: ``neverRelease.tag`` set and ``licenseAgent.plugins.disable:
[tag]`` printed "The config is valid" and released tag-protected users. For every built-in rule
the same population is first released with the rule's plugin loaded (the rule keeps the
protected user: the population is meaningful), then with it disabled: ``config check``,
``release --once`` and ``run`` exit 2 naming the plugin and the key, and no QRS request is
sent, so no protected user can be decided ``would_release``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agent.cli import main
from agent.models import format_qrs_time
from agent.simulator import ensure_certs
from agent.simulator.certs import CertPaths
from tests.release.helpers import (
    NOW,
    ReleaseHarness,
    ago,
    allocation,
    config_text,
    release_block,
    state,
    user,
)

REPO = Path(__file__).resolve().parents[2]
BASE = "Butler.qlikSenseLicense.licenseRelease.neverRelease"

#: rule key, its setting, the plugin that reads it, and the user it protects.
RULES = [
    ("user", "user:\n  - userDir: CORP\n    userId: bob", "user", user("bob")),
    ("tag", "tag: [vip]", "tag", user("bob", tags=["VIP"])),
    (
        "customProperty",
        "customProperty:\n  - name: Dept\n    value: Finance",
        "custom_property",
        user("bob", props=[("Dept", "Finance")]),
    ),
    ("userDirectory", "userDirectory: [CORP]", "user_directory", user("bob")),
    ("inactive", "inactive: Yes", "flags", user("bob", inactive=True)),
    ("blocked", "blocked: Yes", "flags", user("bob", blacklisted=True)),
    ("removedExternally", "removedExternally: Yes", "flags", user("bob", removedExternally=True)),
]
IDS = [rule[0] for rule in RULES]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return ensure_certs(tmp_path_factory.mktemp("disabled-rule-certs"))


@pytest.fixture
def harness(certs: CertPaths, tmp_path: Path) -> Iterator[ReleaseHarness]:
    h = ReleaseHarness(certs, tmp_path)
    yield h
    h.stop()


def _config(harness: ReleaseHarness, setting: str, disable: str = "") -> Path:
    agent = f"plugins:\n  disable: [{disable}]" if disable else ""
    text = config_text(
        release_block(setting, analyzer=False, dry_run=True), **harness.config_options(agent)
    )
    path = harness.tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _dry_run(config: Path, report: Path) -> int:
    args = ["release", "--once", "--dry-run", "--report", str(report), "-c", str(config)]
    return main([*args, "--now", format_qrs_time(NOW)])


@pytest.mark.parametrize(("key", "setting", "plugin", "protected"), RULES, ids=IDS)
def test_a_disabled_rule_plugin_stops_every_command(
    harness: ReleaseHarness,
    capsys: pytest.CaptureFixture[str],
    key: str,
    setting: str,
    plugin: str,
    protected: dict,
) -> None:
    free = user("alice", directory="OTHER")  # no rule protects her: she is released
    harness.start(
        state(
            [free, protected],
            professional=[allocation(free, ago(90)), allocation(protected, ago(90))],
        )
    )
    # With the plugin loaded, the rule keeps the protected user.
    report = harness.tmp_path / "loaded.json"
    assert _dry_run(_config(harness, setting), report) == 0, capsys.readouterr()
    decisions = {d["user_id"]: d for d in json.loads(report.read_text())["decisions"]}
    assert decisions["alice"]["decision"] == "would_release"
    assert decisions["bob"]["decision"] == "kept"
    assert [r["rule"] for r in decisions["bob"]["reasons"]] == [key]
    capsys.readouterr()
    before = harness.requests("GET")

    config = _config(harness, setting, disable=plugin)
    expected = (
        f"{BASE}.{key} is set, but its plugin {plugin} is disabled in"
        " Butler.licenseAgent.plugins.disable"
    )

    assert main(["config", "check", str(config)]) == 2
    captured = capsys.readouterr()
    assert expected in captured.err and "The config is valid" not in captured.out

    report = harness.tmp_path / "disabled.json"
    assert _dry_run(config, report) == 2
    assert expected in capsys.readouterr().err
    assert not report.exists()  # no decision at all, so none is would_release

    # `run` stops before its first job (a subprocess: a run that did not stop would block).
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "agent", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=harness.tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stderr
    assert harness.requests("GET") == before  # nothing was read from QRS, nothing released
    assert harness.requests("DELETE") == 0


def test_a_switched_off_key_of_a_disabled_plugin_is_fine(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    # Butler files carry every key; empty, Ignore or enable: false protect nobody.
    harness.start(state([user("alice")]))
    setting = "tag: []\ninactive: Ignore\nuser:"
    config = _config(harness, setting, disable="tag, flags, user")
    assert main(["config", "check", str(config)]) == 0, capsys.readouterr()


def test_a_license_type_or_destination_of_a_disabled_plugin_is_an_error(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    harness.start(state([user("alice")]))
    agent = (
        "plugins:\n  disable: [professional, sqlite]\ndestinations:\n  sqlite:\n    enable: true"
    )
    text = config_text(release_block("", analyzer=False), **harness.config_options(agent))
    config = harness.tmp_path / "config.yaml"
    config.write_text(text, encoding="utf-8")
    assert main(["config", "check", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        "Butler.qlikSenseLicense.licenseRelease.licenseType.professional is set, but its plugin"
        " professional is disabled"
    ) in err
    assert (
        "Butler.licenseAgent.destinations.sqlite is set, but its plugin sqlite is disabled" in err
    )


def _shared_butler_file(harness: ReleaseHarness, disable: str, feature_influx: bool) -> Path:
    """A Butler file shared with Butler: its own influxDb and mqttConfig switched on."""
    agent = f"plugins:\n  disable: [{disable}]"
    data = yaml.safe_load(
        config_text(release_block("", analyzer=False), **harness.config_options(agent))
    )
    butler = data["Butler"]
    butler["influxDb"] = {"enable": True, "hostIP": "127.0.0.1", "hostPort": 8086}
    butler["mqttConfig"] = {"enable": True, "brokerHost": "127.0.0.1", "brokerPort": 1883}
    monitor = butler["qlikSenseLicense"].setdefault("licenseMonitor", {})
    monitor["destination"] = {"influxDb": {"enable": feature_influx}}
    path = harness.tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_butlers_own_sections_stay_in_a_shared_file_when_their_plugins_are_disabled(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    """``influxDb`` and ``mqttConfig`` are Butler's connection settings, which Butler itself
    reads: an admin who disables the agent's plugins for them must not have to remove them.
    The agent says it does not use them, and runs."""
    harness.start(state([user("alice")], professional=[allocation(user("alice"), ago(40))]))
    config = _shared_butler_file(harness, "influxdb, alert_channels", feature_influx=False)
    assert main(["config", "check", str(config)]) == 0
    out = capsys.readouterr().out
    for section, plugin in (("influxDb", "influxdb"), ("mqttConfig", "alert_channels")):
        assert f"Butler.{section}: not used by the agent, its plugin {plugin} is disabled" in out
    assert _dry_run(config, harness.tmp_path / "report.json") == 0


def test_sending_to_influxdb_with_its_plugin_disabled_is_still_an_error(
    harness: ReleaseHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    # The key that switches the agent's writing on is the plugin's, not Butler's.
    harness.start(state([user("alice")]))
    config = _shared_butler_file(harness, "influxdb", feature_influx=True)
    assert main(["config", "check", str(config)]) == 2
    err = capsys.readouterr().err
    assert (
        "Butler.qlikSenseLicense.licenseMonitor.destination.influxDb is set, but its plugin"
        " influxdb is disabled"
    ) in err
    assert "Butler.influxDb is set" not in err
