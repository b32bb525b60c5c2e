"""Directories that only the server's own user may enter, whatever the umask."""

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
