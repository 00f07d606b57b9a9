"""Plain, immutable data that flows between the core and plugins.

QRS answers are parsed into these classes exactly once: in bulk, straight from the response
bytes, by :func:`decode_allocations` and :func:`decode_users`, or one object at a time by
:func:`parse_allocation` and :func:`parse_user` (same checks, same result); everything after that
point (release rules, destinations, reports) works on
validated values and never on raw JSON. A QRS object that cannot be interpreted raises
:class:`QrsDataError`, and the release core keeps the allocation it belongs to: uncertain data
never leads to a release.
"""

from __future__ import annotations

import contextlib
import enum
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Protocol, runtime_checkable

import msgspec

UTC = timezone.utc

#: The features a point belongs to; destinations are enabled per feature.
FEATURE_LICENSE_MONITOR = "license_monitor"
FEATURE_LICENSE_RELEASE = "license_release"
FEATURE_SERVER_LICENSE = "server_license"
FEATURES = (FEATURE_LICENSE_MONITOR, FEATURE_LICENSE_RELEASE, FEATURE_SERVER_LICENSE)

MEASUREMENT_LICENSE = "qlik_sense_license"
MEASUREMENT_RELEASE = "qlik_sense_license_release"
MEASUREMENT_RESTORE = "qlik_sense_license_restore"
MEASUREMENT_SERVER_LICENSE = "qlik_sense_server_license"

#: The decision report's file name when none is given: ``release --once --report`` writes it to
#: the current folder, and ``license-agent report`` looks for it beside the history, then there.
DEFAULT_REPORT_FILE = "release-report.json"

FieldValue = float | int | bool | str


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
# Field names are the agent's; ``name=`` gives the QRS key a field is decoded from.

#: A datetime that must carry a time zone (QRS always answers UTC, ``...Z``).
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class UserRef(msgspec.Struct, frozen=True, gc=False):
    """The condensed user embedded in an allocation."""

    id: str
    user_directory: str = msgspec.field(name="userDirectory")
    user_id: str = msgspec.field(name="userId")
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
    """A Professional or Analyzer access allocation (built by keyword only).

    ``last_used`` is ``None`` for an allocation that was never used (QRS gives null, or a
    sentinel earlier than ``created``). ``user`` is ``None`` when the owner was deleted; then
    ``deleted_user_directory`` / ``deleted_user_id`` name the former owner. ``quarantine_end``
    is ``None`` unless QRS gave a real date (it answers a 1753 sentinel outside quarantine).
    """

    id: str
    license_type: str = ""
    user: UserRef | None = None
    created: AwareDatetime = msgspec.field(name="createdDate")
    last_used: AwareDatetime | None = msgspec.field(default=None, name="lastUsed")
    quarantined: bool = False
    quarantine_end: AwareDatetime | None = msgspec.field(default=None, name="quarantineEnd")
    deleted_user_directory: str = msgspec.field(default="", name="deletedUserDirectory")
    deleted_user_id: str = msgspec.field(default="", name="deletedUserId")

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
    """

    path: str
    model: Any
    per_site: bool = True

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


# --------------------------------------------------------------------------- parsing

_fromiso = datetime.fromisoformat


def _qrs_time_fast(value: Any) -> datetime | None:
    """QRS's own format (``2026-01-23T04:56:07.000Z``), nearly every value: fromisoformat
    (Python 3.11+) reads it ten times faster than the general path. ``None`` means "not that
    format": the general path decides (and says what is wrong)."""
    if type(value) is str and len(value) == 24 and value[23] == "Z" and value[10] == "T":
        try:
            return _fromiso(value)
        except ValueError:
            return None
    return None


#: RFC 3339 as QRS and msgspec read it: ``T``, ``t`` or a space between date and time, ``Z`` or
#: ``z`` for UTC; seconds, fraction and offset optional (no offset means UTC).
_TIME_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2})(?::(\d{2})(?:\.(\d+))?)?([Zz]|[+-]\d{2}:?\d{2})?$"
)


def parse_qrs_time(value: Any) -> datetime | None:
    """Parse a QRS timestamp (``2026-01-23T04:56:07.000Z``) to aware UTC; ``None`` stays None.

    Reads what :func:`decode_allocations` reads (msgspec's RFC 3339): more than 6 fraction
    digits are rounded to the microsecond by the 7th. Raises :class:`QrsDataError` for
    anything else.
    """
    if value is None:
        return None
    fast = _qrs_time_fast(value)
    if fast is not None:
        return fast
    m = _TIME_RE.match(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise QrsDataError(f"not a QRS timestamp: {str(value)[:40]!r}")
    day, hours_minutes, seconds, fraction, offset = m.groups()
    if offset is None or offset in "Zz":
        offset = "+00:00"
    fraction = fraction or ""
    text = f"{day}T{hours_minutes}:{seconds or '00'}.{fraction[:6].ljust(6, '0')}{offset}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise QrsDataError(f"not a QRS timestamp: {value[:40]!r}") from exc
    if fraction[6:7] >= "5":
        parsed += timedelta(microseconds=1)
    return parsed.astimezone(UTC)


def format_qrs_time(value: datetime) -> str:
    """Format an aware datetime the way QRS does: ``2026-01-23T04:56:07.000Z``."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _str(obj: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise QrsDataError(f"missing {key!r}")
        return ""
    if not isinstance(value, str):
        raise QrsDataError(f"{key!r} is not a string")
    return value


def parse_user_ref(obj: Any) -> UserRef:
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise QrsDataError("user is not an object")
    user_id_, directory, user_id, name = _user_names(obj)
    if not user_id_ or not user_id:
        raise QrsDataError("user has an empty id or userId")
    return UserRef(user_id_, directory, user_id, name)


def _user_names(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    """``id``, ``userDirectory``, ``userId`` (required strings) and ``name`` (or "")."""
    return (
        _str(obj, "id"),
        _str(obj, "userDirectory"),
        _str(obj, "userId"),
        _str(obj, "name", required=False),
    )


def parse_allocation(obj: Any, license_type: str) -> Allocation:
    """Turn one QRS allocation object into an :class:`Allocation`, or raise QrsDataError."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise QrsDataError("allocation is not an object")
    get = obj.get
    alloc_id = _str(obj, "id")
    if not alloc_id:
        raise QrsDataError("allocation has an empty id")
    created = parse_qrs_time(get("createdDate"))
    if created is None:
        raise QrsDataError("allocation has no createdDate")
    last_used = parse_qrs_time(get("lastUsed"))
    if last_used is not None and last_used < created:
        last_used = None  # QRS's "never used" sentinel (1753-01-01)
    quarantined = get("quarantined", False)
    if type(quarantined) is not bool:
        raise QrsDataError("'quarantined' is not a boolean")
    quarantine_end = None
    with contextlib.suppress(QrsDataError):  # informative only; never decides anything
        quarantine_end = parse_qrs_time(get("quarantineEnd"))
    if quarantine_end is not None and quarantine_end.year <= 1753:
        quarantine_end = None  # QRS's "not quarantined" sentinel
    raw_user = get("user")
    user = parse_user_ref(raw_user) if raw_user is not None else None
    deleted_dir = get("deletedUserDirectory")
    if type(deleted_dir) is not str:
        deleted_dir = _str(obj, "deletedUserDirectory", required=False)
    deleted_id = get("deletedUserId")
    if type(deleted_id) is not str:
        deleted_id = _str(obj, "deletedUserId", required=False)
    if user is None and not deleted_id:
        raise QrsDataError("allocation has neither a user nor a deletedUserId")
    return Allocation(
        id=alloc_id,
        license_type=license_type,
        user=user,
        created=created,
        last_used=last_used,
        quarantined=quarantined,
        quarantine_end=quarantine_end,
        deleted_user_directory=deleted_dir,
        deleted_user_id=deleted_id,
    )


def parse_user(obj: Any) -> User:
    """Turn one QRS user object (``/qrs/user/full``) into a :class:`User`, or raise."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise QrsDataError("user is not an object")
    get = obj.get
    tags_raw, props_raw, attributes_raw = get("tags"), get("customProperties"), get("attributes")
    # Most users have no tags, properties or attributes: skip the loops for them.
    tags = () if tags_raw is None or tags_raw == [] else _tag_names(tags_raw)
    props = () if props_raw is None or props_raw == [] else _property_values(props_raw)
    attributes = (
        () if attributes_raw is None or attributes_raw == [] else _attributes(attributes_raw)
    )
    user_id_, directory, user_id, name = _user_names(obj)
    if not user_id:
        raise QrsDataError("user has an empty userId")
    inactive, blocked, removed = get("inactive"), get("blacklisted"), get("removedExternally")
    return User(
        user_id_,
        directory,
        user_id,
        name,
        inactive if type(inactive) is bool else None,
        blocked if type(blocked) is bool else None,
        removed if type(removed) is bool else None,
        tags,
        props,
        attributes,
    )


def _list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise QrsDataError(f"{key!r} is not a list")
    return value


def _tag_names(raw: Any) -> tuple[str, ...]:
    names = []
    for tag in _list(raw, "tags"):
        name = tag.get("name") if isinstance(tag, Mapping) else None
        if not isinstance(name, str):
            raise QrsDataError("a tag has no name")
        names.append(name)
    return tuple(names)


def _property_values(raw: Any) -> tuple[CustomPropertyValue, ...]:
    values = []
    for prop in _list(raw, "customProperties"):
        definition = prop.get("definition") if isinstance(prop, Mapping) else None
        if not isinstance(definition, Mapping) or not isinstance(definition.get("name"), str):
            raise QrsDataError("a custom property value has no definition name")
        value = prop.get("value")
        values.append(CustomPropertyValue(definition["name"], "" if value is None else str(value)))
    return tuple(values)


def _attributes(raw: Any) -> tuple[UserAttribute, ...]:
    attributes = []
    for attribute in _list(raw, "attributes"):
        kind = attribute.get("attributeType") if isinstance(attribute, Mapping) else None
        if not isinstance(kind, str):
            raise QrsDataError("an attribute has no attributeType")
        value = attribute.get("attributeValue")
        attributes.append(UserAttribute(kind, "" if value is None else str(value)))
    return tuple(attributes)


# --------------------------------------------------------------------------- bulk decoding
#
# The release run's two big reads, decoded from the response bytes in one C call each. Only a
# body whose every object has the usual shape is decoded this way, and the decoded objects are
# then held to exactly the checks of parse_allocation / parse_user. Anything else (one odd
# object in 100,000) makes the whole body come back as plain JSON values, which the release
# core parses one by one with the functions above, so each odd object gets its own reason and
# nothing about it is guessed.

_ALLOCATIONS = msgspec.json.Decoder(list[Allocation])
_force = msgspec.structs.force_setattr
#: Custom property and attribute values: parse_user takes any scalar and keeps str(value).
_Scalar = str | int | float | bool | None


class _Named(msgspec.Struct, gc=False):
    name: str


class _PropertyValue(msgspec.Struct, gc=False):
    definition: _Named
    value: _Scalar = None


class _Attribute(msgspec.Struct, gc=False):
    attributeType: str
    attributeValue: _Scalar = None


class _UserObject(msgspec.Struct, gc=False):
    """The fields of a ``/qrs/user/full`` object that :class:`User` takes, as QRS names them."""

    id: str
    userDirectory: str
    userId: str
    name: str | None = None
    inactive: bool | None = None
    blacklisted: bool | None = None
    removedExternally: bool | None = None
    tags: list[_Named] | None = None
    customProperties: list[_PropertyValue] | None = None
    attributes: list[_Attribute] | None = None


_USERS = msgspec.json.Decoder(list[_UserObject])


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


def _decode_as(decoder: msgspec.json.Decoder, body: bytes) -> Any:
    """The body decoded by ``decoder``, or ``None`` if some value does not fit its types."""
    try:
        return decoder.decode(_no_bom(body))
    except msgspec.ValidationError:
        return None
    except msgspec.DecodeError as exc:  # not JSON at all
        raise ValueError(str(exc)) from None


def decode_allocations(body: bytes, license_type: str) -> list[Any]:
    """A QRS allocation list (``/qrs/license/<type>/full``) as :class:`Allocation` objects, or,
    when any object in it is unusual, as plain JSON values for :func:`parse_allocation`.

    Raises ``ValueError`` if the body is not JSON. The result is whatever JSON the body holds
    when it is not a list: the caller checks.
    """
    allocations = _decode_as(_ALLOCATIONS, body)
    if allocations is None:
        return decode_json(body)
    force = _force
    for allocation in allocations:
        # parse_allocation's checks and normalisations, on the decoded values.
        user = allocation.user
        if not allocation.id or (
            not allocation.deleted_user_id if user is None else not (user.id and user.user_id)
        ):
            return decode_json(body)
        force(allocation, "license_type", license_type)
        last_used = allocation.last_used
        if last_used is not None and last_used < allocation.created:
            force(allocation, "last_used", None)  # QRS's "never used" sentinel
        quarantine_end = allocation.quarantine_end
        if quarantine_end is not None and quarantine_end.year <= 1753:
            force(allocation, "quarantine_end", None)
    return allocations


def decode_users(body: bytes) -> list[Any]:
    """A ``/qrs/user/full`` list as :class:`User` objects, or, when any object in it is unusual,
    as plain JSON values for :func:`parse_user`. Raises ``ValueError`` if the body is not JSON.
    """
    objects = _decode_as(_USERS, body)
    if objects is None:
        return decode_json(body)
    users = []
    append = users.append
    for o in objects:
        if not o.userId:
            return decode_json(body)
        tags, props, attributes = o.tags, o.customProperties, o.attributes
        append(
            User(
                o.id,
                o.userDirectory,
                o.userId,
                o.name or "",
                o.inactive,
                o.blacklisted,
                o.removedExternally,
                tuple(t.name for t in tags) if tags else (),
                tuple(
                    CustomPropertyValue(p.definition.name, "" if p.value is None else str(p.value))
                    for p in props
                )
                if props
                else (),
                tuple(
                    UserAttribute(
                        a.attributeType, "" if a.attributeValue is None else str(a.attributeValue)
                    )
                    for a in attributes
                )
                if attributes
                else (),
            )
        )
    return users
