"""Every store sweeps the objects its metadata does not name: no two stores may share a
place (``stores.check_store_places``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from icevault.stores import check_store_places

DATA = Path("/srv/icevault")


@pytest.mark.parametrize("blob_url, copy_urls", [
    (None, ["file:///mnt/second/icevault"]),
    (None, ["file:///srv/icevault-copies"]),  # a sibling whose name starts the same
    ("s3://hot/p", ["s3://hot/pq"]),  # a prefix that only starts the same
    ("s3://hot/p", ["s3://cold/p"]),
    ("s3://hot/p?endpoint=http://a:1", ["s3://hot/p?endpoint=http://b:1"]),
    ("s3://hot/p", ["file:///srv/icevault-copies", "s3://hot/q"]),
])
def test_stores_in_places_of_their_own_start(blob_url: str | None,
                                             copy_urls: list[str]) -> None:
    check_store_places(DATA, blob_url, copy_urls)


@pytest.mark.parametrize("blob_url, copy_urls, says", [
    (None, ["file:///srv/icevault/"], ("--copy-url file:///srv/icevault/ is the same place as "
                                      "the data directory")),
    (None, ["file:///srv/icevault/../icevault/tmp"], "is inside the data directory"),
    ("s3://hot/p", ["s3://hot/p/"], ("--copy-url s3://hot/p/ is the same place as --blob-url "
                                    "s3://hot/p")),
    ("s3://hot/p/blobs", ["s3://hot/p"], "--copy-url s3://hot/p is around --blob-url"),
    ("s3://hot", ["s3://hot/copies"], "--copy-url s3://hot/copies is inside --blob-url s3://hot"),
    ("s3://hot/p?endpoint=http://a:1/", ["s3://hot/p/c?endpoint=http://a:1"], "inside"),
    (None, ["s3://c/x", "s3://c/x/y"], "--copy-url s3://c/x/y is inside --copy-url s3://c/x"),
])
def test_stores_sharing_a_place_are_refused(blob_url: str | None, copy_urls: list[str],
                                            says: str) -> None:
    with pytest.raises(ValueError, match="a copy store needs a place of its own") as refused:
        check_store_places(DATA, blob_url, copy_urls)
    assert says in str(refused.value)
