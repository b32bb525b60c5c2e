"""Small-request load: wrk when installed (Debian's package), else an asyncio client."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from dataclasses import dataclass


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    tool: str


def _ms(text: str) -> float:
    value, unit = float(text[:-2] if text.endswith(("ms", "us")) else text[:-1]), text[-2:]
    if unit == "us":
        return value / 1000
    if unit == "ms":
        return value
    return value * 1000  # seconds


def run_load(url: str, headers: dict[str, str], connections: int, seconds: float) -> LoadResult:
    if shutil.which("wrk"):
        args = ["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{seconds:g}s",
                "--latency", url]
        for name, value in headers.items():
            args[1:1] = ["-H", f"{name}: {value}"]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p50 = re.search(r"50%\s+([\d.]+\w+)", out)
        p99 = re.search(r"99%\s+([\d.]+\w+)", out)
        return LoadResult(rps, _ms(p50.group(1)) if p50 else None, _ms(p99.group(1)) if p99 else None,
                          "wrk")
    return asyncio.run(_python_load(url, headers, connections, seconds))


async def _python_load(url: str, headers: dict[str, str], connections: int, seconds: float) -> LoadResult:
    import aiohttp

    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                await response.read()
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    def pick(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return LoadResult(len(latencies) / elapsed, pick(0.5), pick(0.99), "python asyncio client")
