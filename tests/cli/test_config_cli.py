"""``license-agent config check`` and ``config schema``: exit codes, the summary a user sees,
no traceback, no secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent.cli import main
from agent.cli.config_cmd import summary_lines
from agent.plugins import build_plugin_host, json_schema, load_config

MONITOR_AND_RELEASE = """\
  qlikSenseLicense:
    licenseMonitor:
      enable: true
      frequency: every 6 hours
    licenseRelease:
      enable: true
      frequency: every weekday at 7:00 pm
      maxReleasesPerRun: 25
      licenseType:
        professional:
          enable: true
          releaseThresholdDays: 45
  licenseAgent:
    destinations:
      jsonl:
        enable: true
"""


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("LICENSE_AGENT_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
    )


# --------------------------------------------------------------------------- exit codes, subprocess


def test_a_bad_config_exits_2_with_the_problems_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "BAD.yaml"
    bad.write_text(
        "Butler:\n  configQRS:\n    port: abc\n  qlikSenseLicense:\n    licenseMonitor:\n"
        "      frequency: every 6 hourz\n",
        encoding="utf-8",
    )
    result = run_cli("config", "check", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: 3 configuration problems in {bad.resolve()}:\n")
    assert "  - Butler.configQRS.port: got 'abc'; expected a whole number\n" in result.stderr
    assert "  - Butler.configQRS.host: required key is missing;" in result.stderr
    assert "licenseMonitor.frequency: got 'every 6 hourz'" in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_yaml_and_a_missing_file_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("Butler:\n  configQRS: [unclosed\n", encoding="utf-8")
    result = run_cli("config", "check", str(broken))
    assert result.returncode == 2
    assert "not valid YAML at line" in result.stderr and "Traceback" not in result.stderr

    result = run_cli("config", "check", cwd=tmp_path)  # no FILE, no ./config.yaml
    assert result.returncode == 2
    assert result.stderr == (
        "error: 1 configuration problem:\n  - config file config.yaml not found; pass --config"
        " FILE, set LICENSE_AGENT_CONFIG, or create config.yaml (start from"
        " config.example.yaml)\n"
    )


def test_the_example_config_checks_out(example_config: Path) -> None:
    result = run_cli("config", "check", str(example_config))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    assert "monitor  'every 6 hours': every day at 00:00, 06:00, 12:00, 18:00 UTC" in out
    assert "release  'every 24 hours': every day at 00:00 UTC, DRY RUN" in out
    assert "sqlite: SQLite file " in out
    assert "Butler.cert.clientCert: ./sim-certs/client.pem" in out
    assert out.rstrip().endswith("(--strict makes this an error).")


# --------------------------------------------------------------------------- in-process


def test_summary_with_jobs_next_runs_plugins_and_destinations(
    make_config: Callable[..., Path], cli_certs: Path
) -> None:
    config = load_config(make_config(MONITOR_AND_RELEASE))
    host = build_plugin_host(config)
    now = datetime(2026, 3, 5, 13, 7, 22, tzinfo=timezone.utc)  # a Thursday
    lines = summary_lines(config, host, now)
    text = "\n".join(lines)
    assert lines[0] == f"Config {config.source}"
    assert (
        "QRS          https://sense.example.com:4242 as UserDirectory=INTERNAL; UserId=sa_api"
        " (TLS with the client certificate; server certificate verified)"
    ) in lines
    assert "Jobs         (times in UTC; each job also runs once at start: yes)" in lines
    assert (
        "             monitor  'every 6 hours': every day at 00:00, 06:00, 12:00, 18:00 UTC"
    ) in lines
    assert (
        "                      next: 2026-03-05 18:00, 2026-03-06 00:00, 2026-03-06 06:00" in lines
    )
    assert (
        "             release  'every weekday at 7:00 pm': Monday to Friday at 19:00 UTC, DRY RUN"
    ) in lines
    # Thursday 19:00, Friday 19:00, then Monday (not the weekend).
    assert (
        "                      next: 2026-03-05 19:00, 2026-03-06 19:00, 2026-03-09 19:00" in lines
    )
    assert "Release      dry run (nothing is released); professional unused for 45 days" in lines
    assert "             safety limit: at most 25 per type and run; 4 deletes in parallel" in lines
    assert any(line.startswith("Plugins      ") and "professional" in line for line in lines)
    assert (
        "Destinations jsonl: JSON lines on standard output; receives license_monitor, license_release,"
        " server_license"
    ) in lines
    assert "Warnings" not in text


def test_check_exit_codes_for_missing_certificates(
    make_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_config(MONITOR_AND_RELEASE, certs="./missing")
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Files\n  - Butler.cert.clientCert: ./missing/client.pem (resolved to" in out
    assert "The config is valid, but 3 files are missing or unusable" in out

    assert main(["config", "check", "--strict", str(path)]) == 2
    assert "The config is invalid: 3 files are missing or unusable." in capsys.readouterr().out


def test_check_does_not_create_the_log_file(
    make_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_config(
        "  licenseAgent:\n    logging:\n      file: logs/agent.log\n      json: true\n"
    )
    assert main(["config", "check", str(path)]) == 0
    assert not (tmp_path / "logs").exists()
    assert capsys.readouterr().out.rstrip().endswith("The config is valid.")


def test_check_with_real_certificates_is_clean(
    make_config: Callable[..., Path], cli_certs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", "--strict", str(make_config(MONITOR_AND_RELEASE))]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("The config is valid.")
    assert "Files" not in out and "Warnings" not in out


def test_check_finds_the_config_like_every_command(
    make_config: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = make_config()
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    monkeypatch.delenv("LICENSE_AGENT_CONFIG", raising=False)

    assert main(["config", "check", "--config", str(path)]) == 0
    assert main(["config", "check", "-c", str(path)]) == 0
    monkeypatch.setenv("LICENSE_AGENT_CONFIG", str(path))
    assert main(["config", "check"]) == 0
    monkeypatch.delenv("LICENSE_AGENT_CONFIG")
    (other / "config.yaml").write_text(path.read_text(), encoding="utf-8")
    assert main(["config", "check"]) == 0
    outputs = capsys.readouterr().out.split("The config is valid.")
    assert f"Config {path}" in outputs[0]
    assert f"Config {other / 'config.yaml'}" in outputs[3]


def test_check_prints_warnings(
    make_config: Callable[..., Path], cli_certs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = make_config(
        MONITOR_AND_RELEASE.replace("releaseThresholdDays: 45", "releaseThresholdDays: 3")
    )
    path.write_text(
        path.read_text().replace(
            "    host: sense.example.com\n",
            "    host: sense.example.com\n    rejectUnauthorized: false\n",
        )
    )
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\nWarnings\n  - " in out
    assert "releaseThresholdDays is 3: under 7 days" in out
    assert "Butler.configQRS.rejectUnauthorized is false" in out
    assert (
        "QRS          https://sense.example.com:4242 as" in out
        and "server certificate NOT verified)" in out
    )


def test_check_never_prints_secrets(
    make_config: Callable[..., Path],
    cli_certs: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_INFLUX_TOKEN", "env-token-9876543210")
    path = make_config(
        MONITOR_AND_RELEASE
        + """\
  influxDb:
    enable: true
    version: 2
    org: acme
    bucket: senseops
    token: ${env:TEST_INFLUX_TOKEN}
    auth:
      enable: true
      username: joe
      password: file-password-123
"""
    )
    assert main(["config", "check", "--log-level", "DEBUG", str(path)]) == 0
    captured = capsys.readouterr()
    assert "env-token-9876543210" not in captured.out + captured.err
    assert "file-password-123" not in captured.out + captured.err
    assert (
        "Butler.influxDb.enable is true but no feature's destination.influxDb.enable is true,"
        " so nothing is written to InfluxDB"
    ) in captured.out


def test_check_reports_a_broken_plugin_and_still_passes(
    make_config: Callable[..., Path], cli_certs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugins = cli_certs.parent / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("raise RuntimeError('boom')\n")
    path = make_config(
        MONITOR_AND_RELEASE.replace(
            "  licenseAgent:\n", "  licenseAgent:\n    plugins:\n      paths: [./plugins]\n"
        )
    )
    assert main(["config", "check", str(path)]) == 0
    assert "failed to load: broken (RuntimeError: boom)" in capsys.readouterr().out


def test_check_with_strict_plugin_loading_stops_on_a_broken_plugin(
    make_config: Callable[..., Path], cli_certs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``licenseAgent.plugins.strict``: a plugin that fails to load is a configuration error,
    on the error stream as every other command's ``error:`` line (escaped, secrets masked)."""
    plugins = cli_certs.parent / "plugins"
    plugins.mkdir()
    (plugins / "broken.py").write_text("raise RuntimeError('boom\\x1b[2J')\n")
    path = make_config(
        MONITOR_AND_RELEASE.replace(
            "  licenseAgent:\n",
            "  licenseAgent:\n    plugins:\n      paths: [./plugins]\n      strict: true\n",
        )
    )
    assert main(["config", "check", str(path)]) == 2
    captured = capsys.readouterr()
    assert "The config is valid" not in captured.out
    assert captured.err.startswith("error: 1 configuration problem"), captured.err
    assert "plugin broken" in captured.err and "failed to load" in captured.err
    assert "\x1b" not in captured.err and "boom\\x1b[2J" in captured.err


def test_config_schema_prints_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()
    target = tmp_path / "schema.json"
    assert main(["config", "schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text(encoding="utf-8")) == json_schema()


def test_config_without_an_action_shows_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 2
    assert "check" in capsys.readouterr().out


def test_warnings_are_shown_with_the_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 16 item 3: the warning about configQrs explains the error about configQRS.
    path = tmp_path / "config.yaml"
    path.write_text(
        "Butler:\n"
        "  configQrs:\n    host: sense.example.com\n"
        "  cert:\n    clientCert: a.pem\n    clientCertKey: b.pem\n    clientCertCA: c.pem\n"
        "  qlikSenseLicense:\n    licenseMonitor:\n      enable: true\n",
        encoding="utf-8",
    )
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Butler.configQRS: required key is missing; the file has 'configQrs' here" in err
    assert "warnings:\n  - Butler.configQrs: unknown key, ignored; did you mean 'configQRS'?" in err


def test_check_lists_each_plugin_with_what_it_was_given(
    example_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["config", "check", str(example_config)])
    out = capsys.readouterr().out
    assert "tag reads qlikSenseLicense.licenseRelease.neverRelease.tag = 2 items" in out
    assert (
        "flags reads qlikSenseLicense.licenseRelease.neverRelease: inactive = ignore,"
        " blocked = ignore, removedExternally = ignore"
    ) in out
    assert "sqlite reads licenseAgent.destinations.sqlite = enabled" in out
    assert (
        "professional reads qlikSenseLicense.licenseRelease.licenseType.professional = enabled"
        in out
    )
