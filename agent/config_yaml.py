"""Read the YAML config file defensively: a hostile or mistaken file ends in a clear error.

PyYAML's ``safe_load`` is safe from code execution but not from everything a config file can
do to the agent. This loader adds the limits a config file needs:

- **Size**: a file larger than :data:`MAX_FILE_BYTES` is refused before it is parsed (a Butler
  config is a few dozen KB).
- **Duplicate keys**: YAML keeps the last of two equal keys, so ``dryRun: true`` followed by
  ``dryRun: false`` would silently run live. Every repeated key is reported with both lines.
- **Aliases**: anchors and aliases (``&name`` / ``*name``) are allowed, but at most
  :data:`MAX_ALIASES` of them, adding at most :data:`MAX_EXPANDED_VALUES` values once expanded
  (a "billion laughs" file expands to billions from a few hundred bytes), and never one that
  refers to itself.
- **Nesting**: at most :data:`MAX_DEPTH` levels, also through aliases (deeper nesting would end
  in a ``RecursionError`` in the parser or in validation).
- **Integers**: at most :data:`MAX_INTEGER_BITS` bits, as keys too (Python refuses to turn
  very long integers into text, which every error message and key path needs).

The limits apply to the whole file, sections the agent ignores (such as Butler's
``mqttConfig``) included: they are parsed all the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: The largest config file read; Butler's own template is under 50 KB.
MAX_FILE_BYTES = 1024 * 1024
#: Aliases (``*name``) allowed in one file.
MAX_ALIASES = 100
#: Values (scalars, lists, sections) that aliases may add to the document once expanded.
MAX_EXPANDED_VALUES = 10_000
#: Nesting levels of lists and sections; a Butler config needs about ten.
MAX_DEPTH = 50
#: Size of an integer: enough for any count, port or byte size.
MAX_INTEGER_BITS = 64

_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlError(Exception):
    """The file cannot be used as a config. ``problems`` lists every one found, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass
class YamlDocument:
    """A parsed config file: its data, and the problems that did not stop the parsing
    (repeated keys), to be reported together with the validation problems."""

    data: Any
    problems: list[str] = field(default_factory=list)


class _Limit(yaml.YAMLError):
    """A limit of this loader was crossed while composing (raised through PyYAML)."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def _line(mark: Any) -> str:
    return f"line {mark.line + 1}" if mark is not None else "an unknown line"


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` that counts aliases and nesting while it composes the node tree."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise _Limit(
                    f"more than {MAX_ALIASES} aliases (*name); write the values out instead",
                    mark,
                )
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Limit(
                    f"nested more than {MAX_DEPTH} levels deep; a config needs about ten", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: ScalarNode) -> int:
        try:
            value = super().construct_yaml_int(node)
        except ValueError:  # more digits than Python turns into a number (4300)
            value = None
        if value is None or value.bit_length() > MAX_INTEGER_BITS:
            raise _Limit(
                f"the number {str(node.value)[:20]}... is too large (at most {MAX_INTEGER_BITS}"
                " bits); quote it if it is text",
                node.start_mark,
            )
        return value


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


class _Checker:
    """One pass over the composed tree: expanded size and depth, cycles, repeated keys."""

    def __init__(self, loader: _Loader) -> None:
        self.loader = loader
        self.sizes: dict[int, int] = {}  # id(node) -> values in its subtree, aliases expanded
        self.heights: dict[int, int] = {}
        self.active: set[int] = set()
        self.duplicates: list[str] = []

    def visit(self, node: Node, path: str, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in self.active:
            raise _Limit(
                f"{path}: an alias refers to the section that contains it", node.start_mark
            )
        if key in self.sizes:
            height = self.heights[key]
            if depth + height > MAX_DEPTH:
                raise _Limit(
                    f"{path}: nested more than {MAX_DEPTH} levels deep once its aliases are"
                    " expanded",
                    node.start_mark,
                )
            return self.sizes[key], height
        if depth > MAX_DEPTH:
            raise _Limit(
                f"{path}: nested more than {MAX_DEPTH} levels deep once its aliases are expanded",
                node.start_mark,
            )
        self.active.add(key)
        size, height = 1, 0
        for child, child_path in self._children(node, path):
            child_size, child_height = self.visit(child, child_path, depth + 1)
            size += child_size
            height = max(height, child_height + 1)
        self.active.discard(key)
        self.sizes[key], self.heights[key] = size, height
        return size, height

    def _children(self, node: Node, path: str) -> list[tuple[Node, str]]:
        if isinstance(node, SequenceNode):
            return [(item, f"{path}[{i}]") for i, item in enumerate(node.value)]
        if not isinstance(node, MappingNode):
            return []
        children: list[tuple[Node, str]] = []
        seen: dict[Any, Node] = {}
        for key_node, value_node in node.value:
            name = self._key(key_node)
            child_path = f"{path}.{name}" if path else str(name)
            if name is not None:
                first = seen.get(name)
                if first is not None:
                    self.duplicates.append(
                        f"{child_path}: the key is written twice, at {_line(first.start_mark)}"
                        f" and at {_line(key_node.start_mark)}; YAML would keep only the last"
                        " one, so remove the one you do not mean"
                    )
                else:
                    seen[name] = key_node
            children.append((key_node, child_path))
            children.append((value_node, child_path))
        return children

    def _key(self, key_node: Node) -> Any:
        if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
            return None  # a list or section as a key: PyYAML refuses it when constructing
        value = self.loader.construct_object(key_node)
        try:
            hash(value)
        except TypeError:
            return None
        return value


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document with the limits above.

    :raises YamlError: for a problem that stops the parsing (invalid YAML, a limit crossed).
        Repeated keys do not stop it: they are in :attr:`YamlDocument.problems`.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(None)
        checker = _Checker(loader)
        size, _ = checker.visit(node, "", 0)
        written = len(checker.sizes)  # distinct nodes, as written in the file
        if size - written > MAX_EXPANDED_VALUES:
            raise YamlError(
                [
                    f"its aliases (*name) expand to {size - written} more values; at most"
                    f" {MAX_EXPANDED_VALUES} are allowed (write the values out instead)"
                ]
            )
        data = loader.construct_document(node)
        return YamlDocument(data, checker.duplicates)
    except _Limit as exc:
        raise YamlError([f"at {_line(exc.mark)}: {exc.message}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlError(
            [f"not valid YAML{where}: {problem} (check indentation and quoting)"]
        ) from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | os.PathLike[str]) -> YamlDocument:
    """Read and parse a config file of at most :data:`MAX_FILE_BYTES`.

    :raises FileNotFoundError, OSError, UnicodeDecodeError: the file cannot be read.
    :raises YamlError: it is too large, not valid YAML, or crosses a limit of this loader.
    """
    with Path(path).open("rb") as handle:
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise YamlError(
            [
                f"the file is larger than {MAX_FILE_BYTES // 1024} KB, the most a config may be"
                " (a Butler config is a few dozen KB); is this the right file?"
            ]
        )
    return parse_yaml(raw.decode("utf-8-sig"))


__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_EXPANDED_VALUES",
    "MAX_FILE_BYTES",
    "MAX_INTEGER_BITS",
    "YamlDocument",
    "YamlError",
    "parse_yaml",
    "read_yaml_file",
]
