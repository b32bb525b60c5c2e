"""Server settings, and parsing of the durations and sizes users type."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from icevault.core.faults import Fault
from icevault.core.models import Tier

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_duration(text: str) -> float:
    """Seconds from '90', '90s', '15m', '24h', '2d' or '250ms'."""
    match = _DURATION_RE.fullmatch(text)
    if not match:
        raise ValueError(f"invalid duration {text!r} (examples: 30, 30s, 15m, 24h, 2d)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def parse_size(text: str) -> int:
    """Bytes from '1048576', '8MiB', '8M', '1GiB' (binary units, as Glacier's part sizes)."""
    match = _SIZE_RE.fullmatch(text)
    if not match:
        raise ValueError(f"invalid size {text!r} (examples: 1048576, 8MiB, 1GiB)")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _SIZE_UNITS[unit]


def parse_tier_delays(text: str) -> dict[Tier, float]:
    """'expedited=0,standard=0,bulk=0' in seconds (durations with units allowed)."""
    delays: dict[Tier, float] = {}
    names = {tier.value.lower(): tier for tier in Tier}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        tier = names.get(name.strip().lower())
        if not sep or tier is None:
            raise ValueError(
                f"invalid tier delay {item!r} (expected e.g. expedited=0,standard=0,bulk=0)"
            )
        delays[tier] = parse_duration(value)
    return delays


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 9099
    data_dir: Path = Path("./icevault-data")
    auth: str = "sigv4"
    region: str = "us-east-1"
    tier_delays_s: dict[Tier, float] = field(
        default_factory=lambda: {Tier.EXPEDITED: 0.0, Tier.STANDARD: 0.0, Tier.BULK: 0.0}
    )
    inventory_delay_s: float = 0.0
    job_expiry_s: float = 24 * 3600.0
    upload_expiry_s: float = 24 * 3600.0
    # Connections and transfers (see icevault.server.transfer and icevault.server.listener).
    io_timeout_s: float = 30.0
    min_rate: int = 64 * 1024
    idle_timeout_s: float = 15.0
    max_connections: int | None = None  # None: derived from the open-file limit
    # Access keys and identity policies: a change made through any server (or icevault
    # admin) applies on every server within this bound. One key lookup per key per second
    # costs nothing; a longer bound keeps a disabled key working longer.
    cache_ttl_s: float = 1.0
    # How long a server holds a due job it is completing, or a notification it is sending,
    # before another server on the same database may take it over.
    job_lease_s: float = 300.0
    scrub_interval_s: float = 0.0  # 0: no periodic scrub
    scrub_rate: float | None = None  # bytes per second
    maintenance_interval_s: float = 60.0
    # Unreferenced bytes younger than this are never swept: another server sharing the
    # store may be between writing them and recording them.
    orphan_grace_s: float = 24 * 3600.0
    orphan_sweep_interval_s: float = 6 * 3600.0  # 0: only at start-up
    metadata_url: str | None = None
    blob_url: str | None = None  # s3://bucket/prefix?endpoint=...; None: files in data_dir
    notification_url: str | None = None
    # Webhooks (topics and --notification-url) may reach loopback and private addresses.
    webhook_allow_private: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    workers: int = 16
    body_threads: int = 8  # threads reading large upload bodies off the socket; 0: none
    # GET /metrics (Prometheus): "token" (only with the operator's bearer token), "open"
    # (anyone who reaches the listener) or "off".
    metrics: str = "token"
    metrics_token_file: Path | None = None  # None: <data_dir>/metrics-token
    test_controls: bool = False  # the control endpoint, clock control and fault injection
    faults: tuple[Fault, ...] = ()  # rules in force from the start (--faults FILE.json)
