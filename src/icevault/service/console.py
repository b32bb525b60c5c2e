"""What the web console shows and does, as the signed-in principal (the HTTP side is
:mod:`icevault.server.console`).

Every page and action is checked by the same access service as the Glacier API, as the
Glacier operation it amounts to: the console can do nothing its user could not do with an
SDK. Browsing a vault's archives, which Glacier offers only through an inventory job, needs
the right to start one (``glacier:InitiateJob``). All methods block (they read the metadata
store) and run on worker threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from icevault.core.errors import AccessDeniedError
from icevault.core.identity import AccessKey, Principal
from icevault.core.models import Archive, Job, JobStatus, Tier, Upload, Vault, VaultRef
from icevault.service.access import AccessRequest
from icevault.service.jobs import JobOutput, JobRequest
from icevault.store.metadata.base import ArchiveFilter, StoreStats

if TYPE_CHECKING:
    from icevault.service.glacier import Glacier

PAGE = 50  # archives per page
MAX_LISTED = 1000  # vaults, jobs or uploads on one page


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal
    source_ip: str | None
    secure: bool


@dataclass(frozen=True, slots=True)
class ArchivePage:
    archives: list[Archive]
    next_after: int | None  # the ``after`` of the next page, if there is one


@dataclass(frozen=True, slots=True)
class JobView:
    job: Job
    progress: float  # 0..1 of the wait until it is due (1 once complete)
    due_in_s: int | None  # while in progress
    expires_in_s: int | None  # once complete


@dataclass(frozen=True, slots=True)
class StoragePoint:
    day: datetime
    total_bytes: int


@dataclass(frozen=True, slots=True)
class AccountView:
    users: list[str]
    keys: list[AccessKey]


class ConsoleService:
    def __init__(self, glacier: Glacier) -> None:
        self.glacier = glacier
        self.ctx = glacier.ctx

    def _allow(self, viewer: Viewer, operation: str, vault: str | None = None) -> None:
        self.glacier.access.authorize(AccessRequest(
            principal=viewer.principal, operation=operation,
            account_id=viewer.principal.account_id, vault=vault,
            source_ip=viewer.source_ip, secure_transport=viewer.secure))

    def _ref(self, viewer: Viewer, vault: str) -> VaultRef:
        return VaultRef(viewer.principal.account_id, vault)

    # -- vaults ---------------------------------------------------------------------------
    def vaults(self, viewer: Viewer) -> list[Vault]:
        self._allow(viewer, "ListVaults")
        return self.glacier.vaults.list_vaults(viewer.principal.account_id, None,
                                               MAX_LISTED).vaults

    def vault(self, viewer: Viewer, name: str) -> Vault:
        self._allow(viewer, "DescribeVault", name)
        return self.glacier.vaults.describe(self._ref(viewer, name))

    def create_vault(self, viewer: Viewer, name: str) -> None:
        self._allow(viewer, "CreateVault", name)
        self.glacier.vaults.create(self._ref(viewer, name))

    def delete_vault(self, viewer: Viewer, name: str) -> None:
        self._allow(viewer, "DeleteVault", name)
        self.glacier.vaults.delete(self._ref(viewer, name))

    def storage_history(self, viewer: Viewer) -> list[StoragePoint]:
        """Stored bytes at the end of each day that changed them, and today."""
        self._allow(viewer, "ListVaults")
        total = 0
        points = []
        for day_ms, change in self.ctx.meta.storage_history(viewer.principal.account_id):
            total += change
            points.append(StoragePoint(datetime.fromtimestamp(day_ms / 1000, UTC), total))
        today = datetime.fromtimestamp(self.ctx.clock.now_ms() / 1000, UTC)
        if points and points[-1].day.date() < today.date():
            points.append(StoragePoint(today, total))
        return points

    # -- archives -------------------------------------------------------------------------
    def archives(self, viewer: Viewer, vault: str, after: int, matching: ArchiveFilter,
                 start_ms: int | None, end_ms: int | None) -> ArchivePage:
        self._allow(viewer, "InitiateJob", vault)
        ref = self._ref(viewer, vault)
        self.glacier.vaults.describe(ref)  # a missing vault is an error, not an empty page
        rows = self.ctx.meta.list_archives(ref, after, start_ms, end_ms, PAGE + 1, matching)
        next_after = rows[PAGE - 1][0] if len(rows) > PAGE else None
        return ArchivePage([archive for _, archive in rows[:PAGE]], next_after)

    # -- jobs -----------------------------------------------------------------------------
    def jobs(self, viewer: Viewer, vault: str) -> list[JobView]:
        self._allow(viewer, "ListJobs", vault)
        ref = self._ref(viewer, vault)
        now = self.ctx.clock.now_ms()
        expiry = self.ctx.timing.job_expiry_ms
        views: list[JobView] = []
        marker = None
        while len(views) < MAX_LISTED:
            page = self.glacier.jobs.list_jobs(ref, completed=None, status=None, marker=marker,
                                               limit=50)
            for job in page.jobs:
                if job.status is JobStatus.IN_PROGRESS:
                    wait = max(1, job.ready_at - job.created_at)
                    progress = min(0.99, max(0.0, (now - job.created_at) / wait))
                    views.append(JobView(job, progress, max(0, (job.ready_at - now) // 1000),
                                         None))
                else:
                    left = (job.completed_at or now) + expiry - now
                    views.append(JobView(job, 1.0, None, max(0, left // 1000)))
            marker = page.marker
            if marker is None:
                break
        # The newest first: the job just started is the one a person looks for.
        return sorted(views, key=lambda view: view.job.created_at, reverse=True)

    def job(self, viewer: Viewer, vault: str, job_id: str) -> Job:
        self._allow(viewer, "DescribeJob", vault)
        return self.glacier.jobs.describe(self._ref(viewer, vault), job_id)

    def start_retrieval(self, viewer: Viewer, vault: str, archive_id: str, tier: Tier) -> Job:
        self._allow(viewer, "InitiateJob", vault)
        return self.glacier.jobs.initiate(self._ref(viewer, vault), JobRequest(
            type="archive-retrieval", archive_id=archive_id, tier=tier,
            description="Started from the icevault console"))

    def start_inventory(self, viewer: Viewer, vault: str) -> Job:
        self._allow(viewer, "InitiateJob", vault)
        return self.glacier.jobs.initiate(self._ref(viewer, vault), JobRequest(
            type="inventory-retrieval", description="Started from the icevault console"))

    def open_output(self, viewer: Viewer, vault: str, job_id: str) -> JobOutput:
        self._allow(viewer, "GetJobOutput", vault)
        return self.glacier.jobs.open_verified_output(self._ref(viewer, vault), job_id)

    # -- uploads --------------------------------------------------------------------------
    def uploads(self, viewer: Viewer, vault: str) -> list[Upload]:
        self._allow(viewer, "ListMultipartUploads", vault)
        ref = self._ref(viewer, vault)
        return self.glacier.uploads.list_uploads(ref, None, MAX_LISTED).uploads

    # -- account and store ------------------------------------------------------------------
    def account(self, viewer: Viewer) -> AccountView:
        """The account's users and access keys (never their secrets), for its root only."""
        principal = viewer.principal
        if not principal.is_root:
            raise AccessDeniedError(
                f"User: {principal.arn} is not authorized to see the account's users and "
                "keys (only the account's root is)")
        meta = self.ctx.meta
        return AccountView(meta.list_users(principal.account_id),
                           meta.list_access_keys(principal.account_id))

    def store_stats(self, viewer: Viewer) -> tuple[StoreStats, bool]:
        """What the store holds, and whether that is the whole store's: the operator sees
        every account's figures, anyone else their own account's."""
        principal = viewer.principal
        if self.glacier.identity.is_operator(principal):
            return self.glacier.maintenance.store_stats(), True
        return self.glacier.maintenance.store_stats(principal.account_id), False
