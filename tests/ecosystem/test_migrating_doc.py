"""docs/migrating.md says what the agent does with a Butler config; these tests hold it to it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from agent.config import ConfigError
from agent.config_warnings import config_warnings
from agent.plugins import parse_config
from agent.schedule import ScheduleError, parse_frequency

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "migrating.md"
TEXT = DOC.read_text(encoding="utf-8")

#: A Butler config as Butler users have it: the license features and Butler's other sections.
BUTLER = """
Butler:
  logLevel: verbose
  configQRS:
    host: sense.example.com
    port: 4242
    useSSL: true
    headers:
      static:
        - name: X-Qlik-User
          value: UserDirectory=INTERNAL; UserId=sa_api
  cert:
    clientCert: certs/client.pem
    clientCertKey: certs/client_key.pem
    clientCertCA: certs/root.pem
  influxDb:
    enable: true
    hostIP: influx.example.com
    dbName: senseops
    instanceTag: DEV
  mqttConfig:
    enable: true
    brokerHost: mqtt.example.com
  webhookNotification:
    enable: true
  restServerConfig:
    enable: true
  qlikSenseLicense:
    serverLicenseMonitor:
      enable: true
      frequency: every 24 hours
      alert:
        thresholdDays: 30
      destination:
        influxDb: {enable: true}
        mqtt: {enable: true}
        webhook: {enable: true}
    licenseMonitor:
      enable: true
      frequency: every 6 hours
      destination:
        influxDb: {enable: true}
    licenseRelease:
      enable: true
      frequency: every 24 hours
      neverRelease:
        tag: null
        inactive: No
      licenseType:
        professional: {enable: true, releaseThresholdDays: 30}
"""


def test_the_turn_off_snippet_turns_every_license_feature_off(tmp_path):
    (snippet,) = [
        b for b in re.findall(r"```yaml\n(.*?)```", TEXT, flags=re.DOTALL) if "Butler:" in b
    ]
    config = parse_config(yaml.safe_load(snippet), source=tmp_path / "c.yaml")
    assert not config.license_monitor.enable
    assert not config.license_release.enable
    assert not config.butler.qlik_sense_license.server_license_monitor.enable


def test_a_butler_config_loads_as_it_is(tmp_path):
    config = parse_config(yaml.safe_load(BUTLER), source=tmp_path / "config.yaml")
    # Read unchanged.
    assert config.butler.config_qrs.host == "sense.example.com"
    assert config.license_monitor.frequency == "every 6 hours"
    assert config.butler.qlik_sense_license.server_license_monitor.alert.threshold_days == 30
    assert config.license_release.license_type.professional.release_threshold_days == 30
    assert config.license_release.never_release.tag == []  # null: no rule, no crash
    assert config.license_release.never_release.inactive == "no"  # YAML's False is No
    # Missing enable/dryRun: off / dry run (Butler: on / real).
    assert config.license_release.dry_run is True
    assert not config.license_release.license_type.analyzer.enable
    # Butler's other sections and keys are ignored without a word.
    assert config_warnings(config) == []
    # Butler's MQTT and webhook sections are read for the server license messages.
    assert config.settings("mqttConfig").enable is True
    assert (
        config.butler.qlik_sense_license.server_license_monitor.destination.webhook.enable is True
    )
    dumped = config.model_dump(by_alias=True)
    assert "restServerConfig" not in dumped["Butler"]


def test_a_misspelt_shared_key_warns_and_a_misspelt_rule_is_an_error(tmp_path):
    data = yaml.safe_load(BUTLER)
    data["Butler"]["influxDb"]["dbname"] = data["Butler"]["influxDb"].pop("dbName")
    config = parse_config(data, source=tmp_path / "c.yaml")
    assert (
        "Butler.influxDb.dbname: unknown key, ignored; did you mean 'dbName'?"
        in config_warnings(config)
    )
    data["Butler"]["qlikSenseLicense"]["licenseRelease"]["neverRelase"] = {"tag": ["VIP"]}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, source=tmp_path / "c.yaml")
    assert "licenseRelease.neverRelase: unknown key" in str(caught.value)


@pytest.mark.parametrize(
    "text",
    [
        "every 6 hours",
        "every 15 mins",
        "every 30 seconds",
        "every 2 days",
        "at 02:30",
        "at 7:00 pm",
        "every day at 06:00",
        "every weekday at 7:00 pm",
        "on sunday at 03:00",
        "on mon, wed and fri at 05:00",
    ],
)
def test_the_documented_later_js_forms_parse(text):
    parse_frequency(text)


@pytest.mark.parametrize(
    "text", ["every 6 hours starting on the 2nd hour", "after 10:00", "0 */6 * * *"]
)
def test_other_later_js_forms_are_refused(text):
    with pytest.raises(ScheduleError):
        parse_frequency(text)


def test_the_tests_the_page_names_exist():
    named = re.findall(r"`(test_\w+)`", TEXT)
    assert len(named) >= 8
    sources = "".join(p.read_text(encoding="utf-8") for p in (REPO / "tests").rglob("test_*.py"))
    for name in named:
        assert f"def {name}(" in sources, name
