"""Progress reporting through subscriber objects: the library never prints.

Each hook takes ``**kwargs`` so that new events and fields never break a subscriber.
"""

from __future__ import annotations

from typing import Any


class Subscriber:
    """Override what you need. ``on_queued(total_bytes=, already=)``,
    ``on_progress(bytes_transferred=)``, ``on_retry(chunk=, attempt=, error=, delay=)``,
    ``on_done(result=)``."""

    def on_queued(self, **kwargs: Any) -> None:
        pass

    def on_progress(self, **kwargs: Any) -> None:
        pass

    def on_retry(self, **kwargs: Any) -> None:
        pass

    def on_done(self, **kwargs: Any) -> None:
        pass
