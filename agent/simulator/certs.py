"""Certificates for the simulator's mutual TLS.

A Qlik Sense server authenticates QRS clients by certificate: the QMC exports ``root.pem`` (the CA),
``client.pem`` and ``client_key.pem``. :func:`ensure_certs` writes a throw-away CA with those names,
plus a server certificate signed by the same CA (``server.pem``, ``server_key.pem``; SAN
``localhost``, ``127.0.0.1``, ``::1``) and the CA's key (``root_key.pem``) so that missing pieces
can be issued later. Existing files are reused, so a cert directory can be shared by many
simulators and by the agent's config. Keys are EC P-256: generation takes milliseconds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT_CERT = "root.pem"
ROOT_KEY = "root_key.pem"
CLIENT_CERT = "client.pem"
CLIENT_KEY = "client_key.pem"
SERVER_CERT = "server.pem"
SERVER_KEY = "server_key.pem"

_VALID_DAYS = 3650


class CertificateError(RuntimeError):
    """The cert directory holds an incomplete or unusable set of files."""


@dataclass(frozen=True)
class CertPaths:
    """Absolute paths of the certificate files in one cert directory."""

    cert_dir: Path
    root_cert: Path
    client_cert: Path
    client_key: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def in_dir(cls, cert_dir: Path | str) -> CertPaths:
        base = Path(cert_dir).resolve()
        return cls(
            cert_dir=base,
            root_cert=base / ROOT_CERT,
            client_cert=base / CLIENT_CERT,
            client_key=base / CLIENT_KEY,
            server_cert=base / SERVER_CERT,
            server_key=base / SERVER_KEY,
        )

    @property
    def client_pair(self) -> tuple[str, str]:
        """``(client.pem, client_key.pem)`` as strings, the shape ``requests``' ``cert=`` wants."""
        return (str(self.client_cert), str(self.client_key))


def ensure_certs(cert_dir: Path | str, extra_hostnames: tuple[str, ...] = ()) -> CertPaths:
    """Make sure ``cert_dir`` holds a CA, a client certificate and a server certificate.

    :param cert_dir: directory to use; created if missing.
    :param extra_hostnames: more DNS names or IP addresses for the server certificate's SAN
        (only used when the server certificate is created now).
    :returns: the paths of the files.
    :raises CertificateError: when a file that must be issued is missing but the CA's key
        (``root_key.pem``) is not there to sign it, e.g. a directory holding real QMC exports
        without ``server.pem``.
    """
    paths = CertPaths.in_dir(cert_dir)
    paths.cert_dir.mkdir(parents=True, exist_ok=True)
    ca_key_path = paths.cert_dir / ROOT_KEY
    need_client = not (paths.client_cert.exists() and paths.client_key.exists())
    need_server = not (paths.server_cert.exists() and paths.server_key.exists())
    if not (need_client or need_server) and paths.root_cert.exists():
        return paths

    if paths.root_cert.exists():
        if not ca_key_path.exists():
            raise CertificateError(
                f"{paths.cert_dir}: {ROOT_CERT} exists but {ROOT_KEY} does not, so the missing "
                f"client or server certificate cannot be issued; remove {ROOT_CERT} to start afresh "
                "or add the missing files"
            )
        ca_cert = x509.load_pem_x509_certificate(paths.root_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise CertificateError(f"{ca_key_path}: expected an EC private key")
    else:
        ca_cert, ca_key = _make_ca()
        _write(ca_key_path, _key_pem(ca_key), private=True)
        _write(paths.root_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
        need_client = need_server = True

    if need_client:
        cert, key = _make_leaf(ca_cert, ca_key, "QlikClient", server=False, names=("QlikClient",))
        _write(paths.client_key, _key_pem(key), private=True)
        _write(paths.client_cert, cert.public_bytes(serialization.Encoding.PEM))
    if need_server:
        names = ("localhost", "127.0.0.1", "::1", *extra_hostnames)
        cert, key = _make_leaf(ca_cert, ca_key, "localhost", server=True, names=names)
        _write(paths.server_key, _key_pem(key), private=True)
        _write(paths.server_cert, cert.public_bytes(serialization.Encoding.PEM))
    return paths


def _make_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "QRS Simulator CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sense-license-agent"),
        ]
    )
    now = dt.datetime.now(dt.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    server: bool,
    names: tuple[str, ...],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    san: list[x509.GeneralName] = []
    for entry in dict.fromkeys(names):
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(entry)))
        except ValueError:
            san.append(x509.DNSName(entry))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write atomically; private files get mode 0o600 where the OS has POSIX modes."""
    tmp = path.with_name(path.name + ".tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    if private:
        with contextlib.suppress(OSError):  # pragma: no cover - filesystems without modes
            os.chmod(tmp, 0o600)
    os.replace(tmp, path)
