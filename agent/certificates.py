"""The certificate files a site's QRS connection uses, and what is wrong with them.

One diagnosis for every command: ``config check`` (through :func:`check_files`), ``license-agent
run`` before it starts, and the QRS client before its first request (``qrs check``,
``monitor --once``, ``release --once``) all call :func:`diagnose_client_files`, so a user reads
the same sentence whichever command met the problem: which key, which file, what is wrong, and
what to do. The checks look at the files only (PEM shape, which holds what, whether the key
belongs to the certificate, the validity dates); whether the server accepts the certificate is
the TLS handshake's to say. Messages name files and dates, never their contents.

:func:`connection_security` says in words what a ``configQRS`` block protects, for
``config check`` and ``qrs check``: plain HTTP and an unverified server certificate are named as
such, never as "verified".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PureWindowsPath

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.config import AgentConfig, Cert, ConfigQRS
from agent.config_load import written_path

EXPORT_FOLDER = r"C:\ProgramData\Qlik\Sense\Repository\Exported Certificates\.Local Certificates"
_EXPORT_HINT = "export the certificates in the QMC: Certificates > Export, PEM format"

#: (config key below ``cert``, attribute of :class:`agent.config.Cert`, QMC file name, kind)
_FILES = (
    ("clientCert", "client_cert", "client.pem", "certificate"),
    ("clientCertKey", "client_cert_key", "client_key.pem", "key"),
    ("clientCertCA", "client_cert_ca", "root.pem", "certificate"),
)


def pem_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` is not a usable PEM file of ``kind`` ("certificate" or "key"), or None."""
    text = _read(path)
    if isinstance(text, _Unreadable):
        return text.reason
    if "-----BEGIN" not in text:
        return (
            "is not a PEM file; export the certificates in the QMC again and choose the"
            " PEM format (not the Windows format)"
        )
    if kind == "key":
        if "ENCRYPTED" in text:
            return (
                "is protected by a password, which the agent cannot use; export the"
                " certificates again without a password"
            )
        if "PRIVATE KEY" not in text:
            return "holds no private key (are clientCert and clientCertKey swapped?)"
    elif "BEGIN CERTIFICATE" not in text:
        return "holds no certificate (are clientCert and clientCertKey swapped?)"
    return None


@dataclass(frozen=True)
class _Unreadable:
    reason: str


def _read(path: Path) -> str | _Unreadable:
    try:
        if path.is_dir():
            return _Unreadable("is a folder, not a file")
        return path.read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return _Unreadable("not found")
    except OSError as exc:
        return _Unreadable(f"cannot be read ({exc.strerror or exc})")


def _day(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def validity_problem(path: Path, now: datetime | None = None) -> str | None:
    """Why the PEM certificate in ``path`` is not valid at ``now`` (expired, not yet valid, not
    a readable certificate), naming the dates; ``None`` when it is valid or the file is
    unreadable (:func:`pem_problem` says that)."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except OSError:
        return None
    except ValueError as exc:
        return f"is not a readable PEM certificate ({str(exc)[:80]}); export it again as PEM"
    now = now or datetime.now(timezone.utc)
    if now > cert.not_valid_after_utc:
        return (
            f"expired on {_day(cert.not_valid_after_utc)} (this machine's clock says"
            f" {_day(now)}); export new certificates from the QMC (Certificates > Export) or,"
            " if the date is wrong, fix this machine's clock"
        )
    if now < cert.not_valid_before_utc:
        return (
            f"is not valid before {_day(cert.not_valid_before_utc)} (this machine's clock says"
            f" {_day(now)}): check this machine's clock"
        )
    return None


def validity_period(path: Path) -> str | None:
    """``valid 2025-01-01 00:00 UTC to 2035-01-01 00:00 UTC`` for a readable certificate."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    return f"valid {_day(cert.not_valid_before_utc)} to {_day(cert.not_valid_after_utc)}"


def _key_mismatch(cert_path: Path, key_path: Path) -> bool:
    """Whether the private key in ``key_path`` is not the key of ``cert_path`` (both readable
    PEM by now; anything the library cannot read is left to OpenSSL's own check)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return False
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) != key.public_key().public_bytes(*fmt)


def _swapped(cert_path: Path, key_path: Path) -> bool:
    cert_text, key_text = _read(cert_path), _read(key_path)
    if isinstance(cert_text, _Unreadable) or isinstance(key_text, _Unreadable):
        return False
    return (
        "PRIVATE KEY" in cert_text
        and "BEGIN CERTIFICATE" not in cert_text
        and "BEGIN CERTIFICATE" in key_text
        and "PRIVATE KEY" not in key_text
    )


def diagnose_client_files(
    cert: Cert,
    prefix: str = "Butler.cert",
    *,
    shown: Callable[[str, Path], str] | None = None,
    now: datetime | None = None,
    check_ca: bool = True,
) -> list[str]:
    """Every problem with one site's certificate files, one line each, as
    ``<prefix>.<key>: <path> <what is wrong>; <what to do>``.

    :param prefix: the config key of the ``cert`` block (``Butler.cert``,
        ``Butler.licenseAgent.sites[0].cert``).
    :param shown: how a path is written (``config check`` shows the path as written in the
        file and the resolved one); default: the path.
    :param now: the moment the validity dates are checked against (default: now).
    :param check_ca: whether ``clientCertCA`` is checked too (not when it is not used:
        ``rejectUnauthorized: false``).
    """
    show = shown or (lambda key, path: str(path))
    client, key = cert.client_cert, cert.client_cert_key
    if _swapped(client, key):
        return [
            f"{prefix}.clientCert and {prefix}.clientCertKey are swapped:"
            f" {show(f'{prefix}.clientCert', client)} holds the private key and"
            f" {show(f'{prefix}.clientCertKey', key)} the certificate; set clientCert to the"
            " client.pem file and clientCertKey to client_key.pem"
        ]
    problems: list[str] = []
    usable: set[str] = set()
    for name, attr, file_name, kind in _FILES if check_ca else _FILES[:2]:
        path: Path = getattr(cert, attr)
        problem = pem_problem(path, kind)
        if problem is None and kind == "certificate":
            problem = validity_problem(path, now)
        if problem is None:
            usable.add(name)
            continue
        problems.append(_line(prefix, name, file_name, path, problem, show))
    if {"clientCert", "clientCertKey"} <= usable and _key_mismatch(client, key):
        problems.append(
            f"{prefix}.clientCertKey: {show(f'{prefix}.clientCertKey', key)} is not the key of"
            f" the certificate {show(f'{prefix}.clientCert', client)} ({prefix}.clientCert);"
            " export client.pem and client_key.pem from the QMC together and use both"
        )
    return problems


def _line(
    prefix: str,
    name: str,
    file_name: str,
    path: Path,
    problem: str,
    show: Callable[[str, Path], str],
) -> str:
    key = f"{prefix}.{name}"
    line = f"{key}: {show(key, path)} {problem}"
    if problem == "not found":
        line += (
            f"; copy {file_name} from {EXPORT_FOLDER} on the Sense server (or {_EXPORT_HINT})"
            f" and point {key} at it"
        )
        if PureWindowsPath(str(path)).drive and os.name != "nt":
            line += "; this is a Windows path but this machine is not Windows"
    return line


def _needs_qrs(config: AgentConfig) -> bool:
    return config.license_monitor.enable or config.license_release.enable


def check_files(config: AgentConfig) -> list[str]:
    """Problems with the files the enabled features need (the QRS certificates, InfluxDB's CA).

    Separate from parsing so configs can be parsed where the files are absent; ``config check``
    reports these and ``license-agent run`` refuses to start with any.
    """
    problems = []
    certs: list[tuple[str, Cert]] = []
    if _needs_qrs(config):
        if config.agent.sites:
            certs = [
                (f"Butler.licenseAgent.sites[{i}].cert", site.cert)
                for i, site in enumerate(config.agent.sites)
            ]
        elif config.butler.cert is not None:
            certs = [("Butler.cert", config.butler.cert)]
    for prefix, cert in certs:
        problems += diagnose_client_files(
            cert, prefix, shown=lambda key, path: written_path(config, key, path)
        )
    influx = config.settings("influxDb") if "influxDb" in config.setting_paths() else None
    if influx is not None and influx.enable and influx.ca_cert is not None:
        problem = pem_problem(influx.ca_cert, "certificate")
        if problem is not None:
            shown = written_path(config, "Butler.influxDb.caCert", influx.ca_cert)
            problems.append(
                f"Butler.influxDb.caCert: {shown} {problem}; point it at the PEM file of the CA"
                " that signed the InfluxDB server's certificate"
            )
    return problems


# --------------------------------------------------------------------------- what TLS protects


def connection_security(qrs: ConfigQRS) -> str:
    """What the connection to QRS protects, in words: never "verified" for plain HTTP or an
    unverified server certificate (:func:`agent.config_warnings.config_warnings` says why that is bad)."""
    if not qrs.use_ssl:
        return "plain HTTP: NOT encrypted, no certificates used, server NOT verified"
    if not qrs.reject_unauthorized:
        return "TLS with the client certificate; server certificate NOT verified"
    return "TLS with the client certificate; server certificate verified"


__all__ = [
    "EXPORT_FOLDER",
    "check_files",
    "connection_security",
    "diagnose_client_files",
    "pem_problem",
    "validity_period",
    "validity_problem",
]
