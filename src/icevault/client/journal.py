"""The resume journal kept beside a download's destination.

It records the job, the chunk plan and the tree hash of every chunk whose bytes were verified
and made durable in the partial file. A rerun that finds a journal for the same job and plan
re-verifies those chunks on disk and fetches only the rest.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

VERSION = 1


@dataclass
class JournalState:
    job_id: str
    vault: str
    account_id: str
    archive_id: str | None
    output_size: int
    chunk_size: int
    archive_start: int
    archive_size: int | None
    expected_tree_hash: str | None
    verified: dict[int, str] = field(default_factory=dict)
    version: int = VERSION

    def same_plan(self, other: JournalState) -> bool:
        keys = ("job_id", "vault", "account_id", "output_size", "chunk_size", "archive_start",
                "archive_size", "expected_tree_hash", "version")
        return all(getattr(self, k) == getattr(other, k) for k in keys)


class Journal:
    def __init__(self, path: Path, state: JournalState) -> None:
        self.path = path
        self.state = state
        self._lock = threading.Lock()

    @staticmethod
    def load(path: Path) -> JournalState | None:
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
            raw["verified"] = {int(k): v for k, v in raw.get("verified", {}).items()}
            return JournalState(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def record_many(self, verified: dict[int, str]) -> None:
        with self._lock:
            self.state.verified.update(verified)
            self._write()

    def save(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        data = asdict(self.state)
        data["verified"] = {str(k): v for k, v in sorted(self.state.verified.items())}
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
