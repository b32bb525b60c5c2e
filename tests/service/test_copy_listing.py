"""What ``icevault admin copies`` says of a copy that scrub found bad: "bad" (with why)
until the copy workers have made it again, then "verified"."""

from __future__ import annotations

from pathlib import Path

from icevault import stores
from icevault.core.models import VaultRef
from icevault.core.treehash import MIB
from icevault.service.context import Context
from icevault.service.glacier import Glacier
from icevault.service.scrub import Scrubber
from icevault.store.blobs.local import LocalBlobStore
from icevault.store.metadata.sql import SqlMetadataStore
from tests.service.conftest import upload
from tests.support import ManualClock, pattern

SECOND = "file:///second"


def test_a_copy_scrub_found_bad_is_listed_bad_until_made_again(
        meta: SqlMetadataStore, tmp_path: Path, clock: ManualClock) -> None:
    second = LocalBlobStore(tmp_path / "second")
    glacier = Glacier(Context(meta=meta, blobs=stores.open_blobs(tmp_path, None), clock=clock,
                              copies={SECOND: second}))
    account = glacier.identity.default_account()
    ref = glacier.vaults.create(VaultRef(account, "v"))
    data = pattern(2 * MIB + 9, seed=4)
    archive = upload(glacier, ref, data)
    assert glacier.copies.copy_owed(SECOND).made == 1

    def listed() -> list[tuple[str, str, str | None]]:
        result = glacier.admin.operations.list_copies(account, "v", archive.id, None)
        assert result is not None
        [one] = result["Archives"]
        return [(c["Store"], c["State"], c["Error"]) for c in one["Copies"]]

    assert listed() == [(SECOND, "verified", None)]
    [key] = list(second.iter_keys())
    path = second.blob_path(key)
    damaged = bytearray(path.read_bytes())
    damaged[MIB + 1] ^= 0x40
    path.write_bytes(bytes(damaged))
    report = Scrubber(glacier.ctx).run()
    assert [(a.id, store) for a, store in report.bad_copies] == [(archive.id, SECOND)]
    [(store, state, error)] = listed()
    assert (store, state) == (SECOND, "bad") and error
    assert glacier.copies.copy_owed(SECOND).made == 1
    assert listed() == [(SECOND, "verified", None)]
