"""Every pattern that validates input is matched against the whole input.

``pattern.match`` with a ``$`` anchor accepts a trailing newline ("evil\\n" passed as a vault
name), so the code uses ``fullmatch`` for validation and never ``match``: this test keeps
the next check from bringing the hole back."""

from __future__ import annotations

import ast
from pathlib import Path

import icevault

SOURCE = Path(icevault.__file__).parent


def test_no_pattern_is_matched_only_at_its_start() -> None:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "match"
                    # routes.match(method, path, query) is the router, not a pattern.
                    and not (isinstance(node.func.value, ast.Name)
                             and node.func.value.id == "routes")):
                found.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    assert found == []
