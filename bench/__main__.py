"""``python -m bench``: icevault beside moto's server and the machine's limits, in one run.

Prints one table and writes it as JSON and Markdown (``bench/RESULTS.md`` by default).
``--quick`` is a smoke run of seconds; ``--size`` and ``--big-size`` scale it up.

``python -m bench crash|fuzz|soak ...`` run the hardening harnesses (``--help`` on each).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.limits import durable_write_rate, loopback_sendfile_rate, sha256_rate, tree_hash_rate
from bench.load import run_load
from bench.peers import REGION, Peer, start_icevault, start_moto
from icevault.client import download_job_output, upload_archive
from icevault.config import parse_size
from icevault.core.treehash import MIB, TreeHasher

HERE = Path(__file__).resolve().parent
MOTO_AUTH = {
    "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDBENCH/20260101/us-east-1/glacier/aws4_request, "
    "SignedHeaders=host, Signature=0",
    "x-amz-glacier-version": "2012-06-01",
}
NOT_SUPPORTED = "not supported"


@dataclass
class Row:
    scenario: str
    unit: str
    icevault: float | str | None
    moto: float | str | None = None
    limit: float | str | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def mb_s(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e6


def make_file(path: Path, size: int) -> Path:
    block = os.urandom(16 * MIB)
    with open(path, "wb") as handle:
        written = 0
        while written < size:
            piece = block[: min(len(block), size - written)]
            handle.write(piece)
            written += len(piece)
    return path


_BLOCK = os.urandom(8 * MIB)


def generated(size: int) -> Iterator[bytes]:
    """The same pseudo-random bytes every time (hashed in one pass, sent in another)."""
    block = _BLOCK
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        sent += len(piece)
        yield piece


def wait_job(client: Any, vault: str, job_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not client.describe_job(vaultName=vault, jobId=job_id)["Completed"]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} did not complete")
        time.sleep(0.1)


def retrieval(client: Any, vault: str, archive_id: str) -> str:
    job_id = str(client.initiate_job(vaultName=vault, jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive_id, "Tier": "Expedited"})["jobId"])
    wait_job(client, vault, job_id)
    return job_id


class RawHTTP:
    """A minimal HTTP/1.1 client on a bare socket, so the reader is not the bottleneck: the
    body is received with recv_into into one buffer, exactly like the sendfile limit's reader."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buffer = bytearray(8 * MIB)
        self.view = memoryview(self.buffer)
        self.pending = b""

    def get(self, path: str, headers: dict[str, str]) -> int:
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = self.pending
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed before the response headers")
            head += chunk
        header_bytes, _, rest = head.partition(b"\r\n\r\n")
        status_line, *header_lines = header_bytes.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        length = int(fields.get("content-length", "0"))
        if status not in (200, 206):
            raise RuntimeError(f"GET {path} -> {status}")
        received = min(len(rest), length)
        self.pending = rest[length:]
        while received < length:
            n = self.sock.recv_into(self.view[: min(len(self.buffer), length - received)])
            if not n:
                raise RuntimeError("connection closed mid-body")
            received += n
        if fields.get("connection", "").lower() == "close":  # moto's server does not keep alive
            self.sock.close()
            self.sock = socket.create_connection(("127.0.0.1", self.port))
            self.pending = b""
        return received

    def close(self) -> None:
        self.sock.close()


def raw_read(peer: Peer, path: str, headers: dict[str, str], conn: RawHTTP | None = None) -> int:
    own = conn is None
    client = conn or RawHTTP(peer.port)
    try:
        return client.get(path, headers)
    finally:
        if own:
            client.close()


def timed_median(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median time of ``repeat`` runs (see limits.loopback_sendfile_rate for why)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def boto3_read(client: Any, vault: str, job_id: str) -> int:
    body = client.get_job_output(vaultName=vault, jobId=job_id)["body"]
    total = 0
    while chunk := body.read(8 * MIB):
        total += len(chunk)
    return total


def peak_rss_during(peer: Peer, action: Callable[[], Any]) -> tuple[int, Any]:
    peak = [peer.rss()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], peer.rss())
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        result = action()
    finally:
        stop.set()
        thread.join()
    return peak[0], result


def signed_headers(peer: Peer, path: str) -> dict[str, str]:
    """A SigV4-signed GET, valid for 15 minutes: replaying it measures verification cost."""
    request = AWSRequest(method="GET", url=peer.url + path, headers={"x-amz-glacier-version": "2012-06-01"})
    SigV4Auth(Credentials(peer.key, peer.secret), "glacier", REGION).add_auth(request)
    return {k: v for k, v in request.headers.items() if k.lower() != "host"}


def _sha256_pass_cpu(size: int) -> float:
    """CPU-seconds of one SHA-256 pass over ``size`` bytes, in 1 MiB pieces (as tree-hash
    leaves are hashed)."""
    block = memoryview(_BLOCK)  # the bytes generated() sends, without its copies
    started = time.process_time()
    for offset in range(0, size, MIB):
        start = offset % len(block)
        hashlib.sha256(block[start:start + min(MIB, size - offset)]).digest()
    return time.process_time() - started


def signed_upload_cpu(peer: Peer, size: int, tree: str) -> Row:
    """Server CPU-seconds per GiB of SigV4-signed UploadArchive, beside one SHA-256 pass.

    Rounds alternate an upload with a SHA-256 pass over the same bytes in this process, both
    measured in CPU-seconds, and their totals are compared: the two see the same machine at
    the same moments (a pass timed minutes earlier, on a shared VM, is off by 10-20%). The
    server's CPU time counts in 10 ms ticks, so rounds are large (a 64 MiB round's 0.08 s
    is only known to 12%)."""
    linear = hashlib.sha256()
    for piece in generated(size):
        linear.update(piece)
    payload_hash = linear.hexdigest()

    class KnownPayload(SigV4Auth):  # type: ignore[misc]  # botocore is untyped
        def payload(self, request: AWSRequest) -> str:
            return payload_hash

    peer.client().create_vault(vaultName="bench")
    path = "/-/vaults/bench/archives"
    uploads: list[float] = []
    passes: list[float] = []
    for _ in range(6):
        passes.append(_sha256_pass_cpu(size))
        request = AWSRequest(method="POST", url=peer.url + path, headers={
            "x-amz-glacier-version": "2012-06-01", "x-amz-sha256-tree-hash": tree,
            "x-amz-content-sha256": payload_hash, "Content-Length": str(size)})
        KnownPayload(Credentials(peer.key, peer.secret), "glacier", REGION).add_auth(request)
        cpu_before = peer.cpu_seconds()
        conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=600)
        conn.request("POST", path, body=generated(size), headers=dict(request.headers.items()))
        response = conn.getresponse()
        response.read()
        conn.close()
        assert response.status == 201, response.status
        uploads.append(peer.cpu_seconds() - cpu_before)
    per_gib = sum(uploads) / len(uploads) * 1024**3 / size
    one_pass = sum(passes) / len(passes) * 1024**3 / size
    return Row("server CPU per GiB of SigV4 UploadArchive", "s/GiB", per_gib, None, one_pass,
               "<= 2x one SHA-256 pass over a GiB", per_gib <= 2 * one_pass,
               f"{per_gib / one_pass:.2f}x one SHA-256 pass (limit column: its CPU-seconds; 6 "
               f"alternating rounds of {size // MIB} MiB); the signed tree hash binds the body, so its "
               "linear SHA-256 is not computed again, and a body thread reads it off the "
               "socket (--body-threads)")


def small_parts_cpu(peer: Peer, source: Path, size: int, one_pass: float) -> Row:
    """Server CPU-seconds per GiB of a SigV4 multipart upload in 1 MiB parts, the smallest
    Glacier allows: what each request costs beside its bytes."""
    client = peer.client(4)
    client.create_vault(vaultName="small-parts")
    cpu_before = peer.cpu_seconds()
    upload_archive("small-parts", source, part_size=MIB, workers=4, client=client)
    per_gib = (peer.cpu_seconds() - cpu_before) / (size / 1024**3)
    return Row("server CPU per GiB of SigV4 multipart upload, 1 MiB parts", "s/GiB", per_gib,
               None, one_pass, "", None,
               f"{per_gib / one_pass:.1f}x one SHA-256 pass (limit column); "
               f"{size // MIB} part requests")


def migrate_row(args: argparse.Namespace) -> Row:
    """icevault migrate against a verified download then upload (``python -m bench migrate``)."""
    from bench import migrate

    size = 64 * MIB if args.quick else 1024 * MIB
    times = migrate.measure(size, work_dir=args.work_dir, rounds_wanted=1 if args.quick else 3)
    return Row(f"migrate one {size // MIB} MiB archive between two servers", "s",
               times.migrate_s, None, times.baseline_s, ">= 1.3x faster than download + upload",
               times.speedup >= 1.3,
               f"{times.speedup:.2f}x; limit column: verified download then upload (medians of "
               f"{len(times.rounds)} alternating rounds); migrator peak RSS "
               f"{times.migrate_peak_rss // MIB} MiB")


def cluster_rows(args: argparse.Namespace) -> list[Row]:
    """Three servers behind HAProxy against one (``python -m bench cluster``)."""
    from bench import cluster
    from tests.system import haproxy_path, postgres_bindir

    absent = [name for name, found in (("haproxy", haproxy_path()),
                                       ("postgresql", postgres_bindir())) if found is None]
    if absent:
        return [Row("three servers behind HAProxy against one", "-", "skipped",
                    note=f"skipped: {', '.join(absent)} not installed (apt-get install "
                         f"{' '.join(absent)})")]
    phases = cluster.measure(8 * MIB if args.quick else 64 * MIB,
                             1.0 if args.quick else 5.0, work_dir=args.work_dir)
    rows = []
    for one, three in zip(phases[:2], phases[2:], strict=True):
        for phase in (one, three):
            cpu = " + ".join(f"{c:.1f}" for c in phase.cpu_s)
            scaled = phase is three and phase.unit == "req/s"
            rows.append(Row(
                f"{phase.name}, {phase.servers} server(s)", phase.unit, phase.value, None, None,
                ">= 1 server's (nothing shared serialises)" if scaled else "",
                (three.value >= one.value) if scaled else None,
                f"CPU s: servers {cpu}, HAProxy {phase.balancer_cpu_s:.1f}, PostgreSQL "
                f"{phase.database_cpu_s:.1f}, SeaweedFS {phase.object_store_cpu_s:.1f}"
                + (f"; {phase.note}" if phase.note else "")))
    return rows


def kit_rows(quick: bool) -> list[Row]:
    """The testing kit: a server per test, and seeded vaults (``python -m bench kit``)."""
    from bench import kit

    archives = 1000 if quick else 10_000
    times = kit.measure(runs=1 if quick else 3, archives=archives)
    return [
        Row("testing kit: server start, first in a process", "s", times.cold_s, times.moto_s,
            None, "< 1 s", times.cold_s < 1,
            "to the first answer; starts the warm launcher too (moto: moto_server start)"),
        Row("testing kit: server start, each later one", "s", times.warm_s, times.moto_s, None,
            "< 1 s", times.warm_s < 1, "forked from the warm launcher; what most tests pay"),
        Row("testing kit: server start in a new interpreter", "s", times.new_interpreter_s,
            times.moto_s, None, "", None, "IcevaultServer(warm_start=False)"),
        Row(f"testing kit: seed {archives:,} archives (1 B-64 MiB)", "s", times.seed_10k_s,
            None, None, "< 10 s for 10,000" if not quick else "",
            times.seed_10k_s < 10 if not quick else None,
            f"{times.seed_bytes / 1e9:.0f} GB of sparse zeros, exact tree hashes"),
    ]


def run(args: argparse.Namespace) -> list[Row]:
    size = args.size
    big = args.big_size
    work = Path(tempfile.mkdtemp(prefix="icevault-bench-", dir=args.work_dir))
    rows: list[Row] = []
    source = make_file(work / "archive.bin", size)
    ice = start_icevault(work, "off")
    ice_sig = start_icevault(work, "sigv4")
    moto = None if args.no_moto else start_moto()
    try:
        sendfile_limit = loopback_sendfile_rate(source, size) / 1e6
        sha_limit = sha256_rate(min(size, 256 * MIB)) / 1e6
        tree = tree_hash_rate(min(size, 256 * MIB)) / 1e6
        disk_limit = durable_write_rate(work, size) / 1e6
        print(f"limits: sendfile {sendfile_limit:.0f} MB/s, sha256 {sha_limit:.0f} MB/s, "
              f"durable disk writes {disk_limit:.0f} MB/s", file=sys.stderr)

        # -- uploads ------------------------------------------------------------------------
        ice_client = ice.client(8)
        ice_client.create_vault(vaultName="bench")
        small = source.read_bytes()[: min(size, 64 * MIB)]
        t_ice_small, _ = timed(lambda: ice_client.upload_archive(vaultName="bench", body=small), 2)
        # Best of two, as for moto's single upload below.
        t_ice_mp, uploaded = timed(lambda: upload_archive(
            "bench", source, part_size=args.part_size, workers=args.workers, client=ice_client), 2)
        archive_id = uploaded.archive_id
        moto_small = moto_id = None
        if moto:
            moto_client = moto.client()
            moto_client.create_vault(vaultName="bench")
            t_moto_small, _ = timed(lambda: moto_client.upload_archive(vaultName="bench", body=small), 2)
            moto_small = mb_s(len(small), t_moto_small)
            with open(source, "rb") as handle:
                moto_id = moto_client.upload_archive(vaultName="bench", body=handle)["archiveId"]
        rows.append(Row(f"UploadArchive {len(small) // MIB} MiB, boto3", "MB/s",
                        mb_s(len(small), t_ice_small), moto_small, disk_limit,
                        note="limit: durable disk writes (moto keeps archives in memory only)"))
        mp_rate = mb_s(size, t_ice_mp)
        # Every uploaded byte is hashed four times (client: tree hash and SigV4's payload
        # SHA-256; server: both again, to verify), all on this machine's cores: even with
        # nothing else to do, an upload cannot go faster than this.
        hash_ceiling = sha_limit * (os.cpu_count() or 1) / 4
        rows.append(Row(f"client multipart upload {size // MIB} MiB ({args.workers} workers, "
                        f"{args.part_size // MIB} MiB parts)", "MB/s", mp_rate,
                        NOT_SUPPORTED if moto else None, hash_ceiling,
                        target=">= 4x moto's boto3 single upload",
                        met=None if not moto_small else mp_rate >= 4 * moto_small,
                        note=(f"{mp_rate / moto_small:.1f}x moto; " if moto_small else "")
                        + f"limit: 4 SHA-256 passes on {os.cpu_count()} cores, "
                        f"{mp_rate / hash_ceiling:.0%} of it"
                        + (f"; 4x moto would be {4 * moto_small / hash_ceiling:.0%} of it"
                           if moto_small else "")))

        # -- whole GetJobOutput ---------------------------------------------------------------
        job_id = retrieval(ice_client, "bench", archive_id)
        path = f"/-/vaults/bench/jobs/{job_id}/output"
        raw_read(ice, path, {"x-amz-glacier-version": "2012-06-01"})  # read once from disk first
        t_raw, n = timed_median(lambda: raw_read(ice, path, {"x-amz-glacier-version": "2012-06-01"}), 5)
        assert n == size
        raw_rate = mb_s(size, t_raw)
        moto_raw = moto_boto = None
        moto_job = None
        if moto and moto_id:
            moto_job = retrieval(moto_client, "bench", moto_id)
            mpath = f"/-/vaults/bench/jobs/{moto_job}/output"
            t_moto_raw, _ = timed_median(lambda: raw_read(moto, mpath, MOTO_AUTH), 5)
            moto_raw = mb_s(size, t_moto_raw)
            t_moto_boto, _ = timed(lambda: boto3_read(moto_client, "bench", moto_job), 1)
            moto_boto = mb_s(size, t_moto_boto)
        rows.append(Row(f"GetJobOutput whole {size // MIB} MiB, raw socket reader", "MB/s", raw_rate, moto_raw,
                        sendfile_limit, ">= 85% of loopback sendfile",
                        raw_rate >= 0.85 * sendfile_limit, f"{raw_rate / sendfile_limit:.0%} of the limit"))
        t_boto, _ = timed(lambda: boto3_read(ice_client, "bench", job_id), 2)
        rows.append(Row(f"GetJobOutput whole {size // MIB} MiB, boto3", "MB/s", mb_s(size, t_boto), moto_boto,
                        sendfile_limit))

        # -- the seed's procedure: aligned ranges over keep-alive -----------------------------
        for chunk in (8 * MIB, 128 * MIB):
            if chunk > size:
                continue

            def ranges(peer: Peer, output_path: str, headers: dict[str, str], limit: int | None = None) -> int:
                conn = RawHTTP(peer.port)
                useful = 0
                starts = list(range(0, size, chunk))[:limit]
                for start in starts:
                    end = min(start + chunk, size) - 1
                    got = raw_read(peer, output_path, {**headers, "Range": f"bytes={start}-{end}"}, conn)
                    useful += end - start + 1
                    if limit is not None:
                        assert got >= end - start + 1
                conn.close()
                return useful

            t_r, useful = timed_median(lambda: ranges(ice, path, {"x-amz-glacier-version": "2012-06-01"}), 3)
            rate = mb_s(useful, t_r)
            moto_rate = None
            if moto and moto_job:
                # moto ignores Range: each request returns the whole archive. Two requests
                # are enough to measure its rate of useful bytes.
                t_m, useful_m = timed(lambda: ranges(moto, f"/-/vaults/bench/jobs/{moto_job}/output",
                                                     MOTO_AUTH, limit=2))
                moto_rate = mb_s(useful_m, t_m)
            target = ">= 50% of loopback sendfile" if chunk == 8 * MIB else ""
            rows.append(Row(f"aligned {chunk // MIB} MiB ranges, keep-alive (useful bytes)", "MB/s", rate,
                            moto_rate, sendfile_limit, target,
                            (rate >= 0.5 * sendfile_limit) if target else None,
                            f"{rate / sendfile_limit:.0%} of the limit"))

        # -- the client's verified download -------------------------------------------------
        out = work / "download.bin"
        best_rate, best_cfg = 0.0, ""
        for workers, chunk_size in args.download_configs:
            if chunk_size > size:
                continue
            out.unlink(missing_ok=True)
            dl_client = ice.client(workers)  # built outside the timing, like the plain client
            t_d, result = timed(lambda: download_job_output(
                "bench", job_id, out, chunk_size=chunk_size, workers=workers, resume=False,
                client=dl_client))
            assert result.tree_hash == uploaded.tree_hash
            rate = mb_s(size, t_d)
            if rate > best_rate:
                best_rate, best_cfg = rate, f"{workers} workers, {chunk_size // MIB} MiB chunks"
        def plain(client: Any, job: str, streamed: bool) -> None:
            body = client.get_job_output(vaultName="bench", jobId=job)["body"]
            with open(work / "plain.bin", "wb") as handle:
                if streamed:
                    while data := body.read(8 * MIB):
                        handle.write(data)
                else:  # the SDK's pattern: the whole body in memory, then written
                    handle.write(body.read())

        t_plain, _ = timed(lambda: plain(ice_client, job_id, False), 2)
        plain_rate = mb_s(size, t_plain)
        t_plain_s, _ = timed(lambda: plain(ice_client, job_id, True), 2)
        plain_streamed = mb_s(size, t_plain_s)
        moto_plain = moto_plain_s = None
        if moto and moto_job:
            moto_plain = mb_s(size, timed(lambda: plain(moto_client, moto_job, False))[0])
            moto_plain_s = mb_s(size, timed(lambda: plain(moto_client, moto_job, True))[0])
        aws = Path(sys.executable).with_name("aws")
        cli_rate: float | str = "aws CLI not installed"
        if aws.exists():
            env = {**os.environ, "AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "x",
                   "AWS_DEFAULT_REGION": REGION}
            t_cli, _ = timed(lambda: subprocess.run(
                [str(aws), "--endpoint-url", ice.url, "glacier", "get-job-output", "--account-id", "-",
                 "--vault-name", "bench", "--job-id", job_id, str(work / "cli.bin")],
                env=env, check=True, capture_output=True))
            cli_rate = mb_s(size, t_cli)
        rows.append(Row(f"verified parallel download {size // MIB} MiB ({best_cfg}), fsynced", "MB/s",
                        best_rate, NOT_SUPPORTED if moto else None, disk_limit,
                        ">= 1.5x plain boto3 get_job_output", best_rate >= 1.5 * plain_rate,
                        f"{best_rate / plain_rate:.2f}x plain boto3; {best_rate / plain_streamed:.2f}x "
                        "the streamed variant"))
        rows.append(Row("plain boto3 get_job_output: body.read() then write, unverified, not fsynced",
                        "MB/s", plain_rate, moto_plain))
        rows.append(Row("plain boto3 get_job_output: streamed 8 MiB reads to a file, unverified",
                        "MB/s", plain_streamed, moto_plain_s))
        rows.append(Row("aws glacier get-job-output to a file", "MB/s", cli_rate))

        # -- small requests -------------------------------------------------------------------
        describe = "/-/vaults/bench"
        for connections in (1, 64):
            off = run_load(ice.url + describe, {"x-amz-glacier-version": "2012-06-01"}, connections, args.load_seconds)
            ice_sig.client().create_vault(vaultName="bench")
            sig = run_load(ice_sig.url + describe, signed_headers(ice_sig, describe), connections, args.load_seconds)
            moto_load = run_load(moto.url + describe, MOTO_AUTH, connections, args.load_seconds) if moto else None
            for label, result, factor in (("--auth off", off, 10), ("SigV4", sig, 5)):
                ratio = result.requests_per_s / moto_load.requests_per_s if moto_load else None
                rows.append(Row(
                    f"DescribeVault, {connections} connection(s), {label} ({result.tool})", "req/s",
                    result.requests_per_s, moto_load.requests_per_s if moto_load else None, None,
                    f">= {factor}x moto" if connections == 64 else "",
                    (ratio >= factor) if (connections == 64 and ratio) else None,
                    (f"{ratio:.1f}x moto; " if ratio else "")
                    + f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms",
                ))

        # -- memory with a big archive ---------------------------------------------------------
        big_client = ice.client()

        def big_upload() -> str:
            hasher = TreeHasher()
            for piece in generated(big):
                hasher.update(piece)
            conn = http.client.HTTPConnection("127.0.0.1", ice.port, timeout=900)
            conn.request("POST", "/-/vaults/bench/archives", body=generated(big), headers={
                "Content-Length": str(big), "x-amz-sha256-tree-hash": hasher.hexdigest(),
                "x-amz-glacier-version": "2012-06-01"})
            response = conn.getresponse()
            response.read()
            assert response.status == 201, response.status
            return str(response.getheader("x-amz-archive-id"))

        rss_up, big_id = peak_rss_during(ice, big_upload)
        big_job = retrieval(big_client, "bench", big_id)
        rss_down, _ = peak_rss_during(ice, lambda: raw_read(
            ice, f"/-/vaults/bench/jobs/{big_job}/output", {"x-amz-glacier-version": "2012-06-01"}))
        moto_rss = moto.rss() / 1e6 if moto else None
        rows.append(Row(f"server peak RSS receiving {big / 1024**3:g} GiB", "MB", rss_up / 1e6,
                        None, None, "< 150 MB", rss_up < 150e6))
        rows.append(Row(f"server peak RSS serving {big / 1024**3:g} GiB", "MB", rss_down / 1e6,
                        moto_rss, None, "< 150 MB", rss_down < 150e6,
                        f"moto column: RSS holding one {size // MIB} MiB archive" if moto else ""))

        # -- completing a big multipart upload: no byte is copied -------------------------------
        part = min(256 * MIB, big)
        part_hasher = TreeHasher()
        for piece in generated(part):
            part_hasher.update(piece)
        part_hash = part_hasher.hexdigest()
        upload_id = big_client.initiate_multipart_upload(vaultName="bench", partSize=str(part))["uploadId"]
        conn = http.client.HTTPConnection("127.0.0.1", ice.port, timeout=900)
        for start in range(0, big, part):
            conn.request("PUT", f"/-/vaults/bench/multipart-uploads/{upload_id}", body=generated(part),
                         headers={"Content-Length": str(part), "x-amz-sha256-tree-hash": part_hash,
                                  "Content-Range": f"bytes {start}-{start + part - 1}/*"})
            response = conn.getresponse()
            response.read()
            assert response.status == 204, response.status
        conn.close()
        from icevault.core.treehash import combine_hex

        whole_hash = combine_hex([part_hash] * (big // part))
        cpu_before = ice.cpu_seconds()
        t_complete, _ = timed(lambda: big_client.complete_multipart_upload(
            vaultName="bench", uploadId=upload_id, archiveSize=str(big), checksum=whole_hash))
        complete_cpu = ice.cpu_seconds() - cpu_before
        rows.append(Row(f"CompleteMultipartUpload of {big / 1024**3:g} GiB ({big // part} parts)", "ms",
                        t_complete * 1000, NOT_SUPPORTED if moto else None, None,
                        "well under 1 s of CPU", complete_cpu < 1.0,
                        f"server CPU {complete_cpu * 1000:.0f} ms; wall includes the fsync"))

        # -- hashing and cores ------------------------------------------------------------------
        rows.append(Row("tree hash, one core", "MB/s", tree, None, sha_limit, ">= 95% of hashlib.sha256",
                        tree >= 0.95 * sha_limit, f"{tree / sha_limit:.0%} of sha256"))
        per_client = max(MIB, min(size, 256 * MIB) // 4)
        hasher = TreeHasher()
        for piece in generated(per_client):
            hasher.update(piece)
        upload_hash = hasher.hexdigest()  # computed before the clock starts: only sending counts

        def one_upload(_: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", ice.port, timeout=600)
            conn.request("POST", "/-/vaults/bench/archives", body=generated(per_client), headers={
                "Content-Length": str(per_client), "x-amz-sha256-tree-hash": upload_hash})
            assert conn.getresponse().status == 201

        from concurrent.futures import ThreadPoolExecutor

        cpu_before = ice.cpu_seconds()
        began = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one_upload, range(4)))
        cores = (ice.cpu_seconds() - cpu_before) / (time.perf_counter() - began)
        rows.append(Row("server CPU while 4 clients upload", "cores", cores, None, os.cpu_count(),
                        "uses more than one core", cores > 1.0,
                        "clients run on the same cores"))
        signed_size = min(size, 256 * MIB)
        hasher = TreeHasher()
        for piece in generated(signed_size):
            hasher.update(piece)
        signed = signed_upload_cpu(ice_sig, signed_size, hasher.hexdigest())
        rows.append(signed)
        parts_file = make_file(work / "small-parts.bin", min(size, 256 * MIB))
        assert isinstance(signed.limit, float)
        rows.append(small_parts_cpu(ice_sig, parts_file, min(size, 256 * MIB), signed.limit))
        parts_file.unlink()
        rows.extend(kit_rows(args.quick))
        rows.append(migrate_row(args))
        rows.extend(cluster_rows(args))
    finally:
        for peer in (ice, ice_sig, moto):
            if peer is not None:
                peer.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    return rows


def fmt(value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:,.0f}" if value >= 100 else f"{value:,.2f}"


def markdown(rows: list[Row], command: str) -> str:
    lines = [
        "# icevault benchmark results",
        "",
        f"Command: `{command}`  ",
        (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
         f"Python {platform.python_version()}, {platform.platform()}  "),
        f"Run at: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
        "",
        "| scenario | unit | icevault | moto | machine limit | target | met | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.scenario} | {r.unit} | {fmt(r.icevault)} | {fmt(r.moto)} | {fmt(r.limit)} "
                     f"| {r.target} | {met} | {r.note} |")
    return "\n".join(lines) + "\n"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


HARNESSES = ("cluster", "crash", "fuzz", "kit", "migrate", "soak")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in HARNESSES:
        import importlib

        harness = importlib.import_module(f"bench.{argv[0]}")
        return int(harness.main(argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smoke run of seconds")
    parser.add_argument("--size", default=None, help="archive size for transfers (default 1GiB)")
    parser.add_argument("--big-size", default=None, help="archive for the RSS scenario (default 4GiB)")
    parser.add_argument("--out", default=None,
                        help="where RESULTS.md and results.json go (default: bench/ for a full "
                             "run; a temporary directory for --quick, so that a smoke run never "
                             "replaces the committed results)")
    parser.add_argument("--work-dir", default=None, help="scratch space (default: the temp dir)")
    parser.add_argument("--no-moto", action="store_true", help="skip moto's server")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="icevault-bench-") if args.quick else str(HERE)
    args.size = parse_size(args.size or ("16MiB" if args.quick else "1GiB"))
    args.big_size = parse_size(args.big_size or ("32MiB" if args.quick else "4GiB"))
    args.part_size = min(64 * MIB, max(MIB, 1 << (max(args.size // 16, MIB).bit_length() - 1)))
    args.workers = 4
    args.load_seconds = 1.0 if args.quick else 5.0
    args.download_configs = (
        [(2, 128 * MIB), (4, 64 * MIB), (4, 128 * MIB), (8, 64 * MIB)] if not args.quick else [(2, 4 * MIB)]
    )
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = run(args)
    width = max(len(r.scenario) for r in rows)
    print(f"{'scenario':<{width}}  {'unit':<6} {'icevault':>12} {'moto':>14} {'limit':>10}  target / note")
    for r in rows:
        met = "" if r.met is None else ("[met]" if r.met else "[MISSED]")
        print(f"{r.scenario:<{width}}  {r.unit:<6} {fmt(r.icevault):>12} {fmt(r.moto):>14} "
              f"{fmt(r.limit):>10}  {r.target} {met} {r.note}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
               "platform": platform.platform()}
    (out / "results.json").write_text(json.dumps(
        {"command": command, "machine": machine, "rows": [r.__dict__ for r in rows]}, indent=2))
    text = markdown(rows, command).replace(
        f"Machine: {platform.processor() or platform.machine()}", f"Machine: {machine['cpu']}")
    notes = HERE / "NOTES.md"
    if notes.exists():
        text += "\n" + notes.read_text()
    (out / "RESULTS.md").write_text(text)
    print(f"results written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
