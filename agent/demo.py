"""``license-agent demo``: the agent's main job on a simulated site, in one command.

The demo starts the bundled QRS simulator in this process (a generated site of a few thousand
users, mutual TLS with its own certificates, a free port) and writes a complete config for it
into a working folder. Then it builds a believable history: it drives the simulator's clock
through the last :data:`HISTORY_DAYS` days, one simulated day of use at a time
(:mod:`agent.simulator.activity`), with a license monitor run every 6 hours into the SQLite
history and, from the middle of the period on, a daily release run that releases for real on the
simulated site (the admin has read the dry runs and switched ``dryRun`` off), so the report has
lines and release bars. Finally it runs, at the real time, the very commands a user would:
``monitor --once``, ``release --once --dry-run --report`` (nothing is deleted), and ``report``
for the HTML page; each goes through :func:`agent.cli.main`, so the demo shows exactly what those
commands print and cannot drift from them. ``--keep-running`` then hands the same config to
``license-agent run``, the real scheduler, until Ctrl+C.

Running it again in the same folder is safe: the config is rewritten (only if the demo wrote
it), the certificates are reused, the history, the agent's state and the reports are replaced.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO

from agent.simulator.agent_config import DEMO, HISTORY_FILE, STATE_DIR, agent_config_yaml
from agent.simulator.certs import CertPaths

#: The first line of every config the demo writes; a config without it is never overwritten.
MARKER = "# Written by `license-agent demo`"
DEFAULT_DIR = Path("demo")
DEFAULT_USERS = 3000
#: Days of simulated history before today's runs.
HISTORY_DAYS = 60
#: Hours (UTC) of each simulated day's monitor runs: `every 6 hours`, as in production.
MONITOR_HOURS = (0, 6, 12, 18)
#: Hour (UTC) of each simulated day's release run.
RELEASE_HOUR = 3


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
        return self.root / HISTORY_FILE

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def decisions(self) -> Path:
        return self.root / "release-report.json"

    @property
    def html(self) -> Path:
        return self.root / "report.html"

    def replaced(self) -> list[Path]:
        """What a new run replaces: the history (with SQLite's working files), the agent's
        state and the reports. Files of earlier demo versions in the folder itself too."""
        history = [self.sqlite.with_name(self.sqlite.name + s) for s in ("", "-wal", "-shm")]
        older = [self.root / "outbox.sqlite", *self.root.glob("release-*.lock")]
        older += [self.root / f"outbox.sqlite{s}" for s in ("-wal", "-shm")]
        older += list(self.root.glob("release-*.journal.sqlite*"))
        return [*history, self.state, self.decisions, self.html, *older]


def config_text(port: int, users: int, certs: CertPaths, folder: Path) -> str:
    """The demo's config: the simulator's written config with the demo's marker and pace.

    Paths are relative (to the config's folder), so the folder can be moved or zipped.
    """
    return agent_config_yaml(
        host="127.0.0.1",
        port=port,
        certs=certs,
        folder=folder,
        users=users,
        header=f"{MARKER}; running the demo again overwrites it.",
        pace=DEMO,
    )


def check_folder(paths: DemoPaths) -> None:
    """Refuse a folder whose ``config.yaml`` the demo did not write (it is someone's config)."""
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


def write_config(paths: DemoPaths, port: int, users: int, certs: CertPaths) -> None:
    """Write the demo config, refusing to replace a config the demo did not write."""
    check_folder(paths)
    text = config_text(port, users, certs, paths.root)
    paths.config.write_text(text, encoding="utf-8")


def clear_previous_run(paths: DemoPaths) -> None:
    """Remove what an earlier demo run left (call after :func:`check_folder`)."""
    for path in paths.replaced():
        try:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise DemoError(f"cannot replace {path} of an earlier demo run: {exc}") from None


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
    days: int = HISTORY_DAYS,
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
    check_folder(paths)
    clear_previous_run(paths)
    config = _shown(paths.config)
    print(
        f"license-agent demo: a simulated Qlik Sense site with {users:,} users;"
        " no Sense server or database needed.",
        file=out,
    )
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    first_day = today - timedelta(days=days)
    simulator = Simulator(users=users, seed=seed, cert_dir=paths.certs, port=0, now=first_day)
    try:
        simulator.start()
    except (CertificateError, OSError) as exc:
        raise DemoError(f"cannot start the QRS simulator: {exc}") from None
    try:
        assert simulator.certs is not None
        write_config(paths, simulator.port, users, simulator.certs)
        print(f"QRS simulator listening on {simulator.url} (mutual TLS)", file=out)
        print(f"config written to {config}", file=out)
        codes = []
        if days:
            _heading(
                out,
                f"History: the last {days} days, simulated: a monitor run every 6 hours and a"
                " release run every day (dryRun: false on the simulated site)",
            )
            history = build_history(simulator, paths, days=days, seed=seed, log_level=log_level)
            print(history.describe(), file=out)
            codes.append(0 if history.ok else 1)
        # Today, at the real time: the commands exactly as a user types them.
        simulator.set_now(None)
        level = ["--log-level", log_level]
        _heading(out, f"License monitor: license-agent monitor --once -c {config}")
        codes.append(run_command(["monitor", "--once", "-c", str(paths.config), *level]))
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
        report_argv = ["report", "-c", str(paths.config), "--out", str(paths.html)]
        _heading(out, f"HTML report: license-agent report -c {config} --out {_shown(paths.html)}")
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


@dataclass
class History:
    """What :func:`build_history` did."""

    days: int
    monitor_runs: int = 0
    release_runs: int = 0
    released: int = 0
    failed: list[str] | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        text = (
            f"{self.monitor_runs:,} monitor runs and {self.release_runs} release runs"
            f" ({self.released:,} allocations released on the simulated site) in the history"
        )
        return text + "".join(f"\nerror: {why}" for why in self.failed or ())


def _ticking(start: datetime) -> Callable[[], datetime]:
    """A clock for a simulated release run: ``start``, then 20 ms later at every call."""
    calls = iter(range(1 << 30))
    return lambda: start + timedelta(milliseconds=20 * next(calls))


def build_history(
    simulator: object, paths: DemoPaths, *, days: int, seed: int, log_level: str = "WARNING"
) -> History:
    """Drive ``simulator`` (a started :class:`~agent.simulator.Simulator`, its clock at the
    first day's midnight) through ``days`` days with the agent's own monitor and release runs.

    The runs use the agent's core as ``license-agent run`` does (config, plugins, QRS client
    over mutual TLS, outbox and SQLite destination), with the simulated time as their clock.
    The site is one where the agent has been releasing for a while: a release run the day
    before the history (not recorded) clears the backlog of the generated site, and every day's
    run releases for real (it is the simulated site), so the report shows a steady trickle.
    """
    from agent.delivery import Delivery
    from agent.logging import setup_logging
    from agent.monitor import run_monitor
    from agent.plugins import build_plugin_host, load_config
    from agent.qrs import QrsClient
    from agent.release import run_release
    from agent.simulator import Simulator
    from agent.simulator.activity import SiteActivity

    assert isinstance(simulator, Simulator)
    config = load_config(paths.config)
    setup_logging(config, level=log_level)
    (site,) = config.sites()
    releasing = site.model_copy(
        update={"license_release": site.license_release.model_copy(update={"dry_run": False})}
    )
    activity = SiteActivity(seed)
    history = History(days=days, failed=[])
    host = build_plugin_host(config)
    delivery = Delivery.from_config(config, host)
    first_day = simulator.now()

    def release(moment: datetime, sink: Delivery | None) -> None:
        simulator.set_now(moment)
        result = run_release(
            config, releasing, host, qrs, delivery=sink, now=moment, clock=_ticking(moment)
        )
        if sink is not None:
            history.release_runs += 1
            history.released += len(result.events)
        if not result.ok:
            history.failed.append(f"the release run of {moment:%Y-%m-%d} failed")  # type: ignore[union-attr]

    try:
        with QrsClient(site) as qrs:
            release(first_day - timedelta(days=1), None)  # the backlog, before the history
            for day in range(days):
                midnight = first_day + timedelta(days=day)
                if day:
                    simulator.load_state(activity.day(simulator.state, midnight))
                for hour in sorted({*MONITOR_HOURS, RELEASE_HOUR}):
                    moment = midnight + timedelta(hours=hour)
                    if hour == RELEASE_HOUR:
                        release(moment, delivery)
                    if hour in MONITOR_HOURS:
                        simulator.set_now(moment)
                        monitored = run_monitor(
                            site, qrs, host, delivery, now=moment, config=config
                        )
                        history.monitor_runs += 1
                        if monitored.error:
                            history.failed.append(monitored.error)  # type: ignore[union-attr]
            # The rest of today, up to the real time of the last steps.
            simulator.load_state(activity.day(simulator.state, datetime.now(timezone.utc)))
    finally:
        delivery.close()
        host.shutdown(config)
    return history


def _summary(out: TextIO, paths: DemoPaths, seconds: float) -> None:
    rows = [
        (paths.config, "the agent config the demo used (simulator connection, rules, SQLite)"),
        (
            paths.sqlite,
            "the license history; the report reads it (sqlite3: SELECT * FROM license_usage)",
        ),
        (paths.decisions, "every decision of the dry run and its reasons (JSON)"),
        (paths.html, "the HTML report: open it in a browser"),
        (paths.state, "the agent's working files: outbox, release journal and run log, locks"),
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


__all__ = [
    "DemoError",
    "DemoPaths",
    "History",
    "build_history",
    "check_folder",
    "config_text",
    "run_demo",
    "write_config",
]
