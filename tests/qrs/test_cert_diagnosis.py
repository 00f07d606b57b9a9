"""One certificate diagnosis for every command: ``config check``, ``qrs check``, ``monitor
--once``, ``release --once`` and ``run`` name the same key, the same file and the same fix for
a swapped pair, an expired or not yet valid certificate, a missing file, a file that is not
PEM and a key that is not the certificate's; none of them reaches the server."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.certificates import diagnose_client_files
from agent.cli import main
from agent.plugins import parse_config
from agent.simulator import Simulator
from agent.simulator.certs import CertPaths

from .conftest import butler_config, secret_snippets, write_config

UTC = dt.timezone.utc


def issue_client_cert(
    certs: CertPaths, folder: Path, *, not_before: dt.datetime, not_after: dt.datetime
) -> tuple[Path, Path]:
    """A client certificate signed by the simulator's CA, valid only between the two dates."""
    ca_cert = x509.load_pem_x509_certificate(certs.root_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(
        (certs.cert_dir / "root_key.pem").read_bytes(), password=None
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sa_api")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "client.pem", folder / "client_key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _copy(certs: CertPaths, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "clientCert": folder / "client.pem",
        "clientCertKey": folder / "client_key.pem",
        "clientCertCA": folder / "root.pem",
    }
    shutil.copyfile(certs.client_cert, files["clientCert"])
    shutil.copyfile(certs.client_key, files["clientCertKey"])
    shutil.copyfile(certs.root_cert, files["clientCertCA"])
    files["clientCertKey"].chmod(0o600)
    return files


# Each case: how to break the files, then the words the diagnosis must hold (with {cert},
# {key}: the paths).
def _swapped(certs: CertPaths, folder: Path) -> dict[str, str]:
    files = _copy(certs, folder)
    return {"clientCert": str(files["clientCertKey"]), "clientCertKey": str(files["clientCert"])}


def _expired(certs: CertPaths, folder: Path) -> dict[str, str]:
    now = dt.datetime.now(UTC)
    cert, key = issue_client_cert(
        certs, folder, not_before=now - dt.timedelta(days=400), not_after=now - dt.timedelta(days=3)
    )
    return {"clientCert": str(cert), "clientCertKey": str(key)}


def _not_yet_valid(certs: CertPaths, folder: Path) -> dict[str, str]:
    now = dt.datetime.now(UTC)
    cert, key = issue_client_cert(
        certs, folder, not_before=now + dt.timedelta(days=2), not_after=now + dt.timedelta(days=400)
    )
    return {"clientCert": str(cert), "clientCertKey": str(key)}


def _missing(certs: CertPaths, folder: Path) -> dict[str, str]:
    return {"clientCert": str(folder / "nowhere" / "client.pem")}


def _not_pem(certs: CertPaths, folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    pfx = folder / "client.pfx"
    pfx.write_bytes(b"\x30\x82\x05\x0a binary PKCS#12 as the Windows export writes it")
    return {"clientCert": str(pfx)}


def _other_key(certs: CertPaths, folder: Path) -> dict[str, str]:
    now = dt.datetime.now(UTC)
    _, other_key = issue_client_cert(
        certs, folder / "other", not_before=now, not_after=now + dt.timedelta(days=9)
    )
    return {"clientCertKey": str(other_key)}


CASES: dict[str, tuple[Callable[[CertPaths, Path], dict[str, str]], list[str]]] = {
    "swapped": (
        _swapped,
        [
            "Butler.cert.clientCert and Butler.cert.clientCertKey are swapped:",
            "{clientCert} holds the private key and {clientCertKey} the certificate",
        ],
    ),
    "expired": (_expired, ["Butler.cert.clientCert: {clientCert} expired on ", " UTC"]),
    "not yet valid": (
        _not_yet_valid,
        ["Butler.cert.clientCert: {clientCert} is not valid before ", "check this machine's clock"],
    ),
    "missing": (
        _missing,
        ["Butler.cert.clientCert: {clientCert} not found; copy client.pem from"],
    ),
    "not PEM": (
        _not_pem,
        ["Butler.cert.clientCert: {clientCert} is not a PEM file", "choose the PEM format"],
    ),
    "key of another certificate": (
        _other_key,
        ["Butler.cert.clientCertKey: {clientCertKey} is not the key of the certificate"],
    ),
}


def _words(case: str, paths: dict[str, str], certs: CertPaths) -> list[str]:
    full = {"clientCert": str(certs.client_cert), "clientCertKey": str(certs.client_key), **paths}
    return [w.format(**full) for w in CASES[case][1]]


def _config(sim: Simulator, certs: CertPaths, folder: Path, paths: dict[str, str]) -> Path:
    document = butler_config(sim.host, sim.port, certs, cert=paths)
    butler = document["Butler"]
    butler["qlikSenseLicense"] = {
        "licenseMonitor": {"enable": True, "frequency": "every 6 hours"},
        "licenseRelease": {
            "enable": True,
            "dryRun": False,
            "licenseType": {"professional": {"enable": True, "releaseThresholdDays": 30}},
        },
    }
    butler["licenseAgent"] = {"stateDir": str(folder / "state")}
    return write_config(folder / "config.yaml", document)


@pytest.mark.parametrize("case", list(CASES))
def test_every_command_gives_the_same_diagnosis(
    sim: Simulator,
    qrs_certs: CertPaths,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    paths = CASES[case][0](qrs_certs, tmp_path / "files")
    words = _words(case, paths, qrs_certs)
    config = _config(sim, qrs_certs, tmp_path, paths)
    commands = {
        "config check": ["config", "check", "--strict", str(config)],
        "qrs check": ["qrs", "check", "-c", str(config)],
        "monitor --once": ["monitor", "--once", "-c", str(config)],
        "release --once": ["release", "--once", "-c", str(config)],
        "run": ["run", "-c", str(config)],
    }
    said: dict[str, str] = {}
    for name, argv in commands.items():
        code = main(argv)
        captured = capsys.readouterr()
        said[name] = captured.out + captured.err
        assert code == 2, (name, said[name])
        for word in words:
            assert word in said[name], (name, word, said[name])
        assert "PEM lib" not in said[name] and "Traceback" not in said[name]
        for snippet in secret_snippets(qrs_certs):
            if snippet not in ("BEGIN", "PRIVATE KEY"):
                assert snippet not in said[name]
    assert sim.get_stats()["total"] == 0  # every command found out before any request


def test_the_diagnosis_lines_are_one_function(qrs_certs: CertPaths, tmp_path: Path) -> None:
    """``config check``'s lines are exactly what the client raises (single site, paths as
    written): no second wording anywhere."""
    paths = _swapped(qrs_certs, tmp_path)
    document = butler_config("127.0.0.1", 4242, qrs_certs, cert=paths)
    site = parse_config(document).sites()[0]
    (line,) = diagnose_client_files(site.cert)
    assert line.startswith("Butler.cert.clientCert and Butler.cert.clientCertKey are swapped")
    assert "set clientCert to the client.pem file and clientCertKey to client_key.pem" in line


def test_an_expired_certificate_names_the_expiry_date(qrs_certs: CertPaths, tmp_path: Path) -> None:
    expiry = dt.datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    cert, key = issue_client_cert(
        qrs_certs, tmp_path, not_before=expiry - dt.timedelta(days=365), not_after=expiry
    )
    document = butler_config(
        "127.0.0.1", 4242, qrs_certs, cert={"clientCert": str(cert), "clientCertKey": str(key)}
    )
    site = parse_config(document).sites()[0]

    def about_client_cert(now: dt.datetime) -> list[str]:
        # (root.pem, made today, is not valid at these dates either: a line of its own)
        lines = diagnose_client_files(site.cert, now=now)
        return [line for line in lines if line.startswith("Butler.cert.clientCert:")]

    (line,) = about_client_cert(expiry + dt.timedelta(days=1))
    assert line.startswith(f"Butler.cert.clientCert: {cert} expired on 2026-03-01 08:30 UTC")
    assert "this machine's clock says 2026-03-02 08:30 UTC" in line
    assert "export new certificates from the QMC" in line
    assert about_client_cert(expiry - dt.timedelta(days=1)) == []
