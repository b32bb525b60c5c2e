"""Retrieval jobs: initiate, describe, list, run, expire, and open their output.

An archive retrieval's output is the archive's own blob (never copied): the job refers to
the archive, and a deleted archive's bytes stay until no succeeded job reads them. Checksums
of output ranges come from the archive's stored leaf hashes, so no data is read for them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

from icevault.core import treehash
from icevault.core.errors import (
    InvalidParameterValueError,
    MissingParameterValueError,
    ResourceNotFoundError,
    ServiceUnavailableError,
)
from icevault.core.ids import new_job_id
from icevault.core.models import (
    Archive,
    InventoryFormat,
    InventoryParams,
    Job,
    JobAction,
    JobStatus,
    Tier,
    VaultRef,
    validate_description,
    validate_vault_name,
)
from icevault.core.ranges import ByteRange
from icevault.service.account import AccountService
from icevault.service.context import Context, Event
from icevault.service.integrity import IntegrityService, VerifyingReader, corruption_message
from icevault.service.inventory import decode_marker, write_inventory
from icevault.service.leases import LeaseKeeper
from icevault.service.restore import Restorer, ServeFrom, Waiting
from icevault.service.topics import TopicService
from icevault.service.vaults import require_vault
from icevault.store.blobs.base import BlobNotFoundError, BlobReader, BlobStore
from icevault.store.metadata.base import JobCompletion

JOB_TYPES = ("archive-retrieval", "inventory-retrieval", "select")


@dataclass(frozen=True, slots=True)
class InventoryRequest:
    start_ms: int | None = None
    end_ms: int | None = None
    limit: int | None = None
    marker: str | None = None


@dataclass(frozen=True, slots=True)
class JobRequest:
    """InitiateJob's body, parsed and typed at the edge."""

    type: str | None
    archive_id: str | None = None
    description: str | None = None
    sns_topic: str | None = None
    tier: Tier | None = None
    retrieval_range: tuple[int, int] | None = None  # inclusive
    format: InventoryFormat | None = None
    inventory: InventoryRequest | None = None
    has_select_parameters: bool = False
    has_output_location: bool = False


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job]
    marker: str | None


@dataclass(frozen=True, slots=True)
class JobOutput:
    """What GetJobOutput sends: bytes ``start``..``end`` (inclusive) of the job's ``total``
    output bytes, what they are, and an open reader of them. ``partial`` says whether a
    range was asked for (the edge answers 206 with a Content-Range then)."""

    start: int
    end: int
    total: int
    partial: bool
    content_type: str
    checksum: str | None
    archive_description: str | None
    reader: BlobReader

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def job_not_found(job_id: str) -> ResourceNotFoundError:
    return ResourceNotFoundError(f"The job ID was not found: {job_id}")


class JobService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.account = AccountService(ctx)
        self.integrity = IntegrityService(ctx)

    # -- initiate -------------------------------------------------------------------------
    def initiate(self, ref: VaultRef, request: JobRequest) -> Job:
        validate_vault_name(ref.name)
        if request.type is None:
            raise MissingParameterValueError("Required parameter missing: Type")
        if request.type not in JOB_TYPES:
            raise InvalidParameterValueError(
                f"Invalid job type: {request.type}. Valid types are archive-retrieval and "
                "inventory-retrieval"
            )
        if request.type == "select":
            raise InvalidParameterValueError(
                "Jobs of type select are not supported by icevault: their output goes to S3 "
                "and cannot be read through GetJobOutput"
            )
        if request.has_select_parameters or request.has_output_location:
            raise InvalidParameterValueError(
                "SelectParameters and OutputLocation apply only to select jobs"
            )
        if request.description is not None:
            validate_description(request.description, "job description")
        if request.sns_topic is not None:
            TopicService.validate(request.sns_topic)
        require_vault(self.ctx, ref)
        if request.type == "archive-retrieval":
            job = self._archive_job(ref, request)
        else:
            job = self._inventory_job(ref, request)
        if not self.ctx.meta.insert_job(job):
            require_vault(self.ctx, ref)
        return job

    def _archive_job(self, ref: VaultRef, request: JobRequest) -> Job:
        if request.format is not None or request.inventory is not None:
            raise InvalidParameterValueError(
                "Format and InventoryRetrievalParameters apply only to inventory-retrieval jobs"
            )
        if not request.archive_id:
            raise MissingParameterValueError(
                "Required parameter missing: ArchiveId (archive-retrieval jobs need one)"
            )
        archive = self.ctx.meta.get_archive(ref, request.archive_id)
        if archive is None:
            raise ResourceNotFoundError(f"Archive not found: {request.archive_id}")
        tier = request.tier or Tier.STANDARD
        if request.retrieval_range is None:
            start, end = 0, archive.size - 1
        else:
            start, end = request.retrieval_range
            if end >= archive.size or not treehash.is_megabyte_aligned(start, end, archive.size):
                raise InvalidParameterValueError(
                    f"Invalid RetrievalByteRange: {start}-{end}. The range must "
                    f"be megabyte aligned and inside the archive of {archive.size} bytes"
                )
        range_hash: str | None
        if (start, end) == (0, archive.size - 1):
            range_hash = archive.tree_hash
        elif treehash.is_tree_hash_aligned(start, end, archive.size):
            leaves = treehash.unpack_leaves(self.ctx.meta.get_archive_leaves(archive.id) or b"")
            digest = treehash.range_tree_hash(leaves, start, end, archive.size)
            range_hash = None if digest is None else digest.hex()
        else:
            range_hash = None
        self.account.enforce_retrieval_rate(ref.account_id, end - start + 1)
        now = self.ctx.clock.now_ms()
        return Job(
            id=new_job_id(),
            vault=ref,
            action=JobAction.ARCHIVE_RETRIEVAL,
            status=JobStatus.IN_PROGRESS,
            created_at=now,
            ready_at=now + self.ctx.timing.tier_delays_ms.get(tier, 0),
            description=request.description,
            sns_topic=request.sns_topic,
            tier=tier,
            archive_id=archive.id,
            archive_size=archive.size,
            archive_tree_hash=archive.tree_hash,
            retrieval_start=start,
            retrieval_end=end,
            range_tree_hash=range_hash,
        )

    def _inventory_job(self, ref: VaultRef, request: JobRequest) -> Job:
        if request.archive_id is not None or request.retrieval_range is not None:
            raise InvalidParameterValueError(
                "ArchiveId and RetrievalByteRange apply only to archive-retrieval jobs"
            )
        params = InventoryParams(format=request.format or InventoryFormat.JSON)
        inv = request.inventory
        if inv is not None:
            start, end = inv.start_ms, inv.end_ms
            if start is not None and end is not None and end <= start:
                raise InvalidParameterValueError("EndDate must be later than StartDate")
            if inv.marker is not None:
                decode_marker(inv.marker)
            params = replace(params, start_date=start, end_date=end, limit=inv.limit,
                             marker=inv.marker)
        now = self.ctx.clock.now_ms()
        return Job(
            id=new_job_id(),
            vault=ref,
            action=JobAction.INVENTORY_RETRIEVAL,
            status=JobStatus.IN_PROGRESS,
            created_at=now,
            ready_at=now + self.ctx.timing.inventory_delay_ms,
            description=request.description,
            sns_topic=request.sns_topic,
            inventory=params,
        )

    # -- read -----------------------------------------------------------------------------
    def _expired(self, job: Job, now: int) -> bool:
        return job.completed_at is not None and job.completed_at + self.ctx.timing.job_expiry_ms <= now

    def describe(self, ref: VaultRef, job_id: str) -> Job:
        validate_vault_name(ref.name)
        job = self.ctx.meta.get_job(ref, job_id)
        if job is None or self._expired(job, self.ctx.clock.now_ms()):
            require_vault(self.ctx, ref)
            raise job_not_found(job_id)
        return job

    def list_jobs(
        self,
        ref: VaultRef,
        *,
        completed: bool | None,
        status: JobStatus | None,
        marker: str | None,
        limit: int,
    ) -> JobPage:
        """At most ``limit`` jobs (Glacier pages ListJobs by 50 at most)."""
        validate_vault_name(ref.name)
        count = min(limit, 50)
        done = completed
        require_vault(self.ctx, ref)
        start_seq = None
        if marker:
            job = self.ctx.meta.get_job(ref, marker)
            if job is None:
                raise InvalidParameterValueError(f"Invalid marker: {marker}")
            start_seq = job.seq
        rows = self.ctx.meta.list_jobs(
            ref, completed=done, status=status, start_seq=start_seq, limit=count + 1
        )
        next_marker = rows[count].id if len(rows) > count else None
        now = self.ctx.clock.now_ms()
        return JobPage([j for j in rows[:count] if not self._expired(j, now)], next_marker)

    def open_verified_output(self, ref: VaultRef, job_id: str) -> JobOutput:
        """A job's whole output, an archive's bytes checked MiB by MiB against their leaf
        hashes as they are read (:class:`~icevault.service.integrity.VerifyingReader`):
        for a client that checks no tree-hash header."""
        output = self.open_output(ref, job_id, None)
        job = self.describe(ref, job_id)
        if job.action is not JobAction.ARCHIVE_RETRIEVAL:
            return output
        assert job.archive_id is not None and job.retrieval_start is not None
        archive = self.ctx.meta.get_archive(ref, job.archive_id)
        if archive is None:
            output.reader.close()
            raise job_not_found(job_id)
        return replace(output, reader=VerifyingReader(self.integrity, archive, output.reader,
                                                      job.retrieval_start))

    def open_output(self, ref: VaultRef, job_id: str, byte_range: ByteRange | None) -> JobOutput:
        job = self.describe(ref, job_id)
        if job.status is not JobStatus.SUCCEEDED:
            raise InvalidParameterValueError(
                f"The job is not currently available for download: {job_id}"
            )
        if job.action is JobAction.INVENTORY_RETRIEVAL:
            assert job.output_blob_key is not None and job.output_size is not None
            assert job.inventory is not None
            total = job.output_size
            blob_key = job.output_blob_key
            store: BlobStore = self.ctx.blobs
            base = 0
            content_type = (
                "application/json" if job.inventory.format is InventoryFormat.JSON else "text/csv"
            )
            description = None
        else:
            assert job.archive_id is not None and job.retrieval_start is not None
            assert job.retrieval_end is not None
            archive = self.ctx.meta.get_archive(ref, job.archive_id)
            source = self._output_source(job, archive)
            if archive is None or source is None:
                raise job_not_found(job_id)
            if archive.corrupt_at is not None:
                # Marked after the job succeeded (by a scrub): never served as good.
                raise ServiceUnavailableError(corruption_message(archive))
            total = job.retrieval_end - job.retrieval_start + 1
            store, blob_key = source
            base = job.retrieval_start
            content_type = "application/octet-stream"
            description = archive.description
        if byte_range is None:
            start, end = 0, total - 1
        else:
            start, end = byte_range.resolve(total)
        checksum = None
        if job.action is JobAction.ARCHIVE_RETRIEVAL:
            checksum = self._range_checksum(job, base + start, base + end)
        try:
            reader = store.open_range(blob_key, base + start, end - start + 1)
        except Exception as exc:
            if store is self.ctx.blobs or isinstance(exc, BlobNotFoundError):
                raise
            # A restored copy that cannot be read (expired early, a store that is down):
            # the client may try again; nothing unverified is served.
            raise ServiceUnavailableError(
                f"The job's output is in a copy store that cannot be read now "
                f"({type(exc).__name__}); try again") from None
        return JobOutput(
            start=start, end=end, total=total, partial=byte_range is not None,
            content_type=content_type,
            checksum=checksum,
            archive_description=description,
            reader=reader,
        )

    def _output_source(self, job: Job, archive: Archive | None) -> tuple[BlobStore, str] | None:
        """Where a retrieval's bytes are read: the hot store, or the restored cold copy the
        job was completed from (its archive's hot bytes removed)."""
        if archive is None:
            return None
        if archive.blob_key is not None:
            return self.ctx.blobs, archive.blob_key
        if job.source_store is not None and job.source_key is not None:
            store = self.ctx.copies.get(job.source_store)
            if store is not None:
                return store, job.source_key
        return None

    def _range_checksum(self, job: Job, start: int, end: int) -> str | None:
        size = job.archive_size
        assert size is not None and job.archive_id is not None
        if (start, end) == (0, size - 1):
            return job.archive_tree_hash
        if (start, end) == (job.retrieval_start, job.retrieval_end):
            return job.range_tree_hash
        if not treehash.is_tree_hash_aligned(start, end, size):
            return None
        # Only the leaves under the range: a tree node's leaves are contiguous.
        first, stop = start // treehash.MIB, -(-(end + 1) // treehash.MIB)
        packed = self.ctx.meta.get_archive_leaves(job.archive_id, first, stop - first)
        if packed is None or len(packed) != (stop - first) * treehash.DIGEST_SIZE:
            return None
        return treehash.combine(treehash.unpack_leaves(packed)).hex()

    # -- the worker's side ----------------------------------------------------------------
    def run_due(self, limit: int = 32) -> list[Job]:
        """Complete the due jobs no other server holds; return them as they finished."""
        lease_ms = self.ctx.timing.job_lease_ms
        claimed = self.ctx.meta.claim_due_jobs(self.ctx.clock.now_ms(), limit, lease_ms)
        if not claimed:
            return []  # no thread to keep leases for nothing: this runs every tick
        finished: list[Job] = []
        with LeaseKeeper(self.ctx.meta.renew_job_leases, (job.id for job in claimed),
                         lease_ms, self.ctx.clock) as kept:
            for index, job in enumerate(claimed):
                try:
                    done = self._complete(job)
                except BaseException:
                    # Due again at once (for this server's retry), not at the lease's end.
                    with contextlib.suppress(Exception):
                        self.ctx.meta.release_jobs([j.id for j in claimed[index:]])
                    raise
                kept.release(job.id)
                if done is not None:
                    finished.append(done)
        return finished

    def _complete(self, job: Job) -> Job | None:
        now = self.ctx.clock.now_ms()
        injected = self.ctx.injected_job_failure(job)
        if injected is not None:
            return self.ctx.meta.finish_job(job.id, JobCompletion(JobStatus.FAILED, injected, now))
        if job.action is JobAction.ARCHIVE_RETRIEVAL:
            outcome = self._bring_back_if_evicted(job)
            if isinstance(outcome, Waiting):
                self.ctx.meta.defer_job(job.id, outcome.next_check_ms, outcome.message)
                return None
            if isinstance(outcome, ServeFrom):
                return self._complete_from_copy(job, outcome, now)
            failure = self._verify_retrieval(job)
            if failure is not None:
                return self.ctx.meta.finish_job(
                    job.id, JobCompletion(JobStatus.FAILED, failure, now)
                )
            return self.ctx.meta.finish_job(
                job.id, JobCompletion(JobStatus.SUCCEEDED, "Succeeded", now)
            )
        assert job.inventory is not None
        writer = self.ctx.blobs.create()
        try:
            result = write_inventory(
                self.ctx.meta, job.vault, job.vault.arn(self.ctx.region), job.inventory, now, writer
            )
            key = writer.commit()
        except BaseException:
            writer.abort()
            raise
        return self.ctx.meta.finish_job(
            job.id,
            JobCompletion(
                JobStatus.SUCCEEDED,
                "Succeeded",
                now,
                output_blob_key=key,
                output_size=result.size,
                inventory_marker_out=result.next_marker,
            ),
        )

    def _bring_back_if_evicted(self, job: Job) -> Waiting | ServeFrom | None:
        """An archive whose hot bytes were removed (--hot-days) gets them back from a copy,
        or is served from a restored one, before its job can complete; what the job waits
        for, if it must wait (None: the hot bytes are there, or no copy could give them)."""
        assert job.archive_id is not None
        archive = self.ctx.meta.get_archive(job.vault, job.archive_id)
        if archive is None or archive.blob_key is not None or archive.hot_evicted_at is None:
            return None
        outcome = Restorer(self.ctx).bring_back(archive, job.tier)
        return outcome if isinstance(outcome, (Waiting, ServeFrom)) else None

    def _complete_from_copy(self, job: Job, source: ServeFrom, now: int) -> Job | None:
        """Check the range the job will serve in the restored copy, then complete it."""
        assert job.archive_id is not None
        archive = self.ctx.meta.get_archive(job.vault, job.archive_id)
        store = self.ctx.copies.get(source.store)
        if archive is None or store is None:
            return self.ctx.meta.finish_job(job.id, JobCompletion(
                JobStatus.FAILED, "The archive's copy store is no longer configured", now))
        try:
            reason = self.integrity.check(archive, job.retrieval_start or 0, job.retrieval_end,
                                          source=(store, source.key))
        except Exception as exc:  # noqa: BLE001 - a copy store's client error: ask again
            self.ctx.meta.defer_job(job.id, now + 60_000, f"Reading the restored copy in "
                                    f"{source.store} failed ({type(exc).__name__}); retrying")
            return None
        if reason is not None:
            self.ctx.meta.mark_copy_failed(archive.id, source.store, now, reason)
            return self.ctx.meta.finish_job(job.id, JobCompletion(
                JobStatus.FAILED, f"The archive's restored copy failed verification ({reason})",
                now))
        requested = next((c.restore_requested_at for c in self.ctx.meta.archive_copies(archive.id)
                          if c.store == source.store), None)
        done = self.ctx.meta.finish_job(job.id, JobCompletion(
            JobStatus.SUCCEEDED, "Succeeded", now, source_store=source.store,
            source_key=source.key))
        if done is not None and requested is not None:
            self.ctx.observe(Event.RESTORE_WAITED, max(0, now - requested) / 1000)
        return done

    def _verify_retrieval(self, job: Job) -> str | None:
        """Read and check the bytes a retrieval will serve; why it must fail, if it must."""
        assert job.archive_id is not None
        archive = self.ctx.meta.get_archive(job.vault, job.archive_id)
        if archive is not None and archive.blob_key is None and archive.hot_evicted_at:
            return ("The archive's bytes are kept only in copy stores, and none of them "
                    "could give them back")
        if archive is None or archive.blob_key is None:
            return None  # finish_job fails it as deleted
        if archive.corrupt_at is not None:
            # Marked by an earlier check: a copy made good since may still serve.
            repaired = self.integrity.repair(archive, archive.corrupt_reason or "marked")
            if repaired is None:
                return corruption_message(archive)
            archive = repaired
        reason = self.integrity.check(archive, job.retrieval_start or 0, job.retrieval_end)
        if reason is not None:
            repaired = self.integrity.repair_or_quarantine(archive, reason)
            if repaired is None:
                return corruption_message(replace(archive, corrupt_at=self.ctx.clock.now_ms(),
                                                  corrupt_reason=reason))
            archive = repaired
            reason = self.integrity.check(archive, job.retrieval_start or 0,
                                          job.retrieval_end)
            if reason is not None:
                self.integrity.quarantine(archive, reason)
                return corruption_message(replace(archive, corrupt_at=self.ctx.clock.now_ms(),
                                                  corrupt_reason=reason))
        if (job.retrieval_start, job.retrieval_end) == (0, archive.size - 1):
            self.ctx.meta.mark_archive_verified(archive.id, self.ctx.clock.now_ms())
        return None

    def next_due_time(self) -> int | None:
        return self.ctx.meta.next_due_time()
