"""Certificates and connectivity: mutual TLS against the simulator, and the diagnoses a user
reads when a certificate, a CA or the host is wrong."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import urllib3

from agent.qrs import (
    QrsCertificateFileError,
    QrsClient,
    QrsConnectionError,
    QrsTlsError,
)
from agent.simulator import Simulator
from agent.simulator.certs import CertPaths

from .conftest import free_port, secret_snippets, site_for


def assert_no_secrets(message: str, *certs: CertPaths) -> None:
    for snippet in secret_snippets(*certs):
        assert snippet not in message


def test_connects_with_the_exported_certificates(client: QrsClient, sim: Simulator) -> None:
    about = client.about()
    assert about["buildVersion"] == sim.state.about["buildVersion"]
    assert sim.get_stats()["requests"] == {"GET /qrs/about": 1}


def test_simulator_refuses_a_connection_without_client_certificate(
    sim: Simulator, qrs_certs: CertPaths
) -> None:
    # TLS 1.3: the server judges the client certificate after the handshake; its alert
    # ("certificate required") may arrive, or be lost in the reset that closes the connection.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{sim.url}/qrs/about", verify=str(qrs_certs.root_cert), timeout=5)
    assert sim.get_stats()["total"] == 0  # no request got through


def test_client_certificate_from_another_site_is_refused_with_its_path(
    make_client: Callable[..., QrsClient], qrs_certs: CertPaths, other_certs: CertPaths
) -> None:
    client = make_client(
        cert={
            "clientCert": str(other_certs.client_cert),
            "clientCertKey": str(other_certs.client_key),
        }
    )
    with pytest.raises(QrsTlsError) as caught:
        client.about()
    message = str(caught.value)
    assert f"refused the client certificate {other_certs.client_cert}" in message
    # Its validity dates are named, not "check that they have not expired".
    assert "(Butler.cert.clientCert, valid " in message and " UTC to " in message
    assert "have not expired" not in message
    assert caught.value.status is None
    assert caught.value.attempts == 1  # a certificate problem is not retried
    assert_no_secrets(message, qrs_certs, other_certs)


def test_wrong_ca_names_the_ca_file(
    make_client: Callable[..., QrsClient],
    qrs_certs: CertPaths,
    other_certs: CertPaths,
    sleeps: list[float],
) -> None:
    client = make_client(cert={"clientCertCA": str(other_certs.root_cert)})
    with pytest.raises(QrsTlsError) as caught:
        client.about()
    message = str(caught.value)
    assert f"is not signed by {other_certs.root_cert} (Butler.cert.clientCertCA)" in message
    assert "export root.pem from the same Sense site" in message
    assert sleeps == []
    assert_no_secrets(message, qrs_certs, other_certs)


def test_host_name_not_in_the_server_certificate(
    make_sim: Callable[..., Simulator], qrs_certs: CertPaths, sleeps: list[float]
) -> None:
    # The server certificate names localhost and 127.0.0.1, not 127.0.0.2.
    try:
        other_host = make_sim(host="127.0.0.2")
    except OSError:
        pytest.skip("this OS cannot bind 127.0.0.2")
    client = QrsClient(site_for(other_host, qrs_certs), sleep=sleeps.append)
    with client, pytest.raises(QrsTlsError) as caught:
        client.about()
    message = str(caught.value)
    assert "the certificate of 127.0.0.2 does not match the host name" in message
    assert "rejectUnauthorized: false (not recommended)" in message


def test_reject_unauthorized_false_connects_and_warns_once(
    make_client: Callable[..., QrsClient],
    other_certs: CertPaths,
    log_records: list[tuple[str, str]],
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client = make_client(
            rejectUnauthorized=False, cert={"clientCertCA": str(other_certs.root_cert)}
        )
        client.about()
        client.about()
    warnings_logged = [m for level, m in log_records if level == "WARNING"]
    assert len(warnings_logged) == 1
    assert "rejectUnauthorized is false" in warnings_logged[0]
    assert "NOT verified" in warnings_logged[0]
    # We said it once, in words; urllib3 must not repeat it per request.
    assert not [
        w for w in caught if issubclass(w.category, urllib3.exceptions.InsecureRequestWarning)
    ]


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("clientCert", "client.pem"),
        ("clientCertKey", "client_key.pem"),
        ("clientCertCA", "root.pem"),
    ],
)
def test_missing_certificate_file_is_named_up_front(
    sim: Simulator, qrs_certs: CertPaths, tmp_path: Path, key: str, name: str
) -> None:
    missing = tmp_path / "nowhere" / "file.pem"
    site = site_for(sim, qrs_certs, cert={key: str(missing)})
    with pytest.raises(QrsCertificateFileError) as caught:
        QrsClient(site)
    assert str(caught.value).startswith(
        f"Butler.cert.{key}: {missing} not found; copy {name} from C:\\ProgramData"
    )
    assert str(caught.value).endswith(f"and point Butler.cert.{key} at it")
    assert sim.get_stats()["total"] == 0  # found out before any request


def test_key_that_does_not_belong_to_the_certificate(
    sim: Simulator, qrs_certs: CertPaths, other_certs: CertPaths
) -> None:
    site = site_for(sim, qrs_certs, cert={"clientCertKey": str(other_certs.client_key)})
    with pytest.raises(QrsCertificateFileError) as caught:
        QrsClient(site)
    message = str(caught.value)
    assert message == (
        f"Butler.cert.clientCertKey: {other_certs.client_key} is not the key of the certificate"
        f" {qrs_certs.client_cert} (Butler.cert.clientCert); export client.pem and"
        " client_key.pem from the QMC together and use both"
    )
    assert_no_secrets(message, qrs_certs, other_certs)


def test_files_that_are_not_pem(sim: Simulator, qrs_certs: CertPaths, tmp_path: Path) -> None:
    garbage = tmp_path / "root.pem"
    garbage.write_text("this is not a certificate\n")
    for key in ("clientCertCA", "clientCert"):
        with pytest.raises(QrsCertificateFileError) as caught:
            QrsClient(site_for(sim, qrs_certs, cert={key: str(garbage)}))
        assert str(caught.value) == (
            f"Butler.cert.{key}: {garbage} is not a PEM file; export the certificates in the"
            " QMC again and choose the PEM format (not the Windows format)"
        )


def test_connection_refused_names_host_and_port_after_the_retry_budget(
    qrs_certs: CertPaths, sleeps: list[float]
) -> None:
    port = free_port()
    client = QrsClient(site_for(None, qrs_certs, port=port, retries=2), sleep=sleeps.append)
    with client, pytest.raises(QrsConnectionError) as caught:
        client.about()
    message = str(caught.value)
    assert f"cannot connect to 127.0.0.1:{port} (connection refused)" in message
    assert "Repository Service is running" in message
    assert "firewall" in message and "4242" in message
    assert "gave up after 3 attempts" in message
    assert caught.value.attempts == 3
    assert len(sleeps) == 2


def test_certificate_file_removed_after_start(
    sim: Simulator, qrs_certs: CertPaths, tmp_path: Path, sleeps: list[float]
) -> None:
    copies = {}
    for key, source in (
        ("clientCert", qrs_certs.client_cert),
        ("clientCertKey", qrs_certs.client_key),
    ):
        copies[key] = tmp_path / source.name
        copies[key].write_bytes(source.read_bytes())
    client = QrsClient(
        site_for(sim, qrs_certs, cert={k: str(v) for k, v in copies.items()}), sleep=sleeps.append
    )
    copies["clientCert"].unlink()
    with client, pytest.raises(QrsTlsError) as caught:
        client.about()
    assert str(copies["clientCert"]) in str(caught.value)
    assert "(Butler.cert)" in str(caught.value)
    assert sleeps == []
    assert_no_secrets(str(caught.value), qrs_certs)
