"""One installation per store: every store sweeps the objects its metadata does not name,
so a bucket prefix or directory that two installations (two metadata databases) both used
would have each delete the other's archives. A store is marked with the installation that
first used it, and no other installation sweeps it or writes to it."""

from __future__ import annotations

from icevault.store.blobs.base import BlobStore
from icevault.store.metadata.base import MetadataStore


class StoreOwnedElsewhereError(Exception):
    """The store holds another installation's objects."""

    def __init__(self, name: str, owner: str) -> None:
        super().__init__(
            f"{name} holds the objects of another icevault installation ({owner}, not this "
            "database's): give this server a store of its own")


def ensure_own_store(meta: MetadataStore, name: str, store: BlobStore) -> None:
    """Return if ``store`` is this installation's (marking it when it is unmarked); raise
    StoreOwnedElsewhereError if it is another's. The store's own errors propagate."""
    mine = meta.installation_id()
    owner = store.read_owner()
    if owner is None:
        store.write_owner(mine)
        # Two installations marking one new store at once: the mark that stayed decides.
        owner = store.read_owner()
    if owner != mine:
        raise StoreOwnedElsewhereError(name, owner or "unknown")
