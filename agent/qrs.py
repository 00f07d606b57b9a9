"""The QRS resources the agent reads and writes: licenses, allocations, users; filters.

Everything the agent asks the Qlik Sense Repository Service goes through :class:`QrsClient`,
which names the resources and shapes the answers; how a request travels (certificates, Xrfkey,
timeouts, retries, error mapping) is :class:`agent.qrs_transport.QrsTransport`'s business. The
client fetches many users in a few chunked filter requests run in parallel. It returns the JSON
QRS sent (dicts and lists), except for the release run's two bulk reads (allocation lists and
users), which it hands to :mod:`agent.models`' bulk decoders: they turn the bytes straight into
models, or into plain JSON when an object is unusual. Every failure is a :class:`QrsError`.

DELETE is retried as :mod:`agent.qrs_transport` describes; a 404 on the retry after an attempt
whose answer never came means the first attempt went through, so it counts as
:attr:`DeleteOutcome.DELETED`. Deleting twice cannot free anything else: QRS answers 404 for a
removed allocation and leaves a quarantined one as it is.
"""

from __future__ import annotations

import enum
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import requests
from loguru import logger

from agent.clockskew import ServerClock
from agent.config import SiteConfig
from agent.models import (
    Allocation,
    Decoded,
    QrsDataError,
    User,
    decode_allocations,
    decode_json,
    decode_users,
)
from agent.qrs_transport import (
    XRFKEY_LENGTH,
    QrsAuthError,
    QrsCertificateFileError,
    QrsConnectionError,
    QrsError,
    QrsHttpError,
    QrsNotFoundError,
    QrsProtocolError,
    QrsTimeout,
    QrsTlsError,
    QrsTransport,
    encode_query,
    key_file_exposure,
    new_xrfkey,
    short_excerpt,
)

#: Users per ``id eq ... or id eq ...`` request. 50 GUIDs make a URL of about 2.7 KB.
DEFAULT_CHUNK_SIZE = 50
#: Longest URL we send. http.sys (under QRS) accepts 16 KB for the request line and headers by
#: default; half of that leaves room for headers and for proxies with smaller limits.
MAX_URL_LENGTH = 8192

_GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_RESOURCE_RE = re.compile(r"^[a-z][a-z0-9]*$")


# --------------------------------------------------------------------------- results


class DeleteOutcome(str, enum.Enum):
    #: QRS answered 204: the allocation is gone (or quarantined if used within 7 days).
    DELETED = "deleted"
    #: QRS answered 404 to the first attempt: someone else removed it already.
    NOT_FOUND = "not_found"
    #: Another 2xx (202 Accepted, 200): QRS did not confirm the removal; the caller must ask
    #: (``get_allocation``) before counting it as released.
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True)
class UserFetch:
    """The result of :meth:`QrsClient.get_users`; every requested id is in exactly one field.

    :param users: the users keyed by lower-case id.
    :param failed: lower-case id -> why it could not be fetched (its chunk failed after retries,
        QRS sent a malformed body, the id is not a GUID). These users are *unknown*, not absent.
    :param unreadable: lower-case id -> why the user QRS returned cannot be used (a field is
        null, missing or of the wrong type; the user came twice). Unknown, too.
    :param missing: ids QRS answered for but did not return: those users do not exist.
    :param requests: how many HTTP requests (chunks) the fetch needed, retries not counted.
    """

    users: dict[str, User] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    missing: frozenset[str] = frozenset()
    requests: int = 0


class ReleaseQrs(Protocol):
    """What a release run asks of QRS: :class:`QrsClient` implements it, and so must any
    stand-in (tests wrap or replace the client through exactly these calls)."""

    def list_allocations(
        self, resource: str, filter: str | None = None, *, license_type: str
    ) -> Decoded[Allocation]: ...

    def get_users(self, ids: Sequence[str]) -> UserFetch: ...

    def delete_allocation(self, resource: str, allocation_id: str) -> DeleteOutcome: ...

    #: Only asked when a DELETE was answered without a 204 (``None``: QRS answered 404).
    def get_allocation(self, resource: str, allocation_id: str) -> dict[str, Any] | None: ...

    def access_type_overview(self) -> dict[str, Any]: ...

    def server_clock(self) -> ServerClock | None: ...


def users_by_id(decoded: Decoded[User]) -> tuple[dict[str, User], dict[str, str]]:
    """The users of one answer by lower-case id, and by id why the others cannot be used.

    :raises QrsDataError: when an object has no id: who is missing could not be told.
    """
    odd: dict[str, str] = {}
    for item in decoded.unreadable:
        if item.id is None:
            raise QrsDataError("QRS returned a user object without an id in GET /qrs/user/full")
        odd[item.id.lower()] = f"QRS returned user data that cannot be read: {item.reason}"
    return {user.id.lower(): user for user in decoded.valid}, odd


# --------------------------------------------------------------------------- filters


def quote_filter_value(value: str) -> str:
    """A QRS filter string literal: ``O'Brien`` -> ``'O''Brien'``.

    Only the quote needs escaping inside the filter language; ``#``, ``&`` and non-ASCII
    characters are handled by the URL encoding the client applies to every parameter.
    """
    return "'" + str(value).replace("'", "''") + "'"


def is_guid(value: str) -> bool:
    return isinstance(value, str) and bool(_GUID_RE.match(value))


def filter_any_id(ids: Iterable[str]) -> str:
    """``id eq <guid> or id eq <guid> ...``. GUIDs are unquoted in QRS filters, so anything
    that is not a GUID is refused with :class:`ValueError` (it could change the filter)."""
    clauses = []
    for value in ids:
        if not is_guid(value):
            raise ValueError(f"not a QRS id (GUID): {str(value)[:60]!r}")
        clauses.append(f"id eq {value}")
    if not clauses:
        raise ValueError("filter_any_id needs at least one id")
    return " or ".join(clauses)


# --------------------------------------------------------------------------- the client


class QrsClient:
    """The QRS resources of one Sense site. Thread-safe: one instance serves parallel callers.

    ``site``, ``session``, ``sleep`` and ``rng`` go to :class:`QrsTransport` (see there; it
    raises :class:`QrsCertificateFileError` for an unusable certificate file).

    :param chunk_size: ids per request in :meth:`get_users`.
    :param max_url_length: the longest URL :meth:`get_users` sends.
    """

    def __init__(
        self,
        site: SiteConfig,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_url_length: int = MAX_URL_LENGTH,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self.site = site
        self.qlik_user = site.qrs.qlik_user
        self.concurrency = site.qrs.concurrency
        self.chunk_size = chunk_size
        self.max_url_length = max_url_length
        self.transport = QrsTransport(site, session=session, sleep=sleep, rng=rng)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        self.transport.close()

    @property
    def failed_requests(self) -> int:
        """QRS requests of this client that failed for good (after their retries)."""
        return self.transport.failed_requests

    def __enter__(self) -> QrsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def server_clock(self) -> ServerClock | None:
        """QRS's clock per the latest answer's ``Date`` header (see :mod:`agent.clockskew`)."""
        return self.transport.server_clock()

    # -- operations ----------------------------------------------------------------------------

    def about(self) -> dict[str, Any]:
        """``GET /qrs/about``: build version and node type; the connectivity check."""
        return self._get_object("/qrs/about")

    def access_type_overview(self) -> dict[str, Any]:
        """``GET /qrs/license/accesstypeoverview``: totals per license type."""
        return self._get_object("/qrs/license/accesstypeoverview")

    def site_license(self) -> dict[str, Any]:
        """``GET /qrs/license``: the site license (serial, keyDetails with ``Valid To:``...)."""
        return self._get_object("/qrs/license")

    def list_allocations(
        self, resource: str, filter: str | None = None, *, license_type: str
    ) -> Decoded[Allocation]:
        """``GET /qrs/license/<resource>/full?filter=...``: allocations of one license type,
        read into :class:`agent.models.Allocation` objects (see
        :func:`agent.models.decode_allocations`; objects that do not fit are ``unreadable``).

        :param resource: ``professionalaccesstype``, ``analyzeraccesstype``, ...
        :param filter: a QRS filter; build string values with :func:`quote_filter_value`.
        :param license_type: the agent's name of the type (``professional``).
        """
        return self.transport.get_json(
            f"/qrs/license/{_resource(resource)}/full",
            {"filter": filter},
            lambda body: decode_allocations(body, license_type),
        )

    def get_allocation(self, resource: str, allocation_id: str) -> dict[str, Any] | None:
        """``GET /qrs/license/<resource>/<id>``, or ``None`` when QRS answers 404 (after a
        DELETE: ``None`` means removed, ``quarantined: true`` means quarantined)."""
        if not is_guid(allocation_id):
            raise ValueError(f"not a QRS id (GUID): {allocation_id[:60]!r}")
        try:
            return self._get_object(f"/qrs/license/{_resource(resource)}/{allocation_id}")
        except QrsNotFoundError:
            return None

    def count(self, path: str, filter: str | None = None) -> int:
        """``GET <path>/count``, e.g. ``count("/qrs/user", "inactive eq true")``. ``path`` may
        omit the ``/qrs/`` prefix (``"license/analyzeraccesstype"``)."""
        full = "/" + path.strip("/")
        if not full.startswith("/qrs/"):
            full = "/qrs" + full
        if not full.endswith("/count"):
            full += "/count"
        body = self._get_object(full, {"filter": filter})
        value = body.get("value")
        if not isinstance(value, int) or isinstance(value, bool):
            raise QrsProtocolError(
                f'GET {full}: expected {{"value": <integer>}}, got {short_excerpt(repr(body))}',
                method="GET",
                path=full,
                status=200,
            )
        return value

    def get_users(self, ids: Sequence[str]) -> UserFetch:
        """Fetch many users by id with few requests: ``/qrs/user/full?filter=id eq .. or ..``
        in chunks of :attr:`chunk_size` ids (fewer if the URL would grow past
        :attr:`max_url_length`), up to ``configQRS.concurrency`` chunks at a time.

        Never raises for a failed chunk: its ids land in :attr:`UserFetch.failed` with the
        reason, so the caller can keep exactly those allocations. A user QRS returned in a
        shape that does not fit (see :func:`agent.models.decode_users`) is in
        :attr:`UserFetch.unreadable`; a chunk whose answer holds an object without an id is
        failed as a whole (we could not tell who is missing). Each chunk is decoded in the
        worker thread that fetched it, while the others download.
        """
        wanted: dict[str, None] = {}
        failed: dict[str, str] = {}
        for raw in ids:
            key = str(raw).lower()
            if is_guid(key):
                wanted[key] = None
            else:
                failed[key] = "not a QRS id (GUID)"
        chunks = list(self._chunks(list(wanted)))
        users: dict[str, User] = {}
        unreadable: dict[str, str] = {}
        missing: set[str] = set()
        if chunks:
            workers = min(self.concurrency, len(chunks))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qrs-users") as pool:
                for chunk, result in zip(
                    chunks, pool.map(self._fetch_user_chunk, chunks), strict=True
                ):
                    if isinstance(result, str):
                        failed.update(dict.fromkeys(chunk, result))
                        continue
                    found, odd = result
                    users.update(found)
                    unreadable.update(odd)
                    missing.update(k for k in chunk if k not in found and k not in odd)
        if unreadable:
            logger.warning(
                "QRS returned {} user(s) in a shape the agent cannot use (first: {}); their"
                " allocations are kept",
                len(unreadable),
                next(iter(unreadable.values())),
            )
        if failed:
            logger.warning(
                "{} of {} users could not be fetched from QRS (first reason: {})",
                len(failed),
                len(failed) + len(users) + len(missing),
                next(iter(failed.values())),
            )
        return UserFetch(
            users=users,
            failed=failed,
            unreadable=unreadable,
            missing=frozenset(missing),
            requests=len(chunks),
        )

    def delete_allocation(self, resource: str, allocation_id: str) -> DeleteOutcome:
        """``DELETE /qrs/license/<resource>/<id>``. See the module docstring for what is
        retried. Raises :class:`QrsError` when the outcome is a failure or unknown."""
        if not is_guid(allocation_id):
            raise ValueError(f"not a QRS id (GUID): {allocation_id[:60]!r}")
        path = f"/qrs/license/{_resource(resource)}/{allocation_id}"
        response, uncertain = self.transport.send("DELETE", path, accept_404=True)
        if response.status_code == 404:
            # A 404 after an attempt whose answer we never saw: that attempt did the work.
            return DeleteOutcome.DELETED if uncertain else DeleteOutcome.NOT_FOUND
        if response.status_code == 204:
            return DeleteOutcome.DELETED
        return DeleteOutcome.UNCONFIRMED

    def create_allocation(self, resource: str, user_id: str) -> dict[str, Any]:
        """``POST /qrs/license/<resource>`` with ``{"user": {"id": user_id}}``: allocate the
        type to the user (QRS's generic create; the QMC's Allocate). Returns the allocation QRS
        answered. A user whose allocation is in quarantine gets that one back (QRS.md).

        Never repeated after a 5xx or a lost answer (a second POST could allocate twice): the
        :class:`QrsError` leaves the outcome unknown, and the caller asks QRS before trying
        again. A refusal (no license left, say) is a :class:`QrsHttpError` with QRS's text.
        """
        if not is_guid(user_id):
            raise ValueError(f"not a QRS id (GUID): {user_id[:60]!r}")
        path = f"/qrs/license/{_resource(resource)}"
        response, _ = self.transport.send("POST", path, json_body={"user": {"id": user_id}})
        try:
            body = decode_json(response.content)
        except ValueError:
            body = None
        # Only QRS's answer confirms the allocation: the new allocation's id (a GUID) for this
        # very user. A success status with anything else (no body, another user's allocation,
        # no user) leaves the outcome unknown; the caller asks QRS before trying again.
        owner = body.get("user") if isinstance(body, dict) else None
        if (
            not isinstance(body, dict)
            or not is_guid(body.get("id"))
            or not isinstance(owner, dict)
            or str(owner.get("id", "")).lower() != user_id.lower()
        ):
            raise QrsProtocolError(
                f"POST {path}: QRS answered {response.status_code} without the allocation it"
                f" made for user {user_id}: {short_excerpt(response.text)!r}",
                method="POST",
                path=path,
                status=response.status_code,
                body_excerpt=short_excerpt(response.text),
            )
        return body

    # -- plumbing ------------------------------------------------------------------------------

    def _get_object(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.transport.get_json(path, params, decode_json, expect=dict)

    def _chunks(self, ids: list[str]) -> Iterator[list[str]]:
        """Cut validated GUIDs into chunks. A GUID is unchanged by URL encoding, so a clause's
        encoded length is the encoded connective plus 36 (no ``quote`` per id: 100,000 ids)."""
        base = (
            len(self.transport.base_url)
            + len("/qrs/user/full?xrfkey=")
            + XRFKEY_LENGTH
            + len("&filter=")
        )
        first, more = len(quote("id eq ", safe="")), len(quote(" or id eq ", safe=""))
        chunk: list[str] = []
        length = base
        for key in ids:
            clause = (more if chunk else first) + len(key)
            if chunk and (len(chunk) >= self.chunk_size or length + clause > self.max_url_length):
                yield chunk
                chunk, length = [], base
                clause = first + len(key)
            chunk.append(key)
            length += clause
        if chunk:
            yield chunk

    def _fetch_user_chunk(self, chunk: list[str]) -> tuple[dict[str, User], dict[str, str]] | str:
        """The users of one chunk by lower-case id and, by id, why those QRS returned in an
        unusable shape cannot be used; or the reason the whole chunk failed."""
        try:
            decoded: Decoded[User] = self.transport.get_json(
                "/qrs/user/full", {"filter": filter_any_id(chunk)}, decode_users
            )
            users, odd = users_by_id(decoded)
        except (QrsError, QrsDataError) as exc:
            return str(exc)
        asked = set(chunk)
        return (
            {key: user for key, user in users.items() if key in asked},
            {key: why for key, why in odd.items() if key in asked},
        )


# --------------------------------------------------------------------------- helpers


def _resource(resource: str) -> str:
    if not _RESOURCE_RE.match(resource or ""):
        raise ValueError(f"not a QRS license resource name: {resource!r}")
    return resource


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_URL_LENGTH",
    "DeleteOutcome",
    "QrsAuthError",
    "QrsCertificateFileError",
    "QrsClient",
    "QrsConnectionError",
    "QrsError",
    "QrsHttpError",
    "QrsNotFoundError",
    "QrsProtocolError",
    "QrsTimeout",
    "QrsTlsError",
    "ReleaseQrs",
    "UserFetch",
    "encode_query",
    "filter_any_id",
    "is_guid",
    "key_file_exposure",
    "new_xrfkey",
    "quote_filter_value",
    "users_by_id",
]
