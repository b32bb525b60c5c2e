"""A real icevault server for a test: a process on a free loopback port with temporary data.

The server is ``icevault serve --test-controls`` exactly as users run it; this class starts
it, hands out boto3 clients with valid credentials, and drives its control endpoint (clock,
faults, seeding, reset) over HTTP.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from icevault.config import ServerSettings, without_settings
from icevault.core.faults import Fault

# The kit's defaults are the server's.
_SERVER_DEFAULTS = ServerSettings()
_ANNOUNCED = re.compile(r"serving the Glacier API on (https?://127\.0\.0\.1:(\d+))")
_CONTROL = "/_icevault/test"
# botocore reads these; patch_env replaces all of them for the test's duration.
_ENV_OWNED = (
    "AWS_ENDPOINT_URL_GLACIER", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)


class ServerStartError(RuntimeError):
    """The server process exited or did not announce its port in time; carries its log."""


class ForkedProcess:
    """A server forked by the warm launcher: what the kit needs of ``subprocess.Popen``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        """None while the process runs (the launcher reaps it when it exits)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return 0
        return None

    def send_signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"icevault serve (pid {self.pid})", timeout or 0)
            time.sleep(0.01)
        return 0


class _WarmLauncher:
    """The one ``python -m icevault.testing.launcher`` of this process (see its module)."""

    _instance: _WarmLauncher | None = None
    _guard = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "icevault.testing.launcher"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        self._ready = False

    @classmethod
    def running(cls) -> bool:
        with cls._guard:
            return cls._instance is not None and cls._instance._proc.poll() is None

    @classmethod
    def shared(cls) -> _WarmLauncher:
        with cls._guard:
            if cls._instance is None or cls._instance._proc.poll() is not None:
                cls._instance = cls()
            return cls._instance

    def _reply(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise ServerStartError("the icevault test launcher exited")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def fork(self, args: Sequence[str], log_path: Path) -> ForkedProcess:
        with self._lock:
            if not self._ready:
                self._reply()  # {"ready": true} once the server's modules are imported
                self._ready = True
            assert self._proc.stdin is not None
            # The caller's environment as it is now (a test may have set AWS variables since
            # the launcher started), without the server's settings variables.
            self._proc.stdin.write(json.dumps({
                "args": list(args), "log": str(log_path),
                "env": without_settings(dict(os.environ))}) + "\n")
            self._proc.stdin.flush()
            reply = self._reply()
        if "pid" not in reply:
            raise ServerStartError(f"the icevault test launcher refused: {reply.get('error')}")
        return ForkedProcess(int(reply["pid"]))


def prewarm() -> None:
    """Start the warm launcher now (in the background), so the first server starts fast too."""
    _WarmLauncher.shared()


def launch(args: Sequence[str], log_path: Path, *, timeout: float = 30.0,
           preexec: Callable[[], None] | None = None, warm: bool = False,
           ) -> tuple[subprocess.Popen[bytes] | ForkedProcess, str]:
    """Start ``icevault serve ARGS --port 0`` with its output appended to ``log_path``; return
    the process and its base URL once it listens.

    ``warm`` forks it from the warm launcher (see :mod:`icevault.testing.launcher`) instead
    of starting a new interpreter. The first warm start of a process starts the launcher and,
    while it warms up, this one server in a new interpreter (the two import in parallel, so
    the first start costs no more than a cold one). The port is the one the server bound and announced, so
    none is picked in advance and raced for, and no probe connection is needed."""
    log_path.touch()
    start_offset = log_path.stat().st_size
    full_args = ["--host", "127.0.0.1", "--port", "0", *args]
    proc: subprocess.Popen[bytes] | ForkedProcess
    if warm and _WarmLauncher.running():
        assert preexec is None, "a forked server runs no preexec"
        proc = _WarmLauncher.shared().fork(full_args, log_path)
    else:
        if warm:
            prewarm()
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "icevault", "serve", *full_args],
                # preexec: tests set resource limits or a umask in the child.
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=preexec,  # noqa: PLW1509
                env=without_settings(dict(os.environ)),
            )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log_path, "rb") as file:
            file.seek(start_offset)
            match = _ANNOUNCED.search(file.read().decode(errors="replace"))
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            raise ServerStartError(f"icevault exited at start:\n{_tail(log_path)}")
        time.sleep(0.005)
    proc.kill()
    proc.wait()
    raise ServerStartError(f"icevault did not start within {timeout} s:\n{_tail(log_path)}")


def _tail(path: Path, limit: int = 4000) -> str:
    return path.read_text(errors="replace")[-limit:] if path.exists() else ""


def _forget_boto3_default_session() -> None:
    boto3 = sys.modules.get("boto3")
    if boto3 is not None:
        vars(boto3)["DEFAULT_SESSION"] = None


def _duration_arg(value: str | float | timedelta) -> str:
    if isinstance(value, timedelta):
        return f"{value.total_seconds()}s"
    return str(value)


class IcevaultServer:
    """``with IcevaultServer() as server:`` a fresh server, stopped and removed on exit.

    ``tier_delays`` maps tiers to delays (``{"standard": "4h"}``; seconds as numbers);
    ``auth`` is ``"sigv4"`` (the default: real signatures, real keys) or ``"off"``. With
    ``patch_env=True`` the environment points unchanged boto3 code at the server while it
    runs (see :meth:`patch_env`). The server is ``icevault serve --test-controls`` forked
    from a warm launcher (a fraction of a second); ``warm_start=False`` starts it in a new
    interpreter instead (about a second)."""

    def __init__(
        self,
        *,
        tier_delays: Mapping[str, str | float | timedelta] | None = None,
        auth: str = _SERVER_DEFAULTS.auth,
        region: str = _SERVER_DEFAULTS.region,
        faults: Sequence[Fault] = (),
        job_expiry: str | float | timedelta | None = None,
        upload_expiry: str | float | timedelta | None = None,
        inventory_delay: str | float | timedelta | None = None,
        extra_args: Sequence[str] = (),
        data_dir: Path | None = None,
        patch_env: bool = False,
        start_timeout: float = 30.0,
        warm_start: bool = True,
    ) -> None:
        if auth not in ("sigv4", "off"):
            raise ValueError("auth is 'sigv4' or 'off'")
        self.auth = auth
        self.region = region
        self._tier_delays = dict(tier_delays or {})
        self._faults = list(faults)
        self._durations = {"--job-expiry": job_expiry, "--upload-expiry": upload_expiry,
                           "--inventory-delay": inventory_delay}
        self._extra_args = list(extra_args)
        self._given_dir = data_dir
        self._patch_env_on_enter = patch_env
        self._start_timeout = start_timeout
        self._warm_start = warm_start
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | ForkedProcess | None = None
        self._env_patch: contextlib.ExitStack | None = None
        self.endpoint_url = ""
        self.access_key_id = ""
        self.secret_access_key = ""

    # -- life cycle -----------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        if self._given_dir is not None:
            return self._given_dir
        assert self._workdir is not None, "the server is not started"
        return self._workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-server.log"

    def start(self) -> IcevaultServer:
        if self._proc is not None:
            return self
        if self._given_dir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="icevault-test-"))
        args = ["--data-dir", str(self.data_dir), "--auth", self.auth, "--region", self.region,
                "--test-controls"]
        if self._tier_delays:
            args += ["--tier-delays", ",".join(
                f"{tier.lower()}={_duration_arg(delay)}" for tier, delay in self._tier_delays.items()
            )]
        for flag, value in self._durations.items():
            if value is not None:
                args += [flag, _duration_arg(value)]
        if self._faults:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            faults_file = self.data_dir.parent / f"{self.data_dir.name}-faults.json"
            faults_file.write_text(json.dumps([fault.to_json() for fault in self._faults]))
            args += ["--faults", str(faults_file)]
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._proc, self.endpoint_url = launch(
            [*args, *self._extra_args], self.log_path, timeout=self._start_timeout,
            warm=self._warm_start,
        )
        self.access_key_id, self.secret_access_key = self._credentials()
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 20 s) and remove its temporary data."""
        self._restore_env()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> IcevaultServer:
        self.start()
        if self._patch_env_on_enter:
            self._env_patch = contextlib.ExitStack()
            self._env_patch.enter_context(self.patch_env())
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _restore_env(self) -> None:
        patch, self._env_patch = self._env_patch, None
        if patch is not None:
            patch.close()

    def log(self) -> str:
        """The server's log so far (injected faults are logged there too)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _credentials(self) -> tuple[str, str]:
        if self.auth == "off":
            return "AKIDICEVAULTTESTING", "icevault-testing-secret"
        parser = configparser.ConfigParser()
        parser.read(self.data_dir / "credentials")
        section = parser["icevault"]
        return section["aws_access_key_id"], section["aws_secret_access_key"]

    # -- clients --------------------------------------------------------------------------

    def client(self, **config: Any) -> Any:
        """A boto3 Glacier client for this server with valid credentials; ``config`` goes to
        ``botocore.config.Config`` (e.g. ``retries={"max_attempts": 1}``)."""
        import boto3
        import botocore.config

        return boto3.client(
            "glacier", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key,
            config=botocore.config.Config(**config) if config else None,
        )

    @contextlib.contextmanager
    def patch_env(self) -> Iterator[None]:
        """Point code that calls ``boto3.client("glacier")`` with no arguments at this server:
        ``AWS_ENDPOINT_URL_GLACIER``, credentials and region are set (and any AWS profile
        variable removed) until the block ends, then restored."""
        saved = {name: os.environ.get(name) for name in _ENV_OWNED}
        # boto3's default session resolves credentials once and keeps them: start a new one
        # here, and again after, so neither this server's keys nor earlier ones leak across.
        _forget_boto3_default_session()
        for name in _ENV_OWNED:
            os.environ.pop(name, None)
        os.environ.update({
            "AWS_ENDPOINT_URL_GLACIER": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        })
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            _forget_boto3_default_session()

    # -- test controls --------------------------------------------------------------------

    def _control(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        # Always this server's own http(s) URL, never a user-supplied scheme.
        request = urllib.request.Request(  # noqa: S310
            self.endpoint_url + _CONTROL + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read().decode(errors="replace")
            raise ValueError(f"icevault test controls refused {method} {path}: {detail}") from None
        return json.loads(raw) if raw else None

    def now(self) -> datetime:
        """The server's clock (real time plus every advance)."""
        text = self._control("GET", "/clock")["now"]
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)

    def advance_clock(self, *, days: float = 0, hours: float = 0, minutes: float = 0,
                      seconds: float = 0) -> datetime:
        """Move the server's clock forward. Before this returns, every job due by the new
        time has completed (and notified), and job outputs and multipart uploads older than
        their 24 h are expired."""
        delta = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        text = self._control("POST", "/clock", {"advance_seconds": delta.total_seconds()})["now"]
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)

    def inject(self, fault: Fault) -> int:
        """Put a fault rule in force; returns its rule number (as in :meth:`faults_seen`)."""
        return int(self._control("POST", "/faults", fault.to_json())["rule"])

    def clear_faults(self) -> None:
        """Remove every fault rule and forget what was injected."""
        self._control("DELETE", "/faults")

    def faults_seen(self) -> list[dict[str, Any]]:
        """Each fault injected so far, in order: rule, kind, operation, vault, job, time."""
        return list(self._control("GET", "/faults/seen")["faults"])

    def requests_seen(self) -> dict[str, int]:
        """Requests the server received, by Glacier operation, since it started or was
        last reset (authenticated or not, faulted or not)."""
        return dict(self._control("GET", "/requests")["requests"])

    def seed_vault(self, name: str, *, archives: int, sizes: tuple[int, int] | int = (1, 1 << 20),
                   descriptions: str = "mixed", seed: int = 0,
                   years: float = 5.0) -> dict[str, Any]:
        """Fill a vault (created if missing) with ``archives`` zero-filled archives: sizes
        log-uniform in ``sizes`` (inclusive), creation dates over the past ``years``, and
        descriptions ``"mixed"`` (mt-aws-glacier's mt2, FastGlacier's, plain names,
        duplicates and empty ones), ``"filenames"``, ``"mt2"``, ``"fastglacier"`` or
        ``"empty"``. The same seed gives the same sizes, dates and descriptions."""
        low, high = (sizes, sizes) if isinstance(sizes, int) else sizes
        result: dict[str, Any] = self._control("POST", f"/vaults/{name}/seed", {
            "archives": archives, "min_size": low, "max_size": high,
            "descriptions": descriptions, "seed": seed, "years": years,
        })
        return result

    def metrics(self) -> str:
        """The server's Prometheus metrics, scraped with the operator's token from its data
        directory (what a Prometheus job configured with that file sends)."""
        token = (self.data_dir / "metrics-token").read_text().strip()
        request = urllib.request.Request(  # noqa: S310 - the server it started
            f"{self.endpoint_url}/metrics", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return str(response.read().decode())

    def reset(self) -> None:
        """Delete every vault (with its archives, jobs and uploads) and every fault rule."""
        self._control("POST", "/reset")
