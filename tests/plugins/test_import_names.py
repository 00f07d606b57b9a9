"""The built-in plugins are imported by the top-level name ``plugins``; another distribution
that installs a package of that name must not quietly replace them (CONTRIBUTING.md,
"Installed import names")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_foreign_plugins_package_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    shadow = tmp_path / "other-site"
    (shadow / "plugins").mkdir(parents=True)
    (shadow / "plugins" / "__init__.py").write_text("# another distribution's package\n")
    config = tmp_path / "config.yaml"
    config.write_text("Butler:\n  logLevel: info\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-m", "agent", "config", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the top-level package 'plugins' comes from" in done.stderr
    assert str(shadow / "plugins") in done.stderr
    assert "virtual environment of its own" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_agent_and_its_plugins_are_siblings() -> None:
    import agent
    import plugins

    assert (
        Path(plugins.__file__).resolve().parent.parent
        == Path(agent.__file__).resolve().parent.parent
    )
