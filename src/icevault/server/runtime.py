"""What the running application holds, shared by the edge and the background tasks."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from aiohttp import web

from icevault.config import ServerSettings
from icevault.server.transfer import TransferLimits
from icevault.service.glacier import Glacier
from icevault.service.notifications import Notifier


@dataclass(slots=True)
class Runtime:
    """What the application holds while it runs."""

    settings: ServerSettings
    glacier: Glacier
    executor: ThreadPoolExecutor
    job_event: asyncio.Event
    notifier: Notifier
    limits: TransferLimits


RUNTIME = web.AppKey("runtime", Runtime)
