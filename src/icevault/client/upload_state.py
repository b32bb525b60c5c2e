"""Interrupted multipart uploads remembered on this machine, so the same command resumes.

A record ties an upload ID to what it uploads: the file (its resolved path, size and
modification time), the part size, the vault, its account and the endpoint. The same
command finds it and resumes; a file that changed since, or another part size, vault or
endpoint, matches no record. Before any part is skipped, the parts the server holds are
checked against the file (ListParts' tree hashes), so a stale record costs a re-send,
never a wrong archive. Records live in ``$XDG_STATE_HOME/icevault/uploads.json`` (by
default ``~/.local/state/icevault/uploads.json``).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class UploadKey:
    path: str
    size: int
    mtime_ns: int
    part_size: int
    vault: str
    account_id: str
    endpoint: str

    @classmethod
    def for_file(cls, path: str | os.PathLike[str], part_size: int, vault: str,
                 account_id: str, endpoint: str | None) -> UploadKey:
        resolved = Path(path).resolve()
        stat = resolved.stat()
        return cls(str(resolved), stat.st_size, stat.st_mtime_ns, part_size, vault, account_id,
                   endpoint or "aws")


def default_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "icevault" / "uploads.json"


class UploadRecords:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self._lock = threading.Lock()

    def _load(self) -> list[dict[str, Any]]:
        try:
            records = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []

    def _save(self, records: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps(records, indent=1).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def find(self, key: UploadKey) -> str | None:
        with self._lock:
            for record in self._load():
                if record.get("key") == asdict(key):
                    return str(record["upload_id"])
        return None

    def remember(self, key: UploadKey, upload_id: str) -> None:
        with self._lock:
            records = [r for r in self._load() if r.get("key") != asdict(key)]
            records.append({"key": asdict(key), "upload_id": upload_id})
            self._save(records)

    def forget(self, upload_id: str) -> None:
        with self._lock:
            records = self._load()
            kept = [r for r in records if r.get("upload_id") != upload_id]
            if len(kept) != len(records):
                self._save(kept)
