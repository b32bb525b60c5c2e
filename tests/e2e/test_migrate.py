"""``icevault migrate`` end to end: a source icevault (slow jobs, injected faults) migrated
into a target icevault by the CLI, checked archive by archive; killed and rerun; refused
where the target cannot keep IDs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from icevault.client import download_job_output, upload_archive
from icevault.core.treehash import MIB
from icevault.migrate.discovery import job_inventory
from icevault.migrate.state import MigrationState
from icevault.testing import Fault, IcevaultServer
from tests.support import pattern, peak_rss_until_exit, wait_for_job

VAULT = "photos"


def _inventory(client: Any, vault: str) -> list[dict[str, Any]]:
    job = client.initiate_job(vaultName=vault, jobParameters={"Type": "inventory-retrieval"})
    wait_for_job(client, vault, job["jobId"], timeout=60)
    body = client.get_job_output(vaultName=vault, jobId=job["jobId"])["body"].read()
    return sorted(json.loads(body)["ArchiveList"], key=lambda a: a["ArchiveId"])


def _target_inventory(target: IcevaultServer) -> list[dict[str, Any]]:
    try:
        return _inventory(target.client(), VAULT)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return []


class Migration:
    """The CLI between two servers, each with its own credentials (two profiles)."""

    def __init__(self, source: IcevaultServer, target: Any, target_url: str,
                 target_key: tuple[str, str], work: Path) -> None:
        self.work = work
        self.state = work / "state.sqlite3"
        credentials = work / "credentials"
        credentials.write_text(
            f"[source]\naws_access_key_id = {source.access_key_id}\n"
            f"aws_secret_access_key = {source.secret_access_key}\n"
            f"[target]\naws_access_key_id = {target_key[0]}\n"
            f"aws_secret_access_key = {target_key[1]}\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(AWS_SHARED_CREDENTIALS_FILE=str(credentials),
                        AWS_CONFIG_FILE=os.devnull, AWS_DEFAULT_REGION="us-east-1")
        self.args = [sys.executable, "-m", "icevault", "--endpoint-url", target_url,
                     "--profile", "target", "migrate", "--vault", VAULT,
                     "--source-endpoint-url", source.endpoint_url, "--source-profile", "source",
                     "--state", str(self.state), "--poll-cap", "0.5"]

    def start(self, *extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*self.args, *extra], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def run(self, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.args, *extra], env=self.env, text=True,
                              capture_output=True, timeout=timeout)

    def status(self) -> dict[str, Any]:
        result = subprocess.run(
            [sys.executable, "-m", "icevault", "migrate", "status", "--vault", VAULT,
             "--state", str(self.state)], env=self.env, text=True, capture_output=True,
            timeout=60)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))


@pytest.fixture()
def servers() -> Iterator[tuple[IcevaultServer, IcevaultServer]]:
    delays = {"expedited": "2s", "standard": "2s", "bulk": "2s"}
    with IcevaultServer(tier_delays=delays) as source, IcevaultServer() as target:
        yield source, target


def _fill_source(source: IcevaultServer, tmp_path: Path) -> dict[str, bytes]:
    """At least 500 archives: seeded ones (1 B to 4 MiB, descriptions as tools write them,
    dates over years), one of 1 GiB, and real random bytes from 1 B to over 64 MiB, some
    uploaded in parts, with quotes, commas and duplicates in their descriptions."""
    client = source.client()
    client.create_vault(vaultName=VAULT)
    real: dict[str, bytes] = {}
    sizes = [1, 2, 1000, MIB - 1, MIB, MIB + 1, 3 * MIB + 17, 65 * MIB + 3]
    for n, size in enumerate(sizes):
        data = pattern(size, seed=100 + n)
        description = ['report, "final".pdf', "same name", "same name", ""][n % 4]
        if size > 2 * MIB:  # as tools upload large files: in parts
            path = tmp_path / f"file{n}"
            path.write_bytes(data)
            result = upload_archive(VAULT, path, description=description or None,
                                    part_size=MIB * (1 + n % 2), client=client)
            archive_id = result.archive_id
        else:
            archive_id = client.upload_archive(vaultName=VAULT, body=data,
                                               archiveDescription=description)["archiveId"]
        real[archive_id] = data
    source.seed_vault(VAULT, archives=500 - len(sizes) - 1, sizes=(1, 4 * MIB), seed=8)
    source.seed_vault(VAULT, archives=1, sizes=(1 << 30, 1 << 30), seed=9)
    return real


def test_whole_vault_through_faults_keeps_every_id_and_byte(
        servers: tuple[IcevaultServer, IcevaultServer], tmp_path: Path) -> None:
    source, target = servers
    real = _fill_source(source, tmp_path)
    source_client = source.client()
    expected = _inventory(source_client, VAULT)
    assert len(expected) == 500
    inventory_file = tmp_path / "inventory.json"
    inventory_file.write_text(json.dumps({"VaultARN": "x", "InventoryDate": "y",
                                          "ArchiveList": expected}))
    for fault in (Fault.throttle("InitiateJob", times=3),
                  Fault.error("DescribeJob", "ServiceUnavailableException", 503, times=2),
                  Fault.throttle("GetJobOutput", times=3),
                  Fault.drop_connection("GetJobOutput", after_bytes=MIB // 2, times=2),
                  # Once: a second corrupted answer may be the first chunk's own re-fetch,
                  # which the migrator hashes itself, so the target would not see it.
                  Fault.corrupt_body("GetJobOutput", times=1),
                  Fault.error("GetJobOutput", "ServiceUnavailableException", 503, times=2)):
        source.inject(fault)
    migration = Migration(source, target.client(), target.endpoint_url,
                          (target.access_key_id, target.secret_access_key), tmp_path)
    report = tmp_path / "report.json"
    process = migration.start("--inventory", str(inventory_file), "--max-jobs", "100",
                              "--workers", "4", "--chunk-size", "16MiB", "--report", str(report))
    peak = peak_rss_until_exit(process)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    # Every fault was met, and survived.
    kinds = sorted({f["kind"] + ":" + f["operation"] for f in source.faults_seen()})
    assert kinds == ["corrupt_body:GetJobOutput", "drop_connection:GetJobOutput",
                     "error:DescribeJob", "error:GetJobOutput", "error:InitiateJob"]
    # The corrupted chunk was caught where it landed: the target refused it (it checks every
    # part against the source's checksum), and it was fetched again.
    metrics = target.metrics()
    assert "\nicevault_upload_checksum_mismatches_total 1.0\n" in metrics
    # The same IDs, sizes, tree hashes, descriptions and creation dates.
    target_client = target.client()
    assert _inventory(target_client, VAULT) == expected
    assert json.loads(out)["verified"] == {"archives": 500,
                                          "bytes": sum(a["Size"] for a in expected)}
    rows = json.loads(report.read_text())
    assert len(rows) == 500 and {r["status"] for r in rows} == {"verified"}
    assert all(r["source_id"] == r["target_id"] for r in rows)
    # A 1 GiB archive went through with memory bounded by workers x chunk size.
    assert peak < 400 * MIB, f"migrator peak RSS {peak / MIB:.0f} MiB"
    # Retrieval through the target returns the very bytes first uploaded to the source.
    for archive_id in sorted(real, key=lambda a: len(real[a]))[::3] + [
            max(real, key=lambda a: len(real[a]))]:
        job = target_client.initiate_job(vaultName=VAULT, jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archive_id})
        wait_for_job(target_client, VAULT, job["jobId"])
        out_path = tmp_path / "restored"
        download_job_output(VAULT, job["jobId"], out_path, client=target_client)
        assert out_path.read_bytes() == real[archive_id]
        out_path.unlink()
    # A rerun finds everything done and moves nothing.
    again = migration.run("--inventory", str(inventory_file))
    assert again.returncode == 0, again.stderr
    assert migration.status()["verified"]["archives"] == 500


def test_killed_at_random_moments_and_rerun_ends_exact(tmp_path: Path) -> None:
    rng = random.Random(20261127)
    delays = {"expedited": "1s", "standard": "1s", "bulk": "1s"}
    with IcevaultServer(tier_delays=delays) as source, IcevaultServer() as target:
        client = source.client()
        client.create_vault(vaultName=VAULT)
        data = {}
        for n in range(24):
            body = pattern(rng.randrange(1, 6 * MIB), seed=n)
            data[client.upload_archive(vaultName=VAULT, body=body,
                                       archiveDescription=f"file {n}")["archiveId"]] = body
        source.seed_vault(VAULT, archives=66, sizes=(1, 3 * MIB), seed=3)
        expected = _inventory(client, VAULT)
        chunks = sum(-(-a["Size"] // MIB) for a in expected)
        migration = Migration(source, target.client(), target.endpoint_url,
                              (target.access_key_id, target.secret_access_key), tmp_path)
        # Jobs of 1 s, three at a time: about 30 s of work, so 20 kills fall inside it.
        options = ("--max-jobs", "3", "--workers", "3", "--chunk-size", "1MiB")
        before = source.requests_seen().get("GetJobOutput", 0)
        kills = 0
        while kills < 20:
            process = migration.start(*options)
            try:
                process.wait(timeout=rng.uniform(0.3, 2.2))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                process.communicate()
                # Whatever the moment, the target shows whole archives only, each exact (none
                # when the kill came before the migration made the target's vault).
                listed = {a["ArchiveId"]: a for a in _target_inventory(target)}
                want = {a["ArchiveId"]: a for a in expected}
                assert all(listed[i] == want[i] for i in listed)
                continue
            _out, err = process.communicate()
            pytest.fail(f"the migration finished after {kills} kills; the test needs 20 "
                        f"(rc {process.returncode}): {err[-2000:]}")
        final = migration.run(*options)
        assert final.returncode == 0, final.stderr
        assert _inventory(target.client(), VAULT) == expected  # no duplicate, none missing
        fetched = source.requests_seen().get("GetJobOutput", 0) - before
        # Landed parts are never fetched again: at most the chunks, plus what each kill cut
        # off in flight (3 workers), plus the inventory reads of each run.
        assert fetched <= chunks + 3 * kills + kills + 1, (fetched, chunks, kills)
        restore = target.client()
        archive_id = max(data, key=lambda a: len(data[a]))
        job = restore.initiate_job(vaultName=VAULT, jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archive_id})
        wait_for_job(restore, VAULT, job["jobId"])
        assert restore.get_job_output(vaultName=VAULT, jobId=job["jobId"])[
            "body"].read() == data[archive_id]


def test_inventory_job_no_wait_dry_run_and_status(tmp_path: Path) -> None:
    with IcevaultServer(inventory_delay="1h") as source, IcevaultServer() as target:
        client = source.client()
        client.create_vault(vaultName=VAULT)
        source.seed_vault(VAULT, archives=12, sizes=(1, 2 * MIB), seed=1)
        migration = Migration(source, target.client(), target.endpoint_url,
                              (target.access_key_id, target.secret_access_key), tmp_path)
        first = migration.run("--no-wait")
        assert first.returncode == 4, first.stderr
        assert "rerun the same command later" in first.stderr
        assert migration.run("--no-wait").returncode == 4
        jobs = client.list_jobs(vaultName=VAULT)["JobList"]
        assert len(jobs) == 1  # the recorded job is reused, not started again
        dry = migration.run("--dry-run", "--no-wait")
        assert dry.returncode == 4  # --no-wait: the inventory is not ready, nothing waited for
        source.advance_clock(hours=1)
        dry = migration.run("--dry-run")
        assert dry.returncode == 0, dry.stderr
        plan = json.loads(dry.stdout)
        assert plan["archives_to_move"] == 12 and plan["skipped_already_on_target"] == 0
        assert target.client().list_vaults()["VaultList"] == []  # nothing was changed
        done = migration.run()
        assert done.returncode == 0, done.stderr
        assert migration.status()["verified"]["archives"] == 12
        job = client.initiate_job(vaultName=VAULT, jobParameters={"Type": "inventory-retrieval"})
        source.advance_clock(hours=1)  # the source's inventories take an hour
        wait_for_job(client, VAULT, job["jobId"])
        source_list = json.loads(client.get_job_output(vaultName=VAULT, jobId=job["jobId"])[
            "body"].read())["ArchiveList"]
        assert _inventory(target.client(), VAULT) == sorted(source_list,
                                                            key=lambda a: a["ArchiveId"])
        # A new state file over a target that has everything: all skipped, nothing moved.
        (tmp_path / "again").mkdir()
        fresh = Migration(source, target.client(), target.endpoint_url,
                          (target.access_key_id, target.secret_access_key),
                          tmp_path / "again")
        plan = json.loads(fresh.run("--dry-run").stdout)
        assert (plan["archives_to_move"], plan["skipped_already_on_target"]) == (0, 12)
        report = tmp_path / "again" / "report.csv"
        assert fresh.run("--report", str(report)).returncode == 0
        lines = report.read_text().splitlines()
        assert lines[0] == "source_id,target_id,size,tree_hash,status,error"
        assert len(lines) == 13 and all(",skipped," in line for line in lines[1:])


def test_a_dry_run_starts_the_inventory_and_waits_for_it(tmp_path: Path) -> None:
    with IcevaultServer(inventory_delay="2s") as source, IcevaultServer() as target:
        client = source.client()
        client.create_vault(vaultName=VAULT)
        source.seed_vault(VAULT, archives=5, sizes=(1, MIB), seed=2)
        migration = Migration(source, target.client(), target.endpoint_url,
                              (target.access_key_id, target.secret_access_key), tmp_path)
        dry = migration.run("--dry-run", timeout=120)
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout)["archives_to_move"] == 5
        assert " inventory: InProgress, waited " in dry.stderr  # the wait is told
        assert " inventory: Succeeded, waited " in dry.stderr
        jobs = client.list_jobs(vaultName=VAULT)["JobList"]
        assert [j["Action"] for j in jobs] == ["InventoryRetrieval"]  # what it started
        assert target.client().list_vaults()["VaultList"] == []  # and nothing else


def test_a_target_that_cannot_keep_ids_gets_nothing(tmp_path: Path) -> None:
    import shutil

    from tests.support import free_port

    moto = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    port = free_port()
    server = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with IcevaultServer() as source:
            client = source.client()
            client.create_vault(vaultName=VAULT)
            client.upload_archive(vaultName=VAULT, body=b"only copy")
            import boto3

            moto_client = boto3.client("glacier", endpoint_url=f"http://127.0.0.1:{port}",
                                       region_name="us-east-1", aws_access_key_id="a",
                                       aws_secret_access_key="b")
            deadline = time.monotonic() + 30
            while True:
                try:
                    moto_client.list_vaults()
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            migration = Migration(source, moto_client, f"http://127.0.0.1:{port}", ("a", "b"),
                                  tmp_path)
            result = migration.run("--max-jobs", "2")
            assert result.returncode == 1, result.stderr
            assert "keeps archive IDs" in result.stderr or "keep archive IDs" in result.stderr
            assert moto_client.describe_vault(vaultName=VAULT)["NumberOfArchives"] == 0
            # Found before any retrieval was paid for: the only job is the inventory's.
            assert source.requests_seen()["InitiateJob"] == 1
    finally:
        server.terminate()
        server.wait()


def test_a_caller_without_the_import_permission_gets_nothing(tmp_path: Path) -> None:
    from tests.e2e.test_access import admin, new_user
    from tests.support import ServerProcess

    target = ServerProcess(tmp_path / "target", auth="sigv4").start()
    try:
        key = new_user(target, "mover")
        admin(target, "put-user-policy", "--user", "mover", "--policy-name", "all-glacier",
              "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
                  {"Effect": "Allow", "Action": "glacier:*", "Resource": "*"}]}))
        with IcevaultServer() as source:
            client = source.client()
            client.create_vault(vaultName=VAULT)
            client.upload_archive(vaultName=VAULT, body=b"only copy")
            migration = Migration(source, None, target.url,
                                  (key["AccessKeyId"], key["SecretAccessKey"]), tmp_path)
            result = migration.run()
            assert result.returncode == 1
            assert "icevault:ImportArchive" in result.stderr
            root = target.client()
            assert root.describe_vault(vaultName=VAULT)["NumberOfArchives"] == 0
    finally:
        target.stop()


def test_interrupted_then_expired_jobs_are_started_again(tmp_path: Path) -> None:
    with IcevaultServer(tier_delays={"standard": "1h"}) as source, IcevaultServer() as target:
        client = source.client()
        client.create_vault(vaultName=VAULT)
        source.seed_vault(VAULT, archives=5, sizes=(1, 2 * MIB), seed=4)
        expected = _inventory(client, VAULT)
        migration = Migration(source, target.client(), target.endpoint_url,
                              (target.access_key_id, target.secret_access_key), tmp_path)
        process = migration.start("--max-jobs", "10")
        deadline = time.monotonic() + 60
        # Until the five retrievals are started and recorded (a job the source started but
        # the state did not record yet would simply be started again).
        while source.requests_seen().get("InitiateJob", 0) < 1 + 5 or \
                migration.status().get("job", {}).get("archives") != 5:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert "run the same command again to resume" in err
        assert migration.status()["job"]["archives"] == 5
        # The jobs complete, and their outputs expire unread: a rerun starts new jobs.
        source.advance_clock(hours=1)
        source.advance_clock(hours=24, seconds=1)
        rerun = migration.start("--max-jobs", "10")
        while source.requests_seen().get("InitiateJob", 0) < 1 + 5 + 5:
            assert rerun.poll() is None, rerun.communicate()
            assert time.monotonic() < deadline + 60
            time.sleep(0.1)
        source.advance_clock(hours=1)  # the new jobs complete
        _, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err
        assert _inventory(target.client(), VAULT) == expected


def test_an_inventory_is_read_beside_the_state_file_then_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A run killed while it reads an inventory leaves at most the file the next run
    # overwrites, beside its state: not a directory per run in the temp dir.
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with IcevaultServer() as source:
        client = source.client()
        client.create_vault(vaultName=VAULT)
        source.seed_vault(VAULT, archives=3, sizes=(1, MIB), seed=4)
        job = client.initiate_job(vaultName=VAULT,
                                  jobParameters={"Type": "inventory-retrieval"})["jobId"]
        wait_for_job(client, VAULT, job)
        state = MigrationState(tmp_path / "state.sqlite3")
        try:
            with job_inventory(client, VAULT, "-", job, state) as entries:
                assert (tmp_path / "state.sqlite3.inventory").is_file()
                assert len(list(entries)) == 3
        finally:
            state.close()
    assert not [p.name for p in tmp_path.iterdir() if ".inventory" in p.name]
    assert list(temp.iterdir()) == []
