"""Loading configs that are right: the seed block exactly as written, a full Butler config with
sections the agent does not use, flags, secrets from the environment, paths, warnings and the
certificate-file checks."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from agent.certificates import check_files
from agent.config import (
    AgentConfig,
    ConfigError,
)
from agent.config_warnings import config_warnings, enabled_destinations
from agent.plugins import load_config, parse_config

WINDOWS_EXPORT = r"C:\ProgramData\Qlik\Sense\Repository\Exported Certificates\.Local Certificates"


def qrs_yaml(certs: Path | str, extra: str = "") -> str:
    return f"""\
Butler:
  configQRS:
    host: sense.example.com
    headers:
      static:
        - name: X-Qlik-User
          value: UserDirectory=INTERNAL; UserId=sa_api
  cert:
    clientCert: {certs}/client.pem
    clientCertKey: {certs}/client_key.pem
    clientCertCA: {certs}/root.pem
{extra}"""


# --------------------------------------------------------------------------- the seed


def test_seed_block_loads_exactly_as_written(seed_yaml: str, write_config: Callable) -> None:
    config = load_config(write_config(seed_yaml))

    monitor = config.license_monitor
    assert monitor.enable is False
    assert monitor.frequency == "every 6 hours"
    assert monitor.destination.influx_db.enable is False
    assert [(t.name, t.value) for t in monitor.destination.influx_db.tag.static] == [("foo", "bar")]

    release = config.license_release
    assert release.enable is False
    assert release.dry_run is True
    assert release.frequency == "every 24 hours"
    rules = release.never_release
    assert [(u.user_dir, u.user_id) for u in rules.user] == [
        ("INTERNAL", "sa_repository"),
        ("INTERNAL", "sa_api"),
        ("USERDIR", "qs_admin_account"),
    ]
    assert rules.tag == ["License do not release", "some other tag"]
    assert [(p.name, p.value) for p in rules.custom_property] == [
        ("LicenseManage", "do-not-release")
    ]
    assert rules.user_directory == ["INTERNAL", "ADMIN"]
    # "Ignore", "Ignore" and "ignore" as written: any case.
    assert (rules.inactive, rules.blocked, rules.removed_externally) == ("ignore",) * 3
    types = release.license_type
    assert (types.analyzer.enable, types.analyzer.release_threshold_days) == (True, 30)
    assert (types.professional.enable, types.professional.release_threshold_days) == (True, 30)
    assert list(types.enabled()) == ["professional", "analyzer"]
    assert release.destination.influx_db.enable is False
    assert [(t.name, t.value) for t in release.destination.influx_db.tag.static] == [("foo", "bar")]
    # Both features are off in the seed, so it needs no QRS connection and no warnings.
    assert config.sites() == []
    assert config_warnings(config) == []


def test_committed_seed_copy_matches_the_seed_page(seed_sources: tuple[str | None, str]) -> None:
    page, copy = seed_sources
    if page is None:
        pytest.skip("the shared reference folder is not next to the repository")
    assert copy == page


# --------------------------------------------------------------------------- a full Butler config

FULL_BUTLER = r"""
---
Butler:
  logLevel: verbose
  fileLogging: true
  logDirectory: log
  anonTelemetry: false
  configEngine:
    engineVersion: 12.612.0
    host: sense.example.com
    port: 4747
    useSSL: true
    headers:
      static:
        - name: X-Qlik-User
          value: UserDirectory=Internal;UserId=sa_repository
    rejectUnauthorized: false
  configQRS:
    authentication: certificates
    host: sense.example.com
    useSSL: true
    port: 4242
    headers:
      static:
        - name: X-Qlik-User
          value: UserDirectory=Internal; UserId=sa_repository
    rejectUnauthorized: true
  cert:
    clientCert: CERTS/client.pem
    clientCertKey: CERTS/client_key.pem
    clientCertCA: CERTS/root.pem
    clientCertPassphrase:
  heartbeat:
    enable: false
    remoteURL: http://my.monitoring.server/some/path/
    frequency: every 30 seconds
  dockerHealthCheck:
    enable: false
    port: 12398
  uptimeMonitor:
    enable: false
    frequency: every 15 minutes
    logLevel: verbose
    storeInInfluxdb:
      enable: false
  influxDb:
    enable: true
    hostIP: influx.example.com
    hostPort: 8086
    auth:
      enable: true
      username: butler
      password: influx-pass-123
    dbName: senseops
    instanceTag: DEV
    retentionPolicy:
      name: 10d
      duration: 10d
    tag:
      static:
        - name: site
          value: prod
  qlikSenseVersion:
    versionMonitor:
      enable: false
      frequency: every 24 hours
  qlikSenseLicense:
    serverLicenseMonitor:
      enable: true
      frequency: every 24 hours
      alert:
        thresholdDays: 30
      destination:
        influxDb:
          enable: true
        mqtt:
          enable: false
        webhook:
          enable: false
    licenseMonitor:
      enable: true
      frequency: every 6 hours
      destination:
        influxDb:
          enable: true
          tag:
            static:
              - name: foo
                value: bar
    licenseRelease:
      enable: true
      dryRun: true
      frequency: every 24 hours
      neverRelease:
        user:
          - userDir: 'INTERNAL'
            userId: 'sa_repository'
        tag:
          - License do not release
        customProperty:
          - name: LicenseManage
            value: do-not-release
        userDirectory:
          - INTERNAL
        inactive: Ignore
        blocked: Ignore
        removedExternally: ignore
      licenseType:
        analyzer:
          enable: true
          releaseThresholdDays: 30
        professional:
          enable: true
          releaseThresholdDays: 30
      destination:
        influxDb:
          enable: true
          tag:
            static:
              - name: foo
                value: baz
  teamsNotification:
    enable: false
    reloadTaskFailure:
      enable: false
      webhookURL: https://example.webhook.office.com/xxx
  emailNotification:
    enable: false
    smtp:
      host: smtp.example.com
      port: 587
  webhookNotification:
    enable: false
    reloadTaskFailure:
      webhooks:
        - description: 'This outgoing webhook is used to...'
          webhookURL: https://webhook.site/abcdef
          httpMethod: POST
  slackNotification:
    enable: false
  mqttConfig:
    enable: false
    brokerHost: mqtt.example.com
    brokerPort: 1883
    subscriptionRootTopic: qliksense/#
  udpServerConfig:
    enable: false
    serverHost: <FQDN or IP of server where Butler is running>
    portTaskFailure: 9998
  restServerConfig:
    enable: false
    serverHost: localhost
    serverPort: 8080
  restServerEndpointsEnable:
    apiListEnbledEndpoints: false
    base62ToBase16: false
  scriptLog:
    storeOnDisk:
      reloadTaskFailure:
        enable: false
  thirdPartyToolsCredentials:
    newRelic:
      - accountName: First NR account
        insertApiKey: <API key 1 (with insert permissions) from New Relic>
  serviceStatus:
    enable: false
    frequency: every 3 minutes
    host:
      - host: <hostname or IP>
        services:
          - name: postgresql-x64-12
            friendlyName: Repository DB
"""


def test_a_full_butler_config_with_unrelated_sections_loads(
    write_config: Callable, cert_dir: Path
) -> None:
    path = write_config(FULL_BUTLER.replace("CERTS", str(cert_dir)))
    config = load_config(path)

    assert config.butler.config_qrs is not None
    assert config.butler.config_qrs.base_url == "https://sense.example.com:4242"
    assert config.butler.config_qrs.qlik_user == "UserDirectory=Internal; UserId=sa_repository"
    assert config.butler.influx_db.auth.password == "influx-pass-123"
    [site] = config.sites()
    assert site.static_tags("license_monitor") == {"site": "prod", "foo": "bar"}
    assert site.static_tags("license_release") == {"site": "prod", "foo": "baz"}
    assert check_files(config) == []
    # Butler's own sections are ignored silently: no warning for mqttConfig and friends.
    assert config_warnings(config) == []
    assert [d.name for d in enabled_destinations(config)] == ["influxdb"]
    assert enabled_destinations(config)[0].features == (
        "license_monitor",
        "license_release",
        "server_license",
    )


def test_the_example_config_is_valid_and_needs_only_the_simulator_certs(
    example_config: Path,
) -> None:
    config = load_config(example_config)
    assert config.license_monitor.enable and config.license_release.enable
    assert config.license_release.dry_run is True
    assert config_warnings(config) == []
    problems = check_files(config)
    assert len(problems) == 3
    assert all("./sim-certs/" in p and "not found" in p for p in problems)


# --------------------------------------------------------------------------- flags and values


@pytest.mark.parametrize(
    ("written", "meaning"),
    [
        ("Yes", "yes"),
        ("YES", "yes"),
        ("yes", "yes"),  # PyYAML: True
        ("No", "no"),  # PyYAML: False
        ("no", "no"),
        ("NO", "no"),
        ("true", "yes"),
        ("false", "no"),
        ("On", "yes"),  # YAML 1.1 boolean too
        ("Ignore", "ignore"),
        ("IGNORE", "ignore"),
        ("ignore", "ignore"),
        ("'No'", "no"),  # quoted: a string
        ('" Yes "', "yes"),
    ],
)
def test_inactive_blocked_removed_externally_accept_yes_no_ignore(
    written: str, meaning: str
) -> None:
    text = f"""
Butler:
  qlikSenseLicense:
    licenseRelease:
      neverRelease:
        inactive: {written}
        blocked: {written}
        removedExternally: {written}
"""
    rules = parse_config(yaml.safe_load(text)).license_release.never_release
    assert (rules.inactive, rules.blocked, rules.removed_externally) == (meaning,) * 3


def test_empty_lists_and_numeric_tag_values() -> None:
    text = """
Butler:
  qlikSenseLicense:
    licenseMonitor:
      destination:
        influxDb:
          tag:
            static:
              - name: year
                value: 2026
              - name: flag
                value: true
    licenseRelease:
      neverRelease:
        user:
        tag:
        customProperty:
"""
    config = parse_config(yaml.safe_load(text))
    tags = config.license_monitor.destination.influx_db.tag.static
    assert [(t.name, t.value) for t in tags] == [("year", "2026"), ("flag", "true")]
    rules = config.license_release.never_release
    assert (rules.user, rules.tag, rules.custom_property) == ([], [], [])


@pytest.mark.parametrize(
    ("written", "count", "percent"),
    [("50", 50, None), ("'10%'", None, 10.0), ("{count: 20, percent: 5}", 20, 5.0)],
)
def test_max_releases_per_run_forms(written: str, count: int | None, percent: float | None) -> None:
    text = (
        f"Butler:\n  qlikSenseLicense:\n    licenseRelease:\n      maxReleasesPerRun: {written}\n"
    )
    limit = parse_config(yaml.safe_load(text)).license_release.max_releases_per_run
    assert limit is not None and (limit.count, limit.percent) == (count, percent)


# --------------------------------------------------------------------------- secrets from the environment


def test_secrets_come_from_the_environment(
    write_config: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFLUX_TOKEN", "tok-from-env-0123456789")
    monkeypatch.setenv("INFLUX_PASSWORD", "pw-from-env")
    path = write_config(
        """
        Butler:
          influxDb:
            enable: true
            version: 2
            org: acme
            bucket: senseops
            token: ${env:INFLUX_TOKEN}
            auth:
              password: "prefix-${env:INFLUX_PASSWORD}"
        """
    )
    influx = load_config(path).butler.influx_db
    assert influx.token == "tok-from-env-0123456789"
    assert influx.auth.password == "prefix-pw-from-env"


def test_an_unset_environment_variable_names_the_key_and_the_variable() -> None:
    data = {"Butler": {"influxDb": {"token": "${env:NOT_SET_ANYWHERE}"}}}
    with pytest.raises(ConfigError) as info:
        parse_config(data, env={})
    assert info.value.problems == [
        "Butler.influxDb.token: environment variable NOT_SET_ANYWHERE is not set (set it, or"
        " write the value in the file instead of ${env:NOT_SET_ANYWHERE})"
    ]


# --------------------------------------------------------------------------- paths


def test_relative_paths_are_resolved_against_the_config_folder(
    tmp_path: Path, write_config: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(
        qrs_yaml(
            "./certs",
            """\
  licenseAgent:
    stateDir: state
    logging:
      file: logs/agent.log
    destinations:
      sqlite:
        enable: true
        path: data/agent.sqlite
""",
        ),
        name="site/config.yaml",
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder
    config = load_config(path)
    site = tmp_path / "site"
    assert config.butler.cert is not None
    assert config.butler.cert.client_cert == site / "certs" / "client.pem"
    assert config.state_dir == site / "state"
    assert config.agent.logging.file == site / "logs" / "agent.log"
    assert config.agent.destinations.sqlite.path == site / "data" / "agent.sqlite"


@pytest.mark.parametrize("quote", ["", "'"])
def test_windows_paths_are_accepted_on_any_os(quote: str) -> None:
    text = f"""
Butler:
  configQRS:
    host: sense.example.com
  cert:
    clientCert: {quote}{WINDOWS_EXPORT}\\client.pem{quote}
    clientCertKey: {quote}{WINDOWS_EXPORT}\\client_key.pem{quote}
    clientCertCA: {quote}{WINDOWS_EXPORT}\\root.pem{quote}
  qlikSenseLicense:
    licenseMonitor:
      enable: true
"""
    config = parse_config(yaml.safe_load(text), source=Path("/somewhere/config.yaml"))
    assert config.butler.cert is not None
    assert str(config.butler.cert.client_cert) == WINDOWS_EXPORT + "\\client.pem"


@pytest.mark.skipif(os.name == "nt", reason="on Windows the path is a local one")
def test_a_windows_path_on_another_os_is_reported_as_such() -> None:
    text = f"""
Butler:
  configQRS:
    host: sense.example.com
  cert:
    clientCert: {WINDOWS_EXPORT}\\client.pem
    clientCertKey: {WINDOWS_EXPORT}\\client_key.pem
    clientCertCA: {WINDOWS_EXPORT}\\root.pem
  qlikSenseLicense:
    licenseMonitor:
      enable: true
"""
    problems = check_files(parse_config(yaml.safe_load(text)))
    assert problems[0].startswith(
        f"Butler.cert.clientCert: {WINDOWS_EXPORT}\\client.pem not found; copy client.pem from"
    )
    assert problems[0].endswith("this is a Windows path but this machine is not Windows")


# --------------------------------------------------------------------------- certificate files


def test_missing_certificates_name_the_key_both_paths_and_the_qmc_export(
    write_config: Callable, tmp_path: Path
) -> None:
    path = write_config(
        qrs_yaml("./nowhere", "  qlikSenseLicense:\n    licenseRelease:\n      enable: true\n")
    )
    problems = check_files(load_config(path))
    assert problems == [
        f"Butler.cert.{key}: ./nowhere/{name} (resolved to {tmp_path / 'nowhere' / name}) not"
        f" found; copy {name} from {WINDOWS_EXPORT} on the Sense server (or export the"
        " certificates in the QMC: Certificates > Export, PEM format) and point"
        f" Butler.cert.{key} at it"
        for key, name in (
            ("clientCert", "client.pem"),
            ("clientCertKey", "client_key.pem"),
            ("clientCertCA", "root.pem"),
        )
    ]


def test_certificates_are_not_checked_when_no_feature_needs_qrs(write_config: Callable) -> None:
    assert check_files(load_config(write_config(qrs_yaml("./nowhere")))) == []


def test_parsing_never_opens_the_certificate_files() -> None:
    data = yaml.safe_load(
        qrs_yaml(
            "/does/not/exist", "  qlikSenseLicense:\n    licenseMonitor:\n      enable: true\n"
        )
    )
    assert isinstance(parse_config(data), AgentConfig)


def test_swapped_encrypted_and_non_pem_files_are_explained(
    write_config: Callable, cert_dir: Path
) -> None:
    swapped = cert_dir / "swapped"
    swapped.mkdir()
    (swapped / "client.pem").write_bytes((cert_dir / "client_key.pem").read_bytes())
    (swapped / "client_key.pem").write_text(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    (swapped / "root.pem").write_bytes(b"\x30\x82\x01\x0a binary DER or PFX")
    path = write_config(
        qrs_yaml(swapped, "  qlikSenseLicense:\n    licenseMonitor:\n      enable: true\n")
    )
    problems = check_files(load_config(path))
    assert problems == [
        f"Butler.cert.clientCert: {swapped / 'client.pem'} holds no certificate (are clientCert"
        " and clientCertKey swapped?)",
        f"Butler.cert.clientCertKey: {swapped / 'client_key.pem'} is protected by a password,"
        " which the agent cannot use; export the certificates again without a password",
        f"Butler.cert.clientCertCA: {swapped / 'root.pem'} is not a PEM file; export the"
        " certificates in the QMC again and choose the PEM format (not the Windows format)",
    ]


def test_real_certificates_pass(write_config: Callable, cert_dir: Path) -> None:
    path = write_config(
        qrs_yaml(cert_dir, "  qlikSenseLicense:\n    licenseMonitor:\n      enable: true\n")
    )
    assert check_files(load_config(path)) == []


# --------------------------------------------------------------------------- warnings


def test_warnings_for_valid_but_risky_settings(write_config: Callable, cert_dir: Path) -> None:
    path = write_config(
        qrs_yaml(
            cert_dir,
            """\
  qlikSenseLicence:
    licenseMonitor: {}
  qlikSenseLicense:
    licenseMonitor:
      enable: true
      frequency: every 90 minutes
    licenseRelease:
      enable: true
      dryRun: false
      licenseType:
        professional:
          enable: true
          releaseThresholdDays: 3
""",
        ).replace(
            "    host: sense.example.com",
            "    host: sense.example.com\n    rejectUnauthorized: false",
        )
    )
    warnings = config_warnings(load_config(path))
    assert warnings[0] == (
        "Butler.qlikSenseLicence: unknown key, ignored; did you mean 'qlikSenseLicense'?"
    )
    text = "\n".join(warnings)
    assert (
        "Butler.qlikSenseLicense.licenseRelease.licenseType.professional.releaseThresholdDays"
        " is 3: under 7 days QRS does not free a removed allocation but quarantines it"
    ) in text
    assert "maxReleasesPerRun is not set while dryRun is false" in text
    assert "licenseMonitor.frequency: 'every 90 minutes' fires once every hour" in text
    assert "licenseMonitor is enabled but no destination receives its data" in text
    assert "Butler.configQRS.rejectUnauthorized is false" in text
    assert len(warnings) == 6


def test_a_threshold_of_seven_days_or_more_gives_no_warning(cert_dir: Path) -> None:
    text = qrs_yaml(
        cert_dir,
        """\
  qlikSenseLicense:
    licenseRelease:
      enable: true
      licenseType:
        analyzer:
          enable: true
          releaseThresholdDays: 7
""",
    )
    assert config_warnings(parse_config(yaml.safe_load(text))) == []
