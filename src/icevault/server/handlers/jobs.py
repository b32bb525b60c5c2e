"""InitiateJob, DescribeJob, ListJobs and GetJobOutput."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from icevault.core.faults import Fault, FaultKind
from icevault.core.ranges import ByteRange
from icevault.diskio import BLOCK
from icevault.server import parse
from icevault.server.call import Call
from icevault.server.transfer import STEP
from icevault.server.wire import (
    empty_response,
    job_json,
    json_response,
    read_json_object,
)
from icevault.service.jobs import JobOutput

# Reads for the non-sendfile path (e.g. an object store) go through a thread in blocks.

log = logging.getLogger("icevault.server")


def _job_id(call: Call) -> str:
    assert call.route.resource_id is not None
    return call.route.resource_id


async def initiate_job(call: Call) -> web.StreamResponse:
    request = parse.job_request(read_json_object(call.body))
    job = await call.run(call.glacier.jobs.initiate, call.vault, request)
    call.wake_jobs()
    return empty_response(
        202,
        {"Location": f"{call.vault.location()}/jobs/{job.id}", "x-amz-job-id": job.id},
    )


async def describe_job(call: Call) -> web.StreamResponse:
    job = await call.lookup(call.glacier.jobs.describe, call.vault, _job_id(call))
    return json_response(job_json(job, call.region))


async def list_jobs(call: Call) -> web.StreamResponse:
    query = call.request.query
    page = await call.run(
        call.glacier.jobs.list_jobs,
        call.vault,
        completed=parse.completed(query),
        status=parse.status_code(query),
        marker=query.get("marker") or None,
        limit=parse.limit(query, default=50, maximum=50),
    )
    return json_response(
        {"JobList": [job_json(j, call.region) for j in page.jobs], "Marker": page.marker}
    )


async def get_job_output(call: Call) -> web.StreamResponse:
    range_header = call.header("Range")
    byte_range = None if range_header is None else ByteRange.parse(range_header)
    # A few indexed reads (job, archive, the leaves under the range) and an open().
    output: JobOutput = await call.lookup(
        call.glacier.jobs.open_output, call.vault, _job_id(call), byte_range, opens_blob=True
    )
    try:
        headers = {"Accept-Ranges": "bytes", "Content-Type": output.content_type}
        if output.partial:
            headers["Content-Range"] = f"bytes {output.start}-{output.end}/{output.total}"
        stripped = call.body_fault is not None and call.body_fault.kind is FaultKind.STRIP_CHECKSUM
        if output.checksum is not None and not stripped:
            headers["x-amz-sha256-tree-hash"] = output.checksum
        if output.archive_description is not None:
            headers["x-amz-archive-description"] = output.archive_description
        response = web.StreamResponse(status=206 if output.partial else 200, headers=headers)
        response.content_length = output.length
        await response.prepare(call.request)
        await _send_body(call, response, output)
        await response.write_eof()
        return response
    finally:
        output.reader.close()


async def _send_body(call: Call, response: web.StreamResponse, output: JobOutput) -> None:
    if output.length == 0:
        return
    if call.body_fault is not None and call.body_fault.kind in (FaultKind.CORRUPT_BODY,
                                                                FaultKind.DROP_CONNECTION):
        await _send_faulty_body(call, response, output, call.body_fault)
        return
    segment = output.reader.file_segment()
    transport = call.request.transport
    if transport is None:
        raise ConnectionResetError("Connection lost")
    deadline = call.limits.step_deadline_s()
    try:
        if segment is not None:
            file, offset, count = segment
            loop = asyncio.get_running_loop()
            end = offset + count
            # Zero-copy: the kernel moves the bytes from the page cache to the socket (where
            # the transport cannot, as with TLS, asyncio reads the file in its executor). One
            # step at a time, so a reader that stops reading is dropped.
            while offset < end:
                step = min(STEP, end - offset)
                async with asyncio.timeout(deadline):
                    await loop.sendfile(transport, file, offset, step, fallback=True)
                offset += step
            return
        await _send_read_ahead(call, response, output, deadline)
    except TimeoutError:
        log.info("dropping a GetJobOutput reader that took more than %.0f s for %d bytes",
                 deadline, STEP)
        transport.abort()
        raise ConnectionResetError("the reader stopped reading") from None


async def _send_read_ahead(call: Call, response: web.StreamResponse, output: JobOutput,
                           deadline: float) -> None:
    """The next block is read (from an object store, over the network) while this one is
    sent: the two waits overlap, at two blocks of memory per reader."""
    loop = asyncio.get_running_loop()

    def read_next() -> asyncio.Future[bytes]:
        return loop.run_in_executor(call.executor, output.reader.read, BLOCK)

    pending = read_next()
    try:
        while data := await pending:
            pending = read_next()
            async with asyncio.timeout(deadline):
                await response.write(data)
    finally:
        # A read under way is let finish (a thread is not interrupted) before the reader
        # is closed; its bytes or error go nowhere.
        await asyncio.wait([pending])
        if not pending.cancelled():
            pending.exception()


async def _send_faulty_body(call: Call, response: web.StreamResponse, output: JobOutput,
                            fault: Fault) -> None:
    """Serve the output as a test fault asks: one byte changed in the middle (the headers,
    checksum included, stay those of the right bytes), or the connection cut after
    ``after_bytes``."""
    corrupt_at = output.length // 2 if fault.kind is FaultKind.CORRUPT_BODY else None
    cut_at = fault.after_bytes if fault.kind is FaultKind.DROP_CONNECTION else None
    sent = 0
    while True:
        data = await call.run(output.reader.read, BLOCK)
        if not data:
            break
        if corrupt_at is not None and sent <= corrupt_at < sent + len(data):
            changed = bytearray(data)
            changed[corrupt_at - sent] ^= 0xFF
            data = bytes(changed)
        if cut_at is not None and sent + len(data) >= cut_at:
            await response.write(data[: cut_at - sent])
            transport = call.request.transport
            if transport is not None:
                transport.close()  # after what is buffered is sent: exactly after_bytes
            raise ConnectionResetError("connection dropped by a test fault")
        await response.write(data)
        sent += len(data)
