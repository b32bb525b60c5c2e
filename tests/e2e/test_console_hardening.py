"""The console's forms under attack, over raw HTTP: body caps and deadlines (the one body
reader of every route), peers that hang up, numbers, sessions that must end, and sign-in
attempts that must be limited."""

from __future__ import annotations

import http.client
import re
import socket
import time
import urllib.parse
from collections.abc import Iterator

import pytest

from tests.e2e.test_hostile_edge import read_response
from tests.support import RawResponse, ServerProcess


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("console-hardening") / "data", auth="sigv4",
                           extra_args=["--io-timeout", "2s"]).start()
    yield server
    server.stop()


def _head(server: ServerProcess, method: str, path: str, headers: dict[str, str],
          body: bytes = b"", content_length: int | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    length = len(body) if content_length is None else content_length
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}",
             f"Content-Length: {length}", *(f"{k}: {v}" for k, v in headers.items())]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return sock


def _closed(sock: socket.socket, timeout: float = 5.0) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True  # closed with our unread bytes still in its buffer: a reset
    except TimeoutError:
        return False
    return True


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_an_oversized_sign_in_body_is_refused_unread_and_the_connection_closed(
        console_server: ServerProcess) -> None:
    started = time.monotonic()
    with _head(console_server, "POST", "/console/sign-in", FORM, b"a" * 1000,
               content_length=1024 * 1024) as sock:
        response = read_response(sock, timeout=5)
        assert response.status == 400
        assert b"at most 2048 bytes" in response.body
        assert _closed(sock)
    assert time.monotonic() - started < 3


def test_sign_in_floods_do_not_grow_memory(console_server: ServerProcess) -> None:
    """300 connections each declare a 1 MiB sign-in form and send all of it but the last
    byte. Before the console read its forms with the API's capped reader, each one held its
    megabyte (RSS 61 -> 442 MB, never freed) and none was answered."""
    chunk = b"x" * (1024 * 1024 - 1)

    def flood() -> int:
        answered = 0
        sockets = []
        try:
            for _ in range(300):
                sock = _head(console_server, "POST", "/console/sign-in", FORM,
                             content_length=1024 * 1024)
                sock.setblocking(False)
                try:
                    sock.send(chunk)
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass
                sockets.append(sock)
            deadline = time.monotonic() + 15
            for sock in sockets:
                sock.setblocking(True)
                try:
                    wait = max(0.1, deadline - time.monotonic())
                    if read_response(sock, timeout=wait).status == 400:
                        answered += 1
                except (ConnectionError, TimeoutError):
                    pass
        finally:
            for sock in sockets:
                sock.close()
        return answered

    # The allocator's high-water mark rises in steps over the first rounds, once more on a
    # loaded machine where more requests are in flight at once (78, 79, 79, 88, 131, 131
    # MiB in one CI run beside a benchmark); a leak grows every round (the one fixed held
    # 190 MiB a round). So some round among the last three must add under 8 MiB.
    answered = 0
    sizes = []
    for _ in range(6):
        answered += flood()
        sizes.append(console_server.rss())
    growth = [after - before for before, after in zip(sizes[-4:], sizes[-3:], strict=False)]
    assert min(growth) < 8 * 1024 * 1024, (
        f"server grew every round: RSS by round {[round(size / 2**20) for size in sizes]} MiB")
    assert answered >= 6 * 295, answered


def test_a_form_that_trickles_in_times_out(console_server: ServerProcess) -> None:
    started = time.monotonic()
    with _head(console_server, "POST", "/console/sign-in", FORM, b"token=",
               content_length=200) as sock:
        response = read_response(sock, timeout=15)
    assert response.status == 408
    assert 1.5 < time.monotonic() - started < 8


def test_a_hang_up_mid_form_is_one_log_line_without_a_traceback(
        console_server: ServerProcess) -> None:
    mark = len(console_server.log())
    for _ in range(20):
        with _head(console_server, "POST", "/console/sign-in", FORM, b"token=abc",
                   content_length=500):
            time.sleep(0.02)
    deadline = time.monotonic() + 5
    while console_server.log()[mark:].count("console:sign_in") < 20:
        assert time.monotonic() < deadline, console_server.log()[mark:]
        time.sleep(0.05)
    written = console_server.log()[mark:]
    assert "Traceback" not in written
    assert "ERROR" not in written
    assert len([line for line in written.splitlines() if "console:sign_in" in line]) == 20


def _answer(answer: http.client.HTTPResponse) -> RawResponse:
    headers: dict[str, str] = {}
    for name, value in answer.getheaders():  # several Set-Cookie lines are kept, one a line
        key = name.lower()
        headers[key] = f"{headers[key]}\n{value}" if key in headers else value
    return RawResponse(answer.status, headers, answer.read())


def _get(server: ServerProcess, path: str, cookie: str | None = None) -> RawResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        return _answer(conn.getresponse())
    finally:
        conn.close()


def _post(server: ServerProcess, path: str, fields: dict[str, str],
          cookie: str | None = None) -> RawResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("POST", path, body=urllib.parse.urlencode(fields).encode(),
                     headers={**FORM, **({"Cookie": cookie} if cookie else {})})
        return _answer(conn.getresponse())
    finally:
        conn.close()


def sign_in(server: ServerProcess, key: tuple[str, str],
            source: str | None = None) -> tuple[RawResponse, str | None]:
    """Sign in with an access key; the answer, and the session cookie when it worked."""
    form = _get(server, "/console/sign-in")
    token_cookie = form.headers["set-cookie"].split(";", 1)[0]
    token = re.search(rb'name="token" value="([^"]+)"', form.body)
    assert token is not None
    answer = _post(server, "/console/sign-in", {
        "token": token.group(1).decode(), "access_key_id": key[0],
        "secret_access_key": key[1]}, cookie=token_cookie)
    found = re.search(r"icevault_console=([^;]+)", answer.headers.get("set-cookie", ""))
    return answer, None if found is None else f"icevault_console={found.group(1)}"


@pytest.mark.parametrize("query", ["min=99999999999999999999999", "max=99999999999999999999999",
                                   "after=99999999999999999999999", "page=99999999999999999999",
                                   "min=1e400", "after=-1"])
def test_numbers_in_console_queries_are_validated(console_server: ServerProcess,
                                                  query: str) -> None:
    console_server.client().create_vault(vaultName="numbers")
    _, cookie = sign_in(console_server, console_server.root_credentials())
    assert cookie is not None
    answer = _get(console_server, f"/console/vaults/numbers?{query}", cookie)
    assert answer.status == 400, answer.body[:300]
    assert b"<html" in answer.body.lower()
    assert b"Traceback" not in answer.body


def _csrf(page: RawResponse) -> str:
    found = re.search(rb'name="csrf" value="([^"]+)"', page.body)
    assert found is not None, page.body[:500]
    return found.group(1).decode()


def test_sign_out_ends_the_session_for_good(console_server: ServerProcess) -> None:
    _, cookie = sign_in(console_server, console_server.root_credentials())
    assert cookie is not None
    page = _get(console_server, "/console/", cookie)
    assert page.status == 200
    out = _post(console_server, "/console/sign-out", {"csrf": _csrf(page)}, cookie)
    assert out.status == 303
    # The same cookie, kept by an attacker or another tab: signed out.
    again = _get(console_server, "/console/", cookie)
    assert again.status == 303
    assert again.headers["location"] == "/console/sign-in"


def test_disabling_a_key_ends_its_sessions_and_enabling_it_brings_none_back(
        console_server: ServerProcess) -> None:
    import json
    import subprocess
    import sys

    def admin(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "icevault", "admin", "--data-dir",
                               str(console_server.data_dir), *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    key = json.loads(admin("create-access-key"))["AccessKey"]
    _, cookie = sign_in(console_server, (key["AccessKeyId"], key["SecretAccessKey"]))
    assert cookie is not None
    assert _get(console_server, "/console/", cookie).status == 200
    admin("disable-access-key", key["AccessKeyId"])
    admin("enable-access-key", key["AccessKeyId"])
    time.sleep(1.2)  # the key cache (--cache-ttl 1s)
    assert _get(console_server, "/console/", cookie).status == 303
    # A new sign-in with the enabled key works.
    _, fresh = sign_in(console_server, (key["AccessKeyId"], key["SecretAccessKey"]))
    assert fresh is not None
    assert _get(console_server, "/console/", fresh).status == 200


def test_failed_sign_ins_are_limited_per_key_on_every_server(tmp_path_factory:
                                                             pytest.TempPathFactory) -> None:
    from tests.postgres import PostgresServer

    database: PostgresServer = PostgresServer().start()
    try:
        url = database.new_database()
        root = tmp_path_factory.mktemp("limits")
        servers = [ServerProcess(root / f"s{i}", auth="sigv4",
                                 extra_args=["--metadata-url", url]).start() for i in (1, 2)]
        try:
            key_id, secret = servers[0].root_credentials()
            statuses = [sign_in(servers[i % 2], (key_id, "wrong"))[0].status
                        for i in range(12)]
            assert statuses[:10] == [401] * 10
            assert statuses[10:] == [429, 429]
            # Limited on both servers, the right secret included, and said so.
            for server in servers:
                answer, cookie = sign_in(server, (key_id, secret))
                assert answer.status == 429 and cookie is None
                assert answer.headers["retry-after"] == "60"
                assert b"Too many failed sign-ins" in answer.body
        finally:
            for server in servers:
                server.stop()
    finally:
        database.stop()


def test_a_failed_sign_in_keeps_the_key_id(console_server: ServerProcess) -> None:
    answer, cookie = sign_in(console_server, ("AKIVKEEPTHISKEYID000", "wrong"))
    assert answer.status == 401 and cookie is None
    assert b'value="AKIVKEEPTHISKEYID000"' in answer.body


def _start_retrieval(server: ServerProcess, vault: str, archive_id: str,
                     cookie: str) -> str:
    """Start a retrieval from the console and return the job's id once it succeeded."""
    from tests.support import wait_for_job

    page = _get(server, f"/console/vaults/{vault}", cookie)
    started = _post(server, f"/console/vaults/{vault}/jobs", {
        "csrf": _csrf(page), "archive_id": archive_id, "tier": "Standard"}, cookie)
    assert started.status == 303, started.body[:300]
    client = server.client()
    job_id = next(j["JobId"] for j in client.list_jobs(vaultName=vault)["JobList"]
                  if j.get("ArchiveId") == archive_id)
    wait_for_job(client, vault, job_id)
    return str(job_id)


def _download(server: ServerProcess, path: str, cookie: str) -> tuple[int, dict[str, str],
                                                                       bytes, bool]:
    """Status, headers, the bytes received, and whether all Content-Length bytes came."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Cookie": cookie})
        answer = conn.getresponse()
        headers = {k.lower(): v for k, v in answer.getheaders()}
        try:
            body = answer.read()
            whole = True
        except http.client.IncompleteRead as partial:
            body, whole = partial.partial, False
        return answer.status, headers, body, whole
    finally:
        conn.close()


def test_console_downloads_verify_what_they_send(console_server: ServerProcess) -> None:
    """A browser checks no tree-hash header: bytes corrupted after the job succeeded were
    served as good. The console checks each MiB as it sends it, stops, and marks the
    archive as a scrub would."""
    import json
    import subprocess
    import sys

    from tests.e2e.test_integrity import flip_local
    from tests.support import pattern

    client = console_server.client()
    client.create_vault(vaultName="verified")
    body = pattern(3 * 1024 * 1024 + 5000, seed=8)
    good = client.upload_archive(vaultName="verified", body=body,
                                 archiveDescription="reports/invoice_1.pdf")["archiveId"]
    bad = client.upload_archive(vaultName="verified", body=body,
                                archiveDescription="copy")["archiveId"]
    _, cookie = sign_in(console_server, console_server.root_credentials())
    assert cookie is not None
    good_job = _start_retrieval(console_server, "verified", good, cookie)
    bad_job = _start_retrieval(console_server, "verified", bad, cookie)
    status, headers, received, whole = _download(
        console_server, f"/console/vaults/verified/jobs/{good_job}/output", cookie)
    assert (status, whole, received == body) == (200, True, True)
    assert headers["content-disposition"] == 'attachment; filename="invoice_1.pdf"'
    flip_local(console_server.data_dir, bad, 2 * 1024 * 1024 + 10)  # in the third MiB
    status, headers, received, whole = _download(
        console_server, f"/console/vaults/verified/jobs/{bad_job}/output", cookie)
    assert status == 200 and not whole
    assert len(received) <= 2 * 1024 * 1024  # the good first two MiB at most
    assert received == body[:len(received)]
    corrupt = subprocess.run([sys.executable, "-m", "icevault", "admin", "--data-dir",
                              str(console_server.data_dir), "list-corrupt"],
                             capture_output=True, text=True, timeout=60)
    assert [c["ArchiveId"] for c in json.loads(corrupt.stdout)["Corrupt"]] == [bad]
    again, _, page, _ = _download(console_server,
                                  f"/console/vaults/verified/jobs/{bad_job}/output", cookie)
    assert again == 500 and b"failed verification" in page  # ServiceUnavailableException
    assert "Traceback" not in console_server.log()
