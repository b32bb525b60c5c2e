"""UploadArchive and DeleteArchive."""

from __future__ import annotations

from aiohttp import web

from icevault.server import parse
from icevault.server.call import Call
from icevault.server.wire import empty_response
from icevault.service.archives import UploadRequest


async def upload_archive(call: Call) -> web.StreamResponse:
    request = UploadRequest(
        vault=call.vault,
        description=call.header("x-amz-archive-description"),
        tree_hash=parse.tree_hash(call),
        content_sha256=parse.content_sha256(call),
        content_length=parse.content_length(call),
        imported=parse.archive_import(call),
    )
    upload = await call.run(call.glacier.archives.begin_upload, request)
    try:
        await call.stream_body(upload)
        archive = await call.run(upload.finish)
    except BaseException:
        await call.run(upload.abort)
        raise
    headers = {
        "Location": f"{call.vault.location()}/archives/{archive.id}",
        "x-amz-archive-id": archive.id,
        "x-amz-sha256-tree-hash": archive.tree_hash,
    }
    if request.imported is not None:
        headers[parse.IMPORT_ID_HEADER] = archive.id
    return empty_response(201, headers)


async def delete_archive(call: Call) -> web.StreamResponse:
    assert call.route.resource_id is not None
    await call.run(call.glacier.archives.delete, call.vault, call.route.resource_id)
    return empty_response(204)
