"""HeadObject's x-amz-restore, as S3 and moto write it: a restore's state, and when a
restored copy stops being readable."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from icevault.store.blobs.base import RestoreState, RestoreStatus
from icevault.store.blobs.s3 import parse_restore_header

EXPIRY_MS = int(datetime(2012, 12, 21, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(("header", "status"), [
    ("", RestoreStatus(RestoreState.ARCHIVED)),
    ('ongoing-request="true"', RestoreStatus(RestoreState.RESTORING)),
    ('ongoing-request="false", expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"',
     RestoreStatus(RestoreState.RESTORED, EXPIRY_MS)),
    # Readable, its end unsaid or unreadable: the caller assumes the days it asked for.
    ('ongoing-request="false"', RestoreStatus(RestoreState.RESTORED)),
    ('ongoing-request="false", expiry-date="soon"', RestoreStatus(RestoreState.RESTORED)),
    ('ongoing-request="false", expiry-date="', RestoreStatus(RestoreState.RESTORED)),
])
def test_a_restore_header_says_its_state_and_expiry(header: str, status: RestoreStatus) -> None:
    assert parse_restore_header(header) == status
