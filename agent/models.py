"""Plain, immutable data that flows between the core and plugins.

QRS answers are read into these classes exactly once, by one definition of a valid QRS object
(see "QRS objects" below): in bulk, straight from the response bytes, by
:func:`decode_allocations` and :func:`decode_users`, or from JSON values already parsed by
:func:`read_allocations`, :func:`read_users`, :func:`parse_allocation` and :func:`parse_user`
(same rules, same result). Everything after that point (release rules, destinations, reports)
works on validated values and never on raw JSON. A QRS object that cannot be interpreted is
:class:`Unreadable` (or raises :class:`QrsDataError`), with the reason, and the release core
keeps the allocation it belongs to: uncertain data never leads to a release.
"""

from __future__ import annotations

import enum
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Generic, Protocol, TypeVar, runtime_checkable

import msgspec

UTC = timezone.utc

#: The features a point belongs to; destinations are enabled per feature.
FEATURE_LICENSE_MONITOR = "license_monitor"
FEATURE_LICENSE_RELEASE = "license_release"
FEATURE_SERVER_LICENSE = "server_license"
FEATURES = (FEATURE_LICENSE_MONITOR, FEATURE_LICENSE_RELEASE, FEATURE_SERVER_LICENSE)
#: Alerts for the admins (agent.alerts); only alert channels are enabled for it, never a
#: history destination, so it is not among FEATURES.
FEATURE_ALERT = "alert"

MEASUREMENT_LICENSE = "qlik_sense_license"
MEASUREMENT_RELEASE = "qlik_sense_license_release"
MEASUREMENT_RESTORE = "qlik_sense_license_restore"
MEASUREMENT_SERVER_LICENSE = "qlik_sense_server_license"
MEASUREMENT_ALERT = "license_agent_alert"

#: The decision report's file name when none is given: ``release --once --report`` writes it to
#: the current folder, and ``license-agent report`` looks for it beside the history, then there.
DEFAULT_REPORT_FILE = "release-report.json"

FieldValue = float | int | bool | str
_T = TypeVar("_T")


def fold(text: str) -> str:
    """The form names are compared in: Unicode-normalized, trimmed, case-folded.

    Sense matches directory names, user ids, tags and custom property values without regard
    to case; folding more than Sense does can only protect more, which is the safe side.
    Third-party rules should compare through this function too.
    """
    if text.isascii():
        return text.strip().lower()  # the same result, five times faster: most names are ASCII
    return unicodedata.normalize("NFKC", text).strip().casefold()


class QrsDataError(ValueError):
    """A QRS object lacks a field the agent needs, or holds a value it cannot interpret."""


# --------------------------------------------------------------------------- points


@dataclass(frozen=True, slots=True)
class Point:
    """One time-series point, in InfluxDB terms, ready for any destination.

    ``time`` is always timezone-aware UTC and deterministic (the moment the data was read, or
    the moment of the release), so a point delivered twice overwrites itself.
    """

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time: datetime
    feature: str = FEATURE_LICENSE_MONITOR

    def to_dict(self) -> dict[str, Any]:
        return {
            "measurement": self.measurement,
            "tags": dict(self.tags),
            "fields": dict(self.fields),
            "time": format_qrs_time(self.time),
            "feature": self.feature,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Point:
        return cls(
            measurement=data["measurement"],
            tags=dict(data["tags"]),
            fields=dict(data["fields"]),
            time=parse_qrs_time(data["time"]) or datetime.fromtimestamp(0, UTC),
            feature=data.get("feature", FEATURE_LICENSE_MONITOR),
        )


# --------------------------------------------------------------------------- QRS data
#
# The records below are msgspec Structs: immutable and hashable like frozen dataclasses, built in
# a fraction of their time, and decoded straight from QRS's JSON bytes (see decode_allocations
# and decode_users): a release run at 100,000 users builds half a million of them. ``gc=False``:
# they only hold strings, dates and other such records, so they can never be part of a cycle.
# They are built from the wire objects below (see "QRS objects"), never decoded directly.


class UserRef(msgspec.Struct, frozen=True, gc=False):
    """The condensed user embedded in an allocation."""

    id: str
    user_directory: str
    user_id: str
    name: str = ""


class CustomPropertyValue(msgspec.Struct, frozen=True, gc=False):
    name: str
    value: str


class UserAttribute(msgspec.Struct, frozen=True, gc=False):
    """An attribute a user directory connector synced to the user: ``attributeType`` (such as
    ``Group`` or ``Email``) and ``attributeValue``. Plugin rules may protect by them."""

    type: str
    value: str


class User(msgspec.Struct, frozen=True, gc=False):
    """A QRS user with what the neverRelease rules look at.

    A flag is ``None`` when QRS did not say (older or newer Sense versions): flag rules then
    protect the user, since an unknown flag cannot justify a release.
    """

    id: str
    user_directory: str
    user_id: str
    name: str = ""
    inactive: bool | None = False
    blocked: bool | None = False
    removed_externally: bool | None = False
    tags: tuple[str, ...] = ()
    custom_properties: tuple[CustomPropertyValue, ...] = ()
    attributes: tuple[UserAttribute, ...] = ()


class Allocation(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    """A license allocation (Professional, Analyzer, User access...; built by keyword only).

    ``last_used`` is ``None`` for an allocation that was never used (QRS gives null, or a
    sentinel earlier than ``created``). ``user`` is ``None`` when the owner was deleted; then
    ``deleted_user_directory`` / ``deleted_user_id`` name the former owner. ``quarantine_end``
    is ``None`` unless QRS gave a real date (it answers a 1753 sentinel outside quarantine).
    """

    id: str
    license_type: str = ""
    user: UserRef | None = None
    created: datetime
    last_used: datetime | None = None
    quarantined: bool = False
    quarantine_end: datetime | None = None
    deleted_user_directory: str = ""
    deleted_user_id: str = ""

    @property
    def owner_directory(self) -> str:
        return self.user.user_directory if self.user else self.deleted_user_directory

    @property
    def owner_id(self) -> str:
        return self.user.user_id if self.user else self.deleted_user_id

    @property
    def owner(self) -> str:
        """``DIR\\id``, the form the QMC and the existing tool's ``user`` tag use."""
        return f"{self.owner_directory}\\{self.owner_id}"

    @property
    def last_activity(self) -> datetime:
        """When the allocation was last used, or when it was assigned if never used."""
        return self.last_used if self.last_used is not None else self.created

    def days_since_last_use(self, now: datetime) -> int:
        """Whole days since the last activity, rounded down (``timedelta.days`` is a floor)."""
        return (now - self.last_activity).days


class Candidate(msgspec.Struct, frozen=True, gc=False):
    """An allocation past its release threshold, with its owner's details.

    ``user`` is ``None`` only when the owner no longer exists in QRS (``allocation.user`` is
    ``None``). Candidates whose user details could not be fetched never reach the rules.
    """

    allocation: Allocation
    user: User | None
    days_since_last_use: int

    @property
    def allocation_id(self) -> str:
        return self.allocation.id


# --------------------------------------------------------------------------- decisions


class Decision(str, enum.Enum):
    RELEASED = "released"
    #: The DELETE succeeded, but QRS put the allocation into its 7-day quarantine.
    QUARANTINED = "quarantined"
    WOULD_RELEASE = "would_release"
    KEPT = "kept"
    SKIPPED_QUARANTINED = "skipped_quarantined"
    FAILED = "failed"
    NOT_ELIGIBLE = "not_eligible"
    #: The DELETE answered 404: someone else removed it first. Not an error, no event.
    ALREADY_GONE = "already_gone"


class Reason(msgspec.Struct, frozen=True, gc=False):
    """Why an allocation was kept (or failed): the rule or step, and a sentence for humans."""

    rule: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "reason": self.reason}


class AllocationDecision(msgspec.Struct, frozen=True, gc=False):
    allocation: Allocation
    decision: Decision
    days_since_last_use: int
    reasons: tuple[Reason, ...] = ()
    user_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        a = self.allocation
        return {
            "license_type": a.license_type,
            "allocation_id": a.id,
            "user_directory": a.owner_directory,
            "user_id": a.owner_id,
            "user_name": self.user_name or (a.user.name if a.user else ""),
            "last_used": format_qrs_time(a.last_used) if a.last_used else None,
            "days_since_last_use": self.days_since_last_use,
            "decision": self.decision.value,
            "reasons": [r.to_dict() for r in self.reasons],
        }


# --------------------------------------------------------------------------- plugin types


@dataclass(frozen=True)
class LicenseType:
    """A license type: its ``license_type`` tag value and how its data is read.

    :param name: the value of the ``license_type`` tag (``professional``, ``analyzer``, ...).
    :param extract: maps the whole ``accesstypeoverview`` JSON to this type's fields, or
        ``None`` when the type is absent or not enabled on this site (no point is written).
    :param allocation_resource: the QRS resource that lists and deletes this type's
        allocations (``professionalaccesstype``), or ``None`` if the agent never releases it.
    """

    name: str
    extract: Callable[[Mapping[str, Any]], Mapping[str, float] | None]
    allocation_resource: str | None = None
    description: str = ""


@dataclass(frozen=True)
class SettingsSection:
    """A part of the config file that one plugin owns (returned by ``sla_settings``).

    :param path: the dotted key path below ``Butler``, as users write it, e.g.
        ``qlikSenseLicense.licenseRelease.neverRelease.tag``.
    :param model: a pydantic model class, or a type such as ``list[str]``, for the value
        there. The core validates the file against it and reports mistakes with the key path.
    :param per_site: whether an entry of ``Butler.licenseAgent.sites`` may override it (only
        keys below ``qlikSenseLicense`` can be overridden per site).
    :param shared_with_butler: a section of Butler's own that Butler's other features read too
        (``influxDb``, ``mqttConfig``, ``webhookNotification``): connection settings, not a
        switch. With the plugin disabled it stays in a shared Butler file without error (the
        agent only notes that it does not use it); the keys that switch the plugin's work on
        (``...destination.influxDb.enable``) remain errors.
    """

    path: str
    model: Any
    per_site: bool = True
    shared_with_butler: bool = False

    @property
    def name(self) -> str:
        # The host rejects two plugins claiming one path, as it rejects two with one name.
        return self.path


#: A rule's verdict: allocation id -> the reason it is protected. Allocations it does not
#: protect are simply absent.
Vetoes = Mapping[str, str]


@dataclass(frozen=True)
class ReleaseRule:
    """A neverRelease rule. ``judge`` sees a batch of candidates and returns its vetoes."""

    name: str
    judge: Callable[[Sequence[Candidate]], Vetoes]
    description: str = ""


@dataclass(frozen=True)
class MetricCollector:
    """Something that reads QRS and returns points (the site license, for example).

    :param frequency: a schedule text for a collector with its own job in ``license-agent
        run`` (``every 24 hours``), or ``None`` to run with every monitor run. One-shot
        ``license-agent monitor --once`` runs every collector.
    """

    name: str
    collect: Callable[..., Sequence[Point]]
    description: str = ""
    frequency: str | None = None


def _nothing_to_commit() -> None:
    return None


@dataclass(frozen=True)
class AlertBatch:
    """What an ``sla_alerts`` implementation returns: alert points and how to commit.

    ``commit`` is called only after the points are stored in the durable outbox, so an alert
    plugin saves its state (what it has sent) after, never before, the alerts are safe: a crash
    in between sends an alert twice rather than never.
    """

    points: Sequence[Point]
    commit: Callable[[], None] = _nothing_to_commit


class DestinationError(RuntimeError):
    """A destination could not write. ``failed`` holds the points it did not write.

    ``rejected`` holds points the destination refused for good (bad data, a field type
    conflict, beyond the retention period): re-sending cannot help, so the outbox drops them
    with an error instead of letting them block every later point. With neither given, no
    point of the call is assumed written.
    """

    def __init__(
        self, message: str, failed: Sequence[Point] = (), rejected: Sequence[Point] = ()
    ) -> None:
        super().__init__(message)
        self.failed = tuple(failed)
        self.rejected = tuple(rejected)


@runtime_checkable
class Destination(Protocol):
    """Where points go. ``write`` raises :class:`DestinationError` for what it did not write.

    Writes must be idempotent: the same point (same measurement, tags and time) written twice
    must overwrite, since the outbox re-delivers after failures.
    """

    name: str
    features: frozenset[str]

    def write(self, points: Sequence[Point]) -> None: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- timestamps


def parse_qrs_time(value: Any) -> datetime | None:
    """Parse a timestamp (``2026-01-23T04:56:07.000Z``) to aware UTC; ``None`` stays None.

    msgspec's RFC 3339, the rules every QRS object is read by (see "QRS objects" below); a
    timestamp without an offset is read as UTC here, for the agent's own files and options.
    Raises :class:`QrsDataError` for anything else.
    """
    if value is None:
        return None
    try:
        parsed = msgspec.convert(value, datetime)
    except msgspec.ValidationError:
        raise QrsDataError(f"not a QRS timestamp: {str(value)[:40]!r}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_qrs_time(value: datetime) -> str:
    """Format an aware datetime the way QRS does: ``2026-01-23T04:56:07.000Z``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------- QRS objects
#
# The one definition of a valid QRS allocation and user: the wire Structs below (the fields the
# agent takes, named and typed as QRS sends them, read by msgspec's rules, timestamps included)
# plus _allocation / _user (the checks types cannot say, and the move to the agent's models).
# Every path goes through them: a response body in bulk (decode_allocations, decode_users), a
# JSON object already parsed (parse_allocation, parse_user, read_allocations, read_users).
# An object that does not fit is Unreadable, with its own reason: one odd object in 100,000
# never makes the others unreadable, and nothing about it is guessed.

#: A datetime that must carry a time zone (QRS always answers UTC, ``...Z``): a timestamp
#: without one is ambiguous, so the allocation it belongs to cannot be judged.
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
#: Custom property and attribute values: any scalar, kept as ``str(value)``.
_Scalar = str | int | float | bool | None


class _UserRefObject(msgspec.Struct, gc=False):
    id: str
    userDirectory: str
    userId: str
    name: str | None = None


class _AllocationObject(msgspec.Struct, gc=False):
    """The fields of a ``/qrs/license/<type>/full`` object that :class:`Allocation` takes."""

    id: str
    createdDate: AwareDatetime
    user: _UserRefObject | None = None
    lastUsed: AwareDatetime | None = None
    quarantined: bool = False
    quarantineEnd: AwareDatetime | None = None
    deletedUserDirectory: str | None = None
    deletedUserId: str | None = None


class _Named(msgspec.Struct, gc=False):
    name: str


class _PropertyValue(msgspec.Struct, gc=False):
    definition: _Named
    value: _Scalar = None


class _Attribute(msgspec.Struct, gc=False):
    attributeType: str
    attributeValue: _Scalar = None


class _UserObject(msgspec.Struct, gc=False):
    """The fields of a ``/qrs/user/full`` object that :class:`User` takes.

    ``tags``, ``customProperties`` and ``attributes`` are required lists: QRS always sends all
    three, and a user whose tags are null or absent might be one a tag rule protects (whose
    attributes are null, one a plugin rule on directory groups protects), so it cannot be
    judged.
    A flag that is null or absent is ``None`` (flag rules then protect the user).
    """

    id: str
    userDirectory: str
    userId: str
    tags: list[_Named]
    customProperties: list[_PropertyValue]
    attributes: list[_Attribute]
    name: str | None = None
    inactive: bool | None = None
    blacklisted: bool | None = None
    removedExternally: bool | None = None


def _allocation(o: _AllocationObject, license_type: str) -> Allocation:
    """The :class:`Allocation` of a decoded allocation object, or :class:`QrsDataError`."""
    user = o.user
    if not o.id:
        raise QrsDataError("allocation has an empty id")
    if user is None:
        if not o.deletedUserId:
            raise QrsDataError("allocation has neither a user nor a deletedUserId")
    elif not (user.id and user.userId):
        raise QrsDataError("user has an empty id or userId")
    created, last_used, quarantine_end = o.createdDate, o.lastUsed, o.quarantineEnd
    return Allocation(
        id=o.id,
        license_type=license_type,
        user=None
        if user is None
        else UserRef(user.id, user.userDirectory, user.userId, user.name or ""),
        created=created,
        # QRS's "never used" sentinel (1753-01-01) is earlier than any assignment.
        last_used=None if last_used is not None and last_used < created else last_used,
        quarantined=o.quarantined,
        # QRS's "not quarantined" sentinel.
        quarantine_end=None
        if quarantine_end is not None and quarantine_end.year <= 1753
        else quarantine_end,
        deleted_user_directory=o.deletedUserDirectory or "",
        deleted_user_id=o.deletedUserId or "",
    )


def _user(o: _UserObject) -> User:
    """The :class:`User` of a decoded user object, or :class:`QrsDataError`."""
    if not o.id or not o.userId:
        raise QrsDataError("user has an empty id or userId")
    tags, props, attributes = o.tags, o.customProperties, o.attributes
    return User(
        o.id,
        o.userDirectory,
        o.userId,
        o.name or "",
        o.inactive,
        o.blacklisted,
        o.removedExternally,
        # Most users have no tags, properties or attributes: no generator for them.
        tuple([t.name for t in tags]) if tags else (),
        tuple(
            [
                CustomPropertyValue(p.definition.name, "" if p.value is None else str(p.value))
                for p in props
            ]
        )
        if props
        else (),
        tuple(
            [
                UserAttribute(
                    a.attributeType, "" if a.attributeValue is None else str(a.attributeValue)
                )
                for a in attributes
            ]
        )
        if attributes
        else (),
    )


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A QRS object that does not fit its model: the JSON QRS sent (for a user QRS sent twice,
    its id and names), and what is wrong with it."""

    raw: Any
    reason: str

    @property
    def id(self) -> str | None:
        """The object's ``id`` if it has a string one (lower-case ids are QRS's own)."""
        value = self.raw.get("id") if isinstance(self.raw, dict) else None
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Decoded(Generic[_T]):
    """A QRS list answer read into models: the objects that fit, and those that do not."""

    valid: list[_T] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)

    def __len__(self) -> int:
        """How many objects QRS listed."""
        return len(self.valid) + len(self.unreadable)


def _reason(exc: Exception) -> str:
    # msgspec says what and where ("Expected `str`, got `null` - at `$.user.userId`").
    return str(exc) or type(exc).__name__


def _no_bom(body: bytes) -> bytes:
    # A UTF-8 byte order mark is legal in an HTTP body (requests' .json() skips it); msgspec
    # wants bare JSON.
    return body[3:] if body[:3] == b"\xef\xbb\xbf" else body


def decode_json(body: bytes) -> Any:
    """Plain JSON values, like ``json.loads`` but faster. Raises ``ValueError`` if not JSON."""
    try:
        return msgspec.json.decode(_no_bom(body))
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None


_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])


def _decode_list(
    body: bytes,
    all_at_once: msgspec.json.Decoder,
    one: msgspec.json.Decoder,
    finish: Callable[[Any], _T],
) -> Decoded[_T]:
    """A JSON list body through ``finish``: in one C call when every object fits (nearly every
    answer), else one object at a time, so only the odd ones are :class:`Unreadable`.

    Raises ``ValueError`` if the body is not JSON, :class:`QrsDataError` if it is no list.
    """
    body = _no_bom(body)
    try:
        return Decoded(list(map(finish, all_at_once.decode(body))))
    except (msgspec.ValidationError, QrsDataError):
        pass  # some object does not fit: find which
    except msgspec.DecodeError as exc:
        raise ValueError(str(exc)) from None
    try:
        raws = _RAW_LIST.decode(body)
    except msgspec.ValidationError as exc:
        raise QrsDataError(f"expected a JSON list ({exc})") from None
    result: Decoded[_T] = Decoded()
    for raw in raws:
        try:
            result.valid.append(finish(one.decode(raw)))
        except (msgspec.ValidationError, QrsDataError) as exc:
            result.unreadable.append(Unreadable(msgspec.json.decode(raw), _reason(exc)))
    return result


def _read_list(objects: Iterable[Any], wire: type[Any], finish: Callable[[Any], _T]) -> Decoded[_T]:
    """Like :func:`_decode_list`, for JSON values already parsed (same Structs, same rules)."""
    result: Decoded[_T] = Decoded()
    for obj in objects:
        try:
            result.valid.append(finish(msgspec.convert(obj, wire)))
        except (msgspec.ValidationError, QrsDataError) as exc:
            result.unreadable.append(Unreadable(obj, _reason(exc)))
    return result


_ALLOCATIONS = msgspec.json.Decoder(list[_AllocationObject])
_ALLOCATION = msgspec.json.Decoder(_AllocationObject)
_USERS = msgspec.json.Decoder(list[_UserObject])
_USER = msgspec.json.Decoder(_UserObject)


def decode_allocations(body: bytes, license_type: str) -> Decoded[Allocation]:
    """A QRS allocation list (``/qrs/license/<type>/full``) read into :class:`Allocation`
    objects of ``license_type``. Raises ``ValueError`` if the body is not a JSON list."""
    return _decode_list(body, _ALLOCATIONS, _ALLOCATION, lambda o: _allocation(o, license_type))


def read_allocations(objects: Iterable[Any], license_type: str) -> Decoded[Allocation]:
    """:func:`decode_allocations` for allocation objects already parsed from JSON."""
    return _read_list(objects, _AllocationObject, lambda o: _allocation(o, license_type))


def decode_users(body: bytes) -> Decoded[User]:
    """A ``/qrs/user/full`` list read into :class:`User` objects. A user QRS returned more than
    once is unreadable in every copy: which copy is true cannot be told. Raises ``ValueError``
    if the body is not a JSON list."""
    return _no_twins(_decode_list(body, _USERS, _USER, _user))


def read_users(objects: Iterable[Any]) -> Decoded[User]:
    """:func:`decode_users` for user objects already parsed from JSON."""
    return _no_twins(_read_list(objects, _UserObject, _user))


def _no_twins(users: Decoded[User]) -> Decoded[User]:
    ids = [u.id for u in users.valid]
    ids += [i for i in (u.id for u in users.unreadable) if i is not None]
    if len(set(ids)) == len(ids):
        joined = "".join(ids)
        # All lower-case (QRS's own ids) and all different: every user once. One C-level
        # lower() over the joined ids instead of one call per user.
        if joined == joined.lower():
            return users
    ids = [i.lower() for i in ids]
    if len(set(ids)) == len(ids):
        return users
    twins = {i for i, n in Counter(ids).items() if n > 1}
    why = "QRS returned this user more than once in one answer, so which copy is true is unknown"
    result: Decoded[User] = Decoded()
    for odd in users.unreadable:
        twin = odd.id is not None and odd.id.lower() in twins
        result.unreadable.append(Unreadable(odd.raw, why) if twin else odd)
    for user in users.valid:
        if user.id.lower() in twins:
            names = {"id": user.id, "userDirectory": user.user_directory, "userId": user.user_id}
            result.unreadable.append(Unreadable(names, why))
        else:
            result.valid.append(user)
    return result


def parse_allocation(obj: Any, license_type: str) -> Allocation:
    """One QRS allocation object as an :class:`Allocation`, or :class:`QrsDataError`."""
    try:
        return _allocation(msgspec.convert(obj, _AllocationObject), license_type)
    except msgspec.ValidationError as exc:
        raise QrsDataError(_reason(exc)) from None


def parse_user(obj: Any) -> User:
    """One QRS user object (``/qrs/user/full``) as a :class:`User`, or :class:`QrsDataError`."""
    try:
        return _user(msgspec.convert(obj, _UserObject))
    except msgspec.ValidationError as exc:
        raise QrsDataError(_reason(exc)) from None
