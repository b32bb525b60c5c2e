"""Work the server does besides answering requests: completing jobs, housekeeping, and the
periodic scrub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from icevault.core.errors import StorageUnavailableError
from icevault.server.runtime import Runtime
from icevault.service.notifications import Notifier
from icevault.service.scrub import Scrubber

log = logging.getLogger("icevault.server")

SCRUB_CHECK_S = 60.0


def _send_notifications(notifier: Notifier) -> None:
    try:
        while notifier.send_due():
            pass
    except StorageUnavailableError as exc:
        _unavailable("job notifications", exc)
    except Exception:
        log.exception("could not send job notifications; retrying")


def _unavailable(work: str, exc: StorageUnavailableError) -> None:
    log.warning("%s waits: %s", work, exc.message,
                extra={"event": "storage_unavailable", "work": work})


async def complete_due_jobs(runtime: Runtime) -> int:
    """Complete every job due now; how many completed."""
    loop = asyncio.get_running_loop()
    jobs = runtime.glacier.jobs
    completed = 0
    async with runtime.job_pass:
        while done := await loop.run_in_executor(runtime.executor, jobs.run_due):
            for job in done:
                delay_ms = max(0, (job.completed_at or job.ready_at) - job.ready_at)
                if runtime.metrics is not None:
                    runtime.metrics.job_delay.observe(delay_ms / 1000)
                log.info("job completed", extra={
                    "event": "job_completed", "job_id": job.id, "account": job.vault.account_id,
                    "vault": job.vault.name, "action": job.action.value,
                    "status": job.status.value, "delay_ms": delay_ms})
            completed += len(done)
    if completed:
        runtime.notify_event.set()
    return completed


async def send_notifications(runtime: Runtime) -> None:
    """Send every job notification that is due: new ones and retries."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(runtime.executor, _send_notifications, runtime.notifier)


async def notification_worker(runtime: Runtime) -> None:
    """Sends notifications apart from the job loop, which a slow webhook must not hold up;
    woken when jobs complete, and each second for retries and other servers' jobs."""
    while True:
        runtime.notify_event.clear()
        await send_notifications(runtime)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await runtime.notify_event.wait()


async def job_worker(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    jobs = runtime.glacier.jobs
    clock = runtime.glacier.ctx.clock
    while True:
        try:
            await complete_due_jobs(runtime)
            due = await loop.run_in_executor(runtime.executor, jobs.next_due_time)
            wait = 1.0 if due is None else min(1.0, max(0.0, (due - clock.now_ms()) / 1000))
            runtime.job_event.clear()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await runtime.job_event.wait()
        except asyncio.CancelledError:
            raise
        except StorageUnavailableError as exc:  # a database or store outage: expected, said
            _unavailable("job worker", exc)
            await asyncio.sleep(1.0)
        except Exception:
            log.exception("job worker failed; retrying in 1 s")
            await asyncio.sleep(1.0)


async def copy_worker(runtime: Runtime, store: str) -> None:
    """Makes the copies ``store`` is owed, a few at a time, from every archive stored: new
    uploads within a second, older ones (a store added later) in order. A store that is
    down is retried by each copy's back-off, never faster."""
    loop = asyncio.get_running_loop()
    copies = runtime.glacier.copies
    while True:
        try:
            report = await loop.run_in_executor(runtime.executor, copies.copy_owed, store)
            if runtime.settings.hot_days is not None and store == copies.stores[0]:
                # Once a pass, by one worker: eviction looks at every store's copies.
                await loop.run_in_executor(runtime.executor, copies.evict_hot,
                                           runtime.settings.hot_days)
            if report.made or report.failed:
                continue  # more may be owed: no pause while there is work
        except asyncio.CancelledError:
            raise
        except StorageUnavailableError as exc:
            _unavailable(f"copies to {store}", exc)
        except Exception:
            log.exception("copy worker for %s failed; retrying in 1 s", store)
        await asyncio.sleep(1.0)


async def housekeeping(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    maintenance = runtime.glacier.maintenance
    settings = runtime.settings
    last_sweep = time.monotonic()  # the start-up sweep
    while True:
        await asyncio.sleep(settings.maintenance_interval_s)
        try:
            interval = settings.orphan_sweep_interval_s
            if interval > 0 and time.monotonic() - last_sweep >= interval:
                last_sweep = time.monotonic()
                await loop.run_in_executor(runtime.executor, maintenance.sweep_orphans,
                                           settings.orphan_grace_s)
            jobs, uploads = await loop.run_in_executor(runtime.executor, maintenance.expire)
            collected = await loop.run_in_executor(runtime.executor,
                                                   maintenance.collect_garbage)
            collected += await loop.run_in_executor(runtime.executor,
                                                    runtime.glacier.copies.drop_deleted)
            if jobs or uploads or collected:
                log.info("housekeeping", extra={
                    "event": "housekeeping", "jobs_expired": jobs, "uploads_expired": uploads,
                    "blobs_deleted": collected})
        except StorageUnavailableError as exc:
            _unavailable("housekeeping", exc)
        except Exception:
            log.exception("housekeeping failed; will retry")


async def scrub_periodically(runtime: Runtime) -> None:
    """A scrub pass over every stored archive each ``--scrub-interval``, paced at
    ``--scrub-rate``; an interrupted pass resumes at the next start."""
    settings = runtime.settings
    if settings.scrub_interval_s <= 0:
        return
    loop = asyncio.get_running_loop()
    ctx = runtime.glacier.ctx
    stop = threading.Event()
    try:
        while True:
            last = await loop.run_in_executor(runtime.executor,
                                              runtime.glacier.maintenance.last_full_scrub_ms)
            now = ctx.clock.now_ms()
            if last is None or now - last >= settings.scrub_interval_s * 1000:
                report = await loop.run_in_executor(None, lambda: Scrubber(ctx).run(
                    bytes_per_second=settings.scrub_rate, should_stop=stop.is_set))
                log.info("scrub pass", extra={
                    "event": "scrub", "checked": report.checked, "bytes_read": report.bytes_read,
                    "corrupt": len(report.corrupt), "finished": report.finished})
            await asyncio.sleep(min(SCRUB_CHECK_S, settings.scrub_interval_s))
    except asyncio.CancelledError:
        stop.set()
        raise
    except Exception:
        log.exception("the periodic scrub failed; it runs again at the next start")
