"""One object holding every use case, built over a context."""

from __future__ import annotations

from icevault.service.access import AccessService
from icevault.service.account import AccountService
from icevault.service.admin import AdminService
from icevault.service.archives import ArchiveService
from icevault.service.console import ConsoleService
from icevault.service.context import Context
from icevault.service.copies import CopyService
from icevault.service.identity import IdentityService
from icevault.service.jobs import JobService
from icevault.service.maintenance import Maintenance
from icevault.service.policies import PolicyService
from icevault.service.uploads import UploadService
from icevault.service.vaults import VaultService


class Glacier:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.archives = ArchiveService(ctx)
        self.uploads = UploadService(ctx)
        self.jobs = JobService(ctx)
        self.copies = CopyService(ctx, self.jobs.integrity)
        self.maintenance = Maintenance(ctx)
        self.identity = IdentityService(ctx)
        self.access = AccessService(ctx)
        self.vaults = VaultService(ctx, on_delete=self.access.invalidate_vault)
        self.policies = PolicyService(ctx, on_change=self.access.invalidate_vault)
        self.account = AccountService(ctx)
        self.admin = AdminService(ctx, self.identity, self.access)
        self.console = ConsoleService(self)
        self.sessions = self.identity.sessions

    def lookups_are_local(self, *, opens_blob: bool = False) -> bool:
        """Whether a lookup of a few indexed reads (and, with ``opens_blob``, opening a
        blob) touches only embedded, local storage: microseconds, no network wait."""
        ctx = self.ctx
        return ctx.meta.reads_are_local and (not opens_blob or ctx.blobs.opens_are_local)
