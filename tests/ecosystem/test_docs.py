"""The snippets in docs/running.md, docs/plugins.md and the example's README work as written:
every Butler config loads, every Python block compiles, the drop-in example registers its rule,
the systemd unit passes ``systemd-analyze verify`` and the alert rules pass ``promtool``."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from agent.plugins import build_plugin_host, parse_config

REPO = Path(__file__).resolve().parents[2]
RUNNING = REPO / "docs" / "running.md"
PLUGINS = REPO / "docs" / "plugins.md"
EXAMPLE_README = REPO / "examples" / "sla-webhook-plugin" / "README.md"
ENV = {"INFLUX_TOKEN": "t", "WEBHOOK_TOKEN": "w"}


def blocks(path: Path, language: str) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = re.findall(rf"^( *)```{language}\n(.*?)^\1```", text, flags=re.MULTILINE | re.DOTALL)
    # Blocks inside list items are indented: take the indentation off.
    return [re.sub(rf"(?m)^{indent}", "", body) for indent, body in found]


def butler_blocks() -> list[tuple[str, str]]:
    found = []
    for path in (RUNNING, PLUGINS, EXAMPLE_README):
        for body in blocks(path, "yaml"):
            if body.lstrip().startswith("Butler:"):
                found.append((path.name, body))
    return found


def test_there_are_config_snippets():
    names = [name for name, _ in butler_blocks()]
    assert names.count("running.md") >= 2 and names.count("plugins.md") >= 3


def _example_plugin() -> object:
    """The example package's module, for the settings its README configures."""
    path = EXAMPLE_README.parent / "sla_webhook_plugin.py"
    spec = importlib.util.spec_from_file_location("sla_webhook_plugin_docs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("source", "snippet"), butler_blocks())
def test_config_snippets_load(source, snippet, tmp_path):
    # The example's README configures the keys the example plugin owns.
    extra = [("webhook", _example_plugin())] if source == "README.md" else []
    config = parse_config(
        yaml.safe_load(snippet), source=tmp_path / "config.yaml", env=ENV, extra=extra
    )
    assert config.butler is not None


def test_production_snippet_enables_what_it_says(tmp_path):
    snippet = next(body for name, body in butler_blocks() if name == "running.md")
    config = parse_config(yaml.safe_load(snippet), source=tmp_path / "c.yaml", env=ENV)
    assert config.license_monitor.enable and config.license_release.enable
    assert config.license_release.dry_run is True
    assert config.settings("qlikSenseLicense.serverLicenseMonitor").alert.threshold_days == 60
    assert str(config.butler.cert.client_cert).endswith("client.pem")
    assert config.butler.config_qrs.qlik_user == "UserDirectory=INTERNAL; UserId=sa_api"


@pytest.mark.parametrize("path", [PLUGINS, REPO / "docs" / "running.md"])
def test_python_snippets_compile(path):
    for body in blocks(path, "python"):
        compile(body, f"{path.name} snippet", "exec")


def test_the_drop_in_example_of_the_guide_works(tmp_path):
    (first,) = [b for b in blocks(PLUGINS, "python") if b.startswith("# plugins.d/vip.py")]
    folder = tmp_path / "plugins.d"
    folder.mkdir()
    (folder / "vip.py").write_text(first, encoding="utf-8")
    data = yaml.safe_load([b for _, b in butler_blocks() if "plugins.d" in b][0])
    config = parse_config(data, source=tmp_path / "config.yaml")
    host = build_plugin_host(config)
    assert host.infos["vip"].hooks == ["sla_release_rules"]
    site = parse_config(
        {
            "Butler": {
                "configQRS": {"host": "qs.example.com"},
                "cert": {"clientCert": "a", "clientCertKey": "b", "clientCertCA": "c"},
            }
        }
    ).sites()[0]
    rules, errors = host.release_rules(config, site)
    assert not errors and "vip" in [r.name for r in rules]
    sys.modules.pop("sense_license_agent_dropin_vip", None)


def test_systemd_unit_verifies(binary, tmp_path):
    exe = binary("systemd-analyze")
    (unit,) = blocks(RUNNING, "ini")
    agent = Path(sys.executable).parent / "license-agent"
    unit = unit.replace("/opt/sense-license-agent/venv/bin/license-agent", str(agent))
    path = tmp_path / "sense-license-agent.service"
    path.write_text(unit, encoding="utf-8")
    done = subprocess.run([exe, "verify", str(path)], capture_output=True, text=True, timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Unknown" not in output and "not executable" not in output, output


def test_alert_rules_pass_promtool(binary, tmp_path):
    exe = binary("promtool")
    (rules,) = [b for b in blocks(RUNNING, "yaml") if b.startswith("groups:")]
    path = tmp_path / "rules.yml"
    path.write_text(rules, encoding="utf-8")
    done = subprocess.run(
        [exe, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout + done.stderr
