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
