"""Write the config's JSON Schema for editors: ``python -m agent.config_schema``.

The schema is generated from the pydantic models in :mod:`agent.config` and the settings of the
built-in plugins (keys as users write them) and shipped as ``agent/schema/config.schema.json``; a test fails when the shipped file is
stale. ``--check`` exits 1 instead of writing when the file differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from agent.config_compose import SCHEMA_PATH
from agent.plugins import json_schema

FIX_COMMAND = "python -m agent.config_schema"


def render() -> str:
    """The schema file's exact text."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=FIX_COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    current = SCHEMA_PATH.read_text(encoding="utf-8") if SCHEMA_PATH.exists() else None
    if args.check:
        if current != text:
            print(f"{SCHEMA_PATH} is out of date; run: {FIX_COMMAND}", file=sys.stderr)
            return 1
        print(f"{SCHEMA_PATH} is up to date")
        return 0
    SCHEMA_PATH.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_PATH.write_text(text, encoding="utf-8", newline="\n")
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
