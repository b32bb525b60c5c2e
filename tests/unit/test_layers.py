"""The HTTP edge reaches the stores only through services: every route (the Glacier API,
the admin API, the console, metrics, health, the test controls) goes through the same
authorization and use cases, so no surface can grow a store access of its own."""

from __future__ import annotations

import re
from pathlib import Path

import icevault.server

SERVER = Path(icevault.server.__file__).parent
STORE_ACCESS = re.compile(r"\.(meta|blobs)\b")


def test_the_server_package_never_touches_a_store() -> None:
    found = [f"{path.relative_to(SERVER)}:{number}: {line.strip()}"
             for path in sorted(SERVER.rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if STORE_ACCESS.search(line) and not line.lstrip().startswith("#")]
    assert found == []


def _module_imports() -> dict[str, set[str]]:
    """Each icevault module's top-level imports of other icevault modules (imports inside
    functions and under TYPE_CHECKING are deliberate late bindings and not counted)."""
    import ast

    src = SERVER.parents[1]
    modules = {".".join(p.relative_to(src).with_suffix("").parts).removesuffix(".__init__"): p
               for p in (src / "icevault").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_module_imports_itself_through_others() -> None:
    graph = _module_imports()
    loops: list[list[str]] = []

    def visit(module: str, path: list[str], done: set[str]) -> None:
        for imported in sorted(graph[module]):
            if imported in path:
                loops.append(path[path.index(imported):] + [imported])
            elif imported not in done:
                visit(imported, [*path, imported], done)
        done.add(module)

    finished: set[str] = set()
    for module in sorted(graph):
        if module not in finished:
            visit(module, [module], finished)
    assert loops == []
