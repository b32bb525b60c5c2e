"""What the running application holds, shared by the edge and the background tasks."""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from icevault.config import ServerSettings
from icevault.core.models import AdjustableClock
from icevault.server.bodypump import BodyPumps
from icevault.server.transfer import TransferLimits
from icevault.service.faults import FaultPlan
from icevault.service.glacier import Glacier
from icevault.service.notifications import Notifier

if TYPE_CHECKING:
    from icevault.server.ops.metrics import ServerMetrics


@dataclass(slots=True)
class TestControls:
    """``--test-controls``: the clock tests move, the faults they inject, and the requests
    by Glacier operation since the start (or the last reset), authenticated or not: what a
    test asserts about how its code used the API."""

    clock: AdjustableClock
    faults: FaultPlan
    requests: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class Runtime:
    """What the application holds while it runs."""

    settings: ServerSettings
    glacier: Glacier
    executor: ThreadPoolExecutor
    job_event: asyncio.Event
    notify_event: asyncio.Event
    notifier: Notifier
    limits: TransferLimits
    body_pumps: BodyPumps
    controls: TestControls | None = None  # --test-controls: clock and faults
    metrics: ServerMetrics | None = None  # --metrics on
    # One pass over due jobs at a time (the job worker, or a test advancing the clock).
    job_pass: asyncio.Lock = field(default_factory=asyncio.Lock)


RUNTIME = web.AppKey("runtime", Runtime)
