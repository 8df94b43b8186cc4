"""The house plan, kept: no import cycle, and pure layers that reach no process code.

The import graph is read from the source (every ``import``, deferred ones included: a
deferred import only hides a dependency from a reader, not from the process that runs
it). The layers are the README's: ``strategies/`` and the floor of plain values draw and
describe cases, the corpus modules store them; none of them may start a process or open
a socket, directly or through another module, so that they stay cheap to import, safe to
run anywhere (a Dask scheduler, a report) and testable without QEMU.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fuzz", "strategies")

#: Modules (stdlib or third party) whose import means process, socket or QEMU code.
PROCESS_MODULES = frozenset({
    "subprocess", "socket", "multiprocessing", "concurrent.futures", "pty", "qemu",
    "asyncio.subprocess", "distributed", "dask", "signal",
})  # fmt: skip

#: Modules and packages that must reach no process code, directly or through others.
PURE = ("strategies", "fuzz.core", "fuzz.corpus", "fuzz.stream", "fuzz.judge")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
    }


def _imported(name: str, path: Path) -> Iterator[str]:
    """Every module ``name`` imports, as written (a ``from X import y`` yields X and X.y)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = name.split(".")
                base = parts[: len(parts) - node.level + is_package]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


@cache
def _graph() -> dict[str, frozenset[str]]:
    """Our module -> our modules it imports."""
    modules = _modules()
    return {
        name: frozenset(m for m in _imported(name, path) if m in modules and m != name)
        for name, path in modules.items()
    }


def _external(name: str) -> set[str]:
    """The outside modules ``name`` imports that are process code."""
    found = set()
    for module in _imported(name, _modules()[name]):
        top = module.split(".")
        for n in range(1, len(top) + 1):
            if ".".join(top[:n]) in PROCESS_MODULES:
                found.add(".".join(top[:n]))
    return found


def _path_to_process_code(start: str) -> list[str] | None:
    """An import chain from ``start`` to a module that imports process code, or None."""
    graph = _graph()
    seen = {start: [start]}
    queue = [start]
    while queue:
        current = queue.pop(0)
        if bad := _external(current):
            return [*seen[current], sorted(bad)[0]]
        for nxt in sorted(graph[current]):
            if nxt not in seen:
                seen[nxt] = [*seen[current], nxt]
                queue.append(nxt)
    return None


def test_the_graph_sees_our_modules() -> None:
    # A broken reader would pass every rule below by seeing nothing.
    graph = _graph()
    assert len(graph) > 40
    assert graph.get("fuzz.cli")
    assert _path_to_process_code("fuzz.cli") is not None  # the CLI does start QEMU


def test_there_is_no_import_cycle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == [], f"import cycles: {cycles}"


@pytest.mark.parametrize(
    "module",
    sorted(m for m in _modules() if any(m == p or m.startswith(f"{p}.") for p in PURE)),
)
def test_a_pure_module_reaches_no_process_code(module: str) -> None:
    chain = _path_to_process_code(module)
    assert chain is None, f"{module} reaches process code: {' -> '.join(chain or [])}"


#: Each layer and the layers it may import (besides itself, :mod:`fuzz.errors` and the
#: package face ``fuzz``). Data flows one way: strategies -> run -> judge -> corpus ->
#: campaign/report -> CLI, on the floor of plain values (``fuzz.core``). Each
#: subpackage's ``__init__`` says the same in words.
_RUN = frozenset({"fuzz.core", "fuzz.judge", "fuzz.stream", "fuzz.events"})
_TRIAGE = _RUN | {"fuzz.corpus", "fuzz.run", "fuzz.versions"}
_CAMPAIGN = _TRIAGE | {"strategies", "fuzz.triage"}
ALLOWED: dict[str, frozenset[str]] = {
    "strategies": frozenset({"fuzz.core"}),
    "fuzz.core": frozenset(),
    "fuzz.stream": frozenset(),
    "fuzz.judge": frozenset({"fuzz.core", "fuzz.stream"}),
    "fuzz.events": frozenset({"fuzz.core", "fuzz.judge"}),
    "fuzz.corpus": frozenset({"fuzz.core", "fuzz.judge", "fuzz.stream"}),
    "fuzz.run": _RUN,
    "fuzz.versions": frozenset({"fuzz.core", "fuzz.run"}),
    "fuzz.triage": _TRIAGE,
    "fuzz.campaign": _CAMPAIGN,
    "fuzz.stateful": _CAMPAIGN | {"fuzz.campaign"},
    "fuzz.report": frozenset({"fuzz.core", "fuzz.judge", "fuzz.corpus", "fuzz.triage"})
    | {"fuzz.campaign"},
    "fuzz.status_panel": frozenset({"fuzz.core", "fuzz.judge", "fuzz.events", "fuzz.campaign"}),
}
#: Above every layer: they may import anything.
TOP = frozenset({"fuzz.cli", "fuzz.__main__"})


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[0] if parts[0] == "strategies" else ".".join(parts[:2])


def test_every_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for module, imported in sorted(_graph().items()):
        layer = _layer(module)
        if layer in TOP or module in ("fuzz", "fuzz.errors"):
            continue
        assert layer in ALLOWED, f"{module}: a new layer; add it to ALLOWED and the README"
        for other in sorted(imported):
            target = _layer(other)
            if target not in {layer, "fuzz", "fuzz.errors"} and target not in ALLOWED[layer]:
                wrong.append(f"{module} -> {other}")
    assert wrong == [], "imports against the layering:\n" + "\n".join(wrong)


def test_fuzz_holds_a_few_modules_and_its_layers() -> None:
    top = sorted(p.name for p in (ROOT / "fuzz").glob("*.py"))
    assert len(top) <= 12, top


def test_every_pure_layer_exists() -> None:
    # A renamed package would silently drop out of the rule above.
    modules = _modules()
    for prefix in PURE:
        assert any(m == prefix or m.startswith(f"{prefix}.") for m in modules), prefix
