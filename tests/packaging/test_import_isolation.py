"""Every module of the package imports on its own, in a fresh interpreter.

An import cycle (``a`` imports ``b`` at the top, ``b`` imports ``a``) can go unnoticed while
every caller happens to import ``a`` first; a user who imports ``b`` first gets an
``ImportError: cannot import name ... (most likely due to a circular import)``. One process
per module, so no earlier import hides the problem.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
#: The repository folders and the package names they install as (pyproject package-dir).
FOLDERS = {
    "flows": "prefect_claude_sessions.flows",
    "tasks": "prefect_claude_sessions.tasks",
    "storage": "prefect_claude_sessions.storage",
}
#: Not importable modules: Alembic runs env.py itself (it needs Alembic's context), the
#: revision files are loaded by Alembic too.
SKIP_PARTS = {"migrations"}


def package_modules() -> list[str]:
    """Dotted names of every module of the package, from the repository's folders."""
    names = []
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            relative = path.relative_to(REPO / folder)
            if SKIP_PARTS & set(relative.parts):
                continue
            parts = list(relative.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join([package, *parts]))
    return names


def import_alone(module: str) -> tuple[str, int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=REPO.parent,  # not the checkout: the installed package, not the folders
    )
    return module, done.returncode, done.stderr


def test_the_module_list_is_complete() -> None:
    modules = package_modules()
    assert "prefect_claude_sessions.flows.demo" in modules
    assert "prefect_claude_sessions.flows.cli" in modules
    assert "prefect_claude_sessions.tasks.standin.__main__" in modules
    assert "prefect_claude_sessions.storage" in modules
    assert not any("migrations" in m for m in modules)
    assert len(modules) >= 50


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    modules = package_modules()
    with ThreadPoolExecutor(max_workers=2) as pool:  # 2 cores on the shared machine
        results = list(pool.map(import_alone, modules))
    failed = [
        f"{module}: {stderr.strip().splitlines()[-1] if stderr.strip() else f'exit {rc}'}"
        for module, rc, stderr in results
        if rc != 0
    ]
    assert not failed, "modules that do not import alone:\n" + "\n".join(failed)


def test_a_cycle_is_caught(tmp_path: Path) -> None:
    """The check above fails on a real import cycle (two modules importing names from each
    other at the top): importing one of them alone raises."""
    pkg = tmp_path / "cyclic"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclic.b import B\nA = 1\n")
    (pkg / "b.py").write_text("from cyclic.a import A\nB = 2\n")
    done = subprocess.run(
        [sys.executable, "-c", "import cyclic.b"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "circular import" in done.stderr


# --------------------------------------------------------------------------- the import graph


def module_file(module: str) -> Path | None:
    for folder, package in FOLDERS.items():
        if module == package or module.startswith(package + "."):
            rest = module[len(package) :].lstrip(".").split(".") if module != package else []
            base = REPO / folder / Path(*rest) if rest else REPO / folder
            if base.with_suffix(".py").is_file():
                return base.with_suffix(".py")
            if (base / "__init__.py").is_file():
                return base / "__init__.py"
    return None


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere (top level or inside functions);
    ``from pkg import name`` counts ``pkg.name`` when that is a module, else ``pkg``."""
    import ast

    modules = set(package_modules())
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module in modules:
        path = module_file(module)
        assert path is not None, module
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = module.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                    for a in node.names
                ]
            for target in targets:
                if target in modules and target != module:
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


#: Cycles still allowed: none (cli/demo, client_pool/runtime and compaction/service are gone).
KNOWN_CYCLES: set[frozenset[str]] = set()


def test_no_new_import_cycles_even_through_function_level_imports() -> None:
    """Function-level imports hide a cycle from the fresh-interpreter test above (cli and demo
    imported each other that way); the graph of all imports does not."""
    graph = import_graph()
    # the graph is real: the CLI imports the demo (inside its command) and the lineage view
    assert "prefect_claude_sessions.flows.demo" in graph["prefect_claude_sessions.flows.cli"]
    assert (
        "prefect_claude_sessions.flows.lineage_view" in graph["prefect_claude_sessions.flows.demo"]
    )
    found = cycles(graph)
    new = [sorted(c) for c in found if not any(c <= known for known in KNOWN_CYCLES)]
    assert not new, f"import cycles: {new}"
    flows = [c for c in found if any(".flows." in m for m in c)]
    assert flows == [], flows


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]
    assert cycles({"a": {"b"}, "b": set()}) == []
