"""Bad configs: each mistake gives one line naming the key path, the bad value and what is
expected; every mistake in a file is reported at once; secrets are never echoed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from agent.config import ConfigError
from agent.plugins import load_config, parse_config

QRS = """\
  configQRS:
    host: sense.example.com
  cert:
    clientCert: ./client.pem
    clientCertKey: ./client_key.pem
    clientCertCA: ./root.pem
"""

RELEASE = "Butler.qlikSenseLicense.licenseRelease"

# (id, YAML under "Butler:", the one expected problem line, or its start when it ends with "…")
CASES = [
    (
        "port-not-a-number",
        "  configQRS:\n    host: h\n    port: abc\n",
        "Butler.configQRS.port: got 'abc'; expected a whole number",
    ),
    (
        "port-out-of-range",
        "  configQRS:\n    host: h\n    port: 70000\n",
        "Butler.configQRS.port: got 70000; expected a number <= 65535",
    ),
    (
        "qrs-host-missing",
        "  configQRS:\n    port: 4242\n",
        "Butler.configQRS.host: required key is missing; host name of the Sense central node as"
        " in its certificate, e.g. sense.example.com",
    ),
    (
        "qrs-host-empty",
        "  configQRS:\n    host: ''\n",
        "Butler.configQRS.host: got ''; expected a non-empty value",
    ),
    (
        "configQRS-missing-for-monitor",
        "  qlikSenseLicense:\n    licenseMonitor:\n      enable: true\n"
        "  cert:\n    clientCert: a\n    clientCertKey: b\n    clientCertCA: c\n",
        "Butler.configQRS: required key is missing; needed because"
        " qlikSenseLicense.licenseMonitor is enabled: add host (the Sense central node), port"
        " (4242) and headers.static with X-Qlik-User",
    ),
    (
        "cert-missing-for-release",
        "  configQRS:\n    host: h\n  qlikSenseLicense:\n    licenseRelease:\n      enable: yes\n",
        "Butler.cert: required key is missing; needed because qlikSenseLicense.licenseRelease is"
        " enabled: add clientCert, clientCertKey and clientCertCA, the paths of client.pem,"
        " client_key.pem and root.pem found on the Sense server in C:\\ProgramData\\Qlik…",
    ),
    (
        "cert-key-missing",
        "  cert:\n    clientCert: a.pem\n    clientCertCA: c.pem\n",
        "Butler.cert.clientCertKey: required key is missing; path of client_key.pem, found on"
        " the Sense server in C:\\ProgramData\\Qlik\\Sense\\Repository\\Exported"
        " Certificates\\.Local Certificates (or exported in the QMC: Certificates > Export, PEM"
        " format)",
    ),
    (
        "cert-not-a-section",
        "  cert: C:\\certs\n",
        "Butler.cert: got 'C:\\\\certs'; expected a section with the keys clientCert,"
        " clientCertKey, clientCertCA",
    ),
    (
        "monitor-enable-not-boolean",
        "  qlikSenseLicense:\n    licenseMonitor:\n      enable: maybe\n",
        "Butler.qlikSenseLicense.licenseMonitor.enable: got 'maybe'; expected true or false",
    ),
    (
        "frequency-unknown-unit",
        "  qlikSenseLicense:\n    licenseMonitor:\n      frequency: every 6 hourz\n",
        "Butler.qlikSenseLicense.licenseMonitor.frequency: got 'every 6 hourz'; 'hourz' is not a"
        " unit the agent knows: use seconds, minutes, hours or days; supported: every N"
        " seconds|minutes|hours|days …",
    ),
    (
        "frequency-cron",
        "  qlikSenseLicense:\n    licenseRelease:\n      frequency: 0 0 * * *\n",
        f"{RELEASE}.frequency: got '0 0 * * *'; cron expressions are not supported; supported: …",
    ),
    (
        "frequency-bad-time",
        "  qlikSenseLicense:\n    licenseRelease:\n      frequency: at 24:30\n",
        f"{RELEASE}.frequency: got 'at 24:30'; '24:30': hours go from 00 to 23 (24-hour clock);"
        " supported: …",
    ),
    (
        "monitor-typo-key",
        "  qlikSenseLicense:\n    licenseMonitor:\n      frequncy: every 6 hours\n",
        "Butler.qlikSenseLicense.licenseMonitor.frequncy: unknown key; did you mean 'frequency'?"
        " allowed keys here: alert, destination, enable, frequency",
    ),
    (
        "inactive-not-a-flag",
        "  qlikSenseLicense:\n    licenseRelease:\n      neverRelease:\n        inactive: perhaps\n",
        f"{RELEASE}.neverRelease.inactive: got 'perhaps'; expected Yes, No or Ignore (any case;"
        " unquoted yes/no/true/false also work)",
    ),
    (
        "blocked-a-number",
        "  qlikSenseLicense:\n    licenseRelease:\n      neverRelease:\n        blocked: 1\n",
        f"{RELEASE}.neverRelease.blocked: got 1; expected Yes, No or Ignore …",
    ),
    (
        "never-release-user-without-userId",
        "  qlikSenseLicense:\n    licenseRelease:\n      neverRelease:\n        user:\n"
        "          - userDir: INTERNAL\n            userId: sa_api\n          - userDir: ACME\n",
        f"{RELEASE}.neverRelease.user[1].userId: required key is missing; user ID, as in the QMC",
    ),
    (
        "never-release-user-as-text",
        "  qlikSenseLicense:\n    licenseRelease:\n      neverRelease:\n        user:\n"
        "          - INTERNAL\\sa_api\n",
        f"{RELEASE}.neverRelease.user[0]: got 'INTERNAL\\\\sa_api'; expected a section with the"
        " keys userDir, userId",
    ),
    (
        "never-release-tag-not-a-list",
        "  qlikSenseLicense:\n    licenseRelease:\n      neverRelease:\n        tag: VIP\n",
        f"{RELEASE}.neverRelease.tag: got 'VIP'; expected a list (lines starting with '- ')",
    ),
    (
        "custom-property-without-name",
        "  qlikSenseLicense:\n    licenseRelease:\n      neverRelease:\n        customProperty:\n"
        "          - value: do-not-release\n",
        f"{RELEASE}.neverRelease.customProperty[0].name: required key is missing",
    ),
    (
        "threshold-zero",
        "  qlikSenseLicense:\n    licenseRelease:\n      licenseType:\n        professional:\n"
        "          releaseThresholdDays: 0\n",
        f"{RELEASE}.licenseType.professional.releaseThresholdDays: got 0; expected a number >= 1",
    ),
    (
        "threshold-words",
        "  qlikSenseLicense:\n    licenseRelease:\n      licenseType:\n        analyzer:\n"
        "          releaseThresholdDays: thirty\n",
        f"{RELEASE}.licenseType.analyzer.releaseThresholdDays: got 'thirty'; expected a whole"
        " number",
    ),
    (
        "unknown-license-type",
        "  qlikSenseLicense:\n    licenseRelease:\n      licenseType:\n        professionel:\n"
        "          enable: true\n",
        f"{RELEASE}.licenseType.professionel: unknown key; did you mean 'professional'? allowed"
        " keys here: analyzer, professional, userAccess",
    ),
    (
        "max-releases-words",
        "  qlikSenseLicense:\n    licenseRelease:\n      maxReleasesPerRun: lots\n",
        f"{RELEASE}.maxReleasesPerRun: got 'lots'; expected a number of releases (50), a"
        " percentage of the type's allocations ('10%'), or the keys count and/or percent",
    ),
    (
        "max-releases-over-100-percent",
        "  qlikSenseLicense:\n    licenseRelease:\n      maxReleasesPerRun: 150%\n",
        f"{RELEASE}.maxReleasesPerRun.percent: got 150.0; expected a number <= 100",
    ),
    (
        "delete-concurrency-zero",
        "  qlikSenseLicense:\n    licenseRelease:\n      deleteConcurrency: 0\n",
        f"{RELEASE}.deleteConcurrency: got 0; expected a number >= 1",
    ),
    (
        "influx-version-4",
        "  influxDb:\n    version: 4\n",
        "Butler.influxDb.version: got 4; expected 1, 2 or 3",
    ),
    (
        "influx-v2-without-token",
        "  influxDb:\n    enable: true\n    version: 2\n    org: acme\n    bucket: senseops\n",
        "Butler.influxDb.token: required key is missing for InfluxDB version 2; an API token with"
        " write access; ${env:INFLUX_TOKEN} keeps it out of the file",
    ),
    (
        "influx-v3-without-database",
        "  influxDb:\n    enable: true\n    version: 3\n    token: abcdefgh\n",
        "Butler.influxDb.database: required key is missing for InfluxDB version 3; the database"
        " to write to",
    ),
    (
        "influx-port-text",
        "  influxDb:\n    hostPort: eighty\n",
        "Butler.influxDb.hostPort: got 'eighty'; expected a whole number",
    ),
    (
        "log-level-unknown",
        "  licenseAgent:\n    logging:\n      level: loud\n",
        "Butler.licenseAgent.logging.level: got 'loud'; expected one of TRACE, DEBUG, INFO,"
        " SUCCESS, WARNING, ERROR, CRITICAL (any case)",
    ),
    (
        "log-rotation-unknown",
        "  licenseAgent:\n    logging:\n      rotation: 10 megs\n",
        "Butler.licenseAgent.logging.rotation: got '10 megs'; expected a size such as '10 MB', an"
        " age such as '1 week', or a time of day such as '00:00'",
    ),
    (
        "log-retention-unknown",
        "  licenseAgent:\n    logging:\n      retention: forever\n",
        "Butler.licenseAgent.logging.retention: got 'forever'; expected an age such as '30 days'"
        " or '2 weeks', or a number of files such as 10",
    ),
    (
        "log-typo-key",
        "  licenseAgent:\n    logging:\n      lvl: debug\n",
        "Butler.licenseAgent.logging.lvl: unknown key; did you mean 'level'? allowed keys here: …",
    ),
    (
        "sqlite-unknown-feature",
        "  licenseAgent:\n    destinations:\n      sqlite:\n        features: [licence_monitor]\n",
        "Butler.licenseAgent.destinations.sqlite.features[0]: got 'licence_monitor'; expected"
        " 'license_monitor', 'license_release' or 'server_license'",
    ),
    (
        "plugin-paths-not-a-list",
        "  licenseAgent:\n    plugins:\n      strict: sometimes\n",
        "Butler.licenseAgent.plugins.strict: got 'sometimes'; expected true or false",
    ),
    (
        "static-tag-without-value",
        "  influxDb:\n    tag:\n      static:\n        - name: site\n",
        "Butler.influxDb.tag.static[0].value: required key is missing",
    ),
    (
        "headers-not-sections",
        "  configQRS:\n    host: h\n    headers:\n      static:\n        - X-Qlik-User\n",
        "Butler.configQRS.headers.static[0]: got 'X-Qlik-User'; expected a section with the keys"
        " name, value",
    ),
    (
        "qrs-section-is-a-list",
        "  configQRS:\n    - host: h\n",
        "Butler.configQRS: got a list of 1 item; expected a section with the keys host, port, …",
    ),
]


def _check(problem: str, expected: str) -> None:
    if expected.endswith("…"):
        assert problem.startswith(expected[:-1]), f"\n{problem}\n!=\n{expected}"
    else:
        assert problem == expected


@pytest.mark.parametrize(("case", "body", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_mistake_gives_one_specific_line(case: str, body: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_load("Butler:\n" + body))
    assert len(info.value.problems) == 1, info.value.problems
    _check(info.value.problems[0], expected)


def test_there_are_enough_distinct_cases() -> None:
    assert len({c[2] for c in CASES}) >= 25


# --------------------------------------------------------------------------- file-level mistakes


def test_file_not_found_says_how_to_name_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.problems == [
        f"config file {tmp_path / 'nope.yaml'} not found; pass --config FILE, set"
        " LICENSE_AGENT_CONFIG, or create config.yaml (start from config.example.yaml)"
    ]


def test_broken_yaml_gives_line_and_column(write_config: Callable) -> None:
    path = write_config("Butler:\n  configQRS:\n    host: h\n   port: 4242\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert problem.startswith(f"{path}: not valid YAML at line 4, column 4:")
    assert problem.endswith("(check indentation and quoting)")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("", "found an empty document"),
        (
            "butler:\n  configQRS: {}\n",
            "found top-level keys ['butler'] (did you mean 'Butler' for 'butler'?)",
        ),
        ("- Butler\n", "found ['Butler']"),
    ],
)
def test_the_root_must_be_butler(write_config: Callable, text: str, found: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text))
    assert info.value.problems == [
        f"the root key must be 'Butler' (as in a Butler config file); {found}"
    ]


# --------------------------------------------------------------------------- all at once, no secrets


def test_every_mistake_is_reported_at_once(write_config: Callable) -> None:
    path = write_config(
        """
        Butler:
          configQRS:
            port: abc
          influxDb:
            enable: true
            version: 2
            org: acme
            bucket: b
            token: ${env:MISSING_INFLUX_TOKEN_FOR_TEST}
          qlikSenseLicense:
            licenseMonitor:
              enable: true
              frequency: every 6 hourz
            licenseRelease:
              enable: true
              neverRelease:
                inactive: perhaps
              licenseType:
                analyzer:
                  releaseThresholdDays: 0
          licenseAgent:
            logging:
              levle: debug
        """
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    expected_starts = [
        "Butler.influxDb.token: environment variable MISSING_INFLUX_TOKEN_FOR_TEST is not set",
        "Butler.configQRS.host: required key is missing",
        "Butler.configQRS.port: got 'abc'; expected a whole number",
        "Butler.qlikSenseLicense.licenseMonitor.frequency: got 'every 6 hourz'",
        f"{RELEASE}.neverRelease.inactive: got 'perhaps'",
        f"{RELEASE}.licenseType.analyzer.releaseThresholdDays: got 0",
        "Butler.licenseAgent.logging.levle: unknown key; did you mean 'level'?",
        "Butler.cert: required key is missing; needed because qlikSenseLicense.licenseMonitor"
        " and qlikSenseLicense.licenseRelease are enabled",
        "Butler.influxDb.token: required key is missing for InfluxDB version 2",
    ]
    assert len(problems) == len(expected_starts), problems
    for start in expected_starts:
        assert any(p.startswith(start) for p in problems), start
    message = str(info.value)
    assert message.startswith(f"9 configuration problems in {path}:\n  - ")


@pytest.mark.parametrize(
    "body",
    [
        "  influxDb:\n    token: [s3cr3t-token-value]\n",
        "  influxDb:\n    auth:\n      password: {nested: s3cr3t-token-value}\n",
        "  influxDb:\n    version: 2\n    token: 12345678901234567\n",
    ],
)
def test_secret_values_are_not_echoed(body: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_load("Butler:\n" + body))
    assert "s3cr3t-token-value" not in str(info.value)
    assert "12345678901234567" not in str(info.value)
    assert "got (hidden)" in str(info.value)


# --------------------------------------------------------------------------- near-miss sections


def test_a_misspelt_section_is_named_in_the_missing_key_error() -> None:
    # Issue 16 item 3: the user's keys are there, under another name.
    text = """\
Butler:
  configQrs:
    host: sense.example.com
  Cert:
    clientCert: a.pem
    clientCertKey: b.pem
    clientCertCA: c.pem
  qlikSenseLicense:
    licenseMonitor:
      enable: true
"""
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_load(text))
    problems = info.value.problems
    assert problems[0].startswith(
        "Butler.configQRS: required key is missing; the file has 'configQrs' here, which the"
        " agent does not read: is it 'configQRS' misspelt?; needed because"
    )
    assert problems[1].startswith(
        "Butler.cert: required key is missing; the file has 'Cert' here, which the agent does"
        " not read: is it 'cert' misspelt?"
    )
    # The warnings travel with the errors.
    assert "Butler.configQrs: unknown key, ignored; did you mean 'configQRS'?" in (
        info.value.warnings
    )


def test_a_misspelt_key_inside_a_site_gets_the_hint_too() -> None:
    data = {
        "Butler": {
            "licenseAgent": {
                "sites": [
                    {
                        "name": "eu",
                        "configQrs": {"host": "eu.example.com"},
                        "cert": {"clientCert": "a", "clientCertKey": "b", "clientCertCA": "c"},
                    }
                ]
            }
        }
    }
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert any(
        p.startswith(
            "Butler.licenseAgent.sites[0].configQRS: required key is missing; the file has"
            " 'configQrs' here"
        )
        for p in info.value.problems
    ), info.value.problems


def test_no_hint_when_nothing_is_close() -> None:
    text = "Butler:\n  qlikSenseLicense:\n    licenseMonitor:\n      enable: true\n"
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_load(text))
    assert info.value.problems[0].startswith(
        "Butler.configQRS: required key is missing; needed because"
    )
