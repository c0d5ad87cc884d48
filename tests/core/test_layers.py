"""The core is built in layers: no module of data_bridge_core imports one above it.

An import cycle, counting imports inside functions (imports under
``if TYPE_CHECKING:`` aside), means two modules depend on each other. The
check runs this file's own small cycle finder; when the project's shared
tool is beside the clone (``../shared/tools/import_cycles.py``, as in CI) it
runs that too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
SHARED_TOOL = ROOT.parent / "shared" / "tools" / "import_cycles.py"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the package modules it imports (``__init__`` facades left out)."""
    files = {_module_name(p): p for p in (SRC / package).rglob("*.py")}
    facades = {m for m, p in files.items() if p.name == "__init__.py"}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text())
        skipped = _type_checking_nodes(tree)
        own_package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = own_package.split(".")[: len(own_package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for name in names:
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if name and name != module and name not in facades:
                    targets.add(name)
        graph[module] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Groups of modules that reach each other (strongly connected, more than one)."""
    reach: dict[str, set[str]] = {}
    for start in graph:
        seen: set[str] = set()
        stack = list(graph[start])
        while stack:
            module = stack.pop()
            if module not in seen:
                seen.add(module)
                stack.extend(graph[module])
        reach[start] = seen
    groups: list[set[str]] = []
    for module in graph:
        group = {module} | {other for other in reach[module] if module in reach[other]}
        if len(group) > 1 and group not in groups:
            groups.append(group)
    return groups


def test_the_cycle_finder_reports_two_modules_importing_each_other() -> None:
    graph = {"p.a": {"p.b"}, "p.b": {"p.a"}, "p.c": {"p.a"}}
    assert cycles(graph) == [{"p.a", "p.b"}]


def test_the_cycle_finder_sees_the_core_modules_and_their_imports() -> None:
    graph = import_graph("data_bridge_core")
    assert "data_bridge_core.session" in graph
    assert "data_bridge_core.unit_of_work" in graph["data_bridge_core.session"]
    assert "data_bridge_core.session" not in graph["data_bridge_core.unit_of_work"]


def test_data_bridge_core_has_no_import_cycle() -> None:
    assert cycles(import_graph("data_bridge_core")) == []


# The core's layers, lowest first (docs/repository-layout.md): a module may import
# modules of its own layer or of a lower one, never of a higher one. A module not
# listed is held by the cycle check only; give it its layer here.
LAYERS = [
    [
        "errors",
        "context",
        "operation_lock",
        "schema.inet_text",
        "schema.types",
        "schema.expressions",
        "schema.registry",
        "schema.typed",
    ],
    ["schema.column", "schema.relation", "state"],
    ["schema.table"],
    [
        "ddl",
        "dml",
        "upsert",
        "introspection",
        "aggregate",
        "engine",
        "statement_runner",
        "foreign_keys",
        "link_sql",
        "link_writes",
    ],
    ["execution", "query_plans"],
    ["identity", "hydration", "written_rows"],
    ["flush", "upsert_writes", "bulk_writes"],
    ["unit_of_work"],
    ["transaction"],
    ["savepoints"],
    ["session"],
    ["relationships", "loading", "views"],
    ["query"],
]


def test_each_core_module_imports_only_its_own_layer_or_lower_ones() -> None:
    rank = {f"data_bridge_core.{m}": i for i, layer in enumerate(LAYERS) for m in layer}
    graph = import_graph("data_bridge_core")
    assert len([m for m in graph if m in rank]) >= 20  # the listed modules are found
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if module in rank
        for target in targets
        if target in rank and rank[target] > rank[module]
    )
    assert upward == []
    # An object's state reports to a protocol: it imports nothing of the package.
    assert graph["data_bridge_core.state"] == set()
    assert "data_bridge_core.unit_of_work" in graph["data_bridge_core.session"]


@pytest.mark.skipif(not SHARED_TOOL.exists(), reason="no ../shared/tools beside the clone")
def test_the_shared_import_cycle_tool_counts_zero_cycles_in_the_core() -> None:
    done = subprocess.run(
        [sys.executable, str(SHARED_TOOL), str(SRC), "data_bridge_core"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "0 import cycle(s), 0 modules in them"
