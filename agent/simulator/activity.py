"""Days of life on a simulated site: users open apps, some leave, newcomers get an allocation.

The demo drives the simulator's clock through weeks of history; without activity every
allocation would only grow older and the history would be flat. :meth:`SiteActivity.day` returns
the state one day later: an allocation used recently is likely used again today, a dormant one
rarely, so the mix of "days since last use" stays about what :mod:`.generate` makes; a few users
leave; a few users without an allocation log in for the first time and QRS assigns them one
(until the license runs out, as on a real site). Like the generator it is deterministic.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from .clock import NEVER, format_date
from .state import (
    ALLOCATION_COLLECTIONS,
    SERVICE_USER,
    SimulatorState,
    condensed_user,
    stable_id,
)

#: Chance that an allocation is used on a given day, by days since its last use: under 7
#: days, under 30, older.
USE_CHANCE = (0.55, 0.12, 0.004)
#: Chance per day that a never-used allocation is used for the first time.
FIRST_USE_CHANCE = 0.02
#: Share of the users without an allocation who log in for the first time on a given day.
NEWCOMER_SHARE = 0.012
#: Chance per day that the owner of an allocation in use leaves (never uses it again).
LEAVE_CHANCE = 0.003
#: The share of newcomers that get a Professional allocation; the others get an Analyzer one.
PROFESSIONAL_SHARE = 0.55


def _recency(allocation: dict[str, Any], cutoffs: tuple[str, str, str]) -> int | None:
    """0: used within the last day, 1: within 7 days, 2: within 30, 3: older; ``None`` when
    never used. ``cutoffs`` are those moments as QRS dates, which compare as strings."""
    last_used = allocation.get("lastUsed")
    if last_used is None or last_used == NEVER or last_used < (allocation.get("createdDate") or ""):
        return None
    return next((i for i, cutoff in enumerate(cutoffs) if last_used > cutoff), len(cutoffs))


class SiteActivity:
    """Day after day of use on one site; it remembers who has left the company.

    Each day an active user may leave (:data:`LEAVE_CHANCE`): from then on their allocation
    is never used again, so about a month later it passes a 30-day threshold, which is where a
    release run's steady trickle comes from. Deterministic for a given ``seed``.
    """

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.left: set[str] = set()

    def day(self, state: SimulatorState, day_end: dt.datetime) -> SimulatorState:
        """The site after one more day of use, ending at ``day_end`` (aware, UTC).

        ``state`` is left as it is (its objects are shared, never changed): changed allocations
        are new dicts in a new state.
        """
        rng = self.rng
        cutoffs = tuple(format_date(day_end - dt.timedelta(days=d)) for d in (1, 7, 30))
        new = state.copy()
        holders: set[str] = set()
        for collection in ALLOCATION_COLLECTIONS:
            items = new.allocations[collection]
            for key, allocation in list(items.items()):
                user = allocation.get("user")
                if user is None or allocation.get("quarantined"):
                    continue
                user_key = str(user.get("id", "")).lower()
                holders.add(user_key)
                if user_key in self.left:
                    continue
                recency = _recency(allocation, cutoffs)
                if recency is not None and recency <= 1 and rng.random() < LEAVE_CHANCE:
                    self.left.add(user_key)
                    continue
                if recency == 0:
                    continue  # already used today
                chance = FIRST_USE_CHANCE if recency is None else USE_CHANCE[recency - 1]
                if rng.random() < chance:
                    when = day_end - dt.timedelta(seconds=rng.uniform(0, 14 * 3600))
                    items[key] = {**allocation, "lastUsed": format_date(when)}
        self._newcomers(new, holders, day_end)
        return new

    def _newcomers(self, new: SimulatorState, holders: set[str], day_end: dt.datetime) -> None:
        """Users without an allocation who log in today get one, while licenses are left."""
        rng = self.rng
        without = sorted(
            key
            for key, user in new.users.items()
            if key not in holders
            and key not in self.left
            and user.get("userDirectory") not in ("INTERNAL", "ADMIN")
        )
        for key in without:
            if rng.random() >= NEWCOMER_SHARE:
                continue
            collection = (
                "professionalaccesstype"
                if rng.random() < PROFESSIONAL_SHARE
                else "analyzeraccesstype"
            )
            if len(new.allocations[collection]) >= new.total(collection):
                continue  # no license left: QRS refuses the login, as on a real site
            user = new.users[key]
            when = format_date(day_end - dt.timedelta(seconds=rng.uniform(0, 14 * 3600)))
            allocation_id = stable_id(collection, key, when)
            new.allocations[collection][allocation_id] = {
                "id": allocation_id,
                "createdDate": when,
                "modifiedDate": when,
                "modifiedByUserName": SERVICE_USER,
                "schemaPath": ALLOCATION_COLLECTIONS[collection],
                "privileges": None,
                "user": condensed_user(user),
                "lastUsed": when,
                "excess": False,
                "quarantined": False,
                "quarantineEnd": NEVER,
                "deletedUserId": "",
                "deletedUserDirectory": "",
            }


__all__ = ["SiteActivity"]
