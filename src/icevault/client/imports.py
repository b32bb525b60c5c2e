"""Sending icevault's import extension with boto3: an archive uploaded (single or multipart)
under the ID and creation date it had in another Glacier store.

The extension is two request headers on UploadArchive and InitiateMultipartUpload; the
server allows them to callers granted ``icevault:ImportArchive``. botocore has no parameter
for them, so a ``before-call`` hook adds them while :func:`importing` is in force on the
calling thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ID_HEADER = "x-icevault-archive-id"
DATE_HEADER = "x-icevault-archive-creation-date"

_pending = threading.local()


def _add_headers(params: Any, **_kwargs: Any) -> None:
    value: tuple[str, str] | None = getattr(_pending, "value", None)
    if value is not None:
        params["headers"][ID_HEADER], params["headers"][DATE_HEADER] = value


def enable_imports(client: Any) -> Any:
    """Let ``client`` send the import headers (inside :func:`importing`); returns it."""
    for operation in ("UploadArchive", "InitiateMultipartUpload"):
        client.meta.events.register_first(
            f"before-call.glacier.{operation}", _add_headers,
            unique_id=f"icevault-import-{operation}",
        )
    return client


@contextmanager
def importing(archive_id: str, creation_date: str) -> Iterator[None]:
    """Uploads started on this thread inside the block keep ``archive_id`` and
    ``creation_date`` (ISO 8601, as Glacier's inventories print it)."""
    previous = getattr(_pending, "value", None)
    _pending.value = (archive_id, creation_date)
    try:
        yield
    finally:
        _pending.value = previous
