"""Several icevault servers on one PostgreSQL database and one SeaweedFS bucket, behind HAProxy.

The servers and the balancer are started from ``deploy/``'s systemd units and HAProxy
configuration exactly as written there: each unit's ``ExecStart`` with its variables filled in
as systemd fills them, so the files an operator installs are the files the tests exercise.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import botocore.config

from bench.peers import free_port
from icevault.testing.server import _ANNOUNCED
from tests.support import REGION
from tests.system import require_haproxy

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
SERVERS = 3  # the balancer's configuration names three


def unit_command(unit: Path, env: Mapping[str, str]) -> list[str]:
    """A systemd unit's ExecStart as systemd runs it: ``${NAME}`` is one word, ``$NAME`` is
    split at whitespace into several."""
    text = unit.read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    words: list[str] = []
    for word in shlex.split(line.removeprefix("ExecStart=")):
        bare = re.fullmatch(r"\$(\w+)", word)
        if bare:
            words.extend(env.get(bare.group(1), "").split())
        else:
            words.append(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], word))
    return words


def start_balancer(servers: list[str], log_path: Path,
                   haproxy: str | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """HAProxy from deploy/, as its systemd unit starts it, in front of ``servers`` (host:port,
    one to three; fewer are repeated to fill the configuration's three places)."""
    port = free_port()
    env = {
        **os.environ,
        "ICEVAULT_LISTEN": f"127.0.0.1:{port}",
        **{f"ICEVAULT_SERVER_{n + 1}": servers[n % len(servers)] for n in range(SERVERS)},
    }
    command = unit_command(DEPLOY / "systemd" / "icevault-haproxy.service", env)
    haproxy = haproxy or require_haproxy()
    command = [haproxy if word == "/usr/sbin/haproxy" else
               str(DEPLOY / "haproxy.cfg") if word == "/etc/icevault/haproxy.cfg" else word
               for word in command]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"haproxy did not start: {log_path.read_text()}") from None
            time.sleep(0.05)


class Notifications:
    """A webhook receiver: every notification POST, with its idempotency key."""

    def __init__(self) -> None:
        received: list[tuple[str, str]] = []
        self.received = received

        class Hook(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.append((body["JobId"], self.headers.get("x-icevault-idempotency-key", "")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/hook"

    def per_job(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for job_id, _ in list(self.received):
            counts[job_id] = counts.get(job_id, 0) + 1
        return counts

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Member:
    """One icevault server of the cluster."""

    index: int
    data_dir: Path
    log_path: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def completions(self) -> dict[str, int]:
        """How many times this server logged completing each job (JSON log lines)."""
        counts: dict[str, int] = {}
        for line in self.log().splitlines():
            if '"job_completed"' in line:
                job_id = json.loads(line)["job_id"]
                counts[job_id] = counts.get(job_id, 0) + 1
        return counts

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the server's /metrics (0 when absent)."""
        token = (self.data_dir / "metrics-token").read_text().strip()
        request = urllib.request.Request(f"{self.url}/metrics",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            sample, _, value = line.rpartition(" ")
            if sample.startswith(name) and (
                    sample == name or sample == f"{name}{{{wanted}}}"
                    or (wanted and sample.startswith(f"{name}{{")
                        and set(sample[len(name) + 1:-1].split(",")) == set(wanted.split(",")))):
                return float(value)
        return 0.0


@dataclass
class Cluster:
    root: Path
    metadata_url: str
    blob_url: str
    # Further settings, as the unit's EnvironmentFile gives them (ICEVAULT_NAME: value).
    settings: dict[str, str] = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)
    balancer: subprocess.Popen[bytes] | None = None
    balancer_port: int = 0
    haproxy: str | None = None  # the binary; found on the PATH when None

    # -- starting and stopping ------------------------------------------------------------
    def start(self) -> Cluster:
        """Three servers, then the balancer; a start that fails halfway stops what it
        started before it raises, so no process outlives the test."""
        try:
            for index in range(1, SERVERS + 1):
                member = Member(index, self.root / f"server{index}",
                                self.root / f"server{index}.log")
                self.members.append(member)
                # One after another: the first makes the account and its root key.
                self.start_member(member)
            self.start_balancer()
        except BaseException:
            self.stop()
            raise
        return self

    def _member_env(self, member: Member) -> dict[str, str]:
        return {
            **os.environ,
            "ICEVAULT_HOST": "127.0.0.1",
            "ICEVAULT_PORT": str(member.port),
            "ICEVAULT_DATA_DIR": str(member.data_dir),
            "ICEVAULT_METADATA_URL": self.metadata_url,
            "ICEVAULT_BLOB_URL": self.blob_url,
            **self.settings,
            "AWS_ACCESS_KEY_ID": "icevault",  # the bucket's (SeaweedFS's) credentials
            "AWS_SECRET_ACCESS_KEY": "icevault",
        }

    def start_member(self, member: Member, timeout: float = 30.0) -> None:
        env = self._member_env(member)
        command = unit_command(DEPLOY / "systemd" / "icevault@.service", env)
        assert command[0].endswith("/icevault"), command
        command = [sys.executable, "-m", "icevault", *command[1:]]
        member.log_path.touch()
        offset = member.log_path.stat().st_size
        with open(member.log_path, "ab") as log:
            member.proc = subprocess.Popen(command, env=env, stdout=log,
                                           stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(member.log_path, "rb") as file:
                file.seek(offset)
                match = _ANNOUNCED.search(file.read().decode(errors="replace"))
            if match:
                member.port = int(match.group(1).rsplit(":", 1)[1])
                return
            if member.proc.poll() is not None:
                raise RuntimeError(f"server {member.index} exited:\n{member.log()[-3000:]}")
            time.sleep(0.02)
        raise RuntimeError(f"server {member.index} did not start:\n{member.log()[-3000:]}")

    def start_balancer(self) -> None:
        self.balancer, self.balancer_port = start_balancer(
            [f"127.0.0.1:{m.port}" for m in self.members], self.root / "haproxy.log",
            haproxy=self.haproxy)
        self.wait_in_rotation(self.members)

    def wait_in_rotation(self, members: list[Member], timeout: float = 20.0) -> None:
        """Until every one of ``members`` answers ready (the balancer checks the same)."""
        deadline = time.monotonic() + timeout
        for member in members:
            while True:
                try:
                    with urllib.request.urlopen(f"{member.url}/health/ready", timeout=2):
                        break
                except OSError:
                    assert time.monotonic() < deadline, member.log()[-3000:]
                    time.sleep(0.1)
        time.sleep(2.5)  # two passing checks a second apart: back in the rotation

    def kill(self, member: Member) -> None:
        assert member.proc is not None
        member.proc.send_signal(signal.SIGKILL)
        member.proc.wait()
        member.proc = None

    def restart(self, member: Member) -> None:
        """Start a stopped server again on its port (the balancer's address for it)."""
        self.start_member(member)

    def stop(self) -> None:
        if self.balancer is not None:
            self.balancer.terminate()
            self.balancer.wait(timeout=20)
        for member in self.members:
            if member.proc is not None and member.proc.poll() is None:
                member.proc.terminate()
                try:
                    member.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    member.proc.kill()
                    member.proc.wait()

    # -- clients --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.balancer_port}"

    def completions(self) -> dict[str, int]:
        """How many times any server logged completing each job."""
        counts: dict[str, int] = {}
        for member in self.members:
            for job_id, count in member.completions().items():
                counts[job_id] = counts.get(job_id, 0) + count
        return counts

    def credentials(self) -> tuple[str, str]:
        import configparser

        parser = configparser.ConfigParser()
        parser.read(self.members[0].data_dir / "credentials")
        section = parser["icevault"]
        return section["aws_access_key_id"], section["aws_secret_access_key"]

    def client(self, url: str | None = None, attempts: int = 1) -> Any:
        key, secret = self.credentials()
        return boto3.client(
            "glacier", endpoint_url=url or self.url, region_name=REGION,
            aws_access_key_id=key, aws_secret_access_key=secret,
            config=botocore.config.Config(
                retries={"mode": "standard", "total_max_attempts": attempts},
                max_pool_connections=32, read_timeout=60),
        )

    def admin(self, *args: str) -> Any:
        """``icevault admin`` against the balancer, as the account's root."""
        result = subprocess.run(
            [sys.executable, "-m", "icevault", "admin", "--endpoint-url", self.url,
             "--profile", "icevault", *args], capture_output=True, text=True, timeout=60,
            env={"AWS_SHARED_CREDENTIALS_FILE": str(self.members[0].data_dir / "credentials"),
                 "AWS_CONFIG_FILE": os.devnull, "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout) if result.stdout.strip() else None
