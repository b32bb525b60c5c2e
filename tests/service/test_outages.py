"""A SQLite database the process cannot open for want of file descriptors is an outage
(StorageUnavailableError: a 503 the client retries, a warning in the log), not an internal
error with a traceback."""

from __future__ import annotations

import os
import resource
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from icevault.core.errors import StorageUnavailableError
from icevault.core.models import VaultRef
from icevault.store.metadata.sql import SqlMetadataStore


@contextmanager
def out_of_descriptors() -> Iterator[None]:
    """Every descriptor the (lowered) limit allows is taken, for the block's length."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    held: list[int] = []
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 32, hard))
    try:
        while True:
            try:
                held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:
                break
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def in_a_new_thread(call: Callable[[], object]) -> BaseException | None:
    """A thread of its own: it has no database connection yet, so it must open one."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)

    with out_of_descriptors():
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    return raised[0] if raised else None


def test_no_descriptor_for_the_database_is_an_outage(meta: SqlMetadataStore) -> None:
    ref = VaultRef(meta.default_account(), "v")
    assert meta.get_vault(ref) is None  # this thread holds the one connection made so far
    raised = in_a_new_thread(lambda: meta.get_vault(ref))
    assert isinstance(raised, StorageUnavailableError), repr(raised)
    assert "does not answer" in raised.message
    assert meta.get_vault(ref) is None  # and once descriptors are back, it answers again
