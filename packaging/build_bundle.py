"""Build the offline bundle: the agent's wheel and every dependency's wheels, for servers
without internet access.

    python packaging/build_bundle.py [--out dist] [--no-zip]

Run it from a checkout, on any machine with Python 3.10+ and access to PyPI (Windows or
Linux). It writes ``OUT/sense-license-agent-VERSION/`` and, unless ``--no-zip``, the same as
``OUT/sense-license-agent-VERSION.zip``:

    wheels/        the agent's wheel and the wheels of its dependencies (with the
                   ``prometheus`` extra) for Windows x64 and Linux x64, CPython 3.10 to 3.13
    install.ps1    Windows: creates a virtual environment and installs from wheels/, offline
    install.sh     Linux: the same
    README.txt     how to install, and what the bundle holds
    config.example.yaml

Only standard tools: ``pip wheel`` builds the agent's wheel, ``pip download --platform ...
--python-version ... --only-binary=:all:`` fetches the wheels each target needs (so nothing is
ever built on the server), and ``pip install --dry-run --no-index`` then proves, per target,
that the folder alone satisfies the install. The last line printed is the bundle's folder.
"""

from __future__ import annotations

import argparse
import email.parser
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
NAME = "sense-license-agent"
#: The extras the bundle carries, so an offline server can switch them on.
EXTRAS = "prometheus"
PYTHON_VERSIONS = ("3.10", "3.11", "3.12", "3.13")
#: pip platform tags per target system. Linux: manylinux 2014 (glibc 2.17) and older, so
#: the wheels install on RHEL/CentOS 7 and every later x86-64 distribution.
PLATFORMS = {
    "windows": ("win_amd64",),
    "linux": (
        "manylinux2014_x86_64",
        *(f"manylinux_2_{minor}_x86_64" for minor in range(17, 4, -1)),
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
    ),
}
#: The environment markers of each system. pip evaluates a dependency's markers
#: (``colorama; sys_platform == "win32"``) on the machine it runs on, whatever --platform
#: says, so the bundle's own check below evaluates them for the target instead.
MARKERS = {
    "windows": {
        "sys_platform": "win32",
        "platform_system": "Windows",
        "os_name": "nt",
        "platform_machine": "AMD64",
    },
    "linux": {
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": "x86_64",
    },
}
SCRIPTS = ("install.sh", "install.ps1")


class BundleError(Exception):
    """The bundle could not be built; the message says which step and why."""


def _pip(*args: str, quiet: bool = True) -> None:
    command = [sys.executable, "-m", "pip", *args]
    if quiet:
        command.append("--quiet")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise BundleError(
            f"{' '.join(command[2:5])}... failed ({done.returncode}):\n"
            + (done.stderr or done.stdout)[-3000:]
        )


def agent_version() -> str:
    namespace: dict[str, str] = {}
    text = (ROOT / "agent" / "__init__.py").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("__version__"):
            exec(line, namespace)  # a single assignment of a string literal
    return namespace["__version__"]


def build_agent_wheel(wheels: Path) -> Path:
    """The agent's own wheel, built from the checkout (``pip wheel --no-deps``)."""
    _pip("wheel", "--no-deps", "--wheel-dir", str(wheels), str(ROOT))
    found = sorted(wheels.glob("sense_license_agent-*.whl"))
    if len(found) != 1:
        raise BundleError(f"expected one sense_license_agent wheel in {wheels}, found {found}")
    return found[0]


def targets() -> list[tuple[str, str, tuple[str, ...]]]:
    return [
        (system, version, platforms)
        for system, platforms in PLATFORMS.items()
        for version in PYTHON_VERSIONS
    ]


def _target_options(version: str, platforms: tuple[str, ...]) -> list[str]:
    options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", version]
    for platform in platforms:
        options += ["--platform", platform]
    return options


def download_dependencies(wheels: Path, agent_wheel: Path, version: str) -> None:
    """Every dependency's wheel for every target, into ``wheels`` (shared files once).

    ``pip download`` resolves each target; what it misses because it evaluated a marker for
    this machine (a Windows-only dependency when building on Linux) is found by
    :func:`missing_for` and downloaded in further rounds.
    """
    requirement = f"{agent_wheel}[{EXTRAS}]"
    for system, python, platforms in targets():
        print(f"  wheels for {system} x64, CPython {python}", file=sys.stderr, flush=True)
        _pip("download", "--dest", str(wheels), *_target_options(python, platforms), requirement)
        for _round in range(10):
            missing = missing_for(wheels, version, system, python)
            if not missing:
                break
            _pip(
                "download",
                "--dest",
                str(wheels),
                *_target_options(python, platforms),
                *missing,
            )
        else:
            raise BundleError(f"{system} CPython {python}: still missing {missing}")


def _packaging() -> Any:
    """The ``packaging`` library: installed, else the copy inside pip."""
    try:
        import packaging.markers
        import packaging.requirements
        import packaging.tags
        import packaging.utils

        return packaging
    except ImportError:  # pragma: no cover - pip always carries it
        from pip._vendor import packaging

        return packaging


def _requires(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as zipped:
        name = next(n for n in zipped.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(zipped.read(name).decode("utf-8"))
    return metadata.get_all("Requires-Dist") or []


def missing_for(wheels: Path, version: str, system: str, python: str) -> list[str]:
    """The requirements that ``wheels`` cannot satisfy for one target (empty: complete).

    Walks the dependencies from the agent with the extras of the bundle, evaluating markers
    for the target system and Python, and accepts a wheel only when one of its tags is
    supported there; the newest acceptable version of each is followed.
    """
    pk = _packaging()
    major, minor = (int(part) for part in python.split("."))
    supported = set(
        pk.tags.cpython_tags(python_version=(major, minor), platforms=PLATFORMS[system])
    ) | set(
        pk.tags.compatible_tags(
            python_version=(major, minor),
            interpreter=f"cp{major}{minor}",
            platforms=PLATFORMS[system],
        )
    )
    environment = {
        **MARKERS[system],
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    available: dict[str, list[tuple[Any, Path]]] = {}
    for path in wheels.glob("*.whl"):
        name, found_version, _build, wheel_tags = pk.utils.parse_wheel_filename(path.name)
        if wheel_tags & supported:
            available.setdefault(name, []).append((found_version, path))
    missing: list[str] = []
    seen: set[str] = set()
    queue = [pk.requirements.Requirement(f"{NAME}[{EXTRAS}]=={version}")]
    while queue:
        requirement = queue.pop()
        key = str(requirement)
        if key in seen:
            continue
        seen.add(key)
        name = pk.utils.canonicalize_name(requirement.name)
        fitting = [
            (v, p)
            for v, p in available.get(name, [])
            if requirement.specifier.contains(v, prereleases=True)
        ]
        if not fitting:
            missing.append(f"{requirement.name}{requirement.specifier}")
            continue
        _version, wheel = max(fitting)
        for line in _requires(wheel):
            dependency = pk.requirements.Requirement(line)
            extras = sorted(requirement.extras) or [""]
            if dependency.marker is not None and not any(
                dependency.marker.evaluate({**environment, "extra": extra}) for extra in extras
            ):
                continue
            dependency.marker = None
            queue.append(dependency)
    return sorted(set(missing))


def verify(wheels: Path, version: str) -> None:
    """Prove, per target, that ``wheels`` alone satisfies the install: the dependency walk
    with the target's markers, and ``pip install --dry-run --no-index`` (pip's resolver)."""
    with tempfile.TemporaryDirectory() as scratch:
        for system, python, platforms in targets():
            missing = missing_for(wheels, version, system, python)
            if missing:
                raise BundleError(f"{system} CPython {python}: no wheel for {missing}")
            _pip(
                "install",
                "--dry-run",
                "--ignore-installed",
                "--no-index",
                "--find-links",
                str(wheels),
                "--target",
                scratch,
                *_target_options(python, platforms),
                f"{NAME}[{EXTRAS}]=={version}",
            )


def readme(version: str) -> str:
    return f"""sense-license-agent {version}: offline bundle
=================================================

wheels/ holds the agent and every package it needs, for Windows x64 and Linux x64 with
CPython 3.10, 3.11, 3.12 or 3.13. Nothing is downloaded during the install.

Windows (PowerShell, as administrator; Python 3.10-3.13 from python.org installed):

    powershell -ExecutionPolicy Bypass -File install.ps1
    powershell -ExecutionPolicy Bypass -File install.ps1 -Target "D:\\sla\\venv" -Python "C:\\Program Files\\Python312\\python.exe"

Linux:

    sh install.sh                                   # venv in /opt/sense-license-agent/venv
    VENV=$HOME/sla-venv PYTHON=python3.12 sh install.sh

Both create a virtual environment and install sense-license-agent[{EXTRAS}]=={version}
from wheels/ with `pip install --no-index`. Then try it: `license-agent demo`, and see the
project's docs/running.md for the config, the certificates and running it as a service
(NSSM on Windows, systemd on Linux). config.example.yaml shows every key with comments.
"""


def build(out: Path, make_zip: bool = True) -> Path:
    version = agent_version()
    folder = out / f"{NAME}-{version}"
    if folder.exists():
        shutil.rmtree(folder)
    wheels = folder / "wheels"
    wheels.mkdir(parents=True)
    print(f"building the offline bundle of {NAME} {version} in {folder}", file=sys.stderr)
    agent_wheel = build_agent_wheel(wheels)
    download_dependencies(wheels, agent_wheel, version)
    verify(wheels, version)
    for script in SCRIPTS:
        text = (HERE / script).read_text(encoding="utf-8").replace("@VERSION@", version)
        # Unix line ends for the shell script, Windows ones for PowerShell.
        newline = "\r\n" if script.endswith(".ps1") else "\n"
        (folder / script).write_bytes(text.replace("\n", newline).encode("utf-8"))
    os.chmod(folder / "install.sh", 0o755)
    (folder / "README.txt").write_bytes(readme(version).replace("\n", "\r\n").encode("utf-8"))
    shutil.copyfile(ROOT / "config.example.yaml", folder / "config.example.yaml")
    if make_zip:
        archive = out / f"{folder.name}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(folder.rglob("*")):
                info = zipfile.ZipInfo.from_file(path, f"{folder.name}/{path.relative_to(folder)}")
                if path.is_dir():
                    zipped.writestr(info, b"")
                else:
                    zipped.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
        print(f"zip: {archive}", file=sys.stderr)
    count = len(list(wheels.glob("*.whl")))
    size = sum(p.stat().st_size for p in wheels.glob("*.whl")) / 1e6
    print(f"{count} wheels, {size:.0f} MB; verified for every target", file=sys.stderr)
    print(folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (dist)")
    parser.add_argument("--no-zip", action="store_true", help="only the folder, no zip")
    args = parser.parse_args(argv)
    try:
        build(args.out.resolve(), make_zip=not args.no_zip)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
