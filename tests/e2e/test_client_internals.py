"""The downloader's one reach into other libraries' internals, guarded.

``fetch.body_reader`` receives a chunk straight into the write buffer through
``botocore``'s body -> ``urllib3``'s response -> ``http.client``'s ``readinto``, private
attributes all. When a new release of any of them moves those, the downloader still works
(it falls back to the public ``read``) but loses its speed: the first test here fails then,
so the change is noticed, and the second proves the fallback reads correctly.
"""

from __future__ import annotations

import http.client
import io
from typing import Any

from botocore.response import StreamingBody

from icevault.client.chunks import Chunk
from icevault.client.fetch import body_reader
from icevault.core.treehash import MIB
from tests.support import ServerProcess, pattern, wait_for_job


def _read_all(readinto: Any, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = readinto(view[got:])
        if not n:
            break
        got += n
    return bytes(buffer[:got])


def test_fast_path_still_reaches_http_client(open_server: ServerProcess) -> None:
    client = open_server.client()
    client.create_vault(vaultName="internals")
    data = pattern(3 * MIB, seed=8)
    archive_id = client.upload_archive(vaultName="internals", body=data)["archiveId"]
    job_id = client.initiate_job(vaultName="internals", jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive_id})["jobId"]
    wait_for_job(client, "internals", job_id)
    chunk = Chunk(1, MIB, 2 * MIB - 1)
    response = client.get_job_output(vaultName="internals", jobId=job_id,
                                     range=chunk.range_header())
    readinto, release = body_reader(response["body"], response, chunk)
    assert isinstance(getattr(readinto, "__self__", None), http.client.HTTPResponse), (
        "botocore/urllib3 changed: the downloader fell back to copying reads")
    assert _read_all(readinto, chunk.size) == data[MIB:2 * MIB]
    release()


def test_fallback_reads_through_the_public_api() -> None:
    data = bytes(range(256)) * 4096
    body = StreamingBody(io.BytesIO(data), len(data))
    chunk = Chunk(0, 0, len(data) - 1)
    response = {"ResponseMetadata": {"HTTPHeaders": {"content-length": str(len(data))}}}
    readinto, release = body_reader(body, response, chunk)
    assert not isinstance(getattr(readinto, "__self__", None), http.client.HTTPResponse)
    assert _read_all(readinto, chunk.size) == data
    release()
