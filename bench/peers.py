"""Starting the servers under test on free loopback ports, and clients for them."""

from __future__ import annotations

import configparser
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import psutil

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


@dataclass
class Peer:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    key: str
    secret: str
    data_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, workers: int = 10) -> Any:
        return boto3.client(
            "glacier", endpoint_url=self.url, region_name=REGION, aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            config=botocore.config.Config(max_pool_connections=max(10, workers),
                                          retries={"total_max_attempts": 1},
                                          read_timeout=600),
        )

    def rss(self) -> int:
        process = psutil.Process(self.proc.pid)
        return int(process.memory_info().rss) + sum(
            int(child.memory_info().rss) for child in process.children(recursive=True)
        )

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return float(times.user + times.system)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_icevault(work: Path, auth: str = "off") -> Peer:
    data = work / f"icevault-{auth}"
    shutil.rmtree(data, ignore_errors=True)
    return launch_icevault(data, auth)


def launch_icevault(data: Path, auth: str = "off", extra: list[str] | None = None,
                    log: Path | None = None, port: int | None = None,
                    preexec: Any = None) -> Peer:
    """``icevault serve`` on ``data`` as it is (a restart keeps what is there)."""
    port = port or free_port()
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "icevault", "serve", "--port", str(port), "--data-dir", str(data),
         "--auth", auth, "--log-level", "warning" if log is None else "info", *(extra or [])],
        stdout=out, stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
        preexec_fn=preexec,
    )
    if log is not None:
        out.close()  # type: ignore[union-attr]
    _wait_port(port, proc)
    key, secret = "AKIDBENCH", "bench"
    if auth == "sigv4":
        parser = configparser.ConfigParser()
        parser.read(data / "credentials")
        key = parser["icevault"]["aws_access_key_id"]
        secret = parser["icevault"]["aws_secret_access_key"]
    return Peer(f"icevault ({auth})", port, proc, key, secret, data)


def start_moto() -> Peer | None:
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not os.path.exists(exe):
        return None
    port = free_port()
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_port(port, proc)
    return Peer("moto", port, proc, "AKIDBENCH", "bench")


def peak_rss_until_exit(process: subprocess.Popen[Any], interval: float = 0.02) -> int:
    """The highest resident memory ``process`` reached, sampled until it exits."""
    peak = 0
    watched = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(interval)
    return peak
