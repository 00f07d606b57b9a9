"""Hostile and mistaken config files (issue 13, item 5): each ends in a clear error and exit 2.

Every attack here went through before: a repeated ``dryRun`` key silently ran live, a "billion
laughs" file in a section the agent ignores took gigabytes, deep nesting and huge integers gave
tracebacks, ``true`` became the number 1, broken ``${env:...}`` references passed as text and a
URL passed as the QRS host. The attacks run through the real command line in subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent.config import ConfigError
from agent.config_compose import compose_model
from agent.config_yaml import (
    MAX_ALIASES,
    MAX_DEPTH,
    MAX_EXPANDED_VALUES,
    MAX_FILE_BYTES,
    YamlError,
    parse_yaml,
)
from agent.plugins import builtin_sections, load_config, parse_config

# A release config that would delete for real: only the repeated dryRun key stands in the way.
RELEASE = """\
Butler:
  configQRS:
    host: {host}
    port: {port}
    headers:
      static:
        - name: X-Qlik-User
          value: UserDirectory=INTERNAL; UserId=sa_api
  cert:
    clientCert: {certs}/client.pem
    clientCertKey: {certs}/client_key.pem
    clientCertCA: {certs}/root.pem
  qlikSenseLicense:
    licenseRelease:
      enable: true
      dryRun: true
      maxReleasesPerRun: 1000
      licenseType:
        professional:
          enable: true
          releaseThresholdDays: 30
      dryRun: false
  licenseAgent:
    stateDir: {state}
"""


def _limit_memory() -> None:  # pragma: no cover - runs in the child process
    # The attack used to take 3.2 GB: a failing run must hit this ceiling, not the machine's.
    import resource

    ceiling = 1536 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (ceiling, ceiling))


def agent(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})}
    environment.pop("LICENSE_AGENT_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        cwd=cwd,
        env=environment,
        preexec_fn=_limit_memory if os.name == "posix" else None,  # noqa: PLW1509
    )


def refused(result: subprocess.CompletedProcess) -> str:
    """The error text of a run that must have ended in exit 2 with no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr[-3000:])
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.stderr.startswith("error: "), result.stderr[:3000]
    return result.stderr


def minimal(extra: str) -> str:
    """A valid config with ``extra`` (YAML under ``Butler:``, indented two spaces)."""
    return "Butler:\n  logLevel: info\n" + textwrap.indent(textwrap.dedent(extra), "  ")


# --------------------------------------------------------------------------- repeated keys


def test_a_repeated_key_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(RELEASE.format(host="h", port=4242, certs="c", state="s"), "utf-8")
    stderr = refused(agent("config", "check", str(path), cwd=tmp_path))
    assert (
        "Butler.qlikSenseLicense.licenseRelease.dryRun: the key is written twice, at line 16"
        " and at line 22" in stderr
    ), stderr


def test_a_repeated_dry_run_key_never_releases(tmp_path: Path) -> None:
    from agent.simulator import Simulator, ensure_certs
    from tests.reliability.helpers import build_site, deletes, real_now

    certs = ensure_certs(tmp_path / "certs")
    now = real_now()
    with Simulator(build_site(4, now=now).document, cert_dir=certs.cert_dir, now=now) as sim:
        path = tmp_path / "config.yaml"
        path.write_text(
            RELEASE.format(host="127.0.0.1", port=sim.port, certs=certs.cert_dir, state=tmp_path),
            "utf-8",
        )
        stderr = refused(agent("release", "--once", "-c", str(path), cwd=tmp_path))
        assert "dryRun: the key is written twice" in stderr
        assert deletes(sim) == 0
        assert sim.get_stats()["total"] == 0  # refused before QRS was asked anything


def test_repeated_keys_are_reported_with_every_other_problem() -> None:
    document = parse_yaml("a:\n  b: 1\n  b: 2\n  c:\n    - {x: 1, x: 2}\na: 3\n")
    assert document.data == {"a": 3}
    assert document.problems == [
        "a: the key is written twice, at line 1 and at line 6; YAML would keep only the last"
        " one, so remove the one you do not mean",
        "a.b: the key is written twice, at line 2 and at line 3; YAML would keep only the last"
        " one, so remove the one you do not mean",
        "a.c[0].x: the key is written twice, at line 5 and at line 5; YAML would keep only the"
        " last one, so remove the one you do not mean",
    ]


def test_merge_keys_may_override_what_they_merge() -> None:
    # `<<: *base` then an explicit key is YAML's way to override, not a repeated key.
    document = parse_yaml("base: &base {x: 1, y: 2}\nother:\n  <<: *base\n  x: 3\n")
    assert document.problems == []
    assert document.data["other"] == {"x": 3, "y": 2}


# --------------------------------------------------------------------------- aliases and size


def _laughs(levels: int, section: str = "mqttConfig") -> str:
    lines = [f"  {section}:", '    lol0: &lol0 "lol"']
    for n in range(1, levels + 1):
        lines.append(f"    lol{n}: &lol{n} [{', '.join([f'*lol{n - 1}'] * 10)}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_in_an_ignored_section_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(minimal("") + _laughs(9), "utf-8")
    assert path.stat().st_size < 1000  # a billion strings from under a kilobyte
    stderr = refused(agent("config", "check", str(path), cwd=tmp_path))
    assert "aliases" in stderr and f"at most {MAX_ALIASES}" in stderr


def test_aliases_that_expand_too_far_are_refused_below_the_alias_count() -> None:
    text = _laughs(5)  # 50 aliases, a hundred thousand values
    assert text.count("*") <= MAX_ALIASES
    with pytest.raises(YamlError) as refused_:
        parse_yaml("Butler:\n" + text)
    assert f"at most {MAX_EXPANDED_VALUES} are allowed" in refused_.value.problems[0]
    parse_yaml("Butler:\n" + _laughs(3))  # a thousand: fine


def test_a_few_anchors_load_as_before() -> None:
    text = "tags: &tags [a, b]\n" + "".join(f"k{n}: *tags\n" for n in range(MAX_ALIASES))
    assert parse_yaml(text).data["k7"] == ["a", "b"]
    with pytest.raises(YamlError, match=f"more than {MAX_ALIASES} aliases"):
        parse_yaml(text + "one_more: *tags\n")


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(minimal("mqttConfig: &loop\n  again: *loop\n"), "utf-8")
    stderr = refused(agent("config", "check", str(path), cwd=tmp_path))
    assert "an alias refers to the section that contains it" in stderr


def test_a_file_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    filler = ("# " + "x" * 1000 + "\n") * (MAX_FILE_BYTES // 1000)
    path.write_text(minimal("") + filler, "utf-8")
    assert path.stat().st_size > MAX_FILE_BYTES
    stderr = refused(agent("config", "check", str(path), cwd=tmp_path))
    assert "larger than 1024 KB" in stderr


# --------------------------------------------------------------------------- nesting, integers


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("mqttConfig: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than"),
        ("".join("  " * n + f"k{n}:\n" for n in range(400)) + "  " * 400 + "x: 1\n", "nested"),
        ("? 1" + "0" * 5000 + "\n: x\n", "is too large"),
        ("? 0x" + "f" * 5000 + "\n: x\n", "is too large"),
        ("mqttConfig:\n  port: 1" + "0" * 5000 + "\n", "is too large"),
    ],
    ids=["flow-lists", "sections", "decimal-key", "hex-key", "value"],
)
def test_deep_nesting_and_huge_integers_are_a_clear_error(
    extra: str, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(minimal(extra), "utf-8")
    stderr = refused(agent("config", "check", str(path), cwd=tmp_path))
    assert expected in stderr and "line" in stderr


def test_nesting_through_aliases_is_bounded() -> None:
    deep = "a: &a " + "[" * (MAX_DEPTH - 2) + "1" + "]" * (MAX_DEPTH - 2) + "\n"
    parse_yaml(deep)
    with pytest.raises(YamlError, match="once its aliases are expanded"):
        parse_yaml(deep + "b: [[[[[*a]]]]]\n")


# --------------------------------------------------------------------------- values


def _numeric_keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key of the config models that takes only numbers, as a path of aliases."""
    from agent.config import _branches, _is_number

    found = []
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        key = (*prefix, info.alias or name)
        branches = _branches(info.annotation)
        if any(map(_is_number, branches)) and bool not in branches:
            found.append(key)
        for branch in branches:
            if isinstance(branch, type) and issubclass(branch, BaseModel):
                found += _numeric_keys(branch, key)
            # list[SiteSettings] holds items at [0]; dict[str, X] holds them under any key.
            item = 0 if typing.get_origin(branch) is list else "anyName"
            for arg in typing.get_args(branch):
                if isinstance(arg, type) and issubclass(arg, BaseModel) and arg is not model:
                    found += [(*key, item, *rest[len(key) :]) for rest in _numeric_keys(arg, key)]
    return found


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    node: Any = document
    for key, following in zip(path, path[1:], strict=False):
        if isinstance(key, int):
            while len(node) <= key:
                node.append({})
            node = node[key]
        else:
            node = node.setdefault(key, [] if isinstance(following, int) else {})
    node[path[-1]] = value


def test_no_numeric_key_takes_true_or_false() -> None:
    # The model of the file with the built-in plugins' settings.
    keys = _numeric_keys(compose_model(tuple(builtin_sections())))
    shown = {".".join(str(k) for k in key).replace(".0.", "[0].") for key in keys}
    # The walk found the keys of the attack and the ones beside them.
    assert {
        "Butler.qlikSenseLicense.licenseRelease.licenseType.professional.releaseThresholdDays",
        "Butler.configQRS.port",
        "Butler.influxDb.version",
        "Butler.licenseAgent.sites[0].configQRS.port",
        "Butler.qlikSenseLicense.licenseRelease.maxReleasesPerRun.percent",
    } <= shown
    for value in (True, False):
        document: dict[str, Any] = {}
        for key in keys:
            _set(document, key, value)
        with pytest.raises(ConfigError) as failure:
            parse_config(document)
        problems = "\n".join(failure.value.problems)
        for path in shown:
            assert f"{path}: got {str(value).lower()}; expected a number" in problems, path


def test_everything_wrong_at_once_is_reported_at_once(tmp_path: Path) -> None:
    """The attacks of item 5 in one file: each named, exit 2, no traceback, nothing run."""
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            Butler:
              configQRS:
                host: https://sense:4242/
                headers:
                  static:
                    - name: X-Qlik-User
                      value: UserDirectory=INTERNAL; UserId=sa_api
              cert:
                clientCert: ./client.pem
                clientCertKey: ./client_key.pem
                clientCertCA: ./root.pem
              influxDb:
                enable: true
                version: 2
                org: acme
                bucket: b
                token: ${env:${env:HOME}}
                auth:
                  password: ${env:}
              qlikSenseLicense:
                licenseRelease:
                  enable: true
                  dryRun: true
                  licenseType:
                    professional:
                      enable: true
                      releaseThresholdDays: true
                  dryRun: false
            """
        ),
        "utf-8",
    )
    for command in (("config", "check", str(path)), ("release", "--once", "-c", str(path))):
        stderr = refused(agent(*command, cwd=tmp_path))
        assert "error: 5 configuration problems in" in stderr, stderr
        for expected in (
            "licenseRelease.dryRun: the key is written twice, at line 23 and at line 28",
            "Butler.configQRS.host: got 'https://sense:4242/'; expected a host name: write the"
            " host only, e.g. sense.example.com; the port goes in configQRS.port",
            "professional.releaseThresholdDays: got true; expected a number, not true or false",
            "Butler.influxDb.token: '${env:' must be followed by a variable name",
            "Butler.influxDb.auth.password: '${env:' must be followed by a variable name",
        ):
            assert expected in stderr, (expected, stderr)
        assert os.environ.get("HOME", "/nonexistent") not in stderr.replace(str(tmp_path), "")


@pytest.mark.parametrize(
    "host", ["https://sense:4242/", "sense:4242", "sense.example.com/qrs", "sense example", ""]
)
def test_the_qrs_host_must_be_a_host_name(host: str) -> None:
    with pytest.raises(ConfigError) as failure:
        parse_config({"Butler": {"configQRS": {"host": host}}})
    assert failure.value.problems[0].startswith("Butler.configQRS.host: got")


@pytest.mark.parametrize("host", ["sense.example.com", "127.0.0.1", "[::1]", "SENSE-01", "qs_1"])
def test_host_names_and_addresses_are_accepted(host: str) -> None:
    config = parse_config({"Butler": {"configQRS": {"host": host}}})
    assert config.butler.config_qrs is not None and config.butler.config_qrs.host == host


def test_a_variable_value_is_never_read_as_a_reference() -> None:
    config = parse_config(
        {"Butler": {"influxDb": {"token": "${env:A}-${env:B}"}}},
        env={"A": "${env:B}", "B": "b"},
    )
    assert config.butler.influx_db.token == "${env:B}-b"


def test_the_seed_and_the_example_load_as_before(seed_yaml: str, example_config: Path) -> None:
    document = parse_yaml(seed_yaml)
    assert document.problems == [] and "Butler" in document.data
    assert load_config(example_config).butler is not None
