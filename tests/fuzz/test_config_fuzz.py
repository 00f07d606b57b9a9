"""Fuzz the config loader: whatever the YAML, the result is a usable config or a ConfigError.

Random YAML documents, random mutations of ``config.example.yaml`` (as data and as text) go
through :func:`agent.plugins.parse_config` / :func:`agent.plugins.load_config` and through
``license-agent config check``. A valid result must also survive what the agent does with a
config at start (jobs, warnings, sites, destinations); an invalid one must be one
:class:`ConfigError` (exit code 2), never another exception or a traceback.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli import main
from agent.config import AgentConfig, ConfigError
from agent.config_warnings import config_warnings, enabled_destinations
from agent.jobs import jobs_from_config
from agent.plugins import load_config, parse_config

from .strategies import JSON_VALUES, NASTY_TEXT, mutated

EXAMPLE_PATH = Path(__file__).resolve().parents[2] / "config.example.yaml"
EXAMPLE_TEXT = EXAMPLE_PATH.read_text(encoding="utf-8")
EXAMPLE = yaml.safe_load(EXAMPLE_TEXT)
ENV = {"INFLUX_TOKEN": "t0ken-from-env", "INFLUX_PASSWORD": "pw-from-env"}

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def use(config: AgentConfig) -> None:
    """What the agent does with a config before its first run; none of it may raise."""
    jobs_from_config(config)
    config_warnings(config)
    enabled_destinations(config)
    for site in config.sites():
        site.static_tags("license_monitor")
        site.static_tags("license_release")
        site.qrs.base_url  # noqa: B018 - a property that formats host and port
        site.qrs.qlik_user  # noqa: B018
    config.license_release.license_type.enabled()
    limits = config.license_release.max_releases_per_run
    if limits is not None:
        limits.limit_for(100)
    config.state_dir  # noqa: B018


def check(document: Any) -> AgentConfig | None:
    try:
        config = parse_config(document, source=EXAMPLE_PATH, env=ENV)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError lists at least one problem"
        assert all(isinstance(p, str) and p.strip() for p in exc.problems)
        assert str(exc)
        return None
    use(config)
    return config


def test_the_example_itself_is_valid() -> None:
    assert check(EXAMPLE) is not None


@FUZZ
@given(JSON_VALUES)
def test_random_documents(document: Any) -> None:
    check(document)


@FUZZ
@given(st.dictionaries(NASTY_TEXT, JSON_VALUES, max_size=3).map(lambda d: {"Butler": d}))
def test_random_butler_sections(document: Any) -> None:
    check(document)


@FUZZ
@given(mutated(EXAMPLE, max_mutations=5))
def test_mutations_of_the_example(document: Any) -> None:
    check(document)


@FUZZ
@given(
    mutated(
        {
            "Butler": {
                "qlikSenseLicense": EXAMPLE["Butler"]["qlikSenseLicense"],
                "licenseAgent": EXAMPLE["Butler"]["licenseAgent"],
            }
        },
        max_mutations=3,
    )
)
def test_mutations_of_the_feature_sections(document: Any) -> None:
    check(document)


text_edits = st.lists(
    st.tuples(
        st.integers(0, len(EXAMPLE_TEXT)),
        st.integers(0, 20),
        st.text(alphabet=" \t\n:-#'\"{}[]&*!|>%@`,?~\\aZ09é東", max_size=8),
    ),
    min_size=1,
    max_size=4,
)


def _edit(text: str, edits: list[tuple[int, int, str]]) -> str:
    for position, cut, insert in edits:
        position = min(position, len(text))
        text = text[:position] + insert + text[position + cut :]
    return text


@FUZZ
@given(text_edits)
def test_text_mutations_of_the_example_file(edits: list[tuple[int, int, str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(_edit(EXAMPLE_TEXT, edits), encoding="utf-8")
        try:
            config = load_config(path)
        except ConfigError as exc:
            assert exc.problems and str(exc)
            return
        use(config)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(EXAMPLE, max_mutations=3), text_edits))
def test_config_check_exits_0_or_2_and_never_shows_a_traceback(case: Any) -> None:
    import contextlib
    import io

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yaml"
        if isinstance(case, list):
            path.write_text(_edit(EXAMPLE_TEXT, case), encoding="utf-8")
        else:
            path.write_text(yaml.safe_dump(case, allow_unicode=True), encoding="utf-8")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["config", "check", str(path)])
    assert code in (0, 2), (code, err.getvalue()[-2000:])
    assert "Traceback" not in out.getvalue() + err.getvalue()
    if code == 2:
        assert "error" in (out.getvalue() + err.getvalue()).lower()
