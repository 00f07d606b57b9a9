"""The QRS transport: certificate auth, Xrfkey, timeouts, retries and error mapping.

:class:`QrsTransport` sends one request to one Sense site's Qlik Sense Repository Service and
knows nothing of the resources it reads or writes (that is :mod:`agent.qrs`). It authenticates
with the certificates the QMC exports (``client.pem``, ``client_key.pem``, ``root.pem``), sends a
fresh Xrfkey with every request, retries reads on transient failures (connection errors,
timeouts, 429, 5xx) with exponential backoff and jitter, and never retries requests the server
refused (400/401/403/404). Every failure is a :class:`QrsError` subclass whose message names what
to check (the certificate file, the host and port, the X-Qlik-User account); messages never hold
certificate contents or keys, and body excerpts are at most 200 characters.

A request that changes state (DELETE, POST) is not retried like a read. What is safe:

* the request never left this machine (connection refused, connect timeout) or QRS said 429
  (it did not process it): retried within the ``retries`` budget, like a read;
* the outcome is unknown (read timeout, connection reset after sending): a DELETE is retried
  **once**, and :meth:`QrsTransport.send` says so (``uncertain``), so the caller can read a 404
  on that retry as "the first attempt went through"; any other such request is not retried
  (a second POST could create a second object);
* QRS answered 5xx: not retried (it may or may not have applied it, and a struggling server
  should not get more load); the caller records a failure and the next run looks again.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import socket
import ssl
import stat
import string
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import requests
import urllib3
from loguru import logger
from requests.adapters import HTTPAdapter

from agent import __version__
from agent.certificates import diagnose_client_files, validity_period
from agent.clockskew import ServerClock, read_date_header
from agent.config import SiteConfig
from agent.logging import header_secrets, mask_secrets, register_secret
from agent.models import QrsDataError, decode_json

#: Exponential backoff: the n-th retry waits up to BASE * 2**(n-1) seconds, never more than CAP.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
#: A Retry-After longer than this is cut to it (a run should not stall for hours).
RETRY_AFTER_CAP = 120.0
BODY_EXCERPT_CHARS = 200

XRFKEY_ALPHABET = string.ascii_letters + string.digits
XRFKEY_LENGTH = 16

_SSL_LOCATION_RE = re.compile(r"\s*\(_ssl\.c:\d+\)")


# --------------------------------------------------------------------------- errors


class QrsError(Exception):
    """A QRS request failed. ``method``, ``path`` (no query string), ``status`` (``None`` when no
    HTTP answer came) and ``body_excerpt`` (at most 200 characters) say which and how."""

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        body_excerpt: str = "",
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.path = path
        self.status = status
        self.body_excerpt = body_excerpt[:BODY_EXCERPT_CHARS]
        self.attempts = attempts

    def __str__(self) -> str:
        return self.message


class QrsConnectionError(QrsError):
    """No connection to host:port (refused, unreachable, name not resolved, reset)."""


class QrsTlsError(QrsError):
    """The TLS handshake failed, or a certificate file is unusable."""


class QrsCertificateFileError(QrsTlsError):
    """A certificate file the config names is missing, unreadable or not PEM (a config error)."""


class QrsAuthError(QrsError):
    """401 or 403: not authenticated, the Xrfkey check failed, or the X-Qlik-User lacks rights."""


class QrsTimeout(QrsError):
    """QRS did not answer within the read timeout."""


class QrsProtocolError(QrsError):
    """QRS answered 2xx with a body that is not JSON or not of the expected shape."""


class QrsHttpError(QrsError):
    """Any other unexpected HTTP status (400, 404, 409, 5xx after retries...)."""


class QrsNotFoundError(QrsHttpError):
    """404: the object does not exist."""


# --------------------------------------------------------------------------- encoding


def encode_query(params: Mapping[str, Any]) -> str:
    """Percent-encode every parameter, spaces as ``%20`` (``+`` means a space only in HTML
    forms; ``%20`` means it everywhere), so ``#``, ``&``, ``'`` and UTF-8 survive intact."""
    return urlencode(
        [(k, str(v)) for k, v in params.items() if v is not None], quote_via=quote, safe=""
    )


def new_xrfkey() -> str:
    """16 random letters and digits (QRS's CSRF guard; a new one per request)."""
    # One call to the OS for the whole key: secrets.choice makes one per character, and each
    # hands the GIL to the other threads of a parallel user fetch (16 hand-overs per request).
    chars: list[str] = []
    while len(chars) < XRFKEY_LENGTH:
        # Bytes from 248 up are skipped so that every character stays equally likely (248 = 4 x 62).
        chars += [
            XRFKEY_ALPHABET[b % 62] for b in secrets.token_bytes(2 * XRFKEY_LENGTH) if b < 248
        ]
    return "".join(chars[:XRFKEY_LENGTH])


# --------------------------------------------------------------------------- the transport

# How a failed attempt may be repeated.
_NOT_SENT = "not_sent"  # nothing reached the server: connection refused, connect timeout
_UNKNOWN = "unknown"  # sent, no answer: read timeout, reset
_RETRY_STATUS = "retry_status"  # 429 or 5xx
_FINAL = "final"  # never repeat


@dataclass
class _Attempt:
    error: QrsError
    kind: str
    retry_after: float | None = None


class QrsTransport:
    """Requests to one Sense site's QRS. Thread-safe: one instance serves parallel callers.

    :param site: the site's config (``site.qrs`` for the connection, ``site.cert`` for files).
    :param session: a prepared :class:`requests.Session` (tests); the transport then mounts no
        adapter on it and does not close it.
    :param sleep: how to wait between retries (tests pass a fake).
    :param rng: randomness for the backoff jitter.
    :raises QrsCertificateFileError: when a certificate file is missing, unreadable, not PEM,
        or the key does not belong to the certificate.
    """

    def __init__(
        self,
        site: SiteConfig,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        qrs = site.qrs
        self.site = site
        self.base_url = qrs.base_url.rstrip("/")
        self.host = qrs.host
        self.port = qrs.port
        self.qlik_user = qrs.qlik_user
        self.timeout = (qrs.connect_timeout, qrs.read_timeout)
        self.retries = qrs.retries
        self._sleep = sleep
        self._rng = rng or random.Random()

        self._cert: tuple[str, str] | None = None
        self._verify: str | bool = True
        self.ca_file: Path | None = None
        self.client_cert_file = site.cert.client_cert
        self.client_key_file = site.cert.client_cert_key
        if not qrs.use_ssl:
            logger.warning(
                "configQRS.useSSL is false: requests to {} and its answers are NOT encrypted and"
                " nothing proves the server is QRS (which listens with TLS on 4242)",
                self.host,
            )
        else:
            _check_certificate_files(site, with_ca=qrs.reject_unauthorized)
            self._cert = (str(site.cert.client_cert), str(site.cert.client_cert_key))
            if qrs.reject_unauthorized:
                self.ca_file = site.cert.client_cert_ca
                self._verify = str(site.cert.client_cert_ca)
            else:
                self._verify = False
                logger.warning(
                    "configQRS.rejectUnauthorized is false: the certificate of {} is NOT"
                    " verified, so anyone between this machine and the server could pose as QRS;"
                    " set it to true and point Butler.cert.clientCertCA at the site's root.pem",
                    self.host,
                )
                # We just warned once, in words; urllib3 would warn again on every request.
                urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

        # The Date header of the latest answer and the local time it arrived (parsed only when
        # asked: server_clock); one tuple, so a parallel request replaces it whole.
        self._last_date: tuple[str | None, datetime] | None = None

        # Whether the server accepted our client certificate (see _probe_client_certificate).
        self._tls_accepted = False
        self._tls_refused: str | None = None
        self._probe_lock = threading.Lock()
        #: Requests that failed for good (after their retries): the job reports them to plugins.
        self.failed_requests = 0
        self._count_lock = threading.Lock()

        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        if self._owns_session:
            # Proxy and CA-bundle environment variables must not silently change where and
            # how we connect (REQUESTS_CA_BUNDLE would override root.pem).
            self._session.trust_env = False
            # Room for the parallel user fetch and the parallel deletes; retries are ours.
            pool = max(qrs.concurrency, site.license_release.delete_concurrency, 2)
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool, max_retries=0)
            self._session.mount("https://", adapter)
            self._session.mount("http://", adapter)
        self._session.headers.update(self._static_headers())
        # Header values are credentials (a server may echo them in an error body): masked in
        # every excerpt and log line, whether or not the command set up logging.
        for secret in header_secrets(qrs.headers.static):
            register_secret(secret)

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """The :class:`requests.Session` every request goes through."""
        return self._session

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def _static_headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/json",
            "User-Agent": f"sense-license-agent/{__version__}",
        }
        for header in self.site.qrs.headers.static:
            headers[header.name] = _header_value(header.value)
        # configQRS.qlik_user finds any spelling of the name; send one canonical header.
        for name in [n for n in headers if n.lower() == "x-qlik-user"]:
            del headers[name]
        headers["X-Qlik-User"] = _header_value(self.qlik_user)
        return headers

    def server_clock(self) -> ServerClock | None:
        """QRS's clock as the ``Date`` header of the latest answer told it, with the local time
        that answer arrived; ``None`` before any answer."""
        last = self._last_date
        return None if last is None else read_date_header(*last)

    # -- requests ------------------------------------------------------------------------------

    def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        decode: Callable[[bytes], Any] = decode_json,
        *,
        expect: type[dict[str, Any]] | type[list[Any]] | None = None,
    ) -> Any:
        """GET ``path``; the body decoded by ``decode``. A body that is not JSON, that ``decode``
        finds of the wrong shape (:class:`agent.models.QrsDataError`), or that is not a JSON
        object (``dict``) or list as ``expect`` says is a :class:`QrsProtocolError`."""
        response, _ = self.send("GET", path, params=params)
        try:
            body = decode(response.content)
        except QrsDataError as exc:
            raise QrsProtocolError(
                f"GET {path}: {exc}",
                method="GET",
                path=path,
                status=response.status_code,
                body_excerpt=short_excerpt(response.text),
            ) from None
        except ValueError:
            self._count_failure()
            excerpt = short_excerpt(response.text)
            raise QrsProtocolError(
                f"GET {path}: QRS answered {response.status_code} with a body that is not valid"
                f" JSON: {excerpt!r}",
                method="GET",
                path=path,
                status=response.status_code,
                body_excerpt=excerpt,
            ) from None
        if expect is not None and not isinstance(body, expect):
            self._count_failure()
            kind = "a JSON object" if expect is dict else "a JSON list"
            raise QrsProtocolError(
                f"GET {path}: expected {kind}, got {type(body).__name__}",
                method="GET",
                path=path,
                status=response.status_code,
                body_excerpt=short_excerpt(repr(body)),
            )
        return body

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        accept_404: bool = False,
    ) -> tuple[requests.Response, bool]:
        """Send with retries. Returns the response (2xx, or 404 with ``accept_404``) and
        whether an earlier attempt may have reached the server without us seeing its answer."""
        is_delete = method == "DELETE"
        changes_state = method != "GET"
        attempt = 0
        uncertain = False
        unknown_retries = 0
        while True:
            attempt += 1
            outcome = self._attempt(method, path, params, json_body)
            if isinstance(outcome, requests.Response):
                if outcome.status_code < 300 or (accept_404 and outcome.status_code == 404):
                    if attempt > 1:
                        logger.info("QRS {} {} succeeded after {} attempts", method, path, attempt)
                    return outcome, uncertain
                failure = self._status_failure(outcome, method, path)
            else:
                failure = outcome
            failure.error.attempts = attempt

            may_retry = (
                failure.kind in (_NOT_SENT, _UNKNOWN, _RETRY_STATUS) and attempt <= self.retries
            )
            if changes_state:
                if failure.kind == _UNKNOWN:
                    # A DELETE once only (the first may have been applied; a second finds it
                    # gone); anything else never, since a second POST could create a twin.
                    may_retry = is_delete and unknown_retries == 0 and attempt <= self.retries
                    unknown_retries += 1
                elif failure.kind == _RETRY_STATUS and failure.error.status != 429:
                    may_retry = False  # 5xx: QRS may have applied it; report, do not repeat
            if failure.kind == _UNKNOWN:
                uncertain = True
            if not may_retry:
                self._count_failure()
                raise _final(failure.error, attempt)
            delay = self._backoff(attempt, failure.retry_after)
            # Debug only: a run that finally fails logs one error naming the attempts, and QRS
            # down for hours must not flood the log with a line per retry.
            logger.debug(
                "QRS {} {} failed (attempt {} of {}): {}; retrying in {:.1f} s",
                method,
                path,
                attempt,
                1 + self.retries,
                failure.error,
                delay,
            )
            self._sleep(delay)

    def _count_failure(self) -> None:
        with self._count_lock:
            self.failed_requests += 1

    def _attempt(
        self, method: str, path: str, params: Mapping[str, Any] | None, json_body: Any
    ) -> requests.Response | _Attempt:
        xrfkey = new_xrfkey()
        query = encode_query({"xrfkey": xrfkey, **(params or {})})
        started = time.perf_counter()
        try:
            # What Session.request does, except that the query, already fully encoded, is
            # attached after preparing: requests would re-scan it byte by byte in Python, which
            # for a 2.7 KB user-chunk filter is a third of the client's CPU per request.
            prepared = self._session.prepare_request(
                requests.Request(
                    method,
                    f"{self.base_url}{path}",
                    headers={"X-Qlik-Xrfkey": xrfkey},
                    json=json_body,
                )
            )
            prepared.url = f"{prepared.url}?{query}"
            settings = self._session.merge_environment_settings(
                prepared.url, {}, None, self._verify, self._cert
            )
            response = self._session.send(
                prepared, timeout=self.timeout, allow_redirects=False, **settings
            )
        except requests.exceptions.RequestException as exc:
            return self._exception_failure(exc, method, path)
        except OSError as exc:
            # requests raises a bare OSError when a certificate file vanished since start-up.
            message = (
                f"cannot use the certificate files {self.client_cert_file}, {self.client_key_file}"
                f" (Butler.cert) for {method} {path}: {short_excerpt(str(exc))}"
            )
            return _Attempt(QrsTlsError(message, method=method, path=path), _FINAL)
        self._tls_accepted = True
        self._last_date = (response.headers.get("Date"), datetime.now(timezone.utc))
        logger.debug(
            "QRS {} {} -> {} in {:.0f} ms",
            method,
            path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), RETRY_AFTER_CAP)
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
        # "Equal jitter": at least half the step, so retries spread out but never hammer.
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    # -- error mapping -------------------------------------------------------------------------

    def _status_failure(self, response: requests.Response, method: str, path: str) -> _Attempt:
        status = response.status_code
        excerpt = short_excerpt(response.text)
        label = f"{status} {response.reason or ''}".strip()
        where = f"{method} {path}"
        common = {"method": method, "path": path, "status": status, "body_excerpt": excerpt}
        if status == 429 or status >= 500:
            retry_after = _retry_after(response.headers.get("Retry-After"))
            error = QrsHttpError(f"QRS answered {label} to {where}: {excerpt!r}", **common)
            return _Attempt(error, _RETRY_STATUS, retry_after)
        if status == 401:
            return _Attempt(
                QrsAuthError(
                    f"QRS answered 401 Unauthorized to {where}: the request was not"
                    f" authenticated. On port 4242 QRS trusts the client certificate"
                    f" {self.client_cert_file} (Butler.cert.clientCert); check it is the one"
                    " exported from this site's QMC and that configQRS.port is the QRS port"
                    " (4242), not a virtual proxy",
                    **common,
                ),
                _FINAL,
            )
        if status == 403:
            if "xsrf" in excerpt.lower() or "xrf" in excerpt.lower():
                message = (
                    f"QRS answered 403 to {where}: the Xrfkey check failed ({excerpt!r}). The"
                    " agent sends the same key as xrfkey parameter and X-Qlik-Xrfkey header;"
                    " a proxy between it and QRS may drop the header or rewrite the query"
                )
            else:
                message = (
                    f"QRS answered 403 Forbidden to {where}: the user '{self.qlik_user}'"
                    " (X-Qlik-User, set in configQRS.headers.static) lacks the rights for it;"
                    " use an account with the RootAdmin role such as"
                    " 'UserDirectory=INTERNAL; UserId=sa_api'"
                )
            return _Attempt(QrsAuthError(message, **common), _FINAL)
        if status == 404:
            return _Attempt(
                QrsNotFoundError(f"QRS answered 404 Not Found to {where}: {excerpt!r}", **common),
                _FINAL,
            )
        if 300 <= status < 400:
            target = response.headers.get("Location", "")[:100]
            message = (
                f"QRS answered {label} (a redirect to {target!r}) to {where}; check"
                " configQRS.host, port (4242 for QRS) and useSSL"
            )
            return _Attempt(QrsHttpError(message, **common), _FINAL)
        return _Attempt(
            QrsHttpError(f"QRS answered {label} to {where}: {excerpt!r}", **common), _FINAL
        )

    def _exception_failure(
        self, exc: requests.exceptions.RequestException, method: str, path: str
    ) -> _Attempt:
        where = f"{method} {path}"
        hostport = f"{self.host}:{self.port}"
        common = {"method": method, "path": path}
        chain = list(_causes(exc))
        text = " | ".join(str(e) for e in chain).lower()

        if isinstance(exc, requests.exceptions.SSLError) and not _is_eof(chain, text):
            return _Attempt(QrsTlsError(self._tls_message(chain, text), **common), _FINAL)
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return _Attempt(
                QrsConnectionError(
                    f"cannot connect to {hostport}: no answer within the connect timeout of"
                    f" {self.timeout[0]:g} s ({where}). Check that the host is up, that a firewall"
                    f" lets this machine reach port {self.port} (QRS listens on 4242), and"
                    " configQRS.host/port",
                    **common,
                ),
                _NOT_SENT,
            )
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return _Attempt(
                QrsTimeout(
                    f"QRS at {hostport} did not answer {where} within the read timeout of"
                    f" {self.timeout[1]:g} s; QRS may be overloaded (raise configQRS.readTimeout"
                    " or lower configQRS.concurrency)",
                    **common,
                ),
                _UNKNOWN,
            )
        if any(isinstance(e, urllib3.exceptions.NameResolutionError) for e in chain) or (
            "name or service not known" in text or "getaddrinfo failed" in text
        ):
            return self._resolution_failure(chain, text, method, path)
        if any(isinstance(e, urllib3.exceptions.NewConnectionError) for e in chain):
            reason = "connection refused" if "refused" in text else _short_reason(chain)
            return _Attempt(
                QrsConnectionError(
                    f"cannot connect to {hostport} ({reason}) for {where}. Check that the Qlik"
                    " Sense Repository Service is running on that host, that a firewall lets this"
                    f" machine reach port {self.port} (QRS listens on 4242), and"
                    " configQRS.host/port",
                    **common,
                ),
                _NOT_SENT,
            )
        if self._cert is None and not self.site.qrs.use_ssl and "without response" in text:
            # Plain HTTP to a TLS port: the server reads our request as a broken handshake.
            return _Attempt(
                QrsConnectionError(
                    f"{hostport} closed the connection without answering plain HTTP"
                    f" ({where}): it probably speaks TLS, as QRS does on 4242; set"
                    " configQRS.useSSL: true",
                    **common,
                ),
                _FINAL,
            )
        # A connection dropped before any answer may be a refused client certificate: with
        # TLS 1.3 the server judges it after the handshake, and its alert can be lost in the
        # reset. Ask the server directly, once per client.
        refused = self._probe_client_certificate()
        if refused is not None:
            return _Attempt(QrsTlsError(refused, **common), _FINAL)
        message = f"the connection to {hostport} broke during {where} ({_short_reason(chain)})"
        return _Attempt(QrsConnectionError(message, **common), _UNKNOWN)

    def _resolution_failure(
        self, chain: list[BaseException], text: str, method: str, path: str
    ) -> _Attempt:
        """A host name that does not resolve fails at once (asking again gives the same
        answer); only a resolver that says "try again" (EAI_AGAIN) is retried."""
        where = f"{method} {path}"
        common = {"method": method, "path": path}
        if _temporary_resolution_failure(chain, text):
            return _Attempt(
                QrsConnectionError(
                    f"the name server could not resolve {self.host!r} for now ({where});"
                    " check this machine's DNS settings and configQRS.host",
                    **common,
                ),
                _NOT_SENT,
            )
        return _Attempt(
            QrsConnectionError(
                f"the host name {self.host!r} (configQRS.host) does not resolve to an address"
                f" ({where}): check its spelling (the Sense central node's DNS name as in its"
                " certificate, e.g. sense.example.com, without https:// or a port) and that"
                " this machine's DNS server knows it (nslookup)",
                **common,
            ),
            _FINAL,
        )

    def _probe_client_certificate(self) -> str | None:
        """The TLS diagnosis if the server refuses our client certificate, else ``None``.

        A TLS 1.2 handshake carries the server's verdict on the client certificate inside the
        handshake, so one throw-away handshake answers the question for certain. Skipped once
        any request has succeeded (the certificate is fine then); the verdict is remembered.
        """
        if self._cert is None or self._tls_accepted:
            return None
        with self._probe_lock:
            if self._tls_accepted or self._tls_refused is not None:
                return self._tls_refused
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            if self._verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            else:
                context.load_verify_locations(cafile=str(self._verify))
            context.load_cert_chain(*self._cert, password=lambda: b"")
            try:
                with (
                    socket.create_connection((self.host, self.port), self.timeout[0]) as raw,
                    context.wrap_socket(raw, server_hostname=self.host),
                ):
                    pass
            except ssl.SSLError as exc:
                text = str(exc).lower()
                # "protocol version": a TLS 1.3-only server; no verdict from this probe.
                if "alert" in text and "protocol version" not in text:
                    self._tls_refused = self._tls_message([exc], text)
                    logger.debug("TLS probe of {}:{}: {}", self.host, self.port, exc)
                return self._tls_refused
            except OSError:
                return None
            self._tls_accepted = True
            return None

    def _tls_message(self, chain: list[BaseException], text: str) -> str:
        hostport = f"{self.host}:{self.port}"
        cert, key = self.client_cert_file, self.client_key_file
        if "hostname mismatch" in text or "ip address mismatch" in text:
            return (
                f"the certificate of {self.host} does not match the host name; use the name in"
                " the certificate in configQRS.host (usually the server's DNS name as shown in"
                " the QMC) or set configQRS.rejectUnauthorized: false (not recommended)"
            )
        if "certificate has expired" in text and "alert" not in text:
            return (
                f"the server certificate of {hostport} has expired (or this machine's clock is"
                " wrong); renew the Sense certificates or fix the clock"
            )
        if "certificate verify failed" in text:
            return (
                f"the server certificate of {hostport} is not signed by {self.ca_file}"
                " (Butler.cert.clientCertCA); export root.pem from the same Sense site (QMC >"
                " Certificates) and point clientCertCA at it"
                f" [{_short_reason(chain)}]"
            )
        if "key values mismatch" in text:
            return (
                f"the client key {key} does not belong to the client certificate {cert}"
                " (Butler.cert.clientCertKey / clientCert); export both from the QMC together"
            )
        period = validity_period(cert) or "validity dates unreadable"
        if "alert" in text and ("expired" in text or "not yet valid" in text):
            # The file checks found it valid by this machine's clock; the server disagrees.
            return (
                f"the server {hostport} refused the client certificate {cert}"
                f" (Butler.cert.clientCert) as out of date, although it is {period} by this"
                " machine's clock: the Sense server's clock or this machine's is wrong"
                f" [{_short_reason(chain)}]"
            )
        if "alert" in text:
            return (
                f"the server {hostport} refused the client certificate {cert}"
                f" (Butler.cert.clientCert, {period}): check that client.pem and"
                " client_key.pem were exported from the same Sense site as the server"
                f" (QMC > Certificates) and that {key} is the key of {cert}"
                f" [{_short_reason(chain)}]"
            )
        if "wrong version number" in text or "record layer failure" in text:
            return (
                f"{hostport} does not speak TLS as expected; check configQRS.port (QRS: 4242)"
                f" and configQRS.useSSL [{_short_reason(chain)}]"
            )
        return (
            f"the TLS handshake with {hostport} failed [{_short_reason(chain)}]; check the"
            f" certificate files {cert}, {key} and {self.ca_file} (Butler.cert)"
        )


# --------------------------------------------------------------------------- helpers


def _final(error: QrsError, attempts: int) -> QrsError:
    if attempts > 1:
        error.message = f"{error.message} (gave up after {attempts} attempts)"
    error.attempts = attempts
    return error


def short_excerpt(text: str) -> str:
    """One line, at most 200 characters: enough to recognise a QRS message."""
    # Masked before it is cut, so no part of a secret the server echoed can show.
    flat = mask_secrets(" ".join((text or "").split()))
    return flat if len(flat) <= BODY_EXCERPT_CHARS else flat[: BODY_EXCERPT_CHARS - 3] + "..."


def _header_value(value: str) -> str:
    # QRS reads header values as URL-encoded UTF-8; HTTP headers themselves are Latin-1.
    return "".join(c if ord(c) < 128 else quote(c, safe="") for c in value)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - time.time())


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, the urllib3 error inside it and the ssl/socket error inside that."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for nxt in (
            getattr(current, "reason", None),
            current.__cause__,
            current.__context__,
            *[a for a in getattr(current, "args", ()) if isinstance(a, BaseException)],
        ):
            if isinstance(nxt, BaseException):
                stack.append(nxt)


#: getaddrinfo's "try again later" (EAI_AGAIN; WSATRY_AGAIN on Windows): a resolver that could
#: not answer now, unlike "no such name", which asking again cannot change.
_TRY_AGAIN = {getattr(socket, "EAI_AGAIN", -3), 11002}


def _temporary_resolution_failure(chain: list[BaseException], text: str) -> bool:
    return "temporary failure" in text or any(
        isinstance(e, socket.gaierror) and e.errno in _TRY_AGAIN for e in chain
    )


def _is_eof(chain: list[BaseException], text: str) -> bool:
    # A connection closed mid-stream surfaces as an SSL "EOF" error; it is a reset, not a
    # certificate problem, and is worth retrying.
    return any(isinstance(e, ssl.SSLEOFError | ssl.SSLZeroReturnError) for e in chain) or (
        "unexpected eof" in text or "eof occurred in violation" in text
    )


def _short_reason(chain: list[BaseException]) -> str:
    """The innermost error's text without OpenSSL's source location or the URL."""
    for exc in reversed(chain):
        if isinstance(exc, ssl.SSLError | OSError) and not isinstance(
            exc, requests.exceptions.RequestException
        ):
            reason = getattr(exc, "verify_message", None) or getattr(exc, "strerror", None)
            text = reason or str(exc)
            if text:
                return short_excerpt(_SSL_LOCATION_RE.sub("", text))
    return short_excerpt(type(chain[-1]).__name__)


#: Key files already warned about in this process (the warning is for the operator, once).
_warned_keys: set[str] = set()
_warned_keys_lock = threading.Lock()


def key_file_exposure(key: Path) -> str | None:
    """Why ``key`` is readable by other users of this machine, or ``None`` (always on Windows,
    whose ACLs are not POSIX modes; the QMC export folder is protected by its own ACL)."""
    if os.name == "nt":
        return None
    try:
        mode = stat.S_IMODE(key.stat().st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"the client key {key} (Butler.cert.clientCertKey) can be read by other users of"
        f" this machine (mode {mode:04o}); whoever reads it can act as a Sense administrator:"
        f" restrict it to the agent's account (chmod 600 {key})"
    )


def _warn_key_exposure(key: Path) -> None:
    problem = key_file_exposure(key)
    if problem is None:
        return
    with _warned_keys_lock:
        if str(key) in _warned_keys:
            return
        _warned_keys.add(str(key))
    logger.warning("{}", problem)


def cert_prefix(site: SiteConfig) -> str:
    """The config key of a site's ``cert`` block, for messages."""
    return f"Butler.licenseAgent.sites[{site.name}].cert" if site.site_tag else "Butler.cert"


def _check_certificate_files(site: SiteConfig, *, with_ca: bool) -> None:
    """Refuse unusable certificate files before any request, with the diagnosis every command
    gives (:func:`agent.certificates.diagnose_client_files`), then let OpenSSL load them."""
    cert, key, ca = site.cert.client_cert, site.cert.client_cert_key, site.cert.client_cert_ca
    problems = diagnose_client_files(site.cert, cert_prefix(site), check_ca=with_ca)
    if problems:
        raise QrsCertificateFileError("; ".join(problems))
    _warn_key_exposure(key)
    asked_password = False

    def no_password() -> bytes:
        # Called only for an encrypted key. Without this callback OpenSSL would prompt on the
        # terminal (and hang a service).
        nonlocal asked_password
        asked_password = True
        return b""

    # The file checks read what the QMC writes; OpenSSL has the last word on the rest.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_cert_chain(str(cert), str(key), password=no_password)
    except ssl.SSLError as exc:
        reason = _SSL_LOCATION_RE.sub("", str(exc.reason or exc))
        if asked_password:
            message = (
                f"the client key {key} (Butler.cert.clientCertKey) is protected by a password;"
                " export the certificates from the QMC without a password"
            )
        else:
            message = (
                f"cannot use the client certificate {cert} with the key {key} ({reason}):"
                " both must be PEM files as the QMC exports them (client.pem, client_key.pem)"
            )
        raise QrsCertificateFileError(message) from None
    if not with_ca:
        return
    try:
        context.load_verify_locations(cafile=str(ca))
    except ssl.SSLError as exc:
        reason = _SSL_LOCATION_RE.sub("", str(exc.reason or exc))
        raise QrsCertificateFileError(
            f"the CA certificate {ca} (Butler.cert.clientCertCA) is not a PEM certificate"
            f" ({reason}); use root.pem as the QMC exports it"
        ) from None


__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "RETRY_AFTER_CAP",
    "QrsAuthError",
    "QrsCertificateFileError",
    "QrsConnectionError",
    "QrsError",
    "QrsHttpError",
    "QrsNotFoundError",
    "QrsProtocolError",
    "QrsTimeout",
    "QrsTlsError",
    "QrsTransport",
    "encode_query",
    "key_file_exposure",
    "new_xrfkey",
    "short_excerpt",
]
