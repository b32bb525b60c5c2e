"""The metadata store on SQLAlchemy Core: SQLite (embedded default) or PostgreSQL.

One implementation serves both databases; only connection set-up differs. SQLite runs in WAL
mode with ``synchronous=FULL`` so a committed transaction survives power loss, and write
transactions start with ``BEGIN IMMEDIATE`` so two writers never deadlock upgrading locks.

Each aggregate's rows live in a module of their own (``vaults``, ``archives``, ``uploads``,
``jobs``, ``identity``, ``policies``, ``accounts``, ``maintenance``, ``copies``, ``console``) on a shared engine
(``engine``); :class:`SqlMetadataStore` is all of them together.
"""

from __future__ import annotations

from icevault.store.metadata.sql.accounts import AccountRows
from icevault.store.metadata.sql.archives import ArchiveRows
from icevault.store.metadata.sql.console import ConsoleRows
from icevault.store.metadata.sql.copies import CopyRows
from icevault.store.metadata.sql.engine import sqlite_url
from icevault.store.metadata.sql.identity import IdentityRows
from icevault.store.metadata.sql.jobs import JobRows
from icevault.store.metadata.sql.maintenance import MaintenanceRows
from icevault.store.metadata.sql.policies import PolicyRows
from icevault.store.metadata.sql.uploads import UploadRows
from icevault.store.metadata.sql.vaults import VaultRows


class SqlMetadataStore(
    IdentityRows, VaultRows, ArchiveRows, UploadRows, JobRows, PolicyRows, AccountRows,
    MaintenanceRows, CopyRows, ConsoleRows,
):
    """:class:`~icevault.store.metadata.base.MetadataStore` over a SQLAlchemy engine."""


__all__ = ["SqlMetadataStore", "sqlite_url"]
