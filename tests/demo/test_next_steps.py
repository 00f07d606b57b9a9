"""The README's next steps, exactly as written, against a running simulator.

The README tells a newcomer to start ``license-agent simulator ... --write-config`` in one
terminal and to run four commands in another. Each command is taken from the README and run
as a real ``license-agent`` process; the simulator is a real process too.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def readme_steps() -> tuple[list[str], list[list[str]]]:
    """The simulator command and the commands of the second terminal, from the README."""
    text = README.read_text(encoding="utf-8")
    section = text.split("**Next: your own config", 1)[1].split("<!-- END quickstart -->", 1)[0]
    blocks = re.findall(r"```console\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 2, "the README's next steps: one simulator block, one of commands"
    (simulator,) = [shlex.split(line) for line in blocks[0].splitlines() if line.strip()]
    commands = [shlex.split(line) for line in blocks[1].splitlines() if line.strip()]
    return simulator, commands


def license_agent(argv: list[str], cwd: Path, **options) -> subprocess.CompletedProcess:
    assert argv[0] == "license-agent", argv
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LICENSE_AGENT_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "agent", *argv[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **options,
    )


@pytest.fixture
def simulator_from_readme(tmp_path):
    simulator, _ = readme_steps()
    assert simulator[:2] == ["license-agent", "simulator"] and "--write-config" in simulator
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # A free port instead of 4242 (tests run side by side); everything else as written.
    argv = [*simulator[1:], "--port", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", *argv],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on https://"), line if line else process.stderr.read()
        yield tmp_path
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_the_readme_next_steps_run_end_to_end(simulator_from_readme):
    folder = simulator_from_readme
    _, commands = readme_steps()
    assert [c[1] for c in commands] == ["config", "monitor", "release", "report"]
    done = {c[1]: license_agent(c, folder) for c in commands}
    for name, result in done.items():
        assert result.returncode == 0, f"{name}: {result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr

    assert "The config is valid." in done["config"].stdout
    assert "release  'every 24 hours'" in done["config"].stdout
    # The monitor run is in the SQLite history.
    history = folder / "license-agent.sqlite"
    with closing(sqlite3.connect(history)) as conn:
        stored = dict(
            conn.execute(
                "SELECT license_type, allocated FROM license_usage"
                " WHERE license_type IN ('professional', 'analyzer')"
            ).fetchall()
        )
    assert stored["professional"] > 500 and stored["analyzer"] > 200
    # The dry run decided with the example's rules and released nothing.
    report = json.loads((folder / "release-report.json").read_text(encoding="utf-8"))
    assert report["run"]["dry_run"] is True and report["run"]["events"] == 0
    decisions = report["decisions"]
    assert sum(d["decision"] == "would_release" for d in decisions) > 100
    rules = {r["rule"] for d in decisions if d["decision"] == "kept" for r in d["reasons"]}
    assert rules >= {"user", "tag", "customProperty", "userDirectory"}
    # The report found both without being told where they are.
    assert f"decisions from {folder / 'release-report.json'}" in done["report"].stdout
    assert "note:" not in done["report"].stderr
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "Would release (dry run)" in page
    assert not list(folder.glob("*.sqlite-wal"))  # the report leaves no SQLite working file


def test_write_config_never_overwrites_a_config_it_did_not_write(tmp_path):
    mine = tmp_path / "config.yaml"
    mine.write_text("Butler:\n  configQRS:\n    host: sense.example.com\n", encoding="utf-8")
    done = license_agent(
        ["license-agent", "simulator", "--port", "0", "--write-config", str(mine)], tmp_path
    )
    assert done.returncode == 2
    assert "was not written by --write-config" in done.stderr
    assert mine.read_text(encoding="utf-8").startswith("Butler:")
