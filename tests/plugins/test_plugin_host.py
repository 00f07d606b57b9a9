"""The plugin system end to end: built-ins, an entry-point distribution, drop-in files,
disable lists, strict mode, broken plugins, and the typed facade's error isolation."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import ConfigError
from agent.hookspecs import hookimpl
from agent.models import LicenseType, ReleaseRule
from agent.plugins import (
    DEFAULT_PLUGINS,
    DISABLE_EXTERNAL_ENV,
    PluginHost,
    build_plugin_host,
    parse_config,
)

PLUGIN_SOURCE = textwrap.dedent(
    """
    from agent.hookspecs import hookimpl
    from agent.models import ReleaseRule

    @hookimpl
    def sla_release_rules(config, site):
        return [ReleaseRule(name="{name}-rule", judge=lambda candidates: {{}})]
    """
)


def make_config(tmp_path: Path, plugins: dict | None = None):
    data = {"Butler": {"licenseAgent": {"plugins": plugins or {}}}}
    return parse_config(data, source=tmp_path / "config.yaml")


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """A real installed distribution (dist-info on sys.path) with an entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sla_example_plugin.py").write_text(PLUGIN_SOURCE.format(name="example"))
    dist = site / "sla_example_plugin-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: sla-example-plugin\nVersion: 1.2.3\n"
    )
    (dist / "entry_points.txt").write_text("[sense_license_agent]\nexample = sla_example_plugin\n")
    monkeypatch.syspath_prepend(str(site))
    yield "example"
    sys.modules.pop("sla_example_plugin", None)


def test_builtins_are_all_registered():
    host = build_plugin_host(None)
    names = {d.rsplit(".", 1)[-1] for d in DEFAULT_PLUGINS}
    assert names <= set(host.infos)
    assert all(host.infos[n].source == "built-in" and host.infos[n].enabled for n in names)


def test_entry_point_plugin_is_loaded_and_its_rule_is_used(fake_distribution, tmp_path):
    config = make_config(tmp_path)
    host = build_plugin_host(config)
    info = host.infos["example"]
    assert info.source == "package sla-example-plugin 1.2.3"
    assert info.hooks == ["sla_release_rules"]
    site_cfg = parse_config(
        {
            "Butler": {
                "configQRS": {"host": "qs.example.com"},
                "cert": {"clientCert": "a", "clientCertKey": "b", "clientCertCA": "c"},
            }
        },
        source=tmp_path / "c.yaml",
    ).sites()[0]
    rules, errors = host.release_rules(config, site_cfg)
    assert "example-rule" in [r.name for r in rules]
    assert errors == {}


def test_drop_in_file_plugin_is_loaded(tmp_path):
    folder = tmp_path / "my plugins"
    folder.mkdir()
    (folder / "vip_guard.py").write_text(PLUGIN_SOURCE.format(name="vip"))
    (folder / "_private_helper.py").write_text("raise RuntimeError('never imported')")
    config = make_config(tmp_path, {"paths": ["my plugins"]})
    host = build_plugin_host(config)
    assert host.infos["vip_guard"].source == f"file {folder / 'vip_guard.py'}"
    assert "_private_helper" not in host.infos


def test_broken_plugin_is_reported_and_the_agent_carries_on(tmp_path, capsys):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "broken.py").write_text("import does_not_exist_anywhere\n")
    (folder / "fine.py").write_text(PLUGIN_SOURCE.format(name="fine"))
    config_file = tmp_path / "config.yaml"
    config_file.write_text("Butler:\n  licenseAgent:\n    plugins:\n      paths: [plugins]\n")
    assert main(["plugins", "--json", "-c", str(config_file)]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["broken"]["enabled"] is False
    assert "ModuleNotFoundError" in listed["broken"]["error"]
    assert listed["fine"]["enabled"] is True
    assert listed["fine"]["hooks"] == ["sla_release_rules"]


def test_strict_mode_stops_on_a_broken_plugin(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "broken.py").write_text("raise ImportError('boom')\n")
    # Strict loading is part of the config: loading it stops with a ConfigError (exit 2).
    with pytest.raises(ConfigError, match="broken.*boom"):
        make_config(tmp_path, {"paths": ["plugins"], "strict": True})


def test_missing_plugin_folder_is_reported(tmp_path):
    config = make_config(tmp_path, {"paths": ["nowhere"]})
    host = build_plugin_host(config)
    errors = [i.error for i in host.infos.values() if i.error]
    assert any("nowhere" in e and "plugins.paths" in e for e in errors)


def test_disable_list_switches_off_builtin_and_external(tmp_path, fake_distribution):
    config = make_config(tmp_path, {"disable": ["tag", "example"]})
    host = build_plugin_host(config)
    assert host.infos["tag"].enabled is False
    assert host.infos["example"].enabled is False
    assert not host.pm.has_plugin("tag")
    assert not host.pm.has_plugin("example")


def test_environment_disables_all_external_plugins(tmp_path, monkeypatch, fake_distribution):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "dropin.py").write_text(PLUGIN_SOURCE.format(name="dropin"))
    monkeypatch.setenv(DISABLE_EXTERNAL_ENV, "1")
    host = build_plugin_host(make_config(tmp_path, {"paths": ["plugins"]}))
    assert "example" not in host.infos and "dropin" not in host.infos
    assert host.infos["tag"].enabled


def test_duplicate_plugin_names_are_rejected(tmp_path, fake_distribution):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "example.py").write_text(PLUGIN_SOURCE.format(name="other"))
    host = build_plugin_host(make_config(tmp_path, {"paths": ["plugins"]}))
    # The entry point came first; the file with the same name is reported, not registered.
    assert host.infos["example"].source.startswith("package")
    assert host.infos["example"].enabled
    rejected = [i for i in host.infos.values() if i.name == "example" and not i.enabled]
    assert len(rejected) == 1
    assert "already used by package sla-example-plugin" in rejected[0].error


class _Registers:
    def __init__(self, *types: LicenseType) -> None:
        self.types = types

    @hookimpl
    def sla_license_types(self):
        return list(self.types)


def _fields(overview):
    return {"x": 1.0}


def test_duplicate_license_type_names_are_rejected_and_reported():
    host = PluginHost()
    host._register(_Registers(LicenseType("alpha", _fields)), "first", "embedded")
    host._register(_Registers(LicenseType("alpha", _fields)), "second", "embedded")
    names = [t.name for t in host.license_types()]
    assert names == ["alpha"]
    assert any("already registered" in e for e in host.errors.values())


class _Raises:
    @hookimpl
    def sla_release_rules(self, config, site):
        raise RuntimeError("rule plugin exploded")


class _WrongType:
    @hookimpl
    def sla_release_rules(self):
        return ["not a rule"]


class _Good:
    @hookimpl
    def sla_release_rules(self, site):  # fewer arguments than the spec: allowed
        return [ReleaseRule("good", lambda c: {})]


def test_registration_errors_are_isolated_and_returned():
    host = PluginHost()
    host._register(_Raises(), "raises", "embedded")
    host._register(_WrongType(), "wrong", "embedded")
    host._register(_Good(), "good", "embedded")
    rules, errors = host.release_rules(config=None, site=None)  # type: ignore[arg-type]
    assert [r.name for r in rules] == ["good"]
    assert "rule plugin exploded" in errors["raises"]
    assert "not ReleaseRule" in errors["wrong"]


def test_plugins_command_table(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./config.yaml: the command works without a config
    monkeypatch.delenv("LICENSE_AGENT_CONFIG", raising=False)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["NAME", "SOURCE", "ENABLED", "HOOKS"]
    assert "built-in" in out
