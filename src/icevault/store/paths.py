"""Directories that only the server's own user may enter, whatever the umask, and the
small files written in them."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700


def make_private_dir(path: Path) -> bool:
    """Create ``path`` and any missing parents as 0700 directories; return whether ``path``
    itself was created. An existing directory keeps its mode."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, PRIVATE_DIR_MODE)
        except FileExistsError:
            continue
        # mkdir's mode passes through the umask; the mode must not depend on it.
        os.chmod(directory, PRIVATE_DIR_MODE)
    return bool(missing)


def ensure_private_dir(path: Path) -> bool:
    """Like :func:`make_private_dir`, and an existing directory is made 0700 too (for the
    store's own subdirectories, which nobody else has reason to open)."""
    created = make_private_dir(path)
    if not created and (path.stat().st_mode & 0o777) != PRIVATE_DIR_MODE:
        os.chmod(path, PRIVATE_DIR_MODE)
    return created


def write_private_file(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (mode 0600) at once: written beside it, synced, renamed
    into place and the directory synced, so a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)  # an existing temporary file keeps its mode through O_CREAT
    os.rename(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


LOCK_FILE = "icevault.lock"


class DataDirInUseError(RuntimeError):
    """Another server holds this data directory."""


def hold_data_dir(data_dir: Path) -> int:
    """Lock ``data_dir`` for this server; returns the lock's descriptor (keep it open).

    Two servers on one SQLite file or one directory of archive files would corrupt each
    other's state (each sweeps what it does not know as orphans); several servers need
    PostgreSQL and an object store. The lock is the kernel's (flock), so a server killed in
    any way leaves nothing stale behind."""
    import fcntl

    make_private_dir(data_dir)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise DataDirInUseError(
            f"another icevault server (pid {holder}) is using {data_dir}: one data directory "
            "serves one server; several servers need --metadata-url (PostgreSQL) and "
            "--blob-url (an object store)"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
