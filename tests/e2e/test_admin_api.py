"""``icevault admin`` both ways: on a data directory and through a server's admin API, with
the same output for every subcommand; and who the API refuses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import ServerProcess

ANY_ACCOUNT = re.compile(r"\b\d{12}\b")
ANY_KEY = re.compile(r"AKIV[A-Z0-9]{16}")
ANY_SECRET = re.compile(r'"SecretAccessKey": "[^"]+"')


def _normalize(text: str) -> str:
    text = ANY_SECRET.sub('"SecretAccessKey": "S"', text)
    return ANY_KEY.sub("KEY", ANY_ACCOUNT.sub("ACCOUNT", text))


class AdminCli:
    """icevault admin on a server's data directory, or through its admin API."""

    def __init__(self, server: ServerProcess, remote: bool, profile: str = "icevault",
                 credentials: Path | None = None) -> None:
        self.server, self.remote = server, remote
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(AWS_SHARED_CREDENTIALS_FILE=str(credentials or server.credentials_file),
                        AWS_CONFIG_FILE=os.devnull)
        where = (["--endpoint-url", server.url, "--profile", profile] if remote
                 else ["--data-dir", str(server.data_dir)])
        self.base = [sys.executable, "-m", "icevault", "admin", *where]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], env=self.env, capture_output=True, text=True,
                              timeout=120)


@pytest.fixture()
def two_servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    local = ServerProcess(tmp_path / "local", auth="sigv4").start()
    remote = ServerProcess(tmp_path / "remote", auth="sigv4",
                           extra_args=["--cache-ttl", "100ms"]).start()
    yield local, remote
    local.stop()
    remote.stop()


def test_every_subcommand_gives_the_same_output_both_ways(
        two_servers: tuple[ServerProcess, ServerProcess]) -> None:
    local_server, remote_server = two_servers
    local, remote = AdminCli(local_server, remote=False), AdminCli(remote_server, remote=True)
    for server in two_servers:
        server.client().create_vault(vaultName="v")
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "glacier:ListVaults", "Resource": "*"}]})
    steps: list[tuple[str, ...]] = [
        ("create-user", "alice"), ("list-users",), ("create-access-key", "--user", "alice"),
        ("list-access-keys",),
        ("put-user-policy", "--user", "alice", "--policy-name", "p", "--policy-document",
         policy),
        ("list-user-policies", "--user", "alice"),
        ("delete-user-policy", "--user", "alice", "--policy-name", "p"),
        ("create-topic", "t", "--url", "http://127.0.0.1:9/x"), ("list-topics",),
        ("list-notifications", "--vault", "v"), ("delete-topic", "t"), ("list-topics",),
        ("create-user", "bad name!"),  # refused the same way
        ("list-corrupt",), ("scrub",), ("scrub", "--vault", "v"),
        ("create-account", "--account-id", "123456789012"),
        ("create-user", "--account-id", "123456789012", "carol"),
        ("list-users", "--account-id", "123456789012"),
    ]
    # Each step runs on both sides at once (two servers, two processes): half the wait.
    with ThreadPoolExecutor(2) as both:
        for step in steps:
            here, there = both.map(lambda cli: cli(*step), (local, remote))
            assert (here.returncode, _normalize(here.stdout)) == (
                there.returncode, _normalize(there.stdout)), (step, here.stderr, there.stderr)
            assert _normalize(here.stderr) == _normalize(there.stderr), step
        list(both.map(_key_commands, (local, remote)))


def _key_commands(cli: AdminCli) -> None:
    """The key commands act on the key each side created."""
    keys = json.loads(cli("list-access-keys").stdout)["AccessKeys"]
    alice = next(k["AccessKeyId"] for k in keys if k["UserName"] == "alice")
    for command in ("disable-access-key", "enable-access-key", "delete-access-key"):
        result = cli(command, alice)
        assert (result.returncode, result.stdout) == (0, ""), result.stderr
    assert alice not in cli("list-access-keys").stdout
    assert cli("delete-user", "alice").returncode == 0
    assert json.loads(cli("list-users").stdout) == {"Users": []}
    missing = cli("delete-user", "alice")
    assert missing.returncode == 1 and "No such user" in missing.stderr


def _credentials(path: Path, profiles: dict[str, dict[str, str]]) -> Path:
    path.write_text("".join(
        f"[{name}]\naws_access_key_id = {key['AccessKeyId']}\n"
        f"aws_secret_access_key = {key['SecretAccessKey']}\n" for name, key in profiles.items()))
    return path


def test_who_the_admin_api_refuses(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", auth="sigv4",
                           extra_args=["--cache-ttl", "100ms"]).start()
    try:
        operator = AdminCli(server, remote=True)
        operator("create-user", "bob")
        bob = json.loads(operator("create-access-key", "--user", "bob").stdout)["AccessKey"]
        other = json.loads(operator("create-account", "--account-id", "222233334444").stdout)
        credentials = _credentials(tmp_path / "credentials",
                                   {"bob": bob, "other": other["AccessKey"]})
        as_bob = AdminCli(server, remote=True, profile="bob", credentials=credentials)
        as_other = AdminCli(server, remote=True, profile="other", credentials=credentials)
        # A user with no policy may do nothing.
        refused = as_bob("list-users")
        assert refused.returncode == 1
        assert "AccessDeniedException" in refused.stderr
        assert "icevault:ListUsers" in refused.stderr
        # An identity policy allowing the action lets that action through, and only it.
        operator("put-user-policy", "--user", "bob", "--policy-name", "read", "--policy-document",
                 json.dumps({"Version": "2012-10-17", "Statement": [
                     {"Effect": "Allow", "Action": "icevault:ListUsers", "Resource": "*"}]}))
        deadline = time.monotonic() + 5
        while as_bob("list-users").returncode != 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert json.loads(as_bob("list-users").stdout) == {"Users": ["bob"]}
        assert as_bob("create-user", "mallory").returncode == 1
        # Another account's root manages its own account, and nothing else.
        assert as_other("create-user", "dave").returncode == 0
        assert json.loads(as_other("list-users").stdout) == {"Users": ["dave"]}
        account = json.loads(operator("list-users").stdout)
        assert account == {"Users": ["bob"]}
        operator_account = json.loads(operator("list-access-keys").stdout)[
            "AccessKeys"][0]["AccountId"]
        for step in (("list-users", "--account-id", operator_account),
                     ("create-account",), ("scrub",),
                     ("disable-access-key", bob["AccessKeyId"])):
            result = as_other(*step)
            assert result.returncode == 1, step
            assert "AccessDeniedException" in result.stderr, (step, result.stderr)
        assert as_other("list-corrupt").returncode == 0  # its own account's only
        assert "bob" in operator("list-users").stdout
        # Unsigned: refused before anything else.
        request = urllib.request.Request(f"{server.url}/_icevault/admin/ListUsers", data=b"{}",
                                         method="POST")
        with pytest.raises(urllib.error.HTTPError) as exc:
            urllib.request.urlopen(request, timeout=10)
        with exc.value:
            assert exc.value.code in (400, 403)
            assert json.loads(exc.value.read())["code"] == "MissingAuthenticationTokenException"
    finally:
        server.stop()


def test_a_scrub_asked_through_the_api_does_not_give_way_to_its_own_request(
        tmp_path: Path) -> None:
    """Background work gives way while requests are in flight; the admin call that runs a
    scrub is one, for as long as the scrub, and must not slow it to a MiB a half
    second (32 MiB: 16 s)."""
    from icevault.core.treehash import MIB
    from tests.support import pattern

    server = ServerProcess(tmp_path / "data", auth="sigv4").start()
    try:
        client = server.client()
        client.create_vault(vaultName="v")
        client.upload_archive(vaultName="v", body=pattern(32 * MIB))
        started = time.monotonic()
        result = AdminCli(server, remote=True)("scrub", "--vault", "v")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["BytesRead"] == 32 * MIB
        assert time.monotonic() - started < 4.0
    finally:
        server.stop()
