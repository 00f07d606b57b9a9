"""License type plugins: the overview -> fields mapping, on complete and incomplete data."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from loguru import logger

from agent.models import LicenseType
from agent.plugins import build_plugin_host
from tests.qrs_md import OVERVIEW_EXAMPLE

from .data import EXPECTED, OVERVIEW


@pytest.fixture(scope="module")
def types() -> dict[str, LicenseType]:
    return {t.name: t for t in build_plugin_host().license_types()}


@pytest.fixture
def debug_lines() -> list[str]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message}")
    yield lines
    logger.remove(sink)


def extract_all(types: dict[str, LicenseType], overview: dict[str, Any]) -> dict[str, Any]:
    return {name: t.extract(overview) for name, t in types.items()}


def test_every_type_reads_its_block_with_the_reference_names(types):
    # userAccess is released, not monitored: token_user writes its block.
    assert extract_all(types, OVERVIEW) == {**EXPECTED, "userAccess": None}
    for name, fields in extract_all(types, OVERVIEW).items():
        if fields is None:
            continue
        assert all(type(v) is float for v in fields.values()), name


def test_only_allocation_types_are_releasable(types):
    resources = {name: t.allocation_resource for name, t in types.items()}
    assert resources == {
        "professional": "professionalaccesstype",
        "analyzer": "analyzeraccesstype",
        "analyzer_capacity": None,
        "token_login": None,
        "token_user": None,
        "tokens_available": None,
        "userAccess": "useraccesstype",
    }


def test_token_user_used_tokens_comes_from_used_tokens(types):
    # The existing tool read `userTokens`, a key QRS does not return.
    overview = copy.deepcopy(OVERVIEW)
    overview["userAccess"]["usedTokens"] = 17
    overview["userAccess"]["userTokens"] = 99
    assert types["token_user"].extract(overview)["used_tokens"] == 17.0


def test_qrs_md_sample_writes_only_enabled_blocks(types):
    sample = copy.deepcopy(OVERVIEW_EXAMPLE)  # verbatim from QRS.md
    written = {k: v for k, v in extract_all(types, sample).items() if v is not None}
    assert sorted(written) == ["analyzer", "analyzer_capacity", "professional"]
    assert written["analyzer"]["available"] == 21.0


def test_missing_block_is_skipped_with_a_debug_line(types, debug_lines):
    overview = copy.deepcopy(OVERVIEW)
    del overview["analyzerTimeAccess"]  # older Sense
    result = extract_all(types, overview)
    assert result["analyzer_capacity"] is None
    assert result["professional"] == EXPECTED["professional"]
    assert any("no analyzerTimeAccess block" in line for line in debug_lines)


def test_missing_key_skips_only_that_field(types, debug_lines):
    overview = copy.deepcopy(OVERVIEW)
    del overview["professionalAccess"]["excess"]
    overview["analyzerAccess"]["used"] = None
    overview["analyzerAccess"]["total"] = "many"
    overview["analyzerAccess"]["allocated"] = True  # a bool is not a count
    result = extract_all(types, overview)
    assert result["professional"] == {
        k: v for k, v in EXPECTED["professional"].items() if k != "excess"
    }
    assert result["analyzer"] == {"available": 26.0, "excess": 1.0, "quarantined": 0.0}
    assert any("excess is missing" in line for line in debug_lines)
    assert any("total is not a number (str)" in line for line in debug_lines)


def test_disabled_or_empty_or_malformed_blocks_write_nothing(types):
    overview = copy.deepcopy(OVERVIEW)
    overview["professionalAccess"]["enabled"] = False
    overview["analyzerAccess"] = {"enabled": True}  # no numbers at all
    overview["loginAccess"] = "not an object"
    overview["tokensEnabled"] = "true"  # only a real true counts
    result = extract_all(types, overview)
    assert result["professional"] is None
    assert result["analyzer"] is None
    assert result["token_login"] is None
    assert result["tokens_available"] is None


def test_block_without_enabled_key_is_read(types):
    overview = copy.deepcopy(OVERVIEW)
    del overview["analyzerAccess"]["enabled"]
    assert types["analyzer"].extract(overview) == EXPECTED["analyzer"]


def test_empty_overview_writes_nothing(types):
    assert all(v is None for v in extract_all(types, {}).values())
