"""Every file the admin documentation points to exists: relative Markdown links, and `*.md` /
repository paths named in backticks (docs/simulator.md once named a QRS.md that is not here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [
    REPO / "README.md",
    REPO / "CONTRIBUTING.md",
    REPO / "bench" / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "packaging").glob("*.md")),
]


def targets(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    named = re.findall(r"`([\w./-]+\.md)`", text)
    return [t for t in links + named if "://" not in t and not t.startswith("mailto:")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_referenced_file_exists(doc):
    missing = [
        target
        for target in targets(doc)
        if not (doc.parent / target).exists() and not (REPO / target).exists()
    ]
    assert not missing, f"{doc.relative_to(REPO)} points to missing files: {missing}"
