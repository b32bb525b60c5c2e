"""``python -m bench crash``: seeded SIGKILL rounds against a real server, then the checks
that make "a crash loses nothing acknowledged" a measured fact.

Each round runs a mixed workload from several threads (single and multipart uploads,
completes, archive deletes, vault creates and deletes, retrieval jobs), kills the server
with SIGKILL at a seeded moment, and restarts it on the same data directory. At the end:

* every acknowledged archive is listed with its tree hash and reads back byte-exact;
* no acknowledged archive or vault delete is undone;
* nothing is half-visible: every listed archive reads back whole, and vault counts and sizes
  equal what the vault lists;
* every acknowledged job is still known and completes;
* after a clean restart no orphan is left (blob files are exactly what the metadata
  references; no staging area, no temporary file);
* the server keeps copies (``--copy-url`` on a second directory): every live archive gets
  one verified copy whose bytes hash to its tree hash, the copies of deleted archives go,
  and the copy store holds exactly the objects the copy rows name (a copy made twice, or
  written and never recorded, would be left over);
* the SQLite database passes ``PRAGMA integrity_check``.

The suite runs a few rounds; ``--rounds 1000`` is the long form.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bench.peers import Peer, launch_icevault
from bench.workdir import problems_found, run_in_work_dir
from icevault.core.treehash import MIB, tree_hash

VAULT = "crash"


def pattern(size: int, seed: int) -> bytes:
    block = bytes((i * 31 + seed * 17 + (i >> 8)) % 251 for i in range(65536))
    reps, rest = divmod(size, len(block))
    return block * reps + block[:rest]


@dataclass
class Ledger:
    """What the server acknowledged, and what was in flight when it died."""

    acked: dict[str, str] = field(default_factory=dict)  # archive id -> tree hash sent
    deleted: set[str] = field(default_factory=set)
    deleting: set[str] = field(default_factory=set)
    vaults_made: set[str] = field(default_factory=set)
    vaults_deleted: set[str] = field(default_factory=set)
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> archive id
    lock: threading.Lock = field(default_factory=threading.Lock)


class Workload:
    def __init__(self, peer: Peer, ledger: Ledger, seed: int) -> None:
        self.peer = peer
        self.ledger = ledger
        self.seed = seed
        self.stop = threading.Event()

    def run(self, worker: int, round_no: int) -> None:
        rng = random.Random(self.seed * 1_000_003 + round_no * 101 + worker)
        client = self.peer.client()
        client.meta.config.connect_timeout = 2
        while not self.stop.is_set():
            try:
                self._step(client, rng, worker, round_no)
            except (ClientError, BotoCoreError, OSError):
                if self.stop.is_set():
                    return
                time.sleep(0.05)

    def _step(self, client: Any, rng: random.Random, worker: int, round_no: int) -> None:
        ledger = self.ledger
        choice = rng.random()
        if choice < 0.15 and ledger.acked:
            with ledger.lock:
                candidates = sorted(set(ledger.acked) - ledger.deleting)
                victim = rng.choice(candidates) if candidates else None
                if victim:
                    ledger.deleting.add(victim)
            if victim:
                client.delete_archive(vaultName=VAULT, archiveId=victim)
                with ledger.lock:
                    ledger.deleted.add(victim)
        elif choice < 0.25 and ledger.acked:
            with ledger.lock:
                candidates = sorted(set(ledger.acked) - ledger.deleting)
            if candidates:
                archive_id = rng.choice(candidates)
                job = client.initiate_job(vaultName=VAULT, jobParameters={
                    "Type": "archive-retrieval", "ArchiveId": archive_id})
                with ledger.lock:
                    ledger.jobs[job["jobId"]] = archive_id
        elif choice < 0.32:
            name = f"side-{round_no}-{worker}-{rng.randrange(1 << 30)}"
            client.create_vault(vaultName=name)
            with ledger.lock:
                ledger.vaults_made.add(name)
            client.delete_vault(vaultName=name)
            with ledger.lock:
                ledger.vaults_deleted.add(name)
        elif choice < 0.55:
            data = pattern(rng.randint(MIB + 1, 4 * MIB), rng.randint(0, 200))
            upload_id = client.initiate_multipart_upload(
                vaultName=VAULT, partSize=str(MIB))["uploadId"]
            starts = list(range(0, len(data), MIB))
            rng.shuffle(starts)
            for start in starts:
                chunk = data[start:start + MIB]
                client.upload_multipart_part(
                    vaultName=VAULT, uploadId=upload_id,
                    range=f"bytes {start}-{start + len(chunk) - 1}/*", body=chunk)
            done = client.complete_multipart_upload(
                vaultName=VAULT, uploadId=upload_id, archiveSize=str(len(data)),
                checksum=tree_hash(data))
            with ledger.lock:
                ledger.acked[done["archiveId"]] = tree_hash(data)
        else:
            data = pattern(rng.randint(1, 3 * MIB), rng.randint(0, 200))
            done = client.upload_archive(vaultName=VAULT, body=data)
            with ledger.lock:
                ledger.acked[done["archiveId"]] = tree_hash(data)


def _wait_job(client: Any, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.describe_job(vaultName=VAULT, jobId=job_id)
        if job["Completed"] or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def _inventory(client: Any) -> dict[str, dict[str, Any]]:
    job_id = client.initiate_job(vaultName=VAULT, jobParameters={"Type": "inventory-retrieval"})[
        "jobId"]
    _wait_job(client, job_id)
    body = json.loads(client.get_job_output(vaultName=VAULT, jobId=job_id)["body"].read())
    return {a["ArchiveId"]: a for a in body["ArchiveList"]}


def check(peer: Peer, ledger: Ledger, data_dir: Path, read_back: int) -> tuple[list[str], dict[str, int]]:
    """The invariants; returns the problems found and what was checked."""
    problems: list[str] = []
    client = peer.client()
    listed = _inventory(client)
    live = set(ledger.acked) - ledger.deleting
    for archive_id in sorted(live - set(listed)):
        problems.append(f"acknowledged archive {archive_id} is missing")
    for archive_id in sorted(ledger.deleted & set(listed)):
        problems.append(f"acknowledged delete of {archive_id} was undone")
    for archive_id in sorted(set(listed) & set(ledger.acked)):
        if listed[archive_id]["SHA256TreeHash"] != ledger.acked[archive_id]:
            problems.append(f"archive {archive_id} lists a different tree hash")
    described = client.describe_vault(vaultName=VAULT)
    if described["NumberOfArchives"] != len(listed):
        problems.append(f"vault counts {described['NumberOfArchives']} archives, lists {len(listed)}")
    if described["SizeInBytes"] != sum(a["Size"] for a in listed.values()):
        problems.append("vault size differs from the sum of its archives")
    for name in sorted(ledger.vaults_deleted):
        try:
            client.describe_vault(vaultName=name)
            problems.append(f"acknowledged delete of vault {name} was undone")
        except ClientError:
            pass
    # Whole reads: every listed archive reads back whole and matches its hash.
    sample = sorted(listed)
    random.Random(len(sample)).shuffle(sample)
    for archive_id in sample[:read_back]:
        item = listed[archive_id]
        job_id = client.initiate_job(vaultName=VAULT, jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archive_id})["jobId"]
        job = _wait_job(client, job_id)
        if job["StatusCode"] != "Succeeded":
            problems.append(f"archive {archive_id} cannot be retrieved: {job['StatusMessage']}")
            continue
        body = client.get_job_output(vaultName=VAULT, jobId=job_id)["body"].read()
        if len(body) != item["Size"] or tree_hash(body) != item["SHA256TreeHash"]:
            problems.append(f"archive {archive_id} reads back different bytes")
    for job_id, archive_id in sorted(ledger.jobs.items()):
        try:
            job = _wait_job(client, job_id)
        except ClientError as exc:
            problems.append(f"acknowledged job {job_id} is unknown: {exc}")
            continue
        if not job["Completed"]:
            problems.append(f"acknowledged job {job_id} never completed")
        elif job["StatusCode"] == "Failed" and archive_id not in ledger.deleting:
            problems.append(f"job {job_id} failed: {job['StatusMessage']}")
    # Uploads caught mid-way may stay open (a client could resume them): abort them, then a
    # clean restart must leave exactly the referenced bytes.
    open_uploads = [upload["MultipartUploadId"]
                    for page in client.get_paginator("list_multipart_uploads").paginate(
                        vaultName=VAULT)
                    for upload in page["UploadsList"]]
    for upload_id in open_uploads:
        client.abort_multipart_upload(vaultName=VAULT, uploadId=upload_id)
    stats = {"archives_acknowledged": len(ledger.acked), "archives_listed": len(listed),
             "deletes_acknowledged": len(ledger.deleted), "jobs": len(ledger.jobs),
             "vault_deletes": len(ledger.vaults_deleted), "read_back": min(read_back, len(sample)),
             "uploads_left_open": len(open_uploads)}
    return problems, stats


def wait_for_copies(data_dir: Path, timeout: float = 120) -> list[str]:
    """Until every live archive has a verified copy (the server's copy worker is running)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(data_dir / "metadata.sqlite3") as db:
            owed = db.execute(
                "SELECT count(*) FROM archives a WHERE a.deleted_at IS NULL AND a.blob_key "
                "IS NOT NULL AND NOT EXISTS (SELECT 1 FROM archive_copies c WHERE "
                "c.archive_id = a.id AND c.state = 'verified')").fetchone()[0]
        db.close()
        if owed == 0:
            return []
        if time.monotonic() > deadline:
            return [f"{owed} archives still have no verified copy after {timeout:.0f} s"]
        time.sleep(0.2)


def check_copies(data_dir: Path, copies_dir: Path) -> list[str]:
    """Every live archive's one copy holds its bytes; the copy store holds nothing else once
    the copies of deleted archives are dropped (as the server's housekeeping does)."""
    from icevault import stores
    from icevault.service.context import Context
    from icevault.service.copies import CopyService
    from icevault.service.copying import tree_hash_of
    from icevault.service.integrity import IntegrityService

    problems: list[str] = []
    meta = stores.open_metadata(data_dir, None)
    try:
        store = stores.open_copies([f"file://{copies_dir}"])
        [(name, copies)] = store.items()
        ctx = Context(meta=meta, blobs=stores.open_blobs(data_dir, None), copies=store)
        CopyService(ctx, IntegrityService(ctx)).drop_deleted()
        with sqlite3.connect(data_dir / "metadata.sqlite3") as db:
            rows = db.execute(
                "SELECT a.id, a.size, a.tree_hash, c.blob_key, c.state FROM archives a JOIN "
                "archive_copies c ON c.archive_id = a.id WHERE c.store = ?", (name,)
            ).fetchall()
            live = {row[0] for row in db.execute(
                "SELECT id FROM archives WHERE deleted_at IS NULL AND blob_key IS NOT NULL")}
        db.close()
        verified = {row[0]: row for row in rows if row[4] == "verified"}
        for archive_id in sorted(live - set(verified)):
            problems.append(f"archive {archive_id} has no verified copy")
        for archive_id, size, want, key, _ in verified.values():
            if tree_hash_of(copies, key, size) != want:
                problems.append(f"the copy of {archive_id} does not hold its bytes")
        named = {row[3] for row in rows if row[3] is not None}
        on_disk = set(copies.iter_keys())
        if on_disk - named:
            problems.append(f"{len(on_disk - named)} copy objects no row names")
        if named - on_disk:
            problems.append(f"{len(named - on_disk)} copy rows name no object")
    finally:
        meta.close()
    return problems


def check_storage(data_dir: Path) -> list[str]:
    """After a clean restart: no orphan, no staging area, no temporary file, a sound database."""
    from icevault import stores

    problems = []
    meta = stores.open_metadata(data_dir, None)
    try:
        blobs = stores.open_blobs(data_dir, None)
        on_disk = set(blobs.iter_keys())
        orphans = on_disk - meta.blob_keys_in_use(sorted(on_disk))
        if orphans:
            problems.append(f"{len(orphans)} orphaned blob files remain")
        if set(blobs.iter_staging_keys()):
            problems.append("staging areas remain after every upload was aborted")
        if list((data_dir / "tmp").iterdir()):
            problems.append("temporary files remain")
    finally:
        meta.close()
    with sqlite3.connect(data_dir / "metadata.sqlite3") as db:
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":
            problems.append(f"SQLite integrity_check: {verdict}")
        rows = db.execute(
            "SELECT v.name, v.archive_count, v.size_bytes, count(a.seq), coalesce(sum(a.size), 0) "
            "FROM vaults v LEFT JOIN archives a ON a.account_id = v.account_id "
            "AND a.vault_name = v.name AND a.deleted_at IS NULL GROUP BY v.account_id, v.name"
        ).fetchall()
        for name, count, size, real_count, real_size in rows:
            if (count, size) != (real_count, real_size):
                problems.append(f"vault {name} records {count}/{size}, holds {real_count}/{real_size}")
    db.close()
    return problems


def run(rounds: int, seed: int, workers: int, work: Path, read_back: int) -> dict[str, Any]:
    data_dir = work / "data"
    copies_dir = work / "copies"
    log = work / "server.log"
    rng = random.Random(seed)
    extra = ["--copy-url", f"file://{copies_dir}"]
    peer = launch_icevault(data_dir, "sigv4", log=log, extra=extra)
    ledger = Ledger()
    started = time.monotonic()
    try:
        peer.client().create_vault(vaultName=VAULT)
        workload = Workload(peer, ledger, seed)
        for round_no in range(rounds):
            workload.stop.clear()
            threads = [threading.Thread(target=workload.run, args=(i, round_no), daemon=True)
                       for i in range(workers)]
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(0.3, 1.5))
            peer.kill()
            workload.stop.set()
            for thread in threads:
                thread.join(timeout=30)
            peer = launch_icevault(data_dir, "sigv4", log=log, extra=extra)
            workload.peer = peer
        problems, stats = check(peer, ledger, data_dir, read_back)
        problems += wait_for_copies(data_dir)
        peer.stop()
        # Start-up collects and sweeps, the copy store too.
        peer = launch_icevault(data_dir, "sigv4", log=log, extra=extra)
        peer.stop()
        problems += check_storage(data_dir)
        problems += check_copies(data_dir, copies_dir)
    finally:
        peer.stop()
    if "Traceback" in log.read_text(errors="replace"):
        problems.append(f"the server logged a traceback (see {log})")
    return {"rounds": rounds, "seed": seed, "seconds": round(time.monotonic() - started, 1),
            **stats, "problems": problems}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench crash", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--read-back", type=int, default=200,
                        help="how many listed archives to retrieve and hash at the end")
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args(argv)
    report = run_in_work_dir(
        args.work_dir, "icevault-crash-",
        lambda work: run(args.rounds, args.seed, args.workers, work, args.read_back),
        lambda report: problems_found(report) or not report["archives_acknowledged"])
    print(json.dumps(report, indent=2))
    return 1 if report["problems"] or not report["archives_acknowledged"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
