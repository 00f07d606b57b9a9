"""Fixtures for the config tests: config files on disk, the seed YAML, real PEM certificates."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The seed page from the shared reference folder (present in the project's workspace).
SEED_PAGE = REPO.parent / "shared" / "reference" / "seed-access-licenses.md"
#: The same YAML block, committed so the tests also run from a plain checkout.
SEED_COPY = Path(__file__).parent / "data" / "seed-access-licenses.yaml"
EXAMPLE = REPO / "config.example.yaml"


def seed_yaml_from_page(page: Path) -> str:
    """The page's ```yaml block with its ``...`` placeholder lines removed."""
    match = re.search(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    assert match, f"no yaml block in {page}"
    return "\n".join(line for line in match.group(1).splitlines() if line.strip() != "...") + "\n"


@pytest.fixture
def seed_yaml() -> str:
    """The seed's YAML: from the shared reference page when present, else the committed copy."""
    if SEED_PAGE.exists():
        return seed_yaml_from_page(SEED_PAGE)
    return SEED_COPY.read_text(encoding="utf-8")


@pytest.fixture
def seed_sources() -> tuple[str | None, str]:
    """(the YAML extracted from the seed page or None if absent, the committed copy)."""
    page = seed_yaml_from_page(SEED_PAGE) if SEED_PAGE.exists() else None
    return page, SEED_COPY.read_text(encoding="utf-8")


@pytest.fixture
def example_config() -> Path:
    return EXAMPLE


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """Write YAML text (dedented) to ``tmp_path/name`` and return the path."""

    def write(text: str, name: str = "config.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def cert_dir(tmp_path: Path) -> Path:
    """A folder with root.pem, client.pem and client_key.pem (as the QMC exports them)."""
    from agent.simulator.certs import ensure_certs

    return ensure_certs(tmp_path / "certs").cert_dir
