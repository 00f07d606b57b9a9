"""The agent config that points at a running simulator, as ``--write-config`` and the demo write it.

One text for both, so the config the README's next steps use (``simulator --write-config``) is
the one the demo proves: the license monitor into the SQLite history, a dry-run release with the
``neverRelease`` rules of ``config.example.yaml`` and a safety limit, the report's file next to
the config. Paths that are inside the config's folder are written relative to it (the agent
reads them from there, so the folder can be moved); others are absolute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .certs import CertPaths

#: The history's file name, beside the config.
HISTORY_FILE = "license-agent.sqlite"
#: The agent's working files (outbox, release journal, lock) go to this folder beside the config.
STATE_DIR = "state"


@dataclass(frozen=True)
class Pace:
    """How often ``license-agent run`` runs each job on this config."""

    monitor: str
    release: str
    run_at_start: bool


#: Production schedules (the defaults of config.example.yaml).
PRODUCTION = Pace("every 6 hours", "every 24 hours", True)
#: The demo's fast schedules for ``--keep-running``; it has just run both jobs itself.
DEMO = Pace("every 1 minutes", "every 5 minutes", False)


def _path(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder`` when it is inside it; as YAML (JSON strings are YAML)."""
    try:
        text = Path(path).resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        text = str(Path(path).resolve())
    return json.dumps(text)


def agent_config_yaml(
    *,
    host: str,
    port: int,
    certs: CertPaths,
    folder: Path,
    users: int,
    header: str,
    pace: Pace = PRODUCTION,
) -> str:
    """A complete, commented agent config for a simulator at ``host:port``.

    :param folder: the folder the config file is written to (relative paths start there).
    :param header: the first comment line (the demo's marks its own configs).
    """
    cert = {
        "clientCert": _path(certs.client_cert, folder),
        "clientCertKey": _path(certs.client_key, folder),
        "clientCertCA": _path(certs.root_cert, folder),
    }
    return f"""{header}
# A complete sense-license-agent config for the bundled QRS simulator ({users:,} generated
# users). Copy it as a starting point: point configQRS and cert at your Sense server (see the
# README), keep dryRun: true until the decision report shows what you expect.
---
Butler:
  configQRS:
    host: {host}                   # the simulator; it answers only while it runs
    port: {port}
    useSSL: true
    rejectUnauthorized: true
    headers:
      static:
        - name: X-Qlik-User
          value: UserDirectory=INTERNAL; UserId=sa_api
  cert:                               # the simulator's certificates, as the QMC exports them
    clientCert: {cert["clientCert"]}
    clientCertKey: {cert["clientCertKey"]}
    clientCertCA: {cert["clientCertCA"]}
  influxDb:
    enable: false                     # the history goes to SQLite instead (licenseAgent below)

  qlikSenseLicense:
    licenseMonitor:
      enable: true
      frequency: {pace.monitor}
      destination:
        influxDb:
          enable: false
    licenseRelease:
      enable: true
      dryRun: true                    # decide and report, delete nothing
      frequency: {pace.release}
      maxReleasesPerRun: 50%          # safety limit: a run that would release more of a type
                                      # than this releases none of it
      neverRelease:                   # the rules of config.example.yaml
        user:
          - userDir: INTERNAL
            userId: sa_repository
          - userDir: INTERNAL
            userId: sa_api
          - userDir: ADMIN
            userId: qs_admin_account
        tag:
          - License do not release
          - some other tag
        customProperty:
          - name: LicenseManage
            value: do-not-release
        userDirectory:
          - INTERNAL
          - ADMIN
        inactive: Ignore
        blocked: Ignore
        removedExternally: Ignore
      licenseType:
        professional:
          enable: true
          releaseThresholdDays: 30
        analyzer:
          enable: true
          releaseThresholdDays: 30
      destination:
        influxDb:
          enable: false

  licenseAgent:
    runAtStart: {"true" if pace.run_at_start else "false"}
    stateDir: {STATE_DIR}                     # outbox, release journal and lock
    destinations:
      sqlite:                         # the history `license-agent report` draws
        enable: true
        path: {HISTORY_FILE}
      jsonl:
        enable: false
"""


__all__ = ["DEMO", "HISTORY_FILE", "PRODUCTION", "STATE_DIR", "Pace", "agent_config_yaml"]
