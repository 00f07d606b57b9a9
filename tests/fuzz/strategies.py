"""Hypothesis strategies shared by the fuzz tests: JSON-like values and mutations of a document.

A mutation picks a place in a nested document (any key or list item, at any depth) and deletes
it, replaces it with a random value, sets it to null, wraps it in a list, or adds an unknown key
beside it. Several mutations applied to a valid document give the "older / newer / broken
server or config" shapes that hand-written tests miss.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

#: Text that tends to break parsers: quotes, YAML and filter syntax, non-ASCII, control chars.
NASTY_TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        [
            "",
            " ",
            "'",
            "''",
            "#",
            "&",
            "%",
            "+",
            "${env:NOPE}",
            "${env:",
            "yes",
            "No",
            "null",
            "~",
            "1753-01-01T00:00:00.000Z",
            "2026-13-45T99:99:99Z",
            "2026-06-01T12:00:00Z",
            "every 6 hours",
            "every 0 hours",
            "10%",
            "-1",
            "Åsa",
            "東京",
            "\x00",
            "\ud7ff",
            "a" * 300,
        ]
    ),
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    NASTY_TEXT,
)

JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(NASTY_TEXT, children, max_size=4),
    ),
    max_leaves=12,
)


def paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in ``document`` (dict keys and list indices), parents before children."""
    found = []
    if isinstance(document, dict):
        for key, value in document.items():
            found.append((*prefix, key))
            found.extend(paths(value, (*prefix, key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.append((*prefix, index))
            found.extend(paths(value, (*prefix, index)))
    return found


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    node = document
    for key in path[:-1]:
        node = node[key]
    return node


OPERATIONS = ("delete", "replace", "null", "wrap", "add_key", "stringify", "duplicate")


@st.composite
def mutated(draw: st.DrawFn, document: Any, max_mutations: int = 4) -> Any:
    """A deep copy of ``document`` with 1..``max_mutations`` random mutations applied."""
    result = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, max_mutations))):
        candidates = paths(result)
        if not candidates:
            return draw(JSON_VALUES)
        path = draw(st.sampled_from(candidates))
        parent = _parent(result, path)
        key = path[-1]
        try:
            current = parent[key]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation moved it
        operation = draw(st.sampled_from(OPERATIONS))
        if operation == "delete":
            del parent[key]
        elif operation == "replace":
            parent[key] = draw(JSON_VALUES)
        elif operation == "null":
            parent[key] = None
        elif operation == "wrap":
            parent[key] = [current]
        elif operation == "stringify":
            parent[key] = str(current)
        elif operation == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(current))
        elif isinstance(current, dict):
            current[draw(NASTY_TEXT)] = draw(JSON_VALUES)
    return result
