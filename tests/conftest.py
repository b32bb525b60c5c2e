from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.seaweed import SeaweedServer
from tests.support import ServerProcess

pytest_plugins = ["pytester"]  # the testing kit's plugin is tested in a user's project

_names = itertools.count()


def _shared(auth: str, factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(factory.mktemp(f"shared-{auth}") / "data", auth=auth).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def sigv4_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _shared("sigv4", tmp_path_factory)


@pytest.fixture(scope="session")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server started with --auth off (local testing mode)."""
    yield from _shared("off", tmp_path_factory)


@pytest.fixture(params=["sigv4", "off"])
def server(request: pytest.FixtureRequest) -> ServerProcess:
    """The end-to-end suite runs against both authentication modes; tests use their own
    vault names on these shared servers."""
    name = "sigv4_server" if request.param == "sigv4" else "open_server"
    proc: ServerProcess = request.getfixturevalue(name)
    return proc


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


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedServer]:
    """One SeaweedFS server (a real S3-compatible object store) for the whole test session."""
    server = SeaweedServer().start()
    yield server
    server.stop()


@pytest.fixture()
def tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """Mount a small tmpfs of the test's own (a full disk, a read-only file system).
    Needs root, as CI has; mounts are undone at teardown."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                        str(path)], check=True)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture()
def s3_backed(seaweed: SeaweedServer, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ServerProcess, str]]:
    """A server of the test's own with archive bytes in SeaweedFS, and its --blob-url."""
    # The server's S3 client (and the admin commands') take credentials from the usual
    # variables.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "icevault")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "icevault")
    store_url = seaweed.new_store_url()
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--blob-url", store_url]).start()
    yield server, store_url
    server.stop()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per system package whose tests were skipped for its absence (see
    tests/system.py), after pytest's own summary."""
    from tests.system import MARK

    missing: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
        if MARK in reason:
            package = reason.split(MARK, 1)[1].split()[0]
            missing[package] = missing.get(package, 0) + 1
    if missing:
        terminalreporter.section("skipped for missing system packages")
        for package, count in sorted(missing.items()):
            terminalreporter.write_line(f"{package}: {count} tests (apt-get install {package})")
        terminalreporter.write_line(
            "Run scripts/run-tests as root, or with sudo, and it installs them.")
