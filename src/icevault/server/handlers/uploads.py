"""The multipart upload operations."""

from __future__ import annotations

from aiohttp import web

from icevault.server import parse
from icevault.server.call import Call
from icevault.server.wire import empty_response, json_response, part_json, upload_json
from icevault.service.uploads import PartRequest


def _upload_id(call: Call) -> str:
    assert call.route.resource_id is not None
    return call.route.resource_id


async def initiate_multipart_upload(call: Call) -> web.StreamResponse:
    upload = await call.run(
        call.glacier.uploads.initiate,
        call.vault,
        parse.part_size(call),
        call.header("x-amz-archive-description"),
        parse.archive_import(call),
    )
    headers = {
        "Location": f"{call.vault.location()}/multipart-uploads/{upload.id}",
        "x-amz-multipart-upload-id": upload.id,
    }
    if upload.imported is not None:
        # Confirms the import: a store without the extension would ignore the request
        # headers and give the archive a new ID, and the client must know before it sends.
        headers[parse.IMPORT_ID_HEADER] = upload.imported.archive_id
    return empty_response(201, headers)


async def upload_multipart_part(call: Call) -> web.StreamResponse:
    tree_hash = parse.tree_hash(call)
    content_sha256 = parse.content_sha256(call)
    byte_range = parse.content_range(call)
    request = PartRequest(
        vault=call.vault,
        upload_id=_upload_id(call),
        first=byte_range.first,
        last=byte_range.last,
        archive_size=byte_range.total,
        tree_hash=tree_hash,
        content_sha256=content_sha256,
        content_length=parse.content_length(call),
    )
    part = await call.run(call.glacier.uploads.begin_part, request)
    try:
        await call.stream_body(part)
    except BaseException:
        await call.run(part.abort)
        raise
    tree_hash = await call.run(part.finish)
    return empty_response(204, {"x-amz-sha256-tree-hash": tree_hash})


async def complete_multipart_upload(call: Call) -> web.StreamResponse:
    archive = await call.run(
        call.glacier.uploads.complete,
        call.vault,
        _upload_id(call),
        parse.archive_size(call),
        parse.tree_hash(call),
    )
    return empty_response(
        201,
        {
            "Location": f"{call.vault.location()}/archives/{archive.id}",
            "x-amz-archive-id": archive.id,
            "x-amz-sha256-tree-hash": archive.tree_hash,
        },
    )


async def abort_multipart_upload(call: Call) -> web.StreamResponse:
    await call.run(call.glacier.uploads.abort, call.vault, _upload_id(call))
    return empty_response(204)


async def list_parts(call: Call) -> web.StreamResponse:
    query = call.request.query
    limit = parse.limit(query, default=50, maximum=1000)
    page = await call.run(
        call.glacier.uploads.list_parts, call.vault, _upload_id(call), parse.part_marker(query),
        limit,
    )
    upload = page.upload
    return json_response(
        {
            "ArchiveDescription": upload.description,
            "CreationDate": upload_json(upload, call.region)["CreationDate"],
            "Marker": page.marker,
            "MultipartUploadId": upload.id,
            "PartSizeInBytes": upload.part_size,
            "Parts": [part_json(p) for p in page.parts],
            "VaultARN": upload.vault.arn(call.region),
        }
    )


async def list_multipart_uploads(call: Call) -> web.StreamResponse:
    query = call.request.query
    limit = parse.limit(query, default=50, maximum=1000)
    page = await call.run(call.glacier.uploads.list_uploads, call.vault, query.get("marker"), limit)
    return json_response(
        {"Marker": page.marker, "UploadsList": [upload_json(u, call.region) for u in page.uploads]}
    )
