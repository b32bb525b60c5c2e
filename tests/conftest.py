from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ServerProcess

_names = itertools.count()


@pytest.fixture(scope="session", params=["sigv4", "off"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A shared server per authentication mode; tests use their own vault names."""
    data = tmp_path_factory.mktemp(f"shared-{request.param}") / "data"
    proc = ServerProcess(data, auth=request.param).start()
    yield proc
    proc.stop()


@pytest.fixture()
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of the test's own, for restarts, kills and clock-dependent behaviour."""
    proc = ServerProcess(tmp_path / "data", auth="sigv4")
    yield proc
    proc.kill()


@pytest.fixture()
def glacier(server: ServerProcess) -> Any:
    return server.client()


@pytest.fixture()
def vault_name(request: pytest.FixtureRequest) -> str:
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:80]
    return f"{base}-{next(_names)}"


@pytest.fixture()
def vault(glacier: Any, vault_name: str) -> str:
    glacier.create_vault(vaultName=vault_name)
    return vault_name
