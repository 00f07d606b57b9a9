"""The offline bundle (``packaging/build_bundle.py``) installs without a network and runs.

``.ci/run`` builds the bundle into its temporary folder and names it in ``SLA_BUNDLE_DIR``;
these tests install its Linux part with ``install.sh`` (``pip --no-index``, only the bundle's
wheels, no pip configuration of this machine) into a fresh virtual environment and run
``license-agent demo`` from it. Without the variable they are skipped, and fail under ``CI``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.bundle

REPO = Path(__file__).resolve().parents[2]


def _bundle_build() -> object:
    # The build script is not a module of the agent: load it from its file.
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "sla_build_bundle", REPO / "packaging" / "build_bundle.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bundle() -> Path:
    value = os.environ.get("SLA_BUNDLE_DIR")
    if not value:
        message = "SLA_BUNDLE_DIR is not set: .ci/run builds the offline bundle and sets it"
        if os.environ.get("CI"):
            pytest.fail(f"{message}, and CI is set", pytrace=False)
        pytest.skip(message)
    folder = Path(value)
    if not (folder / "install.sh").is_file():
        pytest.fail(f"SLA_BUNDLE_DIR={folder} holds no bundle (install.sh missing)")
    return folder


def _clean_env(**extra: str) -> dict[str, str]:
    """This machine's environment without any pip setting, so only the bundle can serve."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.pop("PYTHONPATH", None)  # the installed agent, not this checkout
    env.pop("LICENSE_AGENT_CONFIG", None)
    return {**env, **extra}


def test_the_bundle_has_everything_for_every_target(bundle):
    build = _bundle_build()
    version = build.agent_version()
    assert bundle.name == f"sense-license-agent-{version}"
    for system, python, _platforms in build.targets():
        assert build.missing_for(bundle / "wheels", version, system, python) == [], (
            system,
            python,
        )
    names = {p.name for p in (bundle / "wheels").glob("*.whl")}
    for python in ("310", "311", "312", "313"):
        for platform in ("win_amd64", "manylinux"):
            assert any(
                n.startswith("pydantic_core-") and f"cp{python}-cp{python}" in n and platform in n
                for n in names
            ), (python, platform)
    assert any(n.startswith("colorama-") for n in names)  # loguru's Windows-only dependency
    for name in ("install.sh", "install.ps1", "README.txt", "config.example.yaml"):
        assert (bundle / name).is_file(), name
    assert b"\r\n" in (bundle / "install.ps1").read_bytes()
    assert b"\r\n" not in (bundle / "install.sh").read_bytes()
    archive = bundle.parent / f"{bundle.name}.zip"
    with zipfile.ZipFile(archive) as zipped:
        listed = set(zipped.namelist())
    assert f"{bundle.name}/install.sh" in listed
    assert {f"{bundle.name}/wheels/{n}" for n in names} <= listed


def test_install_sh_installs_offline_and_the_demo_runs(bundle, tmp_path):
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    done = subprocess.run(
        ["sh", str(bundle / "install.sh")],
        env=_clean_env(VENV=str(venv), PYTHON=base),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "license-agent" in done.stdout
    agent = venv / "bin" / "license-agent"
    # The agent in the fresh venv is the bundle's wheel, not this checkout.
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import agent; print(agent.__file__)"],
        env=_clean_env(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert str(venv) in where.stdout, where.stdout + where.stderr
    demo = subprocess.run(
        [str(agent), "demo", "--dir", str(tmp_path / "demo"), "--users", "300"],
        env=_clean_env(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Done in" in demo.stdout
    assert (tmp_path / "demo" / "report.html").is_file()
    # The optional Prometheus extra came along.
    assert (
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import prometheus_client"], env=_clean_env()
        ).returncode
        == 0
    )


def test_install_sh_refuses_a_python_it_has_no_wheels_for(bundle, tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text("#!/bin/sh\nexec python3 -c 'import sys; sys.exit(1)'\n")
    fake.chmod(0o755)
    done = subprocess.run(
        ["sh", str(bundle / "install.sh")],
        env=_clean_env(VENV=str(tmp_path / "venv"), PYTHON=str(fake)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "CPython 3.10 to 3.13" in done.stderr
    assert not (tmp_path / "venv").exists()
