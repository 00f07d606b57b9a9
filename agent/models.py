"""Plain, frozen data that flows between the core and plugins.

QRS answers are parsed into these classes exactly once, in :func:`parse_allocation` and
:func:`parse_user`; everything after that point (release rules, destinations, reports) works on
validated values and never on raw JSON. A QRS object that cannot be interpreted raises
:class:`QrsDataError`, and the release core keeps the allocation it belongs to: uncertain data
never leads to a release.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

UTC = timezone.utc

#: The features a point belongs to; destinations are enabled per feature.
FEATURE_LICENSE_MONITOR = "license_monitor"
FEATURE_LICENSE_RELEASE = "license_release"
FEATURE_SERVER_LICENSE = "server_license"
FEATURES = (FEATURE_LICENSE_MONITOR, FEATURE_LICENSE_RELEASE, FEATURE_SERVER_LICENSE)

MEASUREMENT_LICENSE = "qlik_sense_license"
MEASUREMENT_RELEASE = "qlik_sense_license_release"
MEASUREMENT_SERVER_LICENSE = "qlik_sense_server_license"

FieldValue = float | int | bool | str


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


@dataclass(frozen=True, slots=True)
class UserRef:
    """The condensed user embedded in an allocation."""

    id: str
    user_directory: str
    user_id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class CustomPropertyValue:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class UserAttribute:
    """An attribute a user directory connector synced to the user: ``attributeType`` (such as
    ``Group`` or ``Email``) and ``attributeValue``. Plugin rules may protect by them."""

    type: str
    value: str


@dataclass(frozen=True, slots=True)
class User:
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


@dataclass(frozen=True, slots=True)
class Allocation:
    """A Professional or Analyzer access allocation.

    ``last_used`` is ``None`` for an allocation that was never used (QRS gives null, or a
    sentinel earlier than ``created``). ``user`` is ``None`` when the owner was deleted; then
    ``deleted_user_directory`` / ``deleted_user_id`` name the former owner.
    """

    id: str
    license_type: str
    user: UserRef | None
    created: datetime
    last_used: datetime | None
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
        return int((now - self.last_activity).total_seconds() // 86400)


@dataclass(frozen=True, slots=True)
class Candidate:
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


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an allocation was kept (or failed): the rule or step, and a sentence for humans."""

    rule: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class AllocationDecision:
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

_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def parse_qrs_time(value: Any) -> datetime | None:
    """Parse a QRS timestamp (``2026-01-23T04:56:07.000Z``) to aware UTC; ``None`` stays None.

    Raises :class:`QrsDataError` for anything else.
    """
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 24 and value[10] == "T" and value[23] == "Z":
        # QRS's own format, nearly every value: a release run parses 100,000s of them, and
        # fromisoformat (Python 3.11+) is ten times faster than the general path below.
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass  # Python 3.10, or not a date: the general path decides
    if not isinstance(value, str) or not _TIME_RE.match(value.strip()):
        raise QrsDataError(f"not a QRS timestamp: {str(value)[:40]!r}")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Python < 3.11 fromisoformat accepts only 3 or 6 fraction digits.
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", text)
    if m:
        text = f"{m.group(1)}.{m.group(2)[:6].ljust(6, '0')}{m.group(3)}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise QrsDataError(f"not a QRS timestamp: {value[:40]!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
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


def _flag(obj: Mapping[str, Any], key: str) -> bool | None:
    value = obj.get(key)
    return value if isinstance(value, bool) else None


def parse_user_ref(obj: Any) -> UserRef:
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise QrsDataError("user is not an object")
    get = obj.get
    user_id_, directory, user_id, name = get("id"), get("userDirectory"), get("userId"), get("name")
    # Fast path for the usual shape (a release run parses one per allocation); anything
    # unusual goes through _str, which says what is wrong.
    if not (type(user_id_) is str and type(directory) is str and type(user_id) is str):
        user_id_, directory, user_id = (
            _str(obj, "id"),
            _str(obj, "userDirectory"),
            _str(obj, "userId"),
        )
    if type(name) is not str:
        name = _str(obj, "name", required=False)
    if not user_id_ or not user_id:
        raise QrsDataError("user has an empty id or userId")
    return UserRef(user_id_, directory, user_id, name)


def parse_allocation(obj: Any, license_type: str) -> Allocation:
    """Turn one QRS allocation object into an :class:`Allocation`, or raise QrsDataError."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise QrsDataError("allocation is not an object")
    get = obj.get
    alloc_id = get("id")
    if type(alloc_id) is not str:
        alloc_id = _str(obj, "id")
    if not alloc_id:
        raise QrsDataError("allocation has an empty id")
    created = parse_qrs_time(get("createdDate"))
    if created is None:
        raise QrsDataError("allocation has no createdDate")
    last_used = parse_qrs_time(get("lastUsed"))
    if last_used is not None and last_used < created:
        last_used = None  # QRS's "never used" sentinel (1753-01-01) or a null
    quarantined = get("quarantined", False)
    if type(quarantined) is not bool:
        raise QrsDataError("'quarantined' is not a boolean")
    try:
        quarantine_end = parse_qrs_time(get("quarantineEnd"))
    except QrsDataError:
        quarantine_end = None  # informative only; never used for a decision
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
        alloc_id,
        license_type,
        user,
        created,
        last_used,
        quarantined,
        quarantine_end,
        deleted_dir,
        deleted_id,
    )


def parse_user(obj: Any) -> User:
    """Turn one QRS user object (``/qrs/user/full``) into a :class:`User`, or raise."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise QrsDataError("user is not an object")
    tags_raw = obj.get("tags")
    if tags_raw is None:
        tags_raw = []
    if not isinstance(tags_raw, list):
        raise QrsDataError("'tags' is not a list")
    tags = []
    for tag in tags_raw:
        name = tag.get("name") if type(tag) is dict or isinstance(tag, Mapping) else None
        if type(name) is not str and not isinstance(name, str):
            raise QrsDataError("a tag has no name")
        tags.append(name)
    props_raw = obj.get("customProperties")
    if props_raw is None:
        props_raw = []
    if not isinstance(props_raw, list):
        raise QrsDataError("'customProperties' is not a list")
    props = []
    for prop in props_raw:
        definition = prop.get("definition") if isinstance(prop, Mapping) else None
        if not isinstance(definition, Mapping) or not isinstance(definition.get("name"), str):
            raise QrsDataError("a custom property value has no definition name")
        value = prop.get("value")
        if value is None:
            value = ""
        props.append(CustomPropertyValue(definition["name"], str(value)))
    attributes_raw = obj.get("attributes")
    if attributes_raw is None:
        attributes_raw = []
    if not isinstance(attributes_raw, list):
        raise QrsDataError("'attributes' is not a list")
    attributes = []
    for attribute in attributes_raw:
        kind = attribute.get("attributeType") if isinstance(attribute, Mapping) else None
        if not isinstance(kind, str):
            raise QrsDataError("an attribute has no attributeType")
        value = attribute.get("attributeValue")
        attributes.append(UserAttribute(kind, "" if value is None else str(value)))
    user_id = _str(obj, "userId")
    if not user_id:
        raise QrsDataError("user has an empty userId")
    return User(
        id=_str(obj, "id"),
        user_directory=_str(obj, "userDirectory"),
        user_id=user_id,
        name=_str(obj, "name", required=False),
        inactive=_flag(obj, "inactive"),
        blocked=_flag(obj, "blacklisted"),
        removed_externally=_flag(obj, "removedExternally"),
        tags=tuple(tags),
        custom_properties=tuple(props),
        attributes=tuple(attributes),
    )
