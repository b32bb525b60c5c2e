"""Three icevault servers on one PostgreSQL database and one SeaweedFS bucket behind HAProxy,
all started from deploy/: any request on any server, background work done once, changes seen
everywhere within the bound, a server killed, and the database restarted."""

from __future__ import annotations

import functools
import json
import random
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError, ResponseStreamingError

from icevault.core.treehash import MIB, tree_hash
from tests.cluster import Cluster, Notifications
from tests.postgres import PostgresServer
from tests.seaweed import SeaweedServer
from tests.support import pattern, seconds_until_refused, wait_for_job

pytestmark = pytest.mark.usefixtures("seaweed")

# Bulk jobs fall due two seconds after they start, when all three job loops look for work;
# a job held by a server that died is taken over three seconds after it was claimed.
# The notification receiver listens on loopback, as a LAN webhook would on a private address.
SETTINGS = {"ICEVAULT_TIER_DELAYS": "expedited=0,standard=0,bulk=2s",
            "ICEVAULT_JOB_LEASE": "3s", "ICEVAULT_WEBHOOK_ALLOW_PRIVATE": "1"}


@pytest.fixture(scope="module")
def database() -> Iterator[PostgresServer]:
    server = PostgresServer().start()  # its own: a test restarts it
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hooks() -> Iterator[Notifications]:
    receiver = Notifications()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def cluster(database: PostgresServer, seaweed: SeaweedServer,
            tmp_path_factory: pytest.TempPathFactory,
            hooks: Notifications) -> Iterator[Cluster]:
    # Every archive is copied to a second bucket prefix too (--copy-url), by whichever
    # server claims it.
    running = Cluster(tmp_path_factory.mktemp("cluster"), database.new_database(),
                      seaweed.new_store_url(),
                      settings={**SETTINGS, "ICEVAULT_COPY_URL": seaweed.new_store_url()}).start()
    try:
        running.admin("create-topic", "done", "--url", hooks.url)
        yield running
    finally:
        running.stop()
    for member in running.members:
        assert "Traceback" not in member.log(), member.log()[-4000:]


def _topic(cluster: Cluster) -> str:
    topics = cluster.admin("list-topics")["Topics"]
    return str(topics[0]["TopicArn"])


def _notify(cluster: Cluster, client: Any, vault: str) -> None:
    client.set_vault_notifications(vaultName=vault, vaultNotificationConfig={
        "SNSTopic": _topic(cluster),
        "Events": ["ArchiveRetrievalCompleted", "InventoryRetrievalCompleted"]})


def _parts(client: Any, vault: str, data: bytes, part_size: int) -> str:
    upload = client.initiate_multipart_upload(vaultName=vault, partSize=str(part_size))
    starts = list(range(0, len(data), part_size))

    def send(start: int) -> None:
        chunk = data[start:start + part_size]
        client.upload_multipart_part(
            vaultName=vault, uploadId=upload["uploadId"], body=chunk,
            range=f"bytes {start}-{start + len(chunk) - 1}/*", checksum=tree_hash(chunk))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, starts))
    return str(upload["uploadId"])


def test_the_seed_workflow_through_the_balancer_round_robin(cluster: Cluster) -> None:
    client = cluster.client()
    client.create_vault(vaultName="spread")
    before = [m.metric("icevault_requests_total", operation="UploadMultipartPart",
                       status="204") for m in cluster.members]
    data = pattern(9 * MIB + 12345, seed=3)
    upload_id = _parts(client, "spread", data, MIB)
    after = [m.metric("icevault_requests_total", operation="UploadMultipartPart",
                      status="204") for m in cluster.members]
    # Ten parts of one upload, sent in parallel, went to all three servers.
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    assert sum(after) - sum(before) == 10
    done = client.complete_multipart_upload(vaultName="spread", uploadId=upload_id,
                                            archiveSize=str(len(data)), checksum=tree_hash(data))
    archive_id = done["archiveId"]
    # A job initiated on one server completes, and is read through each of the others.
    first, second, third = (cluster.client(m.url) for m in cluster.members)
    job_id = first.initiate_job(vaultName="spread", jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive_id, "Tier": "Expedited"})["jobId"]
    wait_for_job(second, "spread", job_id)
    assert third.describe_job(vaultName="spread", jobId=job_id)["StatusCode"] == "Succeeded"
    for reader in (second, third):
        output = reader.get_job_output(vaultName="spread", jobId=job_id)
        assert output["checksum"] == tree_hash(data) and output["body"].read() == data
    # And by ranges through the balancer, each range on the next server.
    got = bytearray()
    for start in range(0, len(data), 4 * MIB):
        end = min(start + 4 * MIB, len(data)) - 1
        piece = client.get_job_output(vaultName="spread", jobId=job_id,
                                      range=f"bytes={start}-{end}")
        body = piece["body"].read()
        if end - start + 1 == 4 * MIB:
            assert piece["checksum"] == tree_hash(body)
        got += body
    assert bytes(got) == data
    served = [m.metric("icevault_requests_total", operation="GetJobOutput", status="206")
              for m in cluster.members]
    assert sum(1 for count in served if count) >= 2, served


def test_one_upload_completed_on_three_servers_at_once_makes_one_archive(
        cluster: Cluster) -> None:
    client = cluster.client()
    client.create_vault(vaultName="raced")
    direct = [cluster.client(m.url) for m in cluster.members]
    for attempt in range(5):
        data = pattern(3 * MIB + attempt, seed=40 + attempt)
        upload_id = _parts(client, "raced", data, MIB)
        barrier = threading.Barrier(len(direct))

        def complete(server: Any, upload: str = upload_id, body: bytes = data) -> str:
            barrier.wait()
            return str(server.complete_multipart_upload(
                vaultName="raced", uploadId=upload, archiveSize=str(len(body)),
                checksum=tree_hash(body))["archiveId"])

        with ThreadPoolExecutor(len(direct)) as pool:
            ids = set(pool.map(complete, direct))
        assert len(ids) == 1, ids
    inventory = client.initiate_job(vaultName="raced", jobParameters={
        "Type": "inventory-retrieval"})["jobId"]
    wait_for_job(client, "raced", inventory)
    listed = json.loads(client.get_job_output(vaultName="raced", jobId=inventory)["body"].read())
    assert len(listed["ArchiveList"]) == 5


def test_each_due_job_completes_once_and_is_notified_once(
        cluster: Cluster, hooks: Notifications) -> None:
    client = cluster.client()
    client.create_vault(vaultName="once")
    _notify(cluster, client, "once")
    archive_id = client.upload_archive(vaultName="once", body=b"retrieve me")["archiveId"]
    jobs = [client.initiate_job(vaultName="once", jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive_id, "Tier": "Bulk"})["jobId"]
        for _ in range(30)]
    for job_id in jobs:
        wait_for_job(client, "once", job_id, timeout=60)
    deadline = time.monotonic() + 20
    while not set(jobs) <= set(hooks.per_job()):
        assert time.monotonic() < deadline, hooks.per_job()
        time.sleep(0.1)
    time.sleep(1.5)  # a second delivery, were there one, would have come by now
    counts = hooks.per_job()
    assert {job_id: counts[job_id] for job_id in jobs} == dict.fromkeys(jobs, 1)
    completed = cluster.completions()
    assert {job_id: completed.get(job_id) for job_id in jobs} == dict.fromkeys(jobs, 1)
    # Each carries its idempotency key: one per job, for a receiver to drop repeats by.
    keys = {job_id: key for job_id, key in hooks.received if job_id in jobs}
    assert all(len(key) == 32 for key in keys.values())
    assert len(set(keys.values())) == len(jobs)
    completions = sum(m.metric("icevault_job_completion_delay_seconds_count")
                      for m in cluster.members)
    assert completions >= len(jobs)


def test_a_policy_or_key_change_applies_on_every_server_within_the_bound(
        cluster: Cluster) -> None:
    root = cluster.client(cluster.members[0].url)
    root.create_vault(vaultName="guarded")
    cluster.admin("create-user", "worker")
    cluster.admin("put-user-policy", "--user", "worker", "--policy-name", "all",
                  "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
                      {"Effect": "Allow", "Action": "glacier:*", "Resource": "*"}]}))
    key = cluster.admin("create-access-key", "--user", "worker")["AccessKey"]
    import boto3
    import botocore.config

    workers = [boto3.client(
        "glacier", endpoint_url=m.url, region_name="us-east-1",
        aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
        config=botocore.config.Config(retries={"total_max_attempts": 1}))
        for m in cluster.members[1:]]
    for worker in workers:
        for _ in range(3):  # in each server's caches
            worker.describe_vault(vaultName="guarded")

    def refused_everywhere_within(change: Any, code: str) -> float:
        return seconds_until_refused(change, [
            functools.partial(worker.describe_vault, vaultName="guarded")
            for worker in workers], code)

    deny = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "glacier:DescribeVault",
        "Resource": "*"}]})
    took = refused_everywhere_within(lambda: root.set_vault_access_policy(
        vaultName="guarded", policy={"Policy": deny}), "AccessDeniedException")
    assert took <= 1.5, took
    root.delete_vault_access_policy(vaultName="guarded")

    def allowed(worker: Any) -> bool:
        try:
            worker.describe_vault(vaultName="guarded")
            return True
        except ClientError:
            return False

    _until(lambda: all(allowed(worker) for worker in workers), "the policy's removal seen",
           timeout=5)
    took = refused_everywhere_within(
        lambda: cluster.admin("disable-access-key", key["AccessKeyId"]),
        "UnrecognizedClientException")
    assert took <= 1.5, took


class Traffic:
    """Clients working through the balancer until told to stop: uploads (single and
    multipart), retrievals and downloads. What was acknowledged is kept for checking."""

    def __init__(self, cluster: Cluster, vault: str, workers: int = 4) -> None:
        self.cluster, self.vault = cluster, vault
        self.acknowledged: dict[str, bytes] = {}
        self.jobs: list[str] = []
        self.errors: list[str] = []
        self.error_times: list[float] = []
        self.downloads = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, args=(n,)) for n in range(workers)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _work(self, number: int) -> None:
        # Retries as SDKs make them: a request that met a dying server is sent again.
        client = self.cluster.client(attempts=8)
        rng = random.Random(number)
        step = 0
        while not self._stop.is_set():
            step += 1
            try:
                data = pattern(rng.randint(1, 3 * MIB), seed=number * 1000 + step)
                if step % 3 == 0:
                    upload_id = _parts(client, self.vault, data, MIB)
                    archive_id = client.complete_multipart_upload(
                        vaultName=self.vault, uploadId=upload_id,
                        archiveSize=str(len(data)), checksum=tree_hash(data))["archiveId"]
                else:
                    archive_id = client.upload_archive(vaultName=self.vault, body=data,
                                                       checksum=tree_hash(data))["archiveId"]
                with self._lock:
                    self.acknowledged[archive_id] = data
                job_id = client.initiate_job(vaultName=self.vault, jobParameters={
                    "Type": "archive-retrieval", "ArchiveId": archive_id,
                    "Tier": "Bulk" if step % 2 else "Expedited"})["jobId"]
                with self._lock:
                    self.jobs.append(job_id)
                if step % 2 == 0:
                    wait_for_job(client, self.vault, job_id, timeout=60)
                    output = client.get_job_output(vaultName=self.vault, jobId=job_id)
                    assert output["body"].read() == data
                    with self._lock:
                        self.downloads += 1
            except ClientError as exc:
                error = exc.response["Error"]
                with self._lock:
                    status = exc.response["ResponseMetadata"].get("HTTPStatusCode")
                    self.errors.append(f"{error.get('Code')} {status}")
                    self.error_times.append(time.monotonic())
                time.sleep(0.1)
            except ResponseStreamingError:
                # A download cut short, as when its server is killed mid-stream: SDKs do not
                # retry a body. Recorded, so a test that expects none (a database restart
                # leaves streams alone) still fails on it.
                with self._lock:
                    self.errors.append("stream cut short")
                    self.error_times.append(time.monotonic())


def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.05)


def _check_every_archive(cluster: Cluster, vault: str, acknowledged: dict[str, bytes]) -> None:
    client = cluster.client(attempts=3)
    jobs = {archive_id: client.initiate_job(vaultName=vault, jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive_id, "Tier": "Expedited"})["jobId"]
        for archive_id in acknowledged}
    for archive_id, job_id in jobs.items():
        wait_for_job(client, vault, job_id, timeout=60)
        output = client.get_job_output(vaultName=vault, jobId=job_id)
        data = acknowledged[archive_id]
        assert output["checksum"] == tree_hash(data)
        assert output["body"].read() == data


def test_three_servers_make_every_copy_once(cluster: Cluster, database: PostgresServer,
                                            seaweed: SeaweedServer) -> None:
    """Thirty archives uploaded through the balancer, copied by whichever server claims each:
    every one gets one verified copy, made in one attempt, and the copy store holds exactly
    the objects the copy rows name (a second copy by a second server would leave a stray)."""
    from urllib.parse import urlparse

    import psycopg

    client = cluster.client(attempts=3)
    client.create_vault(vaultName="copied")
    with ThreadPoolExecutor(6) as pool:
        uploaded = set(pool.map(lambda n: client.upload_archive(
            vaultName="copied", body=pattern(64 * 1024 + n, seed=n))["archiveId"], range(30)))
    copy_url = urlparse(cluster.settings["ICEVAULT_COPY_URL"])
    store = f"s3://{copy_url.netloc}/{copy_url.path.strip('/')}"
    deadline = time.monotonic() + 60
    while True:
        listed = cluster.admin("copies", "--vault", "copied")["Archives"]
        states = [c["State"] for archive in listed for c in archive["Copies"]]
        if states == ["verified"] * 30:
            break
        assert time.monotonic() < deadline, listed
        time.sleep(0.2)
    assert {archive["ArchiveId"] for archive in listed} == uploaded
    while cluster.admin("replication")["Stores"][0]["OwedArchives"]:  # the other vaults'
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert all(c["Store"] == store and c["Attempts"] == 1
               for archive in listed for c in archive["Copies"])
    with psycopg.connect(cluster.metadata_url.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as conn:
        named = {row[0] for row in conn.execute(
            "SELECT blob_key FROM archive_copies WHERE store = %s", (store,))}
    prefix = f"{copy_url.path.strip('/')}/blobs/"
    objects = [item["Key"].removeprefix(prefix)
               for page in seaweed.client().get_paginator("list_objects_v2").paginate(
                   Bucket=copy_url.netloc, Prefix=prefix)
               for item in page.get("Contents", [])]
    assert len(objects) == len(set(objects))
    assert set(objects) == named


def test_a_killed_server_loses_nothing_acknowledged_and_no_job_twice(
        cluster: Cluster, hooks: Notifications) -> None:
    client = cluster.client()
    client.create_vault(vaultName="survive")
    _notify(cluster, client, "survive")
    victim = cluster.members[1]
    with Traffic(cluster, "survive") as traffic:
        _until(lambda: len(traffic.acknowledged) >= 8 and len(traffic.jobs) >= 2,
               "traffic under way")
        cluster.kill(victim)
        killed_after = len(traffic.acknowledged)
        # The others carry on (the victim's jobs are taken over once their lease ends;
        # the checks below wait for those).
        _until(lambda: len(traffic.acknowledged) >= killed_after + 8, "work after the kill")
    assert killed_after > 0 and len(traffic.acknowledged) > killed_after, traffic.errors
    cluster.restart(victim)
    cluster.wait_in_rotation([victim])
    # Every acknowledged archive is there, byte for byte.
    _check_every_archive(cluster, "survive", traffic.acknowledged)
    # Every job completed, and none twice: no server logged a second completion of a job,
    # and each job was notified. A notification the killed server had sent but not yet
    # recorded is sent again once its claim runs out, with the same idempotency key, so a
    # receiver that keeps the first of each key sees every job exactly once.
    completed = cluster.completions()
    assert all(completed.get(j, 0) <= 1 for j in traffic.jobs), {
        j: completed[j] for j in traffic.jobs if completed.get(j, 0) > 1}
    deadline = time.monotonic() + 45
    while not set(traffic.jobs) <= set(hooks.per_job()):
        assert time.monotonic() < deadline, set(traffic.jobs) - set(hooks.per_job())
        time.sleep(0.2)
    keys: dict[str, set[str]] = {}
    for job_id, key in hooks.received:
        keys.setdefault(job_id, set()).add(key)
    assert all(len(keys[j]) == 1 for j in traffic.jobs)
    # A server sends its claimed notifications one at a time and records each before the
    # next: the killed one can have left at most one sent but unrecorded.
    repeated = sum(1 for j in traffic.jobs if hooks.per_job()[j] > 1)
    assert repeated <= 1, f"{repeated} jobs notified more than once"
    # Multipart uploads the victim had in flight: none is half-visible as an archive; what
    # is left open can be listed, aborted, or resumed through the other servers.
    left = client.list_multipart_uploads(vaultName="survive")["UploadsList"]
    for upload in left:
        client.abort_multipart_upload(vaultName="survive", uploadId=upload["MultipartUploadId"])
    inventory = client.initiate_job(vaultName="survive", jobParameters={
        "Type": "inventory-retrieval"})["jobId"]
    wait_for_job(client, "survive", inventory, timeout=60)
    listed = json.loads(client.get_job_output(vaultName="survive", jobId=inventory)["body"].read())
    assert {a["ArchiveId"] for a in listed["ArchiveList"]} == set(traffic.acknowledged)


def test_a_database_restart_gives_503s_only_while_it_is_down(
        cluster: Cluster, database: PostgresServer) -> None:
    client = cluster.client()
    client.create_vault(vaultName="outage")
    probe = cluster.client()  # one attempt: it says what a client sees, unretried
    with Traffic(cluster, "outage", workers=3) as traffic:
        _until(lambda: len(traffic.acknowledged) >= 5, "traffic under way")
        before = len(traffic.acknowledged)
        database.pause()
        # While it is down a request is answered 503 (the traffic's clients retry as SDKs
        # do, so they may ride the outage out without one error: a probe asks instead).
        seen_down = None
        deadline = time.monotonic() + 20
        while seen_down is None and time.monotonic() < deadline:
            try:
                probe.describe_vault(vaultName="outage")
                time.sleep(0.2)
            except ClientError as error:
                seen_down = (error.response["Error"]["Code"],
                             error.response["ResponseMetadata"]["HTTPStatusCode"])
        time.sleep(1)  # an outage of a second at least, for the traffic to meet it
        database.resume()
        up = time.monotonic()
        resumed_at = len(traffic.acknowledged)
        # Work resumes, and errors are watched for 5 s after the restart.
        _until(lambda: len(traffic.acknowledged) >= resumed_at + 5
               and time.monotonic() >= up + 5, "work after the restart")
    assert before > 0
    assert seen_down == ("ServiceUnavailableException", 503), seen_down
    # Every error clients saw is Glacier's 503 (from a server, or from the balancer with no
    # server ready), and none came long after the database was back.
    assert set(traffic.errors) <= {"ServiceUnavailableException 503"}, set(traffic.errors)
    assert len(traffic.acknowledged) > before, "no work done after the database came back"
    # Recovered within seconds: no request failed later than 5 s after the restart.
    assert max(traffic.error_times, default=up) < up + 5, max(traffic.error_times) - up
    # Each server serves again by itself, without a restart.
    for member in cluster.members:
        described = cluster.client(member.url).describe_vault(vaultName="outage")
        assert described["VaultName"] == "outage"
        with urllib.request.urlopen(f"{member.url}/health/ready", timeout=5) as response:
            assert response.status == 200
    _check_every_archive(cluster, "outage", traffic.acknowledged)


def test_a_cluster_that_fails_to_start_leaves_no_process(
        database: PostgresServer, seaweed: SeaweedServer,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The balancer fails after the three servers started: they are stopped before the
    error reaches the test (they once outlived pytest)."""
    import psutil

    root = tmp_path_factory.mktemp("failing-cluster")
    cluster = Cluster(root, database.new_database(), seaweed.new_store_url(),
                      haproxy=str(root / "no-such-haproxy"))
    with pytest.raises(FileNotFoundError):
        cluster.start()
    assert len(cluster.members) == 3 and all(m.proc is not None for m in cluster.members)
    left = [p.info["pid"] for p in psutil.process_iter(["pid", "cmdline"])
            if any(str(root) in part for part in (p.info["cmdline"] or []))]
    assert left == []
