"""Moving one archive whose retrieval job has succeeded on the source.

The job's output is cut into tree-hash-aligned chunks (the client's chunk planner). Each
chunk is fetched by the client's fetcher into memory (its length and range checked, retried
on its own), then sent as one part of a multipart upload on the target by the client's
uploader, with the source's checksum for that range as the part's tree hash: the target
stores the part only if its bytes hash to exactly that, and the uploader checks what the
target answers. So every byte is verified against the source's checksum once, where it
lands, without a second hashing pass here. A part the target refuses is fetched again and
hashed here (bad bytes from the source are then retried as any download's are). Chunks move
in parallel; at most one chunk per worker is ever in memory and nothing is staged on disk.
The parts' hashes must combine into the source's tree hash before CompleteMultipartUpload,
whose answer must name the source's archive ID and tree hash again.

A rerun finds the parts that landed (ListParts on the target) and moves only the others.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Executor, Future, wait
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError as BotoClientError

from icevault.client.chunks import Chunk, plan_chunks
from icevault.client.download_config import DownloadConfig, JobFacts
from icevault.client.exceptions import ClientError
from icevault.client.fetch import BufferPool, Fetcher, MemorySink
from icevault.client.imports import ID_HEADER, importing
from icevault.client.progress import Subscriber
from icevault.client.upload import upload_part
from icevault.core.treehash import MIB, combine_hex
from icevault.migrate.state import ArchiveState, MigrationState


class JobLostError(ClientError):
    """The source no longer has the job's output (it expired): a new job is needed."""


class VerificationError(ClientError):
    """What arrived is not the source's archive (tree hash, size or ID)."""

    exit_code = 3


class ExtensionMissingError(ClientError):
    """The target does not keep archive IDs (not an icevault, or too old)."""


@dataclass(frozen=True)
class Endpoints:
    source: Any  # boto3 Glacier clients; this one with botocore's retries, for job calls
    target: Any  # with icevault.client.imports.enable_imports and upload.prepare_client
    source_vault: str
    target_vault: str
    # For GetJobOutput: without botocore's retries, since the fetcher retries each chunk
    # itself, classified, and botocore's would hide the faults from it.
    source_output: Any = None
    source_account: str = "-"
    target_account: str = "-"


def error_code(error: BaseException) -> str | None:
    """The Glacier error code; any 404 reads as ResourceNotFoundException (other stores name
    a missing vault differently)."""
    if isinstance(error, BotoClientError):
        code = str(error.response.get("Error", {}).get("Code", "")) or None
        if code == "VaultNotFound" or (
                error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404):
            return "ResourceNotFoundException"
        return code
    return None


def _checksum_refused(error: BotoClientError) -> bool:
    """The target refused a part's bytes for not hashing to the tree hash sent with them."""
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return error_code(error) == "InvalidParameterValueException" and \
        "checksum mismatch" in message


PROBE_ID = "icevault_migrate_import_probe"


def check_import_support(ends: Endpoints) -> None:
    """Before any job is paid for: the target must keep archive IDs (icevault's import
    extension, and the caller's icevault:ImportArchive permission). The probe is an upload
    that is aborted at once; no archive is created."""
    try:
        with importing(PROBE_ID, "2012-06-01T00:00:00.000Z"):
            response = ends.target.initiate_multipart_upload(
                accountId=ends.target_account, vaultName=ends.target_vault,
                partSize=str(MIB))
    except BotoClientError as error:
        if error_code(error) == "AccessDeniedException":
            raise  # says which permission is missing
        raise ExtensionMissingError(
            f"the target refused an import ({error}); it cannot keep archive IDs. Use an "
            "icevault server as the target."
        ) from error
    ends.target.abort_multipart_upload(accountId=ends.target_account,
                                       vaultName=ends.target_vault,
                                       uploadId=response["uploadId"])
    confirmed = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(ID_HEADER)
    if confirmed != PROBE_ID:
        raise ExtensionMissingError(
            "the target did not confirm it keeps archive IDs (icevault's import extension); "
            "migrating into it would give every archive a new ID. Use an icevault server as "
            "the target."
        )


class ArchiveTransfer:
    def __init__(self, ends: Endpoints, state: MigrationState, archive: ArchiveState,
                 job_id: str, chunk_size: int, chunk_workers: Executor, config: DownloadConfig,
                 subscribers: Sequence[Subscriber], stop: threading.Event,
                 buffers: BufferPool) -> None:
        self.ends = ends
        self.state = state
        self.archive = archive
        self.job_id = job_id
        self.chunk_size = chunk_size
        self.chunk_workers = chunk_workers
        self.config = config
        self.subscribers = subscribers
        self.stop = stop
        self.buffers = buffers  # shared by every archive: memory is workers x chunk size
        self._landed_lock = threading.Lock()

    # -- the target's upload --------------------------------------------------------------

    def _initiate(self) -> str:
        archive, ends = self.archive, self.ends
        params: dict[str, Any] = {"accountId": ends.target_account, "vaultName": ends.target_vault,
                                  "partSize": str(self.chunk_size)}
        if archive.description:
            params["archiveDescription"] = archive.description
        with importing(archive.source_id, archive.creation_date):
            response = ends.target.initiate_multipart_upload(**params)
        upload_id = str(response["uploadId"])
        confirmed = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(ID_HEADER)
        if confirmed != archive.source_id:
            # Completing would create the archive under an ID the target picked: never.
            ends.target.abort_multipart_upload(accountId=ends.target_account,
                                               vaultName=ends.target_vault, uploadId=upload_id)
            raise ExtensionMissingError(
                "the target did not confirm it keeps archive IDs (icevault's import extension); "
                "migrating into it would give every archive a new ID. Use an icevault server "
                "as the target."
            )
        self.state.upload_started(archive.source_id, upload_id)
        return upload_id

    def _landed(self, upload_id: str) -> tuple[int, dict[int, str]] | None:
        """The upload's part size and landed parts (offset -> tree hash); None if the
        upload is gone (finished or expired)."""
        ends = self.ends
        landed: dict[int, str] = {}
        part_size = self.chunk_size
        try:
            for page in ends.target.get_paginator("list_parts").paginate(
                accountId=ends.target_account, vaultName=ends.target_vault, uploadId=upload_id
            ):
                part_size = int(page["PartSizeInBytes"])
                for part in page["Parts"]:
                    landed[int(part["RangeInBytes"].split("-")[0])] = part["SHA256TreeHash"]
        except BotoClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return None
            raise
        return part_size, landed

    # -- moving ---------------------------------------------------------------------------

    def run(self) -> str:
        """Move the archive; returns the target's archive ID (the source's)."""
        archive = self.archive
        upload_id = archive.upload_id
        found = None if upload_id is None else self._landed(upload_id)
        if upload_id is None or found is None:
            upload_id = self._initiate()
            found = (self.chunk_size, {})
        part_size, landed = found
        chunks = plan_chunks(archive.size, part_size, archive_size=archive.size)
        hashes: dict[int, str] = {c.index: landed[c.start] for c in chunks if c.start in landed}
        pending = [c for c in chunks if c.index not in hashes]
        if pending:
            hashes.update(self._move_all(upload_id, pending, len(hashes)))
        whole = combine_hex([hashes[c.index] for c in chunks])
        if whole != archive.tree_hash:
            raise VerificationError(
                f"the parts of {archive.source_id} combine to tree hash {whole}; the source's "
                f"inventory says {archive.tree_hash}"
            )
        ends = self.ends
        response = ends.target.complete_multipart_upload(
            accountId=ends.target_account, vaultName=ends.target_vault, uploadId=upload_id,
            archiveSize=str(archive.size), checksum=whole,
        )
        target_id, stored = response.get("archiveId"), response.get("checksum")
        if target_id != archive.source_id or stored != archive.tree_hash:
            raise VerificationError(
                f"the target stored {archive.source_id} as {target_id} with tree hash {stored}"
            )
        return str(target_id)

    def _move_all(self, upload_id: str, pending: list[Chunk], already: int) -> dict[int, str]:
        archive = self.archive
        facts = JobFacts(output_size=archive.size, archive_start=0, archive_size=archive.size,
                         expected_tree_hash=archive.tree_hash, checksummed=True,
                         archive_id=archive.source_id)
        sink = MemorySink(self.buffers)
        # The target checks every part against the source's checksum for its range (sent as
        # the part's tree hash), so the bytes are not hashed here as well; a part the target
        # refuses is fetched again and hashed here, to tell bad source bytes from a bad hop.
        fetcher = Fetcher(self.ends.source_output or self.ends.source, self.ends.source_vault,
                          self.job_id,
                          self.ends.source_account, facts, sink, None, self.config,
                          self.subscribers, None, self.stop, checked_downstream=True)
        landed = [already]

        def move(chunk: Chunk) -> str:
            verify = False
            while True:
                try:
                    checksum = fetcher.fetch(chunk, verify=verify)
                except BotoClientError as error:
                    if error_code(error) == "ResourceNotFoundException":
                        raise JobLostError(f"the source's job {self.job_id} is gone") from error
                    raise
                data = sink.take(chunk)
                # The target is icevault (check_import_support): the signed tree hash binds
                # the body, and the SHA-256 pass is saved. It stores the part only if the
                # bytes hash to the source's checksum (upload_part checks what it answers).
                try:
                    upload_part(self.ends.target, self.ends.target_vault, upload_id,
                                chunk.start, data, account_id=self.ends.target_account,
                                tree_hash=checksum, icevault_target=True)
                except BotoClientError as error:
                    if not _checksum_refused(error):
                        raise
                    if verify:
                        raise VerificationError(
                            f"the target refused the part at {chunk.start} of "
                            f"{archive.source_id} although its bytes match the source's "
                            f"checksum {checksum}: {error}") from error
                    verify = True
                    continue
                finally:
                    sink.release(data)
                break
            with self._landed_lock:
                landed[0] += 1
                self.state.part_landed(archive.source_id, landed[0])
            return checksum

        futures: dict[Future[str], Chunk] = {self.chunk_workers.submit(move, c): c
                                             for c in pending}
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            for future in futures:
                future.cancel()
            wait([f for f in futures if not f.cancelled()])
            error = failed[0].exception()
            assert error is not None
            raise error
        return {futures[f].index: f.result() for f in futures}
