"""One job for one site: what the ``--once`` commands and the scheduler both run.

This module is where a run meets its surroundings: which jobs the config schedules, and (as
the orchestration moves here) the site's lock, the QRS client, journal recovery, the run
itself, delivery, the job's result and the heartbeat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.schedule import Frequency, scheduled_jobs

if TYPE_CHECKING:
    from agent.config import AgentConfig


def jobs_from_config(config: AgentConfig) -> list[tuple[str, Frequency]]:
    """The scheduled jobs the config enables, in run order: ``("monitor", ...)``, ``("release", ...)``."""
    return scheduled_jobs(
        {
            "monitor": config.license_monitor.frequency if config.license_monitor.enable else None,
            "release": config.license_release.frequency if config.license_release.enable else None,
        }
    )


__all__ = ["jobs_from_config"]
