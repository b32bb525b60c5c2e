"""The pytest plugin (registered through the ``pytest11`` entry point).

Fixtures:

* ``icevault_server``: a fresh server for each test;
* ``icevault_session_server``: one server for the whole session (session scope), its vaults
  and fault rules removed before each test that uses it;
* ``glacier_client``: a boto3 Glacier client for ``icevault_server``.

Both server fixtures point unchanged ``boto3.client("glacier")`` code at the server for the
test's duration (``patch_env``). ``@pytest.mark.icevault(tier_delays={"standard": "4h"},
auth="off", ...)`` passes options to ``icevault_server``'s :class:`IcevaultServer`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from icevault.testing.server import IcevaultServer, prewarm

_SERVER_FIXTURES = frozenset({"icevault_server", "icevault_session_server", "glacier_client"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # When some test will want a server, the warm launcher starts now, so that it has
    # imported the server by the time the first such test runs (no launcher otherwise).
    if any(_SERVER_FIXTURES & set(getattr(item, "fixturenames", ())) for item in items):
        prewarm()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "icevault(**options): options for the icevault_server fixture's server "
        "(tier_delays, auth, faults, job_expiry, upload_expiry, inventory_delay, extra_args)",
    )


@pytest.fixture
def icevault_server(request: pytest.FixtureRequest) -> Iterator[IcevaultServer]:
    marker = request.node.get_closest_marker("icevault")
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    options.setdefault("patch_env", True)
    with IcevaultServer(**options) as server:
        yield server


@pytest.fixture(scope="session")
def icevault_session_server() -> Iterator[IcevaultServer]:
    """One server for the whole session (its vaults and fault rules are removed before each
    test that uses it, and the environment points at it during each such test)."""
    with IcevaultServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _icevault_session_server_per_test(request: pytest.FixtureRequest) -> Iterator[None]:
    # Autouse, so that a session-scoped server is still clean for every test that uses it;
    # tests that do not use it pay nothing.
    if "icevault_session_server" not in request.fixturenames:
        yield
        return
    server: IcevaultServer = request.getfixturevalue("icevault_session_server")
    server.reset()
    with server.patch_env():
        yield


@pytest.fixture
def glacier_client(icevault_server: IcevaultServer) -> Any:
    return icevault_server.client()
