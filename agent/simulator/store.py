"""The thread-safe repository behind the HTTP layer: queries, quarantine rules, JSON encoding.

One :class:`Store` per simulator. A ``threading.Lock`` guards only mutations and snapshots (a
snapshot is a list of object references: objects are replaced, never changed in place, so they can
be filtered and encoded outside the lock). Each object's JSON is cached by identity, so listing
100,000 users costs one join after the first request. Quarantine follows QRS: deleting an
allocation used within the last 7 days (by the simulator clock) quarantines it until now + 7 days;
when that moment passes it disappears. Allocating to a user whose own allocation is in
quarantine reinstates it; any other allocation needs an available license.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from .clock import NEVER, Clock, format_date
from .filtering import (
    CompiledFilter,
    compile_filter,
    order_objects,
    parse_orderby,
    resolve_path,
    sort_key,
)
from .state import (
    ALLOCATION_COLLECTIONS,
    ALLOCATION_CONDENSED_FIELDS,
    ALLOCATION_FIELDS,
    USER_CONDENSED_FIELDS,
    USER_FIELDS,
    SimulatorState,
    condensed_user,
)

QUARANTINE = dt.timedelta(days=7)
COLLECTIONS = ("user", *ALLOCATION_COLLECTIONS)
#: How QRS's messages name each license type.
_LICENSE_NAMES = {
    "professionalaccesstype": "professional access",
    "analyzeraccesstype": "analyzer access",
    "useraccesstype": "user access",
}

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, as QRS sends it."""
    return _ENCODER.encode(value).encode("utf-8")


def fields_of(collection: str) -> tuple[str, ...]:
    return USER_FIELDS if collection == "user" else ALLOCATION_FIELDS


class Store:
    """The simulated repository: the current state, its initial copy, the clock."""

    def __init__(self, state: SimulatorState, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._initial = state.copy()
        self._state = state.copy()
        self._quarantined: dict[str, set[str]] = {}
        self._encoded: dict[tuple[str, str], dict[str, tuple[dict[str, Any], bytes]]] = {}
        self._index_quarantine()

    # -- whole-state operations --------------------------------------------------------------

    def load(self, state: SimulatorState, *, as_initial: bool = True) -> None:
        """Replace the state (and, by default, what :meth:`reset` returns to)."""
        with self._lock:
            if as_initial:
                self._initial = state.copy()
            self._state = state.copy()
            self._encoded.clear()
            self._index_quarantine()
        if state.now:
            self.clock.set(state.now)

    def reset(self) -> None:
        """Back to the initial state (the clock is left alone; the caller resets it)."""
        with self._lock:
            self._state = self._initial.copy()
            # The JSON cache stays: the initial objects are the very dicts it was filled from
            # (entries are checked by identity), so the first big list after a reset answers as
            # fast as before it instead of encoding every object again.
            self._index_quarantine()

    def snapshot(self) -> SimulatorState:
        """A consistent copy of the current state (objects shared, treat them as read-only)."""
        with self._lock:
            self._expire_quarantine()
            return self._state.copy()

    # -- reads -------------------------------------------------------------------------------

    def objects(self, collection: str) -> list[dict[str, Any]]:
        with self._lock:
            self._expire_quarantine()
            return list(self._items(collection).values())

    def get(self, collection: str, object_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._expire_quarantine()
            return self._items(collection).get(object_id.lower())

    def query(
        self,
        collection: str,
        filter_text: str | None = None,
        orderby: str | None = None,
    ) -> list[dict[str, Any]]:
        """The objects matching ``filter_text`` (QRS syntax), optionally ordered.

        :raises FilterError: on a malformed filter or orderby.
        """
        fields = fields_of(collection)
        compiled: CompiledFilter | None = (
            compile_filter(filter_text, fields) if filter_text else None
        )
        order = parse_orderby(orderby, fields) if orderby else None
        with self._lock:
            self._expire_quarantine()
            items = self._items(collection)
            if compiled is not None and compiled.candidate_ids is not None:
                found = (items.get(object_id) for object_id in sorted(compiled.candidate_ids))
                candidates = [obj for obj in found if obj is not None]
            else:
                candidates = list(items.values())
        if compiled is not None and not compiled.exact:
            predicate = compiled.predicate
            candidates = [obj for obj in candidates if predicate(obj)]
        if order:
            candidates = order_objects(candidates, order)
        return candidates

    def encode_list(self, collection: str, objects: Sequence[dict[str, Any]], view: str) -> bytes:
        """JSON for a list response; ``view`` is ``"full"`` or ``"condensed"``."""
        cache = self._encoded.setdefault((collection, view), {})
        shape = _condense(collection) if view == "condensed" else None
        parts: list[bytes] = []
        append = parts.append
        for obj in objects:
            key = obj["id"]
            hit = cache.get(key)
            if hit is not None and hit[0] is obj:
                append(hit[1])
                continue
            encoded = encode_json(shape(obj) if shape else obj)
            cache[key] = (obj, encoded)
            append(encoded)
        return b"[" + b",".join(parts) + b"]"

    def warm(self) -> None:
        """Encode every object's full JSON now, so the first big list answers as fast as later ones."""
        for collection in COLLECTIONS:
            self.encode_list(collection, self.objects(collection), "full")

    def table(
        self,
        collection: str,
        columns: list[dict[str, Any]],
        filter_text: str | None,
        skip: int,
        take: int,
        sort_column: str | None,
        ascending: bool,
    ) -> list[list[Any]]:
        """Rows for ``POST /qrs/<type>/table``. :raises FilterError: on a bad filter or column."""
        getters = [_column_getter(column) for column in columns]
        objects = self.query(collection, filter_text)
        if sort_column:
            names = [str(column.get("name", "")) for column in columns]
            matches = [i for i, name in enumerate(names) if name.lower() == sort_column.lower()]
            if matches:
                getter = getters[matches[0]]
                objects = sorted(
                    objects, key=lambda obj: sort_key(_first(getter(obj))), reverse=not ascending
                )
            else:
                path = tuple(sort_column.split("."))
                objects = sorted(
                    objects,
                    key=lambda obj: sort_key(_first(resolve_path(obj, path)[0])),
                    reverse=not ascending,
                )
        elif not ascending:
            objects.reverse()
        window = objects[skip:] if take <= 0 else objects[skip : skip + take]
        return [[getter(obj) for getter in getters] for obj in window]

    def overview(self) -> dict[str, Any]:
        """``/qrs/license/accesstypeoverview`` computed from the allocations."""
        with self._lock:
            self._expire_quarantine()
            state = self._state
            lists = {name: list(items.values()) for name, items in state.allocations.items()}
            totals = {name: state.total(name) for name in ALLOCATION_COLLECTIONS}
            overrides = dict(state.overview)

        def details(collection: str) -> dict[str, Any]:
            allocations = lists[collection]
            allocated = len(allocations)
            total = totals[collection]
            return {
                "enabled": True,
                "total": total,
                "allocated": allocated,
                "used": sum(1 for a in allocations if _was_used(a)),
                "quarantined": sum(1 for a in allocations if a.get("quarantined")),
                "excess": sum(1 for a in allocations if a.get("excess")),
                "available": max(total - allocated, 0),
                "schemaPath": "AccessTypeOverview.Details",
            }

        user_access = lists["useraccesstype"]
        # A token site: it holds User access allocations, or the state gives its tokens.
        tokens = bool(user_access) or "user" in state.totals
        total_tokens = totals["useraccesstype"] if tokens else 0
        document: dict[str, Any] = {
            "totalTokens": total_tokens,
            "availableTokens": max(total_tokens - len(user_access), 0),
            "tokensEnabled": tokens,
            "userAccess": {
                "enabled": tokens,
                "tokenCost": 1,
                "allocatedTokens": len(user_access),
                "usedTokens": sum(1 for a in user_access if _was_used(a)),
                "quarantinedTokens": sum(1 for a in user_access if a.get("quarantined")),
                "schemaPath": "AccessTypeOverview.UserAccessDetails",
            },
            "loginAccess": {
                "enabled": False,
                "tokenCost": 0.1,
                "allocatedTokens": 0,
                "usedTokens": 0,
                "unavailableTokens": 0,
                "schemaPath": "AccessTypeOverview.LoginAccessDetails",
            },
            "professionalAccess": details("professionalaccesstype"),
            "analyzerAccess": details("analyzeraccesstype"),
            "analyzerTimeAccess": {
                "enabled": True,
                "allocatedMinutes": 0,
                "usedMinutes": 0,
                "unavailableMinutes": 0,
                "schemaPath": "AccessTypeOverview.AnalyzerTimeAccessDetails",
            },
            "schemaPath": "AccessTypeOverview",
        }
        return merge_overrides(document, overrides)

    def license(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state.license)

    def about(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state.about)

    # -- mutations ---------------------------------------------------------------------------

    def delete_allocation(self, collection: str, allocation_id: str, actor: str) -> str | None:
        """Apply ``DELETE /qrs/license/<collection>/{id}``.

        :returns: ``"removed"``, ``"quarantined"``, ``"already-quarantined"`` (left unchanged),
            or ``None`` when the id is unknown.
        """
        now = self.clock.now()
        key = allocation_id.lower()
        with self._lock:
            self._expire_quarantine()
            items = self._state.allocations[collection]
            allocation = items.get(key)
            if allocation is None:
                return None
            if allocation.get("quarantined"):
                return "already-quarantined"
            last_used = allocation.get("lastUsed")
            if _was_used(allocation) and last_used > format_date(now - QUARANTINE):
                items[key] = {
                    **allocation,
                    "modifiedDate": format_date(now),
                    "modifiedByUserName": actor,
                    "quarantined": True,
                    "quarantineEnd": format_date(now + QUARANTINE),
                }
                self._quarantined.setdefault(collection, set()).add(key)
                outcome = "quarantined"
            else:
                del items[key]
                outcome = "removed"
            return outcome

    def create_allocation(
        self, collection: str, body: Any, actor: str
    ) -> tuple[int, dict[str, Any] | str]:
        """Apply ``POST /qrs/license/<collection>`` (QRS's generic create; the QMC's Allocate).

        The body names the user: ``{"user": {"id": "<guid>"}}``. A user whose own allocation of
        this type is in quarantine gets that allocation back (same id, out of quarantine, no
        license taken); otherwise a new allocation needs an available license of the type.

        :returns: ``(201, allocation)``, or ``(status, message)`` for a refusal: 400 for a body
            without a user id, an unknown user, or no license left; 409 when the user already
            holds a (not quarantined) allocation of this type.
        """
        user_ref = body.get("user") if isinstance(body, dict) else None
        user_id = user_ref.get("id") if isinstance(user_ref, dict) else None
        if not isinstance(user_id, str) or not user_id:
            return 400, 'The allocation needs a user: {"user": {"id": "<user id>"}}.'
        now = self.clock.now()
        key_user = user_id.lower()
        with self._lock:
            self._expire_quarantine()
            user = self._state.users.get(key_user)
            if user is None:
                return 400, f"Cannot create the allocation: no user with id {user_id}."
            items = self._state.allocations[collection]
            held = [
                (key, a)
                for key, a in items.items()
                if isinstance(a.get("user"), dict)
                and str(a["user"].get("id", "")).lower() == key_user
            ]
            kind = _LICENSE_NAMES.get(collection, collection)
            for key, allocation in held:
                if allocation.get("quarantined"):
                    # Reinstatement within the quarantine: the same allocation comes back.
                    reinstated = {
                        **allocation,
                        "modifiedDate": format_date(now),
                        "modifiedByUserName": actor,
                        "quarantined": False,
                        "quarantineEnd": NEVER,
                    }
                    items[key] = reinstated
                    self._quarantined.get(collection, set()).discard(key)
                    return 201, reinstated
            if held:
                return (
                    409,
                    f"The user {user['userDirectory']}\\{user['userId']} already has a {kind}"
                    " allocation.",
                )
            total = self._state.total(collection)
            if len(items) >= total:
                return (
                    400,
                    f"Cannot allocate a {kind} license: no license is available"
                    f" ({total} licensed, {len(items)} allocated).",
                )
            created = {
                "id": str(uuid.uuid4()),
                "createdDate": format_date(now),
                "modifiedDate": format_date(now),
                "modifiedByUserName": actor,
                "schemaPath": ALLOCATION_COLLECTIONS[collection],
                "privileges": None,
                "user": condensed_user(user),
                "lastUsed": None,
                "excess": False,
                "quarantined": False,
                "quarantineEnd": NEVER,
                "deletedUserId": "",
                "deletedUserDirectory": "",
            }
            if collection == "useraccesstype":
                del created["excess"]
            items[created["id"]] = created
            return 201, created

    # -- internals (call with the lock held) --------------------------------------------------

    def _items(self, collection: str) -> dict[str, dict[str, Any]]:
        if collection == "user":
            return self._state.users
        return self._state.allocations[collection]

    def _index_quarantine(self) -> None:
        self._quarantined = {
            collection: {key for key, a in items.items() if a.get("quarantined")}
            for collection, items in self._state.allocations.items()
        }

    def _expire_quarantine(self) -> None:
        """Free quarantined allocations whose ``quarantineEnd`` has passed."""
        if not any(self._quarantined.values()):
            return
        now = format_date(self.clock.now())
        for collection, keys in self._quarantined.items():
            items = self._state.allocations[collection]
            for key in [k for k in keys if k not in items or items[k].get("quarantineEnd") <= now]:
                keys.discard(key)
                if key in items and items[key].get("quarantined"):
                    del items[key]


def _was_used(allocation: dict[str, Any]) -> bool:
    """QRS.md: ``lastUsed`` null or earlier than ``createdDate`` means never used."""
    last_used = allocation.get("lastUsed")
    return last_used is not None and last_used >= (allocation.get("createdDate") or "")


def _condense(collection: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    names = USER_CONDENSED_FIELDS if collection == "user" else ALLOCATION_CONDENSED_FIELDS

    def shape(obj: dict[str, Any]) -> dict[str, Any]:
        return {name: obj[name] for name in names if name in obj}

    return shape


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _column_getter(column: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    """A value getter for one ``/table`` column.

    ``Property`` columns take a dotted ``definition`` path: a path through objects gives the value,
    a path through a collection gives the list of values. ``List`` columns give, for the
    collection named by the column ``name``, one row per element built from the sub-``list``.
    """
    if not isinstance(column, dict):
        raise ValueError("a column must be an object")
    kind = str(column.get("columnType", "Property"))
    if kind.lower() == "list":
        path = tuple(str(column.get("name", "")).split("."))
        sub = [_column_getter(item) for item in column.get("list") or []]

        def list_getter(obj: dict[str, Any]) -> Any:
            elements, _ = resolve_path(obj, path)
            return [[getter(e) for getter in sub] for e in elements if isinstance(e, dict)]

        return list_getter
    definition = column.get("definition") or column.get("name")
    if not isinstance(definition, str) or not definition:
        raise ValueError(f"column {column.get('name')!r} needs a 'definition'")
    path = tuple(definition.split("."))

    def property_getter(obj: dict[str, Any]) -> Any:
        values, through_collection = resolve_path(obj, path)
        if through_collection:
            return values
        return values[0] if values else None

    return property_getter


def merge_overrides(document: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Merge state-file ``overview`` overrides one level deep; ``null`` removes a key."""
    merged = dict(document)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            block = dict(merged[key])
            for inner, inner_value in value.items():
                if inner_value is None:
                    block.pop(inner, None)
                else:
                    block[inner] = inner_value
            merged[key] = block
        else:
            merged[key] = value
    return merged
