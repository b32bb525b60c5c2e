"""The client library and CLI against a real server: round trips, resume, faults, memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icevault.client import (
    RetriesExceededError,
    Subscriber,
    download_job_output,
    get_job_output,
    upload_archive,
    wait_for_job,
)
from icevault.client.jobs import start_retrieval
from icevault.core.treehash import MIB, tree_hash
from icevault.testing import Fault, IcevaultServer
from tests.support import ServerProcess, pattern, peak_rss_until_exit


def cli(server: ServerProcess, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "icevault", *args, "--endpoint-url", server.url],
        env=server.cli_env(), capture_output=True, text=True, timeout=timeout,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


class Recorder(Subscriber):
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def on_queued(self, **kwargs: Any) -> None:
        self.events.append(("queued", kwargs))

    def on_progress(self, **kwargs: Any) -> None:
        self.events.append(("progress", kwargs))

    def on_retry(self, **kwargs: Any) -> None:
        self.events.append(("retry", kwargs))

    def on_done(self, **kwargs: Any) -> None:
        self.events.append(("done", kwargs))

    def net_progress(self) -> int:
        return sum(k["bytes_transferred"] for e, k in self.events if e == "progress")


@pytest.mark.parametrize("size", [1, MIB - 1, MIB + 1, 37 * MIB + 12345])
def test_cli_round_trip(server: ServerProcess, vault: str, tmp_path: Path, size: int) -> None:
    source = write(tmp_path / "in.bin", pattern(size, seed=size % 13))
    uploaded = json.loads(cli(server, "upload", str(source), "--vault", vault, "--part-size", "4MiB",
                              "--description", "cli round trip").stdout)
    assert uploaded["checksum"] == tree_hash(source.read_bytes())
    assert cli(server, "treehash", str(source)).stdout.strip() == uploaded["checksum"]
    out = tmp_path / "out.bin"
    got = json.loads(cli(server, "get", "--vault", vault, "--archive-id", uploaded["archiveId"],
                         "-o", str(out), "--chunk-size", "2MiB").stdout)
    assert out.read_bytes() == source.read_bytes()
    assert got["checksum"] == uploaded["checksum"]
    assert not list(tmp_path.glob("*.icevault-*"))
    assert cli(server, "verify", str(out), "--tree-hash", uploaded["checksum"]).returncode == 0
    mismatch = cli(server, "verify", str(out), "--tree-hash", "0" * 64, check=False)
    assert mismatch.returncode == 3


def test_empty_file_is_refused(server: ServerProcess, vault: str, tmp_path: Path) -> None:
    result = cli(server, "upload", str(write(tmp_path / "e", b"")), "--vault", vault, check=False)
    assert result.returncode == 1 and "1 byte or more" in result.stderr


def test_cli_contract_commands(server: ServerProcess, vault_name: str, tmp_path: Path) -> None:
    assert cli(server, "vault", "create", vault_name, "--dry-run").stdout.startswith("would create")
    cli(server, "vault", "create", vault_name)
    # Global options before the subcommand work too.
    before = subprocess.run(
        [sys.executable, "-m", "icevault", "--endpoint-url", server.url, "--output", "json",
         "vault", "describe", vault_name], env=server.cli_env(), capture_output=True, text=True)
    assert json.loads(before.stdout)["VaultName"] == vault_name
    assert vault_name in [v["VaultName"] for v in json.loads(cli(server, "vault", "list").stdout)]
    assert "VaultName" in cli(server, "vault", "list", "--output", "table").stdout
    archive = json.loads(cli(server, "upload", str(write(tmp_path / "a", pattern(3 * MIB))),
                             "--vault", vault_name).stdout)["archiveId"]
    job = json.loads(cli(server, "retrieve", "--vault", vault_name, "--archive-id", archive,
                         "--tier", "Expedited", "--range", f"{MIB}-{2 * MIB - 1}").stdout)["jobId"]
    waited = json.loads(cli(server, "jobs", "wait", "--vault", vault_name, "--job-id", job).stdout)
    assert waited["StatusCode"] == "Succeeded" and waited["Tier"] == "Expedited"
    described = json.loads(cli(server, "jobs", "describe", "--vault", vault_name, "--job-id", job).stdout)
    assert described["RetrievalByteRange"] == f"{MIB}-{2 * MIB - 1}"
    assert job in [j["JobId"] for j in json.loads(cli(server, "jobs", "list", "--vault", vault_name).stdout)]
    out = tmp_path / "ranged.bin"
    cli(server, "download", "--vault", vault_name, "--job-id", job, "-o", str(out), "--workers", "2")
    assert out.read_bytes() == pattern(3 * MIB)[MIB : 2 * MIB]
    inv = tmp_path / "inv.csv"
    cli(server, "inventory", "--vault", vault_name, "--format", "csv", "-o", str(inv))
    assert inv.read_text().splitlines()[0] == "ArchiveId,ArchiveDescription,CreationDate,Size,SHA256TreeHash"
    assert archive in inv.read_text()
    listing = cli(server, "inventory", "--vault", vault_name).stdout
    assert json.loads(listing)["ArchiveList"][0]["ArchiveId"] == archive
    bad = cli(server, "download", "--vault", vault_name, "--job-id", job, "-o", str(out),
              "--chunk-size", "3MiB", check=False)
    assert bad.returncode == 2 and "not tree-hash aligned" in bad.stderr
    gone = cli(server, "download", "--vault", vault_name, "--job-id", "missing-job", "-o", str(out),
               check=False)
    assert gone.returncode == 4 and "icevault retrieve --vault" in gone.stderr
    # The vault holds an archive: a dry run says the delete would not happen.
    refused = cli(server, "vault", "delete", vault_name, "--dry-run", check=False)
    assert refused.returncode == 1 and "would not delete" in refused.stderr


def test_library_round_trip_with_progress(server: ServerProcess, vault: str, tmp_path: Path) -> None:
    client = server.client()
    data = pattern(21 * MIB + 7, seed=4)
    source = write(tmp_path / "src", data)
    up_events = Recorder()
    uploaded = upload_archive(vault, source, part_size=4 * MIB, workers=3, client=client,
                              subscribers=[up_events], description="library")
    assert (uploaded.tree_hash, uploaded.size, uploaded.parts) == (tree_hash(data), len(data), 6)
    assert up_events.net_progress() == len(data)
    job_id = start_retrieval(client, vault, uploaded.archive_id)
    wait_for_job(client, vault, job_id, initial_delay=0.05)
    seed = get_job_output("-", job_id, vault, "bytes=0-1048575", client=client)
    assert (seed.status, seed.checksum, seed.content_range) == (
        206, tree_hash(data[:MIB]), f"bytes 0-1048575/{len(data)}")
    assert seed.body.read() == data[:MIB] and seed.archive_description == "library"
    events = Recorder()
    result = download_job_output(vault, job_id, tmp_path / "dst", chunk_size=4 * MIB, workers=3,
                                 client=client, subscribers=[events])
    assert (tmp_path / "dst").read_bytes() == data
    assert result.tree_hash == tree_hash(data)
    assert events.events[0][0] == "queued" and events.events[-1][0] == "done"
    assert events.net_progress() == len(data)


def test_stream_upload_and_resume_by_upload_id(server: ServerProcess, vault: str, tmp_path: Path) -> None:
    import io

    client = server.client()
    data = pattern(9 * MIB + 3, seed=6)
    streamed = upload_archive(vault, io.BytesIO(data), part_size=2 * MIB, client=client)
    assert streamed.tree_hash == tree_hash(data) and streamed.parts == 5
    # An interrupted multipart upload: two of five parts sent, then resumed.
    source = write(tmp_path / "src", data)
    upload_id = client.initiate_multipart_upload(vaultName=vault, partSize=str(2 * MIB))["uploadId"]
    for start in (0, 4 * MIB):
        client.upload_multipart_part(vaultName=vault, uploadId=upload_id,
                                     range=f"bytes {start}-{start + 2 * MIB - 1}/*",
                                     body=data[start : start + 2 * MIB])
    resumed = upload_archive(vault, source, part_size=2 * MIB, upload_id=upload_id, client=client)
    assert (resumed.skipped_parts, resumed.parts, resumed.tree_hash) == (2, 5, tree_hash(data))


@pytest.fixture()
def kit_server() -> Iterator[IcevaultServer]:
    with IcevaultServer(auth="sigv4") as server:
        yield server


def _no_retry_client(server: IcevaultServer) -> Any:
    # botocore's own retries off: the downloader's retries are what is under test.
    return server.client(retries={"total_max_attempts": 1})


def test_download_recovers_from_every_fault(kit_server: IcevaultServer, tmp_path: Path) -> None:
    client = _no_retry_client(kit_server)
    client.create_vault(vaultName="faults")
    data = pattern(8 * MIB + 99, seed=9)
    archive_id = client.upload_archive(vaultName="faults", body=data)["archiveId"]
    job_id = start_retrieval(client, "faults", archive_id)
    wait_for_job(client, "faults", job_id, initial_delay=0.05)
    # One fault per GetJobOutput request, in this order (each rule fires once).
    for fault in (Fault.drop_connection(after_bytes=MIB, times=1), Fault.corrupt_body(times=1),
                  Fault.strip_checksum(times=1),
                  Fault.error("GetJobOutput", "ServiceUnavailableException", 503, times=1),
                  Fault.throttle("GetJobOutput", times=1)):
        kit_server.inject(fault)
    events = Recorder()
    from icevault.client import DownloadConfig

    config = DownloadConfig(backoff_base_s=0.01, backoff_cap_s=0.05)
    result = download_job_output("faults", job_id, tmp_path / "out", chunk_size=2 * MIB, workers=2,
                                 client=client, subscribers=[events], config=config)
    assert (tmp_path / "out").read_bytes() == data
    assert result.tree_hash == tree_hash(data)
    assert [f["kind"] for f in kit_server.faults_seen()] == [
        "drop_connection", "corrupt_body", "strip_checksum", "error", "error"]
    kinds = sorted(k["kind"] for e, k in events.events if e == "retry")
    # A connection cut mid-body surfaces as a reset or as a short body, depending on timing.
    kinds = sorted("connection" if k == "short-body" else k for k in kinds)
    assert kinds == sorted(["connection", "checksum-mismatch", "missing-checksum", "server-error",
                            "throttling"])
    assert events.net_progress() == len(data)


@pytest.mark.parametrize(("fault", "message"), [
    (Fault.corrupt_body(), "checksum-mismatch"), (Fault.strip_checksum(), "missing-checksum"),
    (Fault.error("GetJobOutput", "ServiceUnavailableException", 503), "server-error")])
def test_persistent_fault_fails_clearly_and_leaves_no_file(
    kit_server: IcevaultServer, tmp_path: Path, fault: Fault, message: str
) -> None:
    client = _no_retry_client(kit_server)
    client.create_vault(vaultName="bad")
    archive_id = client.upload_archive(vaultName="bad", body=pattern(2 * MIB))["archiveId"]
    job_id = start_retrieval(client, "bad", archive_id)
    wait_for_job(client, "bad", job_id, initial_delay=0.05)
    kit_server.inject(fault)  # every GetJobOutput from now on
    from icevault.client import DownloadConfig

    config = DownloadConfig(max_attempts=3, backoff_base_s=0.01, backoff_cap_s=0.02)
    with pytest.raises(RetriesExceededError, match=message):
        download_job_output("bad", job_id, tmp_path / "out", chunk_size=MIB, client=client, config=config)
    assert not (tmp_path / "out").exists()
    assert (tmp_path / "out.icevault-journal").exists()  # a rerun resumes what was verified
    assert len(kit_server.faults_seen()) >= 3


def _journal_count(path: Path) -> int:
    try:
        return len(json.loads(path.read_text())["verified"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_cli_resumes_after_being_stopped(server: ServerProcess, vault: str, tmp_path: Path,
                                         how: signal.Signals) -> None:
    client = server.client()
    data = pattern(24 * MIB, seed=2)
    archive_id = client.upload_archive(vaultName=vault, body=data)["archiveId"]
    job_id = start_retrieval(client, vault, archive_id)
    wait_for_job(client, vault, job_id, initial_delay=0.05)
    out = tmp_path / "out.bin"
    journal = tmp_path / "out.bin.icevault-journal"
    args = [sys.executable, "-m", "icevault", "download", "--vault", vault, "--job-id", job_id,
            "-o", str(out), "--chunk-size", "1MiB", "--workers", "1", "--bwlimit", "4MiB",
            "--endpoint-url", server.url]
    proc = subprocess.Popen(args, env=server.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _journal_count(journal) < 3:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(how)
    _, stderr = proc.communicate(timeout=30)
    if how == signal.SIGINT:
        assert proc.returncode == 130
        assert b"run the same command again to resume" in stderr
    assert not out.exists() and journal.exists()
    done_before = _journal_count(journal)
    rerun = subprocess.run(args[:-4] + ["--endpoint-url", server.url], env=server.cli_env(),
                           capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["resumedChunks"] >= done_before >= 3
    assert report["resumedChunks"] + report["fetchedChunks"] == report["chunks"] == 24
    assert out.read_bytes() == data
    assert not journal.exists()


def test_one_gib_download_keeps_client_memory_bounded(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="off").start()
    try:
        source = tmp_path / "big.bin"
        block = pattern(16 * MIB, seed=3)
        with open(source, "wb") as handle:
            for _ in range(64):
                handle.write(block)
        env = server.cli_env()
        base = [sys.executable, "-m", "icevault"]
        up = subprocess.run(base + ["upload", str(source), "--vault", "big", "--part-size", "64MiB",
                                    "--endpoint-url", server.url], env=env, capture_output=True,
                            text=True, timeout=600)
        if up.returncode != 0:
            subprocess.run(base + ["vault", "create", "big", "--endpoint-url", server.url], env=env,
                           check=True, capture_output=True)
            up = subprocess.run(base + ["upload", str(source), "--vault", "big", "--part-size",
                                        "64MiB", "--endpoint-url", server.url], env=env,
                                capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stderr
        uploaded = json.loads(up.stdout)
        source.unlink()
        proc = subprocess.Popen(
            base + ["get", "--vault", "big", "--archive-id", uploaded["archiveId"], "-o",
                    str(tmp_path / "out.bin"), "--chunk-size", "32MiB", "--workers", "4",
                    "--endpoint-url", server.url],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        peak = peak_rss_until_exit(proc)
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr
        got = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        assert json.loads(got.stdout)["checksum"] == uploaded["checksum"]
        assert os.path.getsize(tmp_path / "out.bin") == 1024**3
        # Bounded by workers x two write blocks plus the interpreter and boto3, not by the 1 GiB.
        assert peak < 200 * MIB, f"client peak RSS {peak / MIB:.0f} MiB"
        print(f"client peak RSS during a 1 GiB download: {peak / MIB:.0f} MiB")
    finally:
        server.stop()


def test_cli_upload_from_standard_input(server: ServerProcess, vault: str, tmp_path: Path) -> None:
    data = pattern(5 * MIB + 17, seed=12)
    result = subprocess.run(
        [sys.executable, "-m", "icevault", "upload", "-", "--vault", vault, "--part-size", "2MiB",
         "--endpoint-url", server.url],
        input=data, env=server.cli_env(), capture_output=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    uploaded = json.loads(result.stdout)
    assert uploaded["checksum"] == tree_hash(data) and uploaded["size"] == len(data)
    out = tmp_path / "back.bin"
    cli(server, "get", "--vault", vault, "--archive-id", uploaded["archiveId"], "-o", str(out))
    assert out.read_bytes() == data


def test_exit_codes_agree_with_the_readme(sigv4_server: ServerProcess, tmp_path: Path) -> None:
    """1 a refusal or failure (no such vault or archive, access denied), 2 bad usage (a
    parameter the command got wrong), 4 a job problem, whichever API answered."""
    server = sigv4_server
    server.client().create_vault(vaultName="codes")
    missing_vault = cli(server, "vault", "describe", "nosuchvault", check=False)
    assert missing_vault.returncode == 1, missing_vault.stderr
    assert "ResourceNotFoundException" in missing_vault.stderr
    upload = cli(server, "upload", str(write(tmp_path / "f", b"data")), "--vault", "nosuchvault",
                 check=False)
    assert upload.returncode == 1, upload.stderr
    retrieve = cli(server, "retrieve", "--vault", "codes", "--archive-id", "NOTANID",
                   check=False)
    assert retrieve.returncode == 1, retrieve.stderr
    bad_name = cli(server, "vault", "create", "bad name!", check=False)
    assert bad_name.returncode == 2, bad_name.stderr
    job = cli(server, "jobs", "describe", "--vault", "codes", "--job-id", "no-such-job",
              check=False)
    assert job.returncode == 4, job.stderr
    # The admin API answers an access refusal with 1 too, and a bad parameter with 2.
    env = {**server.cli_env(), "AWS_ACCESS_KEY_ID": "AKIVNOSUCHKEY0000000",
           "AWS_SECRET_ACCESS_KEY": "x" * 40}
    env.pop("AWS_PROFILE", None)
    denied = subprocess.run([sys.executable, "-m", "icevault", "admin", "--endpoint-url",
                             server.url, "list-users"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert denied.returncode == 1, denied.stderr
    wrong = subprocess.run([sys.executable, "-m", "icevault", "admin", "--endpoint-url",
                            server.url, "create-user", "bad name!"], env=server.cli_env(),
                           capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2, wrong.stderr


def test_table_output_cuts_nothing_and_json_ends_its_line(sigv4_server: ServerProcess,
                                                          tmp_path: Path) -> None:
    server = sigv4_server
    server.client().create_vault(vaultName="tables")
    uploaded = cli(server, "upload", str(write(tmp_path / "t", b"table me")), "--vault",
                   "tables", "--description", "d" * 300, "--output", "table").stdout
    rows = {key: value.strip() for key, _, value in
            (line.partition(" ") for line in uploaded.splitlines())}
    assert len(rows["archiveId"]) == 138 and rows["checksum"] == tree_hash(b"table me")
    described = cli(server, "vault", "describe", "tables", "--output", "table").stdout
    arn = server.client().describe_vault(vaultName="tables")["VaultARN"]
    assert arn in described.split()
    listed = cli(server, "vault", "list", "--output", "table").stdout
    assert "tables" in listed
    # An inventory on standard output ends with a newline: the prompt starts a line.
    inventory = cli(server, "inventory", "--vault", "tables").stdout
    assert inventory.endswith("}\n")
    # --output is the format, as in the AWS CLI; a file name there gets a hint.
    wrong = cli(server, "download", "--vault", "tables", "--job-id", "j", "--output", "out.bin",
                check=False)
    assert wrong.returncode == 2
    assert "did you mean -o/--output-file out.bin" in wrong.stderr


def test_small_cli_points(sigv4_server: ServerProcess, tmp_path: Path) -> None:
    server = sigv4_server
    client = server.client()
    client.create_vault(vaultName="small-points")
    client.upload_archive(vaultName="small-points", body=b"keep me")
    # An inventory is reused while it can be read; --new starts another.
    cli(server, "inventory", "--vault", "small-points")
    again = cli(server, "inventory", "--vault", "small-points")
    assert "reusing inventory job" in again.stderr
    def inventories() -> int:
        return sum(1 for j in client.list_jobs(vaultName="small-points")["JobList"]
                   if j["Action"] == "InventoryRetrieval")
    assert inventories() == 1
    cli(server, "inventory", "--vault", "small-points", "--new")
    assert inventories() == 2
    # Words that say what is wrong.
    file = write(tmp_path / "f", b"x" * 10)
    not_a_hash = cli(server, "verify", str(file), "--tree-hash", "0000", check=False)
    assert not_a_hash.returncode == 2 and "is not a tree hash" in not_a_hash.stderr
    part = cli(server, "upload", str(file), "--vault", "small-points", "--part-size", "3MiB",
               check=False)
    assert part.returncode == 2
    assert "a part size is 1 MiB times a power of two" in part.stderr
    dry = cli(server, "vault", "delete", "small-points", "--dry-run", check=False)
    assert dry.returncode == 1 and "would not delete vault small-points" in dry.stderr
    # Commands that use no network list no network options; the groups explain themselves.
    local = subprocess.run([sys.executable, "-m", "icevault", "treehash", "--help"],
                           capture_output=True, text=True, timeout=60)
    assert "--endpoint-url" not in local.stdout
    for group in ("vault", "jobs"):
        shown = subprocess.run([sys.executable, "-m", "icevault", group, "--help"],
                               capture_output=True, text=True, timeout=60).stdout
        commands = shown.split("Commands:")[1].splitlines()[1:]
        assert commands and all(len(line.split(None, 1)) == 2 for line in commands), shown
    # The first-start key printed under a name of one's choosing.
    printed = subprocess.run([sys.executable, "-m", "icevault", "admin", "--data-dir",
                              str(server.data_dir), "credentials", "--as", "old"],
                             capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    key, secret = server.root_credentials()
    assert printed.stdout.splitlines()[:3] == [
        "[old]", f"aws_access_key_id = {key}", f"aws_secret_access_key = {secret}"]
