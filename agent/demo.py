"""``license-agent demo``: the agent's main job on a simulated site, in one command.

The demo starts the bundled QRS simulator in this process (a generated site of a few thousand
users, mutual TLS with its own certificates, a free port), writes a complete config for it into
a working folder, and then runs the very commands a user would: ``monitor --once`` into the
SQLite destination, ``release --once --dry-run --report`` (nothing is deleted), and ``report``
for the HTML page. Each step goes through :func:`agent.cli.main`, so the demo shows exactly what
those commands print and cannot drift from them. ``--keep-running`` then hands the same config
to ``license-agent run``, the real scheduler, until Ctrl+C.

Running it again in the same folder is safe: the config is rewritten (only if the demo wrote
it), the certificates are reused, the history grows by one snapshot, the reports are replaced.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

#: The first line of every config the demo writes; a config without it is never overwritten.
MARKER = "# Written by `license-agent demo`"
DEFAULT_DIR = Path("demo")
DEFAULT_USERS = 3000


class DemoError(Exception):
    """The demo cannot run (its folder is not usable); the message says what to do."""


@dataclass(frozen=True)
class DemoPaths:
    """Where the demo keeps each file, under one folder."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def certs(self) -> Path:
        return self.root / "sim-certs"

    @property
    def sqlite(self) -> Path:
        return self.root / "license-agent.sqlite"

    @property
    def decisions(self) -> Path:
        return self.root / "release-report.json"

    @property
    def html(self) -> Path:
        return self.root / "report.html"


def config_text(port: int, users: int) -> str:
    """The demo's config: a commented, complete example pointed at the simulator.

    Paths are relative (to the config's folder), so the folder can be moved or zipped.
    """
    return f"""{MARKER}; running the demo again overwrites it.
# A complete sense-license-agent config for the bundled QRS simulator ({users:,} generated
# users). Copy it as a starting point: point configQRS and cert at your Sense server (see the
# README), keep dryRun: true until the decision report shows what you expect.
---
Butler:
  configQRS:
    host: 127.0.0.1                   # the simulator; it listens only while the demo runs
    port: {port}
    useSSL: true
    rejectUnauthorized: true
    headers:
      static:
        - name: X-Qlik-User
          value: UserDirectory=INTERNAL; UserId=sa_api
  cert:                               # the simulator's certificates, as the QMC exports them
    clientCert: sim-certs/client.pem
    clientCertKey: sim-certs/client_key.pem
    clientCertCA: sim-certs/root.pem
  influxDb:
    enable: false                     # the demo keeps its history in SQLite instead

  qlikSenseLicense:
    licenseMonitor:
      enable: true
      frequency: every 1 minutes      # demo pace for --keep-running; in production: every 6 hours
      destination:
        influxDb:
          enable: false
    licenseRelease:
      enable: true
      dryRun: true                    # decide and report, delete nothing
      frequency: every 5 minutes      # demo pace; in production: every 24 hours
      maxReleasesPerRun: 50%          # safety limit: a run that would release more of a type
                                      # than this releases none of it
      neverRelease:
        user:
          - userDir: INTERNAL
            userId: sa_repository
          - userDir: INTERNAL
            userId: sa_api
          - userDir: ADMIN
            userId: qs_admin_account
        tag:
          - License do not release
          - some other tag
        customProperty:
          - name: LicenseManage
            value: do-not-release
        userDirectory:
          - INTERNAL
          - ADMIN
        inactive: Ignore
        blocked: Ignore
        removedExternally: Ignore
      licenseType:
        professional:
          enable: true
          releaseThresholdDays: 30
        analyzer:
          enable: true
          releaseThresholdDays: 30
      destination:
        influxDb:
          enable: false

  licenseAgent:
    runAtStart: false                 # the demo has just run both jobs once
    destinations:
      sqlite:
        enable: true
        path: license-agent.sqlite
      jsonl:
        enable: false
"""


def write_config(paths: DemoPaths, port: int, users: int) -> None:
    """Write the demo config, refusing to replace a config the demo did not write."""
    target = paths.config
    if target.exists():
        try:
            first = target.read_text(encoding="utf-8-sig").split("\n", 1)[0]
        except (OSError, UnicodeDecodeError):
            first = ""
        if not first.startswith(MARKER):
            raise DemoError(
                f"{target} exists and was not written by the demo; the demo will not overwrite"
                " it. Choose another folder with --dir"
            )
    target.write_text(config_text(port, users), encoding="utf-8")


def _shown(path: Path) -> str:
    """A path as the user should type it: relative to the current folder when it is inside."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _heading(out: TextIO, text: str) -> None:
    print(f"\n== {text}", file=out)
    out.flush()


def run_demo(
    directory: Path = DEFAULT_DIR,
    *,
    users: int = DEFAULT_USERS,
    seed: int = 1,
    keep_running: bool = False,
    log_level: str = "WARNING",
    out: TextIO | None = None,
    run_command: Callable[[Sequence[str]], int],
) -> int:
    """Run the demo; returns the exit code (0 when every step did its job).

    :param run_command: runs one ``license-agent`` command line and returns its exit code. The
        CLI passes its own ``main``, so each step is exactly the command it stands for, with the
        output the user would see; this module sits below the CLI and never imports it.
    """
    from agent.simulator import CertificateError, Simulator

    out = out or sys.stdout
    started = time.monotonic()
    paths = DemoPaths(Path(directory))
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"cannot create the demo folder {paths.root}: {exc}") from None
    config = _shown(paths.config)
    print(
        f"license-agent demo: a simulated Qlik Sense site with {users:,} users;"
        " no Sense server or database needed.",
        file=out,
    )
    simulator = Simulator(users=users, seed=seed, cert_dir=paths.certs, port=0)
    try:
        simulator.start()
    except (CertificateError, OSError) as exc:
        raise DemoError(f"cannot start the QRS simulator: {exc}") from None
    try:
        write_config(paths, simulator.port, users)
        print(f"QRS simulator listening on {simulator.url} (mutual TLS)", file=out)
        print(f"config written to {config}", file=out)
        level = ["--log-level", log_level]
        _heading(out, f"License monitor: license-agent monitor --once -c {config}")
        codes = [run_command(["monitor", "--once", "-c", str(paths.config), *level])]
        decisions = _shown(paths.decisions)
        _heading(
            out,
            f"License release, dry run: license-agent release --once --dry-run"
            f" -c {config} --report {decisions}",
        )
        codes.append(
            run_command(
                [
                    "release",
                    "--once",
                    "--dry-run",
                    "-c",
                    str(paths.config),
                    "--report",
                    str(paths.decisions),
                    *level,
                ]
            )
        )
        report_argv = [
            "report",
            "--db",
            str(paths.sqlite),
            "--decisions",
            str(paths.decisions),
            "--out",
            str(paths.html),
        ]
        _heading(
            out,
            "HTML report: license-agent report"
            f" --db {_shown(paths.sqlite)} --decisions {decisions} --out {_shown(paths.html)}",
        )
        codes.append(run_command(report_argv))
        out.flush()
        _summary(out, paths, time.monotonic() - started)
        if keep_running and not any(codes):
            print(
                "\nRunning the schedule (license-agent run): a monitor run every minute, a dry"
                " release run every 5 minutes. Press Ctrl+C to stop.",
                file=out,
            )
            out.flush()
            codes.append(run_command(["run", "-c", str(paths.config), "--log-level", "INFO"]))
            codes.append(run_command(report_argv))
        return 1 if any(codes) else 0
    finally:
        simulator.stop()


def _summary(out: TextIO, paths: DemoPaths, seconds: float) -> None:
    rows = [
        (paths.config, "the agent config the demo used (simulator connection, rules, SQLite)"),
        (
            paths.sqlite,
            "the license history; the report reads it (sqlite3: SELECT * FROM license_usage)",
        ),
        (paths.decisions, "every decision of the dry run and its reasons (JSON)"),
        (paths.html, "the HTML report: open it in a browser"),
        (
            paths.certs,
            "the simulator's CA and client certificates (root.pem, client.pem, client_key.pem)",
        ),
    ]
    width = max(len(_shown(path)) for path, _ in rows)
    print(f"\nDone in {seconds:.1f} s. Files:", file=out)
    for path, what in rows:
        print(f"  {_shown(path).ljust(width)}  {what}", file=out)
    print(
        "\nThe simulator stops with the demo, so the config works only while it runs;"
        " `license-agent demo --keep-running` keeps both going.",
        file=out,
    )


__all__ = ["DemoError", "DemoPaths", "config_text", "run_demo", "write_config"]
