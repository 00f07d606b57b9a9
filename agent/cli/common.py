"""Helpers every command shares: finding and loading the config, setting up logging, and the
``error:`` line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from agent.config import AgentConfig, ConfigError, SiteConfig
from agent.config_load import DEFAULT_CONFIG, ENV_VAR
from agent.logging import mask_secrets
from agent.plugins import load_config
from agent.text import CELL_WIDTH, printable, printable_lines

if TYPE_CHECKING:
    from agent.monitor import OverviewRow


def config_path(args: argparse.Namespace) -> Path:
    """``--config``, else ``$LICENSE_AGENT_CONFIG``, else ``./config.yaml``."""
    return Path(getattr(args, "config", None) or os.environ.get(ENV_VAR) or DEFAULT_CONFIG)


def load_config_for(args: argparse.Namespace, *, required: bool = True) -> AgentConfig | None:
    """Load the config the arguments name. With ``required=False`` a missing default file
    gives ``None`` (commands such as ``plugins`` work without one)."""
    path = config_path(args)
    explicit = getattr(args, "config", None) or os.environ.get(ENV_VAR)
    if not required and not explicit and not path.exists():
        return None
    return load_config(path)


def setup_logging_for(args: argparse.Namespace, config: AgentConfig | None) -> None:
    from agent.logging import setup_logging

    setup_logging(config, level=getattr(args, "log_level", None))


def sites_or_error(config: AgentConfig) -> list[SiteConfig]:
    """The configured sites; a :class:`ConfigError` naming the missing keys when there are none."""
    sites = config.sites()
    if not sites:
        raise ConfigError(
            [
                "Butler.configQRS and Butler.cert must be set: the agent needs the QRS host and"
                " the certificates exported from the QMC (client.pem, client_key.pem, root.pem)"
            ],
            str(config.source) if config.source else None,
        )
    return sites


def license_table(rows: Sequence[OverviewRow]) -> str:
    """The license overview as ``qrs check`` and ``monitor --once`` both print it: one row per
    license type the license-type plugins read (``-`` where this QRS reports no value)."""
    table = [("TYPE", "TOTAL", "ALLOCATED", "USED", "QUARANTINED", "AVAILABLE")]
    for row in rows:
        values = (row.total, row.allocated, row.used, row.quarantined, row.available)
        table.append((printable(row.license_type, CELL_WIDTH), *(_number(v) for v in values)))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(line)
        ).rstrip()
        for line in table
    )


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def print_error(message: object) -> None:
    """A command's ``error:`` line on stderr, secrets masked and control characters escaped:
    the message may quote what a server answered (which may echo the request's headers) or
    QRS data. Only a :class:`ConfigError`, the agent's own list of problems, keeps its line
    breaks."""
    text = mask_secrets(str(message))
    shown = printable_lines(text) if isinstance(message, ConfigError) else printable(text)
    print(f"error: {shown}", file=sys.stderr)


def safe_text(text: object, limit: int | None = None) -> str:
    """Text for the console that may hold QRS data or a server's answer: masked, escaped and,
    with ``limit``, cut to that many characters."""
    return printable(mask_secrets(str(text)), limit)
