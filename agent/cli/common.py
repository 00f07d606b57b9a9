"""Helpers every command shares: finding and loading the config, setting up logging."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agent.config import DEFAULT_CONFIG, ENV_VAR, AgentConfig, ConfigError, SiteConfig, load_config


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
