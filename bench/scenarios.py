"""The transfer, load, memory and CPU scenarios of ``python -m bench``, one function each."""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.common import (
    MOTO_AUTH,
    NOT_SUPPORTED,
    RANDOM_BLOCK,
    RawHTTP,
    Row,
    boto3_read,
    generated,
    make_file,
    mb_s,
    peak_rss_during,
    raw_read,
    retrieval,
    signed_headers,
    timed,
    timed_median,
)
from bench.limits import durable_write_rate, loopback_sendfile_rate, sha256_rate, tree_hash_rate
from bench.load import run_load
from bench.peers import REGION, Peer
from icevault.client import download_job_output, upload_archive
from icevault.core.treehash import MIB, TreeHasher


@dataclass
class Stage:
    """The run's peers, machine limits and what earlier scenarios made (the archive, its
    retrieval job), handed from one scenario to the next in order."""

    args: argparse.Namespace
    work: Path
    size: int
    big: int
    source: Path
    ice: Peer
    ice_sig: Peer
    moto: Peer | None
    sendfile_limit: float = 0.0
    sha_limit: float = 0.0
    tree: float = 0.0
    disk_limit: float = 0.0
    ice_client: Any = None
    moto_client: Any = None
    uploaded: Any = None
    archive_id: str = ""
    moto_id: str | None = None
    job_id: str = ""
    path: str = ""
    moto_job: str | None = None
    big_client: Any = None


def machine_limits(st: Stage) -> None:
    """What this machine allows: loopback sendfile, SHA-256, tree hashing, durable writes."""
    st.sendfile_limit = loopback_sendfile_rate(st.source, st.size) / 1e6
    st.sha_limit = sha256_rate(min(st.size, 256 * MIB)) / 1e6
    st.tree = tree_hash_rate(min(st.size, 256 * MIB)) / 1e6
    st.disk_limit = durable_write_rate(st.work, st.size) / 1e6
    print(f"limits: sendfile {st.sendfile_limit:.0f} MB/s, sha256 {st.sha_limit:.0f} MB/s, "
          f"durable disk writes {st.disk_limit:.0f} MB/s", file=sys.stderr)


def uploads(st: Stage) -> list[Row]:
    """UploadArchive and the client's multipart upload, beside moto's single upload."""
    args, size, source, ice, moto = st.args, st.size, st.source, st.ice, st.moto
    sha_limit, disk_limit = st.sha_limit, st.disk_limit
    rows: list[Row] = []
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
    st.ice_client = ice_client
    st.uploaded = uploaded
    st.archive_id = archive_id
    st.moto_client = moto_client
    st.moto_id = moto_id
    return rows


def whole_output(st: Stage) -> list[Row]:
    """GetJobOutput of the whole archive: a raw socket reader and boto3."""
    size, ice, moto, sendfile_limit = st.size, st.ice, st.moto, st.sendfile_limit
    ice_client, moto_client, archive_id, moto_id = (st.ice_client, st.moto_client, st.archive_id,
                                                    st.moto_id)
    rows: list[Row] = []
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
    st.job_id = job_id
    st.path = path
    st.moto_job = moto_job
    return rows


def aligned_ranges(st: Stage) -> list[Row]:
    """The seed's procedure: tree-hash-aligned ranges over one keep-alive connection."""
    size, ice, moto, sendfile_limit = st.size, st.ice, st.moto, st.sendfile_limit
    moto_job, path = st.moto_job, st.path
    rows: list[Row] = []
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
    return rows


def downloads(st: Stage) -> list[Row]:
    """The client's verified parallel download beside plain boto3 and the AWS CLI."""
    args, work, size, ice, moto, disk_limit = st.args, st.work, st.size, st.ice, st.moto, st.disk_limit
    ice_client, moto_client, uploaded = st.ice_client, st.moto_client, st.uploaded
    job_id, moto_job = st.job_id, st.moto_job
    rows: list[Row] = []
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
    return rows


def small_requests(st: Stage) -> list[Row]:
    """DescribeVault under load, 1 and 64 connections, unsigned and SigV4."""
    args, ice, ice_sig, moto = st.args, st.ice, st.ice_sig, st.moto
    rows: list[Row] = []
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
    return rows


def memory(st: Stage) -> list[Row]:
    """The server's peak memory receiving and serving a big archive."""
    size, big, ice, moto = st.size, st.big, st.ice, st.moto
    rows: list[Row] = []
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
    st.big_client = big_client
    return rows


def complete_multipart(st: Stage) -> list[Row]:
    """Completing a big multipart upload copies no byte."""
    big, ice, moto, big_client = st.big, st.ice, st.moto, st.big_client
    rows: list[Row] = []
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
    return rows


def hashing_and_cores(st: Stage) -> list[Row]:
    """Tree hashing on one core, and the server's cores while clients upload."""
    work, size, ice, ice_sig = st.work, st.size, st.ice, st.ice_sig
    sha_limit, tree = st.sha_limit, st.tree
    rows: list[Row] = []
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
    return rows


def _sha256_pass_cpu(size: int) -> float:
    """CPU-seconds of one SHA-256 pass over ``size`` bytes, in 1 MiB pieces (as tree-hash
    leaves are hashed)."""
    block = memoryview(RANDOM_BLOCK)  # the bytes generated() sends, without its copies
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



# In order: each may use what an earlier one made.
SCENARIOS = (uploads, whole_output, aligned_ranges, downloads, small_requests, memory,
             complete_multipart, hashing_and_cores)
