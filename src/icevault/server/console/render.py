"""Turning the console's data into pages: the Jinja2 templates and their filters, the storage
chart (an SVG drawn on the server: no chart library, nothing fetched by the browser), and the
metrics put into words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import jinja2
from prometheus_client import CollectorRegistry

from icevault.service.console import StoragePoint
from icevault.store.metadata.base import StoreStats

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("icevault.server.console", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def human_bytes(size: int | float) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


TEMPLATES.filters.update(bytes=human_bytes, when=when, duration=duration)


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    points: str  # the SVG polyline's points
    labels: list[tuple[float, str]]  # x, date, along the axis
    top: str  # the largest value, in words
    latest: str


def storage_chart(points: list[StoragePoint], width: int = 600, height: int = 160) -> Chart | None:
    """Stored bytes by day as an SVG polyline (a step per day that changed them); None
    until there are two days to draw (one day is a point, not a line)."""
    if len(points) < 2:
        return None
    first = points[0].day.timestamp()
    span = max(1.0, points[-1].day.timestamp() - first)
    top = max(1, *(point.total_bytes for point in points))
    coordinates = []
    previous_y = None
    for point in points:
        x = round((point.day.timestamp() - first) / span * width, 1)
        y = round(height - point.total_bytes / top * height, 1)
        if previous_y is not None:
            coordinates.append(f"{x},{previous_y}")
        coordinates.append(f"{x},{y}")
        previous_y = y
    ends = [points[0], points[-1]] if len(points) > 1 else [points[0]]
    labels = [(round((p.day.timestamp() - first) / span * width, 1), p.day.strftime("%Y-%m-%d"))
              for p in ends]
    return Chart(width, height, " ".join(coordinates), labels, human_bytes(top),
                 human_bytes(points[-1].total_bytes))


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _sum(registry: CollectorRegistry, name: str, keep: str | None = None) -> float:
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == name and (keep is None or sample.labels.get("status", "")
                                        .startswith(keep)):
                total += sample.value
    return total


@dataclass(frozen=True, slots=True)
class Line:
    label: str
    value: str
    healthy: str
    ok: bool


def words_for_metrics(stats: StoreStats, registry: CollectorRegistry | None,
                      whole_store: bool = True) -> list[Line]:
    """The store's state (or one account's) and this server's counters, each with what
    healthy looks like."""
    lines = [
        Line("Archives stored", f"{stats.archives:,} ({human_bytes(stats.archive_bytes)})",
             "grows with what you keep", True),
        Line("Archives whose bytes failed verification", f"{stats.corrupt_archives:,}",
             "should be zero", stats.corrupt_archives == 0),
        Line("Jobs in progress", f"{stats.jobs.get('InProgress', 0):,}",
             "jobs wait until their tier's delay has passed", True),
        Line("Jobs succeeded / failed",
             f"{stats.jobs.get('Succeeded', 0):,} / {stats.jobs.get('Failed', 0):,}",
             "failures should be rare: a deleted or corrupt archive", True),
        Line("Multipart uploads open", f"{stats.open_uploads:,}",
             "uploads in flight; idle ones are aborted after a day", True),
    ]
    if registry is None:
        if whole_store:
            lines.append(Line("Request counters", "off (--metrics off)", "-", True))
        return lines
    requests = _sum(registry, "icevault_requests_total")
    failed = _sum(registry, "icevault_requests_total", keep="5")
    mismatches = _sample(registry, "icevault_upload_checksum_mismatches_total")
    refused = _sample(registry, "icevault_notifications_total", outcome="failed")
    lines += [
        Line("Requests answered by this server", f"{requests:,.0f}", "-", True),
        Line("Requests that failed on the server's side (5xx)", f"{failed:,.0f}",
             "should be zero but during a database or store outage", failed == 0),
        Line("Uploads refused for a tree-hash mismatch", f"{mismatches:,.0f}",
             "should be zero: a client or network corrupting data", mismatches == 0),
        Line("Notifications that could not be delivered", f"{refused:,.0f}",
             "should be zero: a webhook down or refusing", refused == 0),
        Line("Bytes received / sent",
             f"{human_bytes(_sample(registry, 'icevault_received_bytes_total'))} / "
             f"{human_bytes(_sample(registry, 'icevault_sent_bytes_total'))}", "-", True),
    ]
    return lines
