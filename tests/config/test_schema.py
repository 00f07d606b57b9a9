"""The shipped JSON Schema is generated from the models and kept current; it describes every
key of the example config, so an editor using it completes and checks a real file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from agent.config_compose import SCHEMA_PATH
from agent.config_schema import FIX_COMMAND, render
from agent.plugins import json_schema


def test_shipped_schema_is_current() -> None:
    shipped = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else ""
    assert shipped == render(), (
        f"{SCHEMA_PATH} is out of date with agent/config.py; regenerate it: {FIX_COMMAND}"
    )


def test_schema_is_packaged_with_the_agent() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert 'agent = ["py.typed", "schema/*.json"]' in pyproject
    assert SCHEMA_PATH.parent.name == "schema" and SCHEMA_PATH.parent.parent.name == "agent"


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas ``node`` may stand for (following $ref and anyOf)."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return _resolve(schema, schema["$defs"][name])
    if "anyOf" in node:
        return [found for option in node["anyOf"] for found in _resolve(schema, option)]
    return [node]


def _undescribed(schema: dict[str, Any], node: dict[str, Any], value: Any, path: str) -> list[str]:
    missing: list[str] = []
    options = _resolve(schema, node)
    if isinstance(value, dict):
        objects = [o for o in options if "properties" in o]
        if not objects:
            return []  # a free-form mapping (plugin settings)
        for key, item in value.items():
            owners = [o for o in objects if key in o["properties"]]
            if not owners:
                missing.append(f"{path}.{key}")
                continue
            missing += _undescribed(schema, owners[0]["properties"][key], item, f"{path}.{key}")
    elif isinstance(value, list):
        arrays = [o for o in options if "items" in o]
        for index, item in enumerate(value):
            if arrays:
                missing += _undescribed(schema, arrays[0]["items"], item, f"{path}[{index}]")
    return missing


def test_every_key_of_the_example_config_is_in_the_schema(example_config: Path) -> None:
    schema = json_schema()
    document = yaml.safe_load(example_config.read_text(encoding="utf-8"))
    assert _undescribed(schema, schema, document, "") == []


def test_the_schema_knows_the_butler_spellings() -> None:
    schema = json_schema()
    assert schema["required"] == ["Butler"]
    butler = schema["$defs"]["Butler"]["properties"]
    assert {"configQRS", "cert", "influxDb", "qlikSenseLicense", "licenseAgent"} <= set(butler)
    flag = schema["$defs"]["NeverRelease"]["properties"]["inactive"]
    assert {"Ignore", "ignore", "Yes", "No"} <= set(flag["anyOf"][0]["enum"])
    assert {"type": "boolean"} in flag["anyOf"]
    assert "source" not in schema.get("properties", {})
    json.dumps(schema)  # plain JSON
