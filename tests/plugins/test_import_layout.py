"""The import layout of ``agent/`` and ``plugins/``, read from the source with ``ast``.

Every import counts, at any depth: inside functions, under ``if TYPE_CHECKING:``, relative ones.
No two modules may reach each other (a loop means a helper lives in the wrong place), nothing
below ``agent/cli/`` imports the CLI, and ``agent/`` names a concrete plugin only through the
one list of built-ins in ``agent/plugins.py``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.plugins import DEFAULT_PLUGINS

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "plugins")
#: Modules above the CLI: the entry point that starts it.
ABOVE_CLI = {"agent.__main__"}
_PLUGIN_NAME = re.compile(r"^plugins(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported_names(module: str, path: Path, tree: ast.AST) -> Iterator[str]:
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(tree):  # every depth: functions, classes, TYPE_CHECKING blocks
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            yield base
            # `from agent import cli` imports the module agent.cli
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports (the nearest module of each name)."""
    known = modules(root, packages)

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets = {resolve(name) for name in _imported_names(module, path, tree)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _is_cli(module: str) -> bool:
    return module == "agent.cli" or module.startswith("agent.cli.")


def cli_imports_from_below(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return [
        (module, target)
        for module, targets in sorted(graph.items())
        if module.startswith("agent") and not _is_cli(module) and module not in ABOVE_CLI
        for target in sorted(targets)
        if _is_cli(target)
    ]


def concrete_plugins_named_by_core(root: Path) -> list[tuple[str, str]]:
    """Places in ``agent/`` that import a plugin, or name one for a dynamic import, other than
    the list of built-ins."""
    found = []
    for module, path in modules(root, ("agent",)).items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name in _imported_names(module, path, tree):
            if name == "plugins" or name.startswith("plugins."):
                found.append((module, name))
        if module == "agent.plugins":
            continue  # DEFAULT_PLUGINS lives here
        for node in ast.walk(tree):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and _PLUGIN_NAME.match(node.value):
                found.append((module, node.value))
    return found


# --------------------------------------------------------------------------- the project


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(ROOT)


def test_no_import_loops(graph):
    assert cycles(graph) == []


def test_nothing_below_the_cli_imports_it(graph):
    assert cli_imports_from_below(graph) == []


def test_the_core_names_no_concrete_plugin_outside_the_builtin_list():
    assert concrete_plugins_named_by_core(ROOT) == []
    # ... and every name in that list is a real module of plugins/.
    assert set(DEFAULT_PLUGINS) <= set(modules(ROOT, ("plugins",)))


def test_plugins_do_not_reach_into_the_cli(graph):
    assert [
        (m, t) for m, ts in graph.items() if m.startswith("plugins") for t in ts if _is_cli(t)
    ] == []


# --------------------------------------------------------------------------- the checks catch


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_a_loop_through_an_import_inside_a_function_is_found(tmp_path):
    root = _write(
        tmp_path,
        {
            "agent/__init__.py": "",
            "agent/a.py": "from agent.b import thing\n",
            "agent/b.py": "def thing():\n    from agent.c import other\n",
            "agent/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n",
            "plugins/__init__.py": "",
        },
    )
    assert cycles(import_graph(root)) == [["agent.a", "agent.b", "agent.c"]]


def test_a_module_below_the_cli_importing_it_is_found(tmp_path):
    root = _write(
        tmp_path,
        {
            "agent/__init__.py": "",
            "agent/__main__.py": "from agent.cli import main\n",
            "agent/cli/__init__.py": "def main(): ...\n",
            "agent/cli/run_cmd.py": "from agent.cli import main\nfrom agent import demo\n",
            "agent/demo.py": "def run():\n    from agent import cli\n",
            "plugins/__init__.py": "",
        },
    )
    assert cli_imports_from_below(import_graph(root)) == [("agent.demo", "agent.cli")]


def test_a_core_module_naming_a_plugin_is_found(tmp_path):
    root = _write(
        tmp_path,
        {
            "agent/__init__.py": "",
            "agent/plugins.py": "DEFAULT_PLUGINS = ('plugins.filters.tag',)\n",
            "agent/config.py": "def f():\n    from plugins.filters.tag import TagSettings\n",
            "agent/release.py": "import importlib\nimportlib.import_module('plugins.filters.user')\n",
            "plugins/__init__.py": "",
            "plugins/filters/__init__.py": "",
            "plugins/filters/tag.py": "",
            "plugins/filters/user.py": "",
        },
    )
    assert sorted(concrete_plugins_named_by_core(root)) == [
        ("agent.config", "plugins.filters.tag"),
        ("agent.config", "plugins.filters.tag.TagSettings"),
        ("agent.release", "plugins.filters.user"),
    ]
