"""A PostgreSQL outage seen from icevault: requests fail fast with 503 while the database is
down, and every path, the hot reads included, recovers by itself when it is back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.postgres import PostgresServer
from tests.support import ServerProcess, seconds_until_refused, wait_for_job


@pytest.fixture()
def database() -> Iterator[PostgresServer]:
    server = PostgresServer().start()  # its own: this test stops it
    yield server
    server.stop()


def _every_path(client: Any, archive_id: str, job_id: str) -> bytes:
    client.describe_vault(vaultName="v")  # a key lookup and a vault read
    client.describe_job(vaultName="v", jobId=job_id)  # hot read
    client.initiate_job(vaultName="v", jobParameters={"Type": "archive-retrieval",
                                                      "ArchiveId": archive_id})  # a write
    body: bytes = client.get_job_output(vaultName="v", jobId=job_id)["body"].read()
    return body


def test_requests_fail_fast_while_postgres_is_down_and_recover_after(
        database: PostgresServer, tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4", extra_args=[
        "--metadata-url", database.new_database(), "--cache-ttl", "100ms"]).start()
    try:
        client = server.client()
        client.create_vault(vaultName="v")
        archive_id = client.upload_archive(vaultName="v", body=b"acknowledged")["archiveId"]
        job_id = client.initiate_job(vaultName="v", jobParameters={
            "Type": "archive-retrieval", "ArchiveId": archive_id})["jobId"]
        wait_for_job(client, "v", job_id)
        assert _every_path(client, archive_id, job_id) == b"acknowledged"
        database.pause()
        time.sleep(0.3)  # past the key cache
        calls: tuple[Callable[[], object], ...] = (
                     lambda: client.describe_vault(vaultName="v"),
                     lambda: client.describe_job(vaultName="v", jobId=job_id),
                     lambda: client.get_job_output(vaultName="v", jobId=job_id))
        for call in calls:
            started = time.monotonic()
            with pytest.raises(ClientError) as exc:
                call()
            error = exc.value.response
            assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
                "ServiceUnavailableException", 503)
            assert time.monotonic() - started < 5
        database.resume()
        deadline = time.monotonic() + 15
        while True:
            try:
                assert _every_path(client, archive_id, job_id) == b"acknowledged"
                break
            except ClientError:
                assert time.monotonic() < deadline, server.log()[-3000:]
                time.sleep(0.2)
        # Once back, it stays back: every path works on every try.
        for _ in range(20):
            assert _every_path(client, archive_id, job_id) == b"acknowledged"
        assert "Traceback" not in server.log()
    finally:
        server.stop()


def test_a_second_server_on_one_data_directory_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    first = ServerProcess(tmp_path / "data", auth="off").start()
    try:
        second = subprocess.run(
            [sys.executable, "-m", "icevault", "serve", "--port", "0", "--data-dir",
             str(tmp_path / "data"), "--auth", "off"],
            capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert first.proc is not None
        assert f"another icevault server (pid {first.proc.pid}) is using" in second.stderr
        assert "Traceback" not in second.stderr
        first.client().list_vaults()  # the first one serves on, untouched
        first.kill()  # however it ends, the directory is free again
        ServerProcess(tmp_path / "data", auth="off").start().stop()
    finally:
        first.stop()


def test_servers_starting_together_on_one_database_make_one_account_and_key(
        database: PostgresServer, tmp_path: Path) -> None:
    import threading

    url = database.new_database()
    servers = [ServerProcess(tmp_path / f"s{n}", auth="sigv4", extra_args=[
        "--metadata-url", url]) for n in range(3)]
    failures: list[BaseException] = []

    def start(server: ServerProcess) -> None:
        try:
            server.start()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not failures, failures
        keys = {s.root_credentials() for s in servers}
        assert len(keys) == 1  # one root key, written to every data directory
        accounts = {s.client().list_vaults()["ResponseMetadata"]["HTTPStatusCode"]
                    for s in servers}
        assert accounts == {200}
        import psycopg

        dbname = url.split("@/")[1].split("?")[0]
        with psycopg.connect(host=str(database.root), port=database.port, user="postgres",
                             dbname=dbname) as conn:
            assert conn.execute("SELECT count(*) FROM access_keys").fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM accounts").fetchone() == (1,)
    finally:
        for server in servers:
            server.stop()


def test_a_change_made_through_one_server_applies_on_another_within_a_second(
        database: PostgresServer, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    url = database.new_database()
    first = ServerProcess(tmp_path / "a", auth="sigv4", extra_args=["--metadata-url", url])
    second = ServerProcess(tmp_path / "b", auth="sigv4", extra_args=["--metadata-url", url])
    first.start()
    second.start()
    try:
        root = first.client()
        root.create_vault(vaultName="shared")

        def admin(*args: str) -> Any:
            result = subprocess.run(
                [sys.executable, "-m", "icevault", "admin", "--endpoint-url", first.url,
                 "--profile", "icevault", *args], capture_output=True, text=True, timeout=60,
                env={"AWS_SHARED_CREDENTIALS_FILE": str(first.credentials_file),
                     "AWS_CONFIG_FILE": "/dev/null", "PATH": "/usr/bin:/bin"})
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout) if result.stdout.strip() else None

        admin("create-user", "worker")
        admin("put-user-policy", "--user", "worker", "--policy-name", "all",
              "--policy-document", json.dumps({"Version": "2012-10-17", "Statement": [
                  {"Effect": "Allow", "Action": "glacier:*", "Resource": "*"}]}))
        key = admin("create-access-key", "--user", "worker")["AccessKey"]
        import boto3
        import botocore.config

        on_second = boto3.client(
            "glacier", endpoint_url=second.url, region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
            config=botocore.config.Config(retries={"total_max_attempts": 1}))
        for _ in range(3):  # cached on the second server
            on_second.describe_vault(vaultName="shared")

        def refused_within(change: Any, code: str) -> float:
            return seconds_until_refused(
                change, [lambda: on_second.describe_vault(vaultName="shared")], code)

        # A vault policy denying the user, set through the first server.
        deny = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "glacier:DescribeVault",
            "Resource": "*"}]})
        took = refused_within(lambda: root.set_vault_access_policy(
            vaultName="shared", policy={"Policy": deny}), "AccessDeniedException")
        assert took <= 1.5, took
        root.delete_vault_access_policy(vaultName="shared")
        deadline = time.monotonic() + 5
        while True:
            try:
                on_second.describe_vault(vaultName="shared")
                break
            except ClientError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        # The user's key, disabled through the first server's admin API.
        took = refused_within(lambda: admin("disable-access-key", key["AccessKeyId"]),
                              "UnrecognizedClientException")
        assert took <= 1.5, took
    finally:
        first.stop()
        second.stop()
