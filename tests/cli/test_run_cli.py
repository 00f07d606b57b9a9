"""``license-agent run``: what it refuses to start with, and a graceful stop on a signal."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent import jobs
from agent.cli import main

MONITOR = """\
  qlikSenseLicense:
    licenseMonitor:
      enable: true
      frequency: every 6 hours
  licenseAgent:
    destinations:
      jsonl:
        enable: true
"""


def test_run_with_missing_certificates_exits_2_naming_the_keys(
    make_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-c", str(make_config(MONITOR, certs="./missing"))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 3 configuration problems in ")
    assert "  - Butler.cert.clientCert: ./missing/client.pem (resolved to" in err
    assert "Traceback" not in err


def test_run_with_no_job_enabled_exits_2(
    make_config: Callable[..., Path], cli_certs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "-c", str(make_config())]) == 2
    assert (
        "Butler.qlikSenseLicense: no job is enabled, so there is nothing to run; set"
        " licenseMonitor.enable, licenseRelease.enable and/or serverLicenseMonitor.enable to true"
    ) in capsys.readouterr().err


@pytest.mark.skipif(os.name == "nt", reason="os.kill(SIGTERM) terminates a Windows process")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_loop_gracefully_with_exit_0(
    signum: int,
    make_config: Callable[..., Path],
    cli_certs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls: list[tuple[str, Any]] = []
    finished = threading.Event()

    def fake_monitor_job(config: Any, host: Any, delivery: Any = None, **options: Any) -> None:
        calls.append(("monitor", config.license_monitor.frequency))
        os.kill(os.getpid(), signum)  # as `kill` or Ctrl+C would, mid-run
        finished.set()  # the run is allowed to end before the loop returns

    monkeypatch.setattr(jobs, "run_monitor_job", fake_monitor_job)
    before = signal.getsignal(signum)

    assert main(["run", "-c", str(make_config(MONITOR))]) == 0

    assert calls == [("monitor", "every 6 hours")]  # the run at start
    assert finished.is_set()
    assert signal.getsignal(signum) == before  # handlers restored
    err = capsys.readouterr().err
    assert f"{signal.Signals(signum).name} received: stopping after the running jobs finish" in err
    assert "run loop stopped" in err


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX: a signal to one thread")
def test_ctrl_c_delivered_to_another_thread_stops_the_waiting_loop() -> None:
    """The kernel may deliver a process's SIGINT or SIGTERM to any thread, such as a job's
    HTTP worker. The main thread, waiting for the next run (up to 30 s at a time), used to
    run the handler only when that wait ended: the CI saw a Ctrl+C go unanswered for 30 s.
    The loop now notices within about a second; a watchdog stops it after 15 s otherwise."""
    from agent.cli.run_cmd import stop_on_signals
    from agent.schedule import RunLoop, parse_frequency

    loop = RunLoop(run_at_start=False)
    loop.add_job("monitor", parse_frequency("every 24 hours"), lambda: None)
    waiting = threading.Event()

    def other_thread() -> None:
        waiting.wait(10)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # to this thread only

    def watchdog() -> None:
        if not finished.wait(15):
            loop.stop()  # the signal was not heard: end the test, which then fails

    finished = threading.Event()
    threads = [threading.Thread(target=other_thread), threading.Thread(target=watchdog)]
    for thread in threads:
        thread.start()
    try:
        with stop_on_signals(loop):
            threading.Timer(1.0, waiting.set).start()  # once the loop waits for its next run
            loop.run()
    finally:
        finished.set()
        for thread in threads:
            thread.join()
    assert loop._stop_signal == "SIGINT"  # stopped by the signal, not by the watchdog
