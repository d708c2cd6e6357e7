"""The repository's structure: rule IDs resolve, no import cycles, plugins use the public API.

These read the source tree, not the running code, so a failure names the file
and line (or the modules of a cycle) to fix.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SEMANTICS = ROOT / "docs" / "semantics.md"
CORE_SRC = ROOT / "ironflow_core" / "src"
SCANNED = ("ironflow_*/src", "tests", "docs", "examples", "bench")
SUFFIXES = {".py", ".md", ".lua", ".toml"}

PUBLIC_CORE_MODULES = frozenset({
    "ironflow_core",
    "ironflow_core.storekit",
    "ironflow_core.store_conformance",
    "ironflow_core.testing",
})
"""What a sibling distribution may import from the core (docs/plugins.md#the-public-api)."""

SIBLINGS = (
    "ironflow_nodes_http", "ironflow_nodes_shell", "ironflow_nodes_fs",
    "ironflow_store_redis", "ironflow_otel", "ironflow_ui",
)

_DEFINED = re.compile(r'<a id="([A-Z]+-\d+)"></a>\*\*\1\*\*')
# ``DSL-30``, a range ``CD-1..6`` / ``LD-1..LD-3`` (both ends must exist) or a
# list ``JSON-2/3/4`` (each must exist).
_CITED = re.compile(r"\b([A-Z]{2,6})-(\d+)(?:(?:\.\.|–)(?:\1-)?(\d+)|((?:/\d+)+))?")
_FOREIGN_DOC = re.compile(r"\b(CONTRACT|ARCHITECTURE)(\.md)?\b|" + "\u00a7")


def _scanned_files() -> Iterator[Path]:
    yield ROOT / "README.md"
    for pattern in SCANNED:
        for base in sorted(ROOT.glob(pattern)):
            for path in sorted(base.rglob("*")):
                if (path.suffix in SUFFIXES and path.is_file()
                        and ".venv" not in path.parts and path != Path(__file__).resolve()):
                    yield path


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    yield from enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)


def defined_rule_ids() -> set[str]:
    """The rule IDs docs/semantics.md defines, each as ``<a id="X-n"></a>**X-n**``."""
    return set(_DEFINED.findall(SEMANTICS.read_text(encoding="utf-8")))


def cited_rule_ids(line: str, prefixes: set[str]) -> set[str]:
    """Rule IDs a line cites, for the ID prefixes semantics.md uses (so ``UTF-8`` is no rule)."""
    found: set[str] = set()
    for match in _CITED.finditer(line):
        prefix, first, last, listed = match.groups()
        if prefix not in prefixes:
            continue
        numbers = [first]
        if last:
            numbers.append(last)
        if listed:
            numbers.extend(listed.strip("/").split("/"))
        found.update(f"{prefix}-{number}" for number in numbers)
    return found


def test_every_rule_id_cited_in_code_tests_and_docs_is_defined_in_semantics_md() -> None:
    defined = defined_rule_ids()
    assert len(defined) > 250, "docs/semantics.md lost its rule anchors"
    prefixes = {rule.split("-")[0] for rule in defined}
    unknown = [
        f"{path.relative_to(ROOT)}:{number}: {rule}"
        for path in _scanned_files()
        for number, line in _lines(path)
        for rule in sorted(cited_rule_ids(line, prefixes) - defined)
    ]
    assert not unknown, (
        "rule IDs cited but not defined in docs/semantics.md (define them there, "
        "or fix the citation):\n" + "\n".join(unknown)
    )


def test_no_reference_to_design_documents_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in _scanned_files()
        for number, line in _lines(path)
        if _FOREIGN_DOC.search(line)
    ]
    assert not found, (
        "references to CONTRACT/ARCHITECTURE sections, which are not in this repository; "
        "cite a rule ID or a section anchor of docs/semantics.md (semantics.md#engine) instead:\n"
        + "\n".join(found)
    )


# ------------------------------------------------------------------ imports
def _core_modules() -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for path in sorted((CORE_SRC / "ironflow_core").rglob("*.py")):
        name = ".".join(path.relative_to(CORE_SRC).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(child) for child in ast.walk(node))
    return inside


def _imported(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]
) -> list[str]:
    """Core modules an import statement names: ``from a import b`` is ``a.b`` when that is a
    module, else ``a`` (a parent package, already initialised first, is not an edge)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        parts = module.split(".")
        if not is_package:
            parts = parts[:-1]
        parts = parts[: len(parts) - (node.level - 1)]
        base = ".".join([*parts, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]


def import_graph(*, type_checking: bool) -> dict[str, set[str]]:
    """Module -> core modules it imports (at run time, or also under TYPE_CHECKING)."""
    modules = _core_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = set() if type_checking else _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in skipped:
                continue
            for target in _imported(name, path.name == "__init__.py", node, modules):
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(cycles)


def _describe(cycles: list[list[str]], graph: dict[str, set[str]]) -> str:
    lines = []
    for cycle in cycles:
        members = set(cycle)
        edges = ", ".join(
            f"{source} -> {target}"
            for source in cycle for target in sorted(graph[source] & members)
        )
        lines.append(f"- {len(cycle)} modules: {edges}")
    return "\n".join(lines)


def test_ironflow_core_has_no_import_cycles_at_run_time() -> None:
    graph = import_graph(type_checking=False)
    cycles = import_cycles(graph)
    assert not cycles, "import cycles in ironflow_core:\n" + _describe(cycles, graph)


def test_ironflow_core_has_no_import_cycles_even_counting_type_only_imports() -> None:
    graph = import_graph(type_checking=True)
    cycles = import_cycles(graph)
    assert not cycles, (
        "import cycles in ironflow_core, counting imports under TYPE_CHECKING:\n"
        + _describe(cycles, graph)
    )


def test_the_cycle_finder_finds_a_cycle_and_ignores_a_chain() -> None:
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_sibling_distributions_import_only_the_public_core_api() -> None:
    found = []
    for sibling in SIBLINGS:
        for path in sorted((ROOT / sibling / "src").rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                    if node.module == "ironflow_core":
                        names = [f"ironflow_core.{a.name}" for a in node.names
                                 if (CORE_SRC / "ironflow_core" / a.name).is_dir()
                                 or (CORE_SRC / "ironflow_core" / f"{a.name}.py").is_file()]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                for name in names:
                    if (name == "ironflow_core" or name.startswith("ironflow_core.")) and (
                        name not in PUBLIC_CORE_MODULES
                    ):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not found, (
        "sibling distributions import internal core modules; use "
        + ", ".join(sorted(PUBLIC_CORE_MODULES))
        + " (docs/plugins.md#the-public-api):\n" + "\n".join(found)
    )
