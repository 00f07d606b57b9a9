"""Fixtures for the command-line tests: config files with or without real certificates."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def example_config() -> Path:
    return REPO / "config.example.yaml"


@pytest.fixture
def cli_certs(tmp_path: Path) -> Path:
    """root.pem, client.pem and client_key.pem, as the QMC exports them."""
    from agent.simulator.certs import ensure_certs

    return ensure_certs(tmp_path / "certs").cert_dir


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Path]:
    """Write a config: the QRS sections (certificates under ``certs``) plus ``extra`` YAML."""

    def make(extra: str = "", certs: str = "./certs", name: str = "config.yaml") -> Path:
        text = (
            textwrap.dedent(
                f"""\
            Butler:
              configQRS:
                host: sense.example.com
                headers:
                  static:
                    - name: X-Qlik-User
                      value: UserDirectory=INTERNAL; UserId=sa_api
              cert:
                clientCert: {certs}/client.pem
                clientCertKey: {certs}/client_key.pem
                clientCertCA: {certs}/root.pem
            """
            )
            + extra
        )  # YAML under "Butler:", indented by two spaces
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return make
