"""A realistic generated site: the same users and allocations for the same seed and "now".

The mix follows what license admins see: about 55 % of users hold a Professional allocation, 35 %
an Analyzer one, the rest none; last use ranges from today to well over a year (about a third
older than 30 days); some allocations were never used (``lastUsed`` null or the 1753 sentinel, on
old and recent allocations); a few are quarantined; a few belong to deleted users (``user`` null).
Users spread over several directories (INTERNAL service accounts, ACME, EU, ÅLAND with non-ASCII
names, ADMIN), carry tags (some with ``&`` and ``#`` in the name) and custom properties
(``LicenseManage`` with one or several values), and some are inactive, blocked
(``blacklisted``) or removed externally. Everything is relative to ``now``, so tests that fix
the clock get byte-identical states.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

from .clock import NEVER, format_date
from .state import (
    ALLOCATION_COLLECTIONS,
    DEFAULT_ABOUT,
    SERVICE_USER,
    SimulatorState,
    default_license,
)

SERVICE_ACCOUNTS = ("sa_api", "sa_repository", "sa_scheduler", "sa_engine", "sa_proxy")
ADMIN_ACCOUNTS = ("qs_admin_account", "admin.root", "admin.ops")

_FIRST = (
    "Anna", "Björn", "Carlos", "Dana", "Erik", "Fatima", "Grace", "Hugo", "Ingrid", "José",
    "Kai", "Lena", "Łukasz", "Maria", "Noah", "Olivia", "Pål", "Quinn", "Rosa", "Siobhán",
    "Tomás", "Ulla", "Vera", "Wei", "Xavier", "Yusuf", "Zoë", "Åsa", "Émile", "Jürgen",
)  # fmt: skip
_LAST = (
    "Andersson", "Brown", "Chen", "Dubois", "Eriksson", "García", "Hansen", "Ivanova", "Jones",
    "Kowalski", "Lindqvist", "Müller", "Nakamura", "O'Brien", "Petersen", "Quist", "Rossi",
    "Smith", "Tanaka", "Ødegård", "Vargas", "Weber", "Żółć", "Núñez", "D'Angelo",
)  # fmt: skip
_DIRECTORIES = (("ACME", 0.62), ("EU", 0.84), ("ÅLAND", 0.99), ("ADMIN", 1.0))
_TAGS = ("License do not release", "some other tag", "Finance", "Contractor", "R&D #1", "VIP")
_DEPARTMENTS = ("Finance", "Sales", "R&D", "HR", "Logistik & Lager")
_LICENSE_MANAGE = ("do-not-release", "review", "auto-release")


def generate_state(
    users: int = 2000, seed: int = 1, now: dt.datetime | None = None
) -> SimulatorState:
    """Generate a site with ``users`` users (at least the service accounts) from ``seed``.

    :param now: the moment all dates are relative to; default the real UTC now. The same
        ``seed`` and ``now`` always give the same state.
    """
    moment = now or dt.datetime.now(dt.timezone.utc)
    return _Generator(seed, moment).build(max(users, 0))


class _Generator:
    def __init__(self, seed: int, now: dt.datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.now_ts = now.timestamp()
        self.tags = {name: self._tag(name) for name in _TAGS}
        self.definitions = {
            "LicenseManage": self._definition("LicenseManage", list(_LICENSE_MANAGE)),
            "Department": self._definition("Department", list(_DEPARTMENTS)),
        }
        self.state = SimulatorState(about=dict(DEFAULT_ABOUT))

    # -- helpers -----------------------------------------------------------------------------

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def ago(self, days: float) -> str:
        """The date ``days`` before now (millisecond precision), formatted."""
        millis = int(days * 86_400_000)
        return format_date(self.now - dt.timedelta(milliseconds=millis))

    def _tag(self, name: str) -> dict[str, Any]:
        return {"id": self.uuid(), "name": name, "privileges": None}

    def _definition(self, name: str, choices: list[str]) -> dict[str, Any]:
        return {
            "id": self.uuid(),
            "name": name,
            "valueType": "Text",
            "choiceValues": choices,
            "privileges": None,
        }

    def _custom_value(self, definition: str, value: str, created: str) -> dict[str, Any]:
        return {
            "id": self.uuid(),
            "createdDate": created,
            "modifiedDate": created,
            "modifiedByUserName": SERVICE_USER,
            "schemaPath": "CustomPropertyValue",
            "value": value,
            "definition": self.definitions[definition],
        }

    # -- users -------------------------------------------------------------------------------

    def user(self, directory: str, user_id: str, name: str, **flags: Any) -> dict[str, Any]:
        rng = self.rng
        created = self.ago(rng.uniform(30, 1500))
        modified = self.ago(rng.uniform(0, 30))
        user: dict[str, Any] = {
            "id": self.uuid(),
            "createdDate": created,
            "modifiedDate": max(created, modified),
            "modifiedByUserName": SERVICE_USER,
            "schemaPath": "User",
            "privileges": None,
            "customProperties": [],
            "userId": user_id,
            "userDirectory": directory,
            "userDirectoryConnectorName": directory,
            "name": name,
            "roles": [],
            "attributes": [],
            "inactive": False,
            "removedExternally": False,
            "blacklisted": False,
            "deleteProhibited": False,
            "tags": [],
            "favorites": [],
        }
        user.update(flags)
        return user

    def regular_user(self, index: int) -> dict[str, Any]:
        rng = self.rng
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        pick = rng.random()
        directory = next(name for name, limit in _DIRECTORIES if pick < limit)
        if directory == "ÅLAND" or rng.random() < 0.5:
            user_id = f"{first}.{last}{index}".lower().replace(" ", "")
        else:
            user_id = f"{first[0]}{last}{index}".lower().replace(" ", "")
        user = self.user(directory, user_id, f"{first} {last}")
        roll = rng.random()
        if roll < 0.03:
            user["tags"] = [self.tags["License do not release"]]
        elif roll < 0.12:
            user["tags"] = rng.sample([self.tags[n] for n in _TAGS[1:]], rng.randint(1, 2))
        roll = rng.random()
        values: list[dict[str, Any]] = []
        if roll < 0.05:
            values.append(
                self._custom_value("LicenseManage", "do-not-release", user["createdDate"])
            )
        elif roll < 0.07:
            values.append(self._custom_value("LicenseManage", "review", user["createdDate"]))
        elif roll < 0.08:
            for value in ("review", "do-not-release"):
                values.append(self._custom_value("LicenseManage", value, user["createdDate"]))
        if rng.random() < 0.3:
            values.append(
                self._custom_value("Department", rng.choice(_DEPARTMENTS), user["createdDate"])
            )
        user["customProperties"] = values
        if rng.random() < 0.1:
            user["attributes"] = [
                {
                    "id": self.uuid(),
                    "createdDate": user["createdDate"],
                    "modifiedDate": user["createdDate"],
                    "modifiedByUserName": SERVICE_USER,
                    "attributeType": "Email",
                    "attributeValue": f"{user_id}@example.com",
                    "externalId": "mail",
                    "schemaPath": "UserAttribute",
                }
            ]
        user["inactive"] = rng.random() < 0.03
        user["blacklisted"] = rng.random() < 0.02
        user["removedExternally"] = rng.random() < 0.03
        if directory == "ADMIN":
            user["roles"] = ["RootAdmin"]
            user["deleteProhibited"] = True
        return user

    # -- allocations -------------------------------------------------------------------------

    def allocation(
        self,
        collection: str,
        user: dict[str, Any] | None,
        *,
        last_used_days: float | None,
        never: str | None = None,
        quarantine_left_days: float | None = None,
    ) -> dict[str, Any]:
        """One allocation; ``never`` is ``"null"`` or ``"sentinel"`` for a never-used one."""
        rng = self.rng
        if never is not None:
            created = self.ago(rng.uniform(0, 20) if rng.random() < 0.5 else rng.uniform(40, 600))
            last_used: str | None = None if never == "null" else NEVER
        else:
            assert last_used_days is not None
            last_used = self.ago(last_used_days)
            created = self.ago(last_used_days + rng.uniform(0, 700))
        modified = created
        quarantined, quarantine_end = False, NEVER
        if quarantine_left_days is not None:
            quarantined = True
            started = self.now - dt.timedelta(
                milliseconds=int((7 - quarantine_left_days) * 86_400_000)
            )
            modified = format_date(started)
            quarantine_end = format_date(started + dt.timedelta(days=7))
        allocation: dict[str, Any] = {
            "id": self.uuid(),
            "createdDate": created,
            "modifiedDate": modified,
            "modifiedByUserName": SERVICE_USER,
            "schemaPath": ALLOCATION_COLLECTIONS[collection],
            "privileges": None,
            "user": _condensed(user) if user is not None else None,
            "lastUsed": last_used,
            "excess": False,
            "quarantined": quarantined,
            "quarantineEnd": quarantine_end,
            "deletedUserId": "",
            "deletedUserDirectory": "",
        }
        return allocation

    def usage(self) -> tuple[float | None, str | None]:
        """(days since last use, never-used kind) for a regular allocation."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.03:
            return None, "null"
        if roll < 0.06:
            return None, "sentinel"
        roll = rng.random()
        if roll < 0.42:
            return rng.uniform(0, 7), None
        if roll < 0.66:
            return rng.uniform(7, 30), None
        return rng.uniform(30, 500), None

    def add(self, collection: str, allocation: dict[str, Any]) -> None:
        self.state.allocations[collection][allocation["id"]] = allocation

    # -- the site ----------------------------------------------------------------------------

    def build(self, count: int) -> SimulatorState:
        rng, state = self.rng, self.state
        users: list[dict[str, Any]] = []
        for user_id in SERVICE_ACCOUNTS:
            users.append(
                self.user("INTERNAL", user_id, user_id, deleteProhibited=True, roles=["RootAdmin"])
            )
        for user_id in ADMIN_ACCOUNTS:
            users.append(self.user("ADMIN", user_id, user_id, roles=["RootAdmin"]))
        users = users[:count]
        for index in range(len(users), count):
            users.append(self.regular_user(index))
        for user in users:
            state.users[user["id"]] = user

        prof, anal = "professionalaccesstype", "analyzeraccesstype"
        # fixed cases first, so even a tiny site has each kind
        specials = {
            "sa_api": (prof, 90.0),
            "sa_repository": (anal, 200.0),
            "qs_admin_account": (prof, 400.0),
        }
        regular_index = 0
        for user in users:
            special = (
                specials.get(user["userId"])
                if user["userDirectory"] in ("INTERNAL", "ADMIN")
                else None
            )
            if special is not None:
                self.add(special[0], self.allocation(special[0], user, last_used_days=special[1]))
                continue
            if user["userDirectory"] == "INTERNAL" or user["userId"] in ADMIN_ACCOUNTS:
                continue
            roll = rng.random()
            regular_index += 1
            if regular_index <= 4:  # one quarantined and one never-used of each type
                collection = prof if regular_index % 2 else anal
                if regular_index <= 2:
                    left = rng.uniform(0.5, 6.5)
                    self.add(
                        collection,
                        self.allocation(
                            collection,
                            user,
                            last_used_days=7 - left + rng.uniform(0, 3),
                            quarantine_left_days=left,
                        ),
                    )
                else:
                    never = "null" if regular_index == 3 else "sentinel"
                    self.add(
                        collection,
                        self.allocation(collection, user, last_used_days=None, never=never),
                    )
                continue
            if roll >= 0.90:
                continue
            collection = prof if roll < 0.55 else anal
            days, never = self.usage()
            left = None
            if never is None and days is not None and days < 7 and rng.random() < 0.01:
                left = rng.uniform(0.5, 6.5)
                days = 7 - left + rng.uniform(0, min(3.0, left))
            self.add(
                collection,
                self.allocation(
                    collection, user, last_used_days=days, never=never, quarantine_left_days=left
                ),
            )

        deleted = max(2, count // 300) if count else 0
        for index in range(deleted):
            collection = prof if index % 2 == 0 else anal
            allocation = self.allocation(collection, None, last_used_days=rng.uniform(20, 400))
            allocation["deletedUserId"] = f"leaver{index}"
            allocation["deletedUserDirectory"] = "ACME" if index % 3 else "EU"
            self.add(collection, allocation)

        for collection in (prof, anal):
            allocated = len(state.allocations[collection])
            state.totals[collection.removesuffix("accesstype")] = allocated + max(
                5, allocated // 20
            )
        state.license = default_license(self.now)
        return state


def _condensed(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": user["id"],
        "userId": user["userId"],
        "userDirectory": user["userDirectory"],
        "userDirectoryConnectorName": user["userDirectoryConnectorName"],
        "name": user["name"],
        "privileges": None,
    }
