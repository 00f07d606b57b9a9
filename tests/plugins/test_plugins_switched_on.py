"""`license-agent plugins`: ENABLED says whether the config switches a plugin on, not only
whether it loaded (a destination that is turned off is not "yes")."""

from __future__ import annotations

import json

from agent.cli import main
from agent.plugins import build_plugin_host, parse_config

CONFIG = """\
Butler:
  configQRS: {host: qs.example.com}
  cert: {clientCert: a.pem, clientCertKey: b.pem, clientCertCA: c.pem}
  influxDb: {enable: false, hostIP: influx.example.com}
  qlikSenseLicense:
    licenseMonitor:
      enable: true
      destination: {influxDb: {enable: false}}
    licenseRelease:
      enable: true
      neverRelease:
        tag: [VIP]
        user: []
      licenseType: {professional: {enable: true, releaseThresholdDays: 30}}
  licenseAgent:
    destinations:
      sqlite: {enable: true}
      jsonl: {enable: false}
    plugins:
      disable: [tokens]
"""


def _table(out: str) -> dict[str, str]:
    return {line.split()[0]: line.split()[2] for line in out.splitlines()[1:]}


def test_enabled_follows_the_config(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    assert main(["plugins", "-c", str(path)]) == 0
    enabled = _table(capsys.readouterr().out)
    assert enabled["sqlite"] == "yes"
    assert enabled["influxdb"] == "off"  # loaded, but influxDb.enable is false
    assert enabled["jsonl"] == "off" and enabled["prometheus"] == "off"
    assert enabled["server_license"] == "off"  # serverLicenseMonitor is not enabled
    assert enabled["tag"] == "yes"
    assert enabled["user"] == "off"  # an empty list means "no rule"
    assert enabled["professional"] == "yes"  # license types need no switch
    assert enabled["tokens"] == "no"  # disabled in plugins.disable

    assert main(["plugins", "--json", "-c", str(path)]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["influxdb"]["enabled"] is True and listed["influxdb"]["switched_on"] is False
    assert listed["sqlite"]["switched_on"] is True
    assert listed["tokens"]["enabled"] is False and listed["tokens"]["switched_on"] is False


def test_without_a_config_only_what_needs_no_switch_is_on(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LICENSE_AGENT_CONFIG", raising=False)
    assert main(["plugins"]) == 0
    enabled = _table(capsys.readouterr().out)
    assert enabled["influxdb"] == enabled["sqlite"] == enabled["tag"] == "off"
    assert enabled["professional"] == "yes"


def test_a_plugin_whose_hook_raises_is_not_on(tmp_path):
    class Broken:
        from agent.hookspecs import hookimpl

        @hookimpl
        def sla_destinations(self, config):
            raise RuntimeError("cannot build")

    config = parse_config(
        {"Butler": {"licenseAgent": {"destinations": {"sqlite": {"enable": True}}}}},
        source=tmp_path / "c.yaml",
    )
    host = build_plugin_host(config, extra=[("broken", Broken())])
    on = host.switched_on(config)
    assert on["broken"] is False and on["sqlite"] is True
    assert "cannot build" in host.errors["broken"]


def test_the_alert_plugin_is_on_only_when_alerts_are_enabled(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    assert main(["plugins", "-c", str(path)]) == 0
    assert _table(capsys.readouterr().out)["early_warning"] == "off"
    alert = (
        "      alert:\n        enable: true\n        licenseType:\n"
        "          professional: {availableBelow: 10}\n"
    )
    path.write_text(
        CONFIG.replace(
            "      destination: {influxDb: {enable: false}}\n",
            "      destination: {influxDb: {enable: false}}\n" + alert,
            1,
        ),
        encoding="utf-8",
    )
    assert main(["plugins", "-c", str(path)]) == 0
    assert _table(capsys.readouterr().out)["early_warning"] == "yes"
