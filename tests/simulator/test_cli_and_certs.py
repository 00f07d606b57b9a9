"""The command line (as a subprocess) and certificate generation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from agent.simulator import CertificateError, ensure_certs
from agent.simulator.cli import parse_fault

from .helpers import XRF

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.simulator", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_cli_serves_prints_one_line_and_writes_config(tmp_path: Path) -> None:
    config = tmp_path / "agent.yaml"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "agent.simulator", "--port", "0", "--users", "40", "--seed", "3",
            "--cert-dir", str(tmp_path / "certs"), "--write-config", str(config),
            "--fault", "error@GET /qrs/about;status=503;count=1", "--latency-ms", "1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on https://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        text = config.read_text(encoding="utf-8")
        assert text.startswith("# Written by `license-agent simulator --write-config`")
        try:
            import yaml
        except ImportError:  # pragma: no cover
            pass
        else:
            document = yaml.safe_load(text)
            qrs_config = document["Butler"]["configQRS"]
            assert qrs_config == {
                "host": "127.0.0.1",
                "port": port,
                "useSSL": True,
                "rejectUnauthorized": True,
                "headers": {
                    "static": [
                        {"name": "X-Qlik-User", "value": "UserDirectory=INTERNAL; UserId=sa_api"}
                    ]
                },
            }
            cert = document["Butler"]["cert"]
            # Inside the config's folder: relative to it, as the agent reads them.
            assert cert["clientCertCA"] == "certs/root.pem"
            assert all((config.parent / cert[key]).is_file() for key in cert)
        session = requests.Session()
        session.trust_env = False
        session.cert = (
            str(tmp_path / "certs" / "client.pem"),
            str(tmp_path / "certs" / "client_key.pem"),
        )
        session.verify = str(tmp_path / "certs" / "root.pem")
        headers = {"X-Qlik-Xrfkey": XRF, "X-Qlik-User": "UserDirectory=INTERNAL; UserId=sa_api"}
        url = f"https://127.0.0.1:{port}"
        assert (
            session.get(
                f"{url}/qrs/about", params={"xrfkey": XRF}, headers=headers, timeout=5
            ).status_code
            == 503
        )
        count = session.get(
            f"{url}/qrs/user/count", params={"xrfkey": XRF}, headers=headers, timeout=5
        )
        assert count.json() == {"value": 40}
    finally:
        process.send_signal(signal.SIGTERM if hasattr(signal, "SIGTERM") else signal.SIGINT)
        out, _err = process.communicate(timeout=10)
    assert out == ""  # nothing after the listening line
    assert process.returncode == 0


def test_cli_dump_state_exits(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    result = run_cli(
        "--users", "25", "--seed", "9", "--now", "2026-06-01T12:00:00Z", "--dump-state", str(target)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    document = json.loads(target.read_text(encoding="utf-8"))
    assert len(document["users"]) == 25 and document["now"] == "2026-06-01T12:00:00Z"
    again = tmp_path / "again.json"
    result = run_cli("--state", str(target), "--dump-state", str(again))
    assert result.returncode == 0, result.stderr
    reloaded = json.loads(again.read_text(encoding="utf-8"))
    assert reloaded["users"] == document["users"]
    assert reloaded["professionalaccesstype"] == document["professionalaccesstype"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--state", "no-such-file.json"), "cannot read"),
        (("--fault", "explode"), "ACTION@PATTERN"),
        (("--fault", "boom@GET *"), "action"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    result = run_cli("--port", "0", "--cert-dir", str(tmp_path), *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_parse_fault() -> None:
    assert parse_fault("hang@GET /qrs/user*;seconds=1.5;count=2") == {
        "action": "hang",
        "match": "GET /qrs/user*",
        "seconds": 1.5,
        "count": 2,
    }
    assert parse_fault('{"match": "*", "action": "reset"}') == {"match": "*", "action": "reset"}


def test_ensure_certs_writes_the_qmc_names_once(tmp_path: Path) -> None:
    paths = ensure_certs(tmp_path / "c")
    names = {p.name for p in (tmp_path / "c").iterdir()}
    assert {"root.pem", "client.pem", "client_key.pem", "server.pem", "server_key.pem"} <= names
    if os.name == "posix":
        assert (paths.client_key.stat().st_mode & 0o777) == 0o600
    before = paths.client_cert.read_bytes()
    ensure_certs(tmp_path / "c")
    assert paths.client_cert.read_bytes() == before
    paths.server_cert.unlink()  # a missing piece is re-issued by the same CA
    ensure_certs(tmp_path / "c")
    assert paths.server_cert.exists() and paths.client_cert.read_bytes() == before


def test_ensure_certs_cannot_issue_without_the_ca_key(tmp_path: Path) -> None:
    paths = ensure_certs(tmp_path)
    (tmp_path / "root_key.pem").unlink()
    paths.server_cert.unlink()
    with pytest.raises(CertificateError, match="root_key.pem"):
        ensure_certs(tmp_path)


def test_server_certificate_names(tmp_path: Path) -> None:
    from cryptography import x509

    paths = ensure_certs(tmp_path)
    cert = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}
