"""Logging: level precedence, the rotating file, JSON lines, and secrets masked everywhere."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from loguru import logger

from agent.config import AgentConfig
from agent.logging import MASK, mask_secrets, register_secret, resolve_level, setup_logging
from agent.plugins import load_config, parse_config


def config_with(text: str = "") -> AgentConfig:
    return parse_config(yaml.safe_load("Butler:\n" + text) if text else {"Butler": {}})


# --------------------------------------------------------------------------- level


@pytest.mark.parametrize(
    ("flag", "agent_level", "butler_level", "expected"),
    [
        ("ERROR", "debug", "silly", "ERROR"),  # --log-level wins
        (None, "warning", "silly", "WARNING"),  # then licenseAgent.logging.level
        (None, "warn", None, "WARNING"),
        (None, None, "verbose", "DEBUG"),  # then Butler.logLevel, winston names mapped
        (None, None, "silly", "TRACE"),
        (None, None, "error", "ERROR"),
        (None, None, None, "INFO"),  # then INFO
        (None, None, "chatty", "INFO"),  # an unknown Butler level falls back
    ],
)
def test_level_precedence(
    flag: str | None, agent_level: str | None, butler_level: str | None, expected: str
) -> None:
    text = ""
    if butler_level:
        text += f"  logLevel: {butler_level}\n"
    if agent_level:
        text += f"  licenseAgent:\n    logging:\n      level: {agent_level}\n"
    assert resolve_level(config_with(text), flag) == expected
    assert resolve_level(None, flag) == (flag or "INFO")


def test_the_level_filters_what_is_written(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(config_with("  logLevel: verbose\n"))
    logger.trace("trace-line")
    logger.debug("debug-line")
    err = capsys.readouterr().err
    assert "debug-line" in err and "trace-line" not in err

    setup_logging(config_with("  logLevel: verbose\n"), level="WARNING")
    logger.info("info-line")
    logger.warning("warning-line")
    err = capsys.readouterr().err
    assert "warning-line" in err and "info-line" not in err


def test_an_unknown_butler_level_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(config_with("  logLevel: chatty\n"))
    assert "Butler.logLevel 'chatty' is not a level the agent knows; using INFO" in (
        capsys.readouterr().err
    )


# --------------------------------------------------------------------------- file, rotation, JSON


def test_log_file_with_rotation_and_retention(write_config: Callable, tmp_path: Path) -> None:
    path = write_config(
        """
        Butler:
          licenseAgent:
            logging:
              level: debug
              file: logs/agent.log
              rotation: 500 B
              retention: 2
        """
    )
    config = load_config(path)
    setup_logging(config)
    for n in range(60):
        logger.info("line {} with some padding to fill the file quickly", n)
    logger.remove()  # closes the file

    files = sorted((tmp_path / "logs").iterdir())
    # The current file plus at most two rotated ones (retention: 2 files).
    assert 2 <= len(files) <= 3
    assert all(f.stat().st_size < 1000 for f in files)
    current = (tmp_path / "logs" / "agent.log").read_text(encoding="utf-8")
    assert "line 59 with some padding" in current
    assert " | INFO     | " in current


def test_json_lines_to_the_file(write_config: Callable, tmp_path: Path) -> None:
    path = write_config(
        """
        Butler:
          licenseAgent:
            logging:
              file: agent.jsonl
              json: true
        """
    )
    setup_logging(load_config(path))
    logger.bind(site="prod").warning("disk {} full", "C:")
    logger.remove()
    [line] = (tmp_path / "agent.jsonl").read_text(encoding="utf-8").splitlines()
    record = json.loads(line)["record"]
    assert record["message"] == "disk C: full"
    assert record["level"]["name"] == "WARNING"
    assert record["extra"] == {"site": "prod"}


def test_json_lines_to_stderr_without_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(config_with("  licenseAgent:\n    logging:\n      json: true\n"))
    logger.info("hello")
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["record"]["message"] == "hello"


# --------------------------------------------------------------------------- secrets

SECRETS_CONFIG = """\
  influxDb:
    enable: true
    version: 2
    org: acme
    bucket: senseops
    token: influx-token-0123456789
    auth:
      enable: true
      username: joe
      password: p@ss w0rd!
  licenseAgent:
    logging:
      file: agent.log
    plugins:
      settings:
        teams:
          webhookApiKey: teams-key-abcdef
          channel: licenses
"""


def test_config_secrets_never_reach_any_sink(
    write_config: Callable, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging(load_config(write_config("Butler:\n" + SECRETS_CONFIG)))
    logger.info("token influx-token-0123456789 and password p@ss w0rd!")
    logger.info("url http://influx:8086/write?u=joe&p=p%40ss%20w0rd%21&db=x")
    logger.info("plugin key teams-key-abcdef, channel licenses")
    logger.bind(token="influx-token-0123456789").info("bound")
    logger.info("header Authorization: Token abcdef0123456789; next")
    logger.info("sent Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig to the API")
    logger.remove()
    out = capsys.readouterr().err + (tmp_path / "agent.log").read_text(encoding="utf-8")
    for secret in (
        "influx-token-0123456789",
        "p@ss w0rd!",
        "p%40ss%20w0rd%21",
        "teams-key-abcdef",
        "abcdef0123456789",
        "eyJhbGciOiJIUzI1NiJ9",
    ):
        assert secret not in out, secret
    assert f"token {MASK} and password {MASK}" in out
    assert f"&p={MASK}&db=x" in out
    assert "channel licenses" in out  # ordinary settings are left alone
    assert f"Authorization: {MASK}; next" in out
    assert f"Bearer {MASK} to the API" in out


def test_secrets_are_masked_in_json_lines_and_exceptions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Built at run time, so the traceback's source lines do not contain it.
    secret = "-".join(["exception", "secret", "42"])
    register_secret(secret)
    config = parse_config(
        yaml.safe_load(
            "Butler:\n  licenseAgent:\n    logging:\n      json: true\n      file: a.jsonl\n"
        ),
        source=tmp_path / "config.yaml",
    )
    setup_logging(config)
    local_value = "-".join(["a", "local", "value"])  # diagnose=False: locals never printed
    try:
        try:
            raise KeyError(f"inner {secret}")
        except KeyError as inner:
            # With loguru's diagnose=True the traceback would print local_value's value here.
            raise ConnectionError("login with " + secret + " failed " + local_value[:1]) from inner
    except ConnectionError:
        logger.exception("QRS call failed")
    logger.remove()
    text = (tmp_path / "a.jsonl").read_text(encoding="utf-8")
    assert secret not in text
    assert local_value not in text
    record = json.loads(text.splitlines()[0])
    assert record["record"]["exception"]["type"] == "ConnectionError"
    assert record["record"]["exception"]["value"] == f"login with {MASK} failed a"
    assert f"KeyError: 'inner {MASK}'" in record["text"]
    assert f"ConnectionError: login with {MASK} failed a" in record["text"]
    assert secret not in capsys.readouterr().err


def test_short_values_are_not_treated_as_secrets() -> None:
    register_secret("abc")  # would garble every line containing "abc"
    register_secret("")
    register_secret(None)
    assert mask_secrets("abc is fine") == "abc is fine"
    register_secret("long-enough")
    assert mask_secrets("x long-enough y") == f"x {MASK} y"
