"""The simulated repository's data: users, license allocations, the site license, totals.

:class:`SimulatorState` holds QRS objects as plain dicts, shaped exactly as QRS returns them (see
``docs/simulator.md``). :meth:`SimulatorState.from_dict` reads the state-file format, fills every
missing optional field with its QRS default (except those an object lists under ``_absent``) and
normalizes dates, and serves every value the state gives as it is (a ``null`` list stays ``null``),
so tests can reproduce an odd QRS; :meth:`SimulatorState.to_dict` writes it back. Objects are never changed in place once loaded: a mutation replaces the dict, so a
snapshot taken under the store's lock stays consistent while it is serialized without the lock.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .clock import NEVER, format_date, normalize_date, parse_date

SERVICE_USER = "INTERNAL\\sa_repository"

ALLOCATION_COLLECTIONS: dict[str, str] = {
    "professionalaccesstype": "License.ProfessionalAccessType",
    "analyzeraccesstype": "License.AnalyzerAccessType",
    "useraccesstype": "License.UserAccessType",
}
"""Allocation collections (URL segment and state-file key) and their ``schemaPath``."""

USER_FIELDS: tuple[str, ...] = (
    "id",
    "createdDate",
    "modifiedDate",
    "modifiedByUserName",
    "schemaPath",
    "privileges",
    "customProperties",
    "userId",
    "userDirectory",
    "userDirectoryConnectorName",
    "name",
    "roles",
    "attributes",
    "inactive",
    "removedExternally",
    "blacklisted",
    "deleteProhibited",
    "tags",
    "favorites",
)
USER_CONDENSED_FIELDS: tuple[str, ...] = (
    "id",
    "userId",
    "userDirectory",
    "userDirectoryConnectorName",
    "name",
    "privileges",
)
ALLOCATION_FIELDS: tuple[str, ...] = (
    "id",
    "createdDate",
    "modifiedDate",
    "modifiedByUserName",
    "schemaPath",
    "privileges",
    "user",
    "lastUsed",
    "excess",
    "quarantined",
    "quarantineEnd",
    "deletedUserId",
    "deletedUserDirectory",
)
ALLOCATION_CONDENSED_FIELDS: tuple[str, ...] = (
    "id",
    "privileges",
    "user",
    "lastUsed",
    "excess",
    "quarantined",
    "quarantineEnd",
    "deletedUserId",
    "deletedUserDirectory",
)
DATE_FIELDS = ("createdDate", "modifiedDate", "lastUsed", "quarantineEnd")

DEFAULT_ABOUT: dict[str, Any] = {
    "buildVersion": "25.12.3.0",
    "buildDate": "11/14/2025 10:12:41 AM",
    "databaseProvider": "Devart.Data.PostgreSql",
    "nodeType": 1,
    "sharedPersistence": True,
    "requiresBootstrap": False,
    "singleNodeOnly": False,
    "schemaPath": "About",
}

_ID_NAMESPACE = uuid.UUID("5b8d0f0e-6a3c-4c55-9d51-3a3c5e0b7a11")


class StateError(ValueError):
    """A state document that cannot be loaded; the message names the object and field."""


def stable_id(*parts: str) -> str:
    """A deterministic UUID for objects that a state file gives without an ``id``."""
    return str(uuid.uuid5(_ID_NAMESPACE, "\x1f".join(parts)))


@dataclass
class SimulatorState:
    """Everything the simulated repository knows. Dict keys of collections are lower-case ids."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    allocations: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {name: {} for name in ALLOCATION_COLLECTIONS}
    )
    license: dict[str, Any] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    overview: dict[str, Any] = field(default_factory=dict)
    about: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ABOUT))
    now: str | None = None

    def copy(self) -> SimulatorState:
        """A copy whose containers are new; the objects are shared (they are never mutated)."""
        return SimulatorState(
            users=dict(self.users),
            allocations={name: dict(items) for name, items in self.allocations.items()},
            license=dict(self.license),
            totals=dict(self.totals),
            overview=dict(self.overview),
            about=dict(self.about),
            now=self.now,
        )

    def total(self, collection: str) -> int:
        """The licensed number for an allocation collection (``totals`` key without ``accesstype``)."""
        key = collection.removesuffix("accesstype")
        value = self.totals.get(key)
        return int(value) if value is not None else len(self.allocations.get(collection, {}))

    # -- the state-file format ---------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], now: dt.datetime) -> SimulatorState:
        """Load the state-file format; the document's ``now``, else ``now``, supplies default dates.

        :raises StateError: naming the offending object when a required field is missing or a
            date does not parse.
        """
        if not isinstance(data, Mapping):
            raise StateError("the state must be a JSON object")
        state = cls()
        if data.get("now"):
            try:
                now = parse_date(str(data["now"]))
            except ValueError:
                raise StateError(f"'now' is not an ISO date: {data['now']!r}") from None
            state.now = format_date(now)
        now_text = format_date(now)
        for index, raw in enumerate(data.get("users") or []):
            user = normalize_user(raw, now_text, f"users[{index}]")
            state.users[user["id"].lower()] = user
        by_name = {
            (u["userDirectory"].casefold(), u["userId"].casefold()): u for u in state.users.values()
        }
        for collection, schema_path in ALLOCATION_COLLECTIONS.items():
            target = state.allocations[collection]
            for index, raw in enumerate(data.get(collection) or []):
                where = f"{collection}[{index}]"
                allocation = normalize_allocation(
                    raw, schema_path, now_text, where, state.users, by_name
                )
                target[allocation["id"].lower()] = allocation
        state.license = default_license(now) | dict(data.get("license") or {})
        state.totals = {str(k): int(v) for k, v in (data.get("totals") or {}).items()}
        state.overview = dict(data.get("overview") or {})
        state.about = DEFAULT_ABOUT | dict(data.get("about") or {})
        return state

    def to_dict(self) -> dict[str, Any]:
        """The state-file format: allocations carry their condensed user object."""
        document: dict[str, Any] = {
            "now": self.now,
            "users": [_absent_named(u, USER_FIELDS) for u in self.users.values()],
        }
        for collection in ALLOCATION_COLLECTIONS:
            fields = ALLOCATION_FIELDS
            if collection == "useraccesstype":
                fields = tuple(f for f in fields if f != "excess")
            document[collection] = [
                _absent_named(a, fields) for a in self.allocations[collection].values()
            ]
        document["license"] = self.license
        document["totals"] = {
            key.removesuffix("accesstype"): self.total(key)
            for key in ("professionalaccesstype", "analyzeraccesstype")
        } | self.totals
        document["overview"] = self.overview
        document["about"] = self.about
        return document


def _absent_named(obj: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """``obj`` as the state file writes it: QRS fields it lacks are listed under ``_absent``, so
    that loading the file again serves the same object (and does not fill in defaults)."""
    absent = [f for f in fields if f not in obj]
    return {**obj, ABSENT: absent} if absent else obj


def condensed_user(user: Mapping[str, Any]) -> dict[str, Any]:
    return {name: user.get(name) for name in USER_CONDENSED_FIELDS}


def normalize_user(raw: Mapping[str, Any], now: str, where: str) -> dict[str, Any]:
    """A full QRS user object from a possibly partial one (``userId`` and ``userDirectory`` required)."""
    if not isinstance(raw, Mapping):
        raise StateError(f"{where}: a user must be an object")
    for required in ("userId", "userDirectory"):
        if not isinstance(raw.get(required), str) or not raw.get(required):
            raise StateError(f"{where}: '{required}' is required and must be a non-empty string")
    directory, user_id = raw["userDirectory"], raw["userId"]
    created = _date(raw, "createdDate", now, where)
    user: dict[str, Any] = {
        "id": str(raw.get("id") or stable_id("user", directory.casefold(), user_id.casefold())),
        "createdDate": created,
        "modifiedDate": _date(raw, "modifiedDate", created, where),
        "modifiedByUserName": raw.get("modifiedByUserName", SERVICE_USER),
        "schemaPath": raw.get("schemaPath", "User"),
        "privileges": raw.get("privileges"),
        "customProperties": _each(
            raw,
            "customProperties",
            lambda i, value: normalize_custom_property(
                value, now, f"{where}.customProperties[{i}]"
            ),
        ),
        "userId": user_id,
        "userDirectory": directory,
        "userDirectoryConnectorName": raw.get("userDirectoryConnectorName", directory),
        "name": raw.get("name", user_id),
        "roles": _each(raw, "roles"),
        "attributes": _each(raw, "attributes"),
        "inactive": raw.get("inactive", False),
        "removedExternally": raw.get("removedExternally", False),
        "blacklisted": raw.get("blacklisted", False),
        "deleteProhibited": raw.get("deleteProhibited", False),
        "tags": _each(raw, "tags", lambda i, tag: normalize_tag(tag, f"{where}.tags[{i}]")),
        "favorites": _each(raw, "favorites"),
    }
    return _with_extras_and_absent(user, raw, where)


def _each(
    raw: Mapping[str, Any], key: str, normalize: Callable[[int, Any], Any] | None = None
) -> Any:
    """A list field: missing is QRS's default ``[]``; a list has its items normalized; any other
    value (``null``, a string...) is served as given, so tests can reproduce an odd QRS."""
    if key not in raw:
        return []
    value = raw[key]
    if not isinstance(value, list):
        return value
    return [normalize(i, item) for i, item in enumerate(value)] if normalize else list(value)


#: The state-file key naming fields to leave out of an object, as a QRS that omits them would.
ABSENT = "_absent"


def _with_extras_and_absent(
    obj: dict[str, Any], raw: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """Keep fields a newer QRS might return, then drop those the state lists under ``_absent``."""
    for extra, value in raw.items():
        if extra != ABSENT:
            obj.setdefault(extra, value)
    absent = raw.get(ABSENT) or []
    if not isinstance(absent, list) or not all(isinstance(k, str) for k in absent):
        raise StateError(f"{where}: '{ABSENT}' must be a list of field names")
    if "id" in absent:
        raise StateError(f"{where}: '{ABSENT}' cannot remove 'id'")
    for key in absent:
        obj.pop(key, None)
    return obj


def normalize_tag(raw: Any, where: str) -> dict[str, Any]:
    """A tag from ``{"name": ...}`` (or just the name as a string)."""
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise StateError(f"{where}: a tag needs a 'name'")
    return {
        "id": str(raw.get("id") or stable_id("tag", raw["name"])),
        "name": raw["name"],
        "privileges": raw.get("privileges"),
    }


def normalize_custom_property(raw: Any, now: str, where: str) -> dict[str, Any]:
    """A custom property value; ``definition`` may be a full object or just its name."""
    if not isinstance(raw, Mapping) or "value" not in raw or "definition" not in raw:
        raise StateError(f"{where}: a custom property value needs 'definition' and 'value'")
    definition = raw["definition"]
    if isinstance(definition, str):
        definition = {"name": definition}
    if not isinstance(definition, Mapping) or not isinstance(definition.get("name"), str):
        raise StateError(f"{where}: 'definition' needs a 'name'")
    created = _date(raw, "createdDate", now, where)
    return {
        "id": str(raw.get("id") or stable_id("cpv", where, definition["name"], str(raw["value"]))),
        "createdDate": created,
        "modifiedDate": _date(raw, "modifiedDate", created, where),
        "modifiedByUserName": raw.get("modifiedByUserName", SERVICE_USER),
        "schemaPath": raw.get("schemaPath", "CustomPropertyValue"),
        "value": raw["value"],
        "definition": {
            "id": str(definition.get("id") or stable_id("cpd", definition["name"])),
            "name": definition["name"],
            "valueType": definition.get("valueType", "Text"),
            "choiceValues": list(definition.get("choiceValues") or []),
            "privileges": definition.get("privileges"),
        },
    }


def normalize_allocation(
    raw: Mapping[str, Any],
    schema_path: str,
    now: str,
    where: str,
    users: Mapping[str, Mapping[str, Any]],
    by_name: Mapping[tuple[str, str], Mapping[str, Any]],
) -> dict[str, Any]:
    """A full allocation; ``user`` may be a user id, a (partial) condensed user, or null."""
    if not isinstance(raw, Mapping):
        raise StateError(f"{where}: an allocation must be an object")
    user = _allocation_user(raw.get("user"), where, users, by_name)
    created = _date(raw, "createdDate", now, where)
    owner = user["id"] if user else raw.get("deletedUserId", "")
    allocation: dict[str, Any] = {
        "id": str(raw.get("id") or stable_id("allocation", schema_path, str(owner), where)),
        "createdDate": created,
        "modifiedDate": _date(raw, "modifiedDate", created, where),
        "modifiedByUserName": raw.get("modifiedByUserName", SERVICE_USER),
        "schemaPath": raw.get("schemaPath", schema_path),
        "privileges": raw.get("privileges"),
        "user": user,
        "lastUsed": _date(raw, "lastUsed", None, where),
        "excess": bool(raw.get("excess", False)),
        "quarantined": bool(raw.get("quarantined", False)),
        # a quarantined allocation without an end would be freed at once: give it the full 7 days
        "quarantineEnd": _date(
            raw, "quarantineEnd", _plus_days(now, 7) if raw.get("quarantined") else NEVER, where
        ),
        "deletedUserId": raw.get("deletedUserId", ""),
        "deletedUserDirectory": raw.get("deletedUserDirectory", ""),
    }
    if schema_path == ALLOCATION_COLLECTIONS["useraccesstype"]:
        del allocation["excess"]
    return _with_extras_and_absent(allocation, raw, where)


def _allocation_user(
    value: Any,
    where: str,
    users: Mapping[str, Mapping[str, Any]],
    by_name: Mapping[tuple[str, str], Mapping[str, Any]],
) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        found = users.get(value.lower())
        if found is None:
            raise StateError(f"{where}: user id '{value}' is not in 'users'")
        return condensed_user(found)
    if not isinstance(value, Mapping):
        raise StateError(f"{where}: 'user' must be a user id, a user object or null")
    if value.get("id") and str(value["id"]).lower() in users:
        return condensed_user(users[str(value["id"]).lower()])
    directory, user_id = value.get("userDirectory"), value.get("userId")
    if isinstance(directory, str) and isinstance(user_id, str):
        found = by_name.get((directory.casefold(), user_id.casefold()))
        if found is not None:
            return condensed_user(found)
        if not value.get("id"):
            value = {**value, "id": stable_id("user", directory.casefold(), user_id.casefold())}
    if not value.get("id"):
        raise StateError(f"{where}: 'user' needs an 'id' or 'userDirectory' and 'userId'")
    return {
        "id": str(value["id"]),
        "userId": value.get("userId", ""),
        "userDirectory": value.get("userDirectory", ""),
        "userDirectoryConnectorName": value.get(
            "userDirectoryConnectorName", value.get("userDirectory", "")
        ),
        "name": value.get("name", value.get("userId", "")),
        "privileges": value.get("privileges"),
    }


def _plus_days(date: str, days: int) -> str:
    return format_date(parse_date(date) + dt.timedelta(days=days))


def _date(raw: Mapping[str, Any], key: str, default: str | None, where: str) -> str | None:
    if key not in raw:
        return default
    value = raw[key]
    if value is None:
        return None
    if not isinstance(value, str):
        raise StateError(f"{where}: '{key}' must be an ISO date string or null")
    try:
        return normalize_date(value)
    except ValueError:
        raise StateError(f"{where}: '{key}' is not an ISO date: {value!r}") from None


def default_license(now: dt.datetime) -> dict[str, Any]:
    """A valid, unexpired site license whose ``keyDetails`` says it runs one more year."""
    valid_from = (now - dt.timedelta(days=365)).date()
    valid_to = (now + dt.timedelta(days=365)).date()
    created = format_date(now - dt.timedelta(days=365))
    key_details = "\n".join(
        [
            "Serial: 9999000000001234",
            "Product: Qlik Sense Enterprise for Windows",
            "Organization: ACME Corp",
            "LEF Access: Professional, Analyzer",
            f"Valid From: {valid_from.isoformat()} 12:00:00 AM",
            f"Valid To: {valid_to.isoformat()} 12:00:00 AM",
            "Professional Access Allocations: see totals",
        ]
    )
    return {
        "id": stable_id("license"),
        "createdDate": created,
        "modifiedDate": created,
        "modifiedByUserName": SERVICE_USER,
        "schemaPath": "License",
        "privileges": None,
        "lef": "9999000000001234\nProduct;...\nSimulated LEF",
        "serial": "9999000000001234",
        "check": "1234",
        "name": "Simulated Site",
        "organization": "ACME Corp",
        "product": 0,
        "numberOfCores": 0,
        "isExpired": False,
        "expiredReason": "",
        "isBlacklisted": False,
        "isInvalid": False,
        "isSubscription": True,
        "isCloudServices": False,
        "isElastic": False,
        "key": "",
        "keyDetails": key_details,
    }
