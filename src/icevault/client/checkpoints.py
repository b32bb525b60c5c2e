"""The resume journal kept in step with the bytes on disk."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from icevault.client.chunks import Chunk
from icevault.client.journal import Journal
from icevault.core.treehash import MIB


class Checkpoints:
    """Records verified chunks in the journal, in groups: one fdatasync covers every chunk
    of a group before the journal names them, so a crash never "verifies" unwritten bytes,
    while the disk is not forced to flush after every chunk. The syncs run in a thread of
    their own: a journal fsync can wait hundreds of milliseconds for the file system's
    commit, and no download worker should stand idle meanwhile."""

    def __init__(self, fd: int, journal: Journal, clock: Callable[[], float],
                 every_bytes: int = 256 * MIB, every_s: float = 2.0) -> None:
        self.fd = fd
        self.journal = journal
        self.clock = clock
        self.every_bytes = every_bytes
        self.every_s = every_s
        self.pending: dict[int, str] = {}
        self.pending_bytes = 0
        self.last = clock()
        self.lock = threading.Lock()
        self.flush_lock = threading.Lock()
        self.syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="icevault-journal")
        self.failure: BaseException | None = None

    def add(self, chunk: Chunk, tree_hash: str) -> None:
        with self.lock:
            self.pending[chunk.index] = tree_hash
            self.pending_bytes += chunk.size
            due = self.pending_bytes >= self.every_bytes or self.clock() - self.last >= self.every_s
            if due:
                self.pending_bytes = 0
                self.last = self.clock()
        if due:
            self.syncer.submit(self._flush_in_background)

    def _flush_in_background(self) -> None:
        try:
            self.flush()
        except BaseException as exc:  # noqa: BLE001 - reported by close()
            self.failure = exc

    def flush(self) -> None:
        with self.flush_lock:
            with self.lock:
                batch, self.pending = self.pending, {}
                self.pending_bytes = 0
                self.last = self.clock()
            if not batch:
                return
            os.fdatasync(self.fd)
            self.journal.record_many(batch)

    def close(self) -> None:
        """Wait for the syncs in flight (they use the file descriptor); raise what failed."""
        self.syncer.shutdown(wait=True)
        if self.failure is not None:
            raise self.failure
