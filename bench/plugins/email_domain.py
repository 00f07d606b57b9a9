"""A drop-in release rule used by the benchmarks: the eighth rule, loaded from a plugin folder.

It keeps the licenses of users whose ``Email`` attribute (synced by a user directory connector)
belongs to one of the configured domains, e.g. contractors managed elsewhere. It shows the cost
of a third-party rule loaded from ``Butler.licenseAgent.plugins.paths``::

    Butler:
      licenseAgent:
        plugins:
          paths: [bench/plugins]
          settings:
            email_domain:
              domains: [example.com]
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.hookspecs import hookimpl
from agent.models import Candidate, ReleaseRule, Vetoes


@hookimpl
def sla_release_rules(config) -> list[ReleaseRule] | None:
    domains = {
        str(d).strip().lower() for d in config.plugin_settings("email_domain").get("domains") or ()
    }
    if not domains:
        return None
    suffixes = tuple("@" + d for d in domains)

    def judge(candidates: Sequence[Candidate]) -> Vetoes:
        vetoes: dict[str, str] = {}
        for candidate in candidates:
            user = candidate.user
            if user is None or not user.attributes:
                continue
            for attribute in user.attributes:
                if attribute.type == "Email" and attribute.value.lower().endswith(suffixes):
                    vetoes[candidate.allocation.id] = (
                        f"user's e-mail {attribute.value} is in a kept domain"
                    )
                    break
        return vetoes

    return [
        ReleaseRule(
            name="emailDomain", judge=judge, description="keep users of some e-mail domains"
        )
    ]
