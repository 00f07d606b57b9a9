"""Say what is true about the connection: plain HTTP and an unverified server certificate are
never shown as "verified"; a host name that does not resolve fails at once, naming the host.
(A client certificate the server refuses is reported with its validity dates:
test_qrs_tls.py.)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from agent.cli import main
from agent.qrs import QrsClient, QrsConnectionError
from agent.simulator import Simulator
from agent.simulator.certs import CertPaths

from .conftest import butler_config, site_for, write_config


def _monitored(document: dict) -> dict:
    document["Butler"]["qlikSenseLicense"] = {"licenseMonitor": {"enable": True}}
    return document


def test_config_check_never_calls_plain_http_verified(
    qrs_certs: CertPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = _monitored(butler_config("sense.example.com", 4242, qrs_certs, useSSL=False))
    assert main(["config", "check", str(write_config(tmp_path / "c.yaml", document))]) == 0
    out = capsys.readouterr().out
    (qrs_line,) = [line for line in out.splitlines() if line.startswith("QRS ")]
    assert "http://sense.example.com:4242" in qrs_line
    assert "(plain HTTP: NOT encrypted, no certificates used, server NOT verified)" in qrs_line
    assert " verified)" not in qrs_line.replace("NOT verified)", "")
    assert "Butler.configQRS.useSSL is false: requests, the X-Qlik-User header and the answers" in (
        out
    )
    # The rejectUnauthorized warning would be beside the point: no TLS at all.
    assert "rejectUnauthorized is false" not in out


def test_config_check_with_an_unverified_server_certificate(
    qrs_certs: CertPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = _monitored(
        butler_config("sense.example.com", 4242, qrs_certs, rejectUnauthorized=False)
    )
    assert main(["config", "check", str(write_config(tmp_path / "c.yaml", document))]) == 0
    out = capsys.readouterr().out
    assert "(TLS with the client certificate; server certificate NOT verified)" in out
    assert "Butler.configQRS.rejectUnauthorized is false" in out


def test_qrs_check_says_what_the_connection_protects(
    sim: Simulator,
    qrs_certs: CertPaths,
    other_certs: CertPaths,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    verified = butler_config(sim.host, sim.port, qrs_certs)
    assert main(["qrs", "check", "-c", str(write_config(tmp_path / "a.yaml", verified))]) == 0
    assert "connected (TLS with the client certificate; server certificate verified)" in (
        capsys.readouterr().out
    )
    unverified = butler_config(
        sim.host,
        sim.port,
        qrs_certs,
        rejectUnauthorized=False,
        cert={"clientCertCA": str(other_certs.root_cert)},
    )
    assert main(["qrs", "check", "-c", str(write_config(tmp_path / "b.yaml", unverified))]) == 0
    captured = capsys.readouterr()
    assert "connected (TLS with the client certificate; server certificate NOT verified)" in (
        captured.out
    )
    assert "certificate verified" not in captured.out


def test_plain_http_to_the_tls_port_says_to_turn_tls_on(
    sim: Simulator,
    qrs_certs: CertPaths,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = butler_config(sim.host, sim.port, qrs_certs, useSSL=False)
    code = main(["qrs", "check", "-c", str(write_config(tmp_path / "c.yaml", document))])
    err = capsys.readouterr().err
    assert code == 1
    assert "closed the connection without answering plain HTTP" in err
    assert "set configQRS.useSSL: true" in err
    assert "gave up after" not in err  # it cannot improve by asking again
    assert "WARNING" in err and "configQRS.useSSL is false" in err and "NOT encrypted" in err


# --------------------------------------------------------------------------- host names


def _unresolvable() -> str:
    name = "no-such-sense-host.invalid"  # .invalid never resolves (RFC 6761)
    try:
        socket.getaddrinfo(name, 4242)
    except socket.gaierror:
        return name
    pytest.skip("this machine's resolver answers for .invalid names")


def test_an_unresolvable_host_fails_at_once_naming_it(
    qrs_certs: CertPaths, sleeps: list[float]
) -> None:
    host = _unresolvable()
    client = QrsClient(site_for(None, qrs_certs, host=host, retries=4), sleep=sleeps.append)
    with client, pytest.raises(QrsConnectionError) as caught:
        client.about()
    message = str(caught.value)
    assert f"the host name {host!r} (configQRS.host) does not resolve to an address" in message
    assert "nslookup" in message and "check its spelling" in message
    assert caught.value.attempts == 1 and sleeps == []  # no retry, no backoff


def test_a_resolver_that_says_try_again_is_retried(
    qrs_certs: CertPaths, sleeps: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A resolver that is down for now (EAI_AGAIN) may answer at the next attempt.
    def try_again(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", try_again)
    client = QrsClient(
        site_for(None, qrs_certs, host="sense.example.com", retries=2), sleep=sleeps.append
    )
    with client, pytest.raises(QrsConnectionError) as caught:
        client.about()
    assert "could not resolve 'sense.example.com' for now" in str(caught.value)
    assert caught.value.attempts == 3 and len(sleeps) == 2


def test_monitor_once_on_an_unresolvable_host_names_it(
    qrs_certs: CertPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _unresolvable()
    document = _monitored(butler_config(host, 4242, qrs_certs))
    document["Butler"]["licenseAgent"] = {"stateDir": str(tmp_path)}
    code = main(["monitor", "--once", "-c", str(write_config(tmp_path / "c.yaml", document))])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{host!r} (configQRS.host) does not resolve" in err
    assert "gave up after" not in err
