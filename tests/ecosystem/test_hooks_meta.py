"""Meta-tests in the style of datasette: every hook is documented and every hook is tested.

The hooks are read from ``agent/hookspecs.py`` itself, so adding a hook without a section in
``docs/plugins.md`` (with its real signature) or without a test fails here.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from agent import hookspecs

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "plugins.md"
TESTS = REPO / "tests"


def hook_names() -> list[str]:
    marker = f"{hookspecs.PROJECT}_spec"  # the attribute pluggy's @hookspec sets
    return sorted(name for name, value in vars(hookspecs).items() if hasattr(value, marker))


def sections() -> dict[str, str]:
    """``### sla_xxx`` heading -> the text up to the next heading of that level or above."""
    text = GUIDE.read_text(encoding="utf-8")
    parts = re.split(r"^(#{1,3} .*)$", text, flags=re.MULTILINE)
    found = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        match = re.fullmatch(r"### (sla_\w+)\s*", heading)
        if match:
            found[match.group(1)] = body
    return found


def test_the_hooks_are_found():
    assert {"sla_configure", "sla_release_rules", "sla_destinations"} <= set(hook_names())


@pytest.mark.parametrize("hook", hook_names())
def test_hook_is_documented_with_its_signature(hook):
    documented = sections()
    assert hook in documented, f"docs/plugins.md has no '### {hook}' section"
    body = documented[hook]
    params = list(inspect.signature(getattr(hookspecs, hook)).parameters)
    signature = re.search(rf"def {hook}\(([^)]*)\)", body)
    assert signature, f"the {hook} section shows no 'def {hook}(...)' signature"
    shown = [p.split(":")[0].strip() for p in signature.group(1).split(",") if p.strip()]
    assert shown == params, f"{hook}: documented {shown}, spec has {params}"
    for param in params:
        assert f"`{param}`" in body, f"{hook}: parameter {param} is not described"
    assert re.search(r"\bReturns?\b", body), f"{hook}: the return value is not described"
    assert body.count("```python") >= 2, f"{hook}: needs its signature and an example"


def test_every_documented_hook_exists():
    assert set(sections()) <= set(hook_names())


@pytest.mark.parametrize("hook", hook_names())
def test_hook_has_a_test(hook):
    this = Path(__file__).resolve()
    users = [
        path.relative_to(REPO)
        for path in TESTS.rglob("test_*.py")
        if path.resolve() != this and hook in path.read_text(encoding="utf-8")
    ]
    assert users, f"no test under tests/ mentions {hook}"
