"""Client pieces without a network: chunk plans, the bandwidth limiter, job polling, and the
exact request sequence of a chunked download (botocore's Stubber)."""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from icevault.client import (
    ChecksumMismatchError,
    DownloadConfig,
    JobExpiredError,
    JobNotReadyError,
    RetriesExceededError,
    Subscriber,
    download_job_output,
    get_job_output,
    plan_chunks,
    upload_archive,
    wait_for_job,
)
from icevault.core.treehash import MIB, combine_hex, is_tree_hash_aligned, tree_hash
from icevault.pacing import BandwidthLimiter
from tests.support import SleepingClock


@settings(max_examples=150, deadline=None)
@given(
    archive_mib=st.integers(1, 40),
    tail=st.integers(0, MIB - 1),
    start_mib=st.integers(0, 39),
    length_mib=st.integers(1, 40),
    chunk_exp=st.integers(0, 5),
)
def test_every_planned_chunk_is_a_tree_node(
    archive_mib: int, tail: int, start_mib: int, length_mib: int, chunk_exp: int
) -> None:
    archive_size = archive_mib * MIB + tail
    leaves = -(-archive_size // MIB)
    assume(start_mib < leaves)
    start = start_mib * MIB
    end = min((start_mib + length_mib) * MIB, archive_size) - 1
    chunks = plan_chunks(end - start + 1, MIB << chunk_exp, archive_start=start, archive_size=archive_size)
    assert chunks[0].start == 0 and chunks[-1].end == end - start
    for before, after in itertools.pairwise(chunks):
        assert after.start == before.end + 1
    for chunk in chunks:
        assert chunk.size <= MIB << chunk_exp
        assert is_tree_hash_aligned(start + chunk.start, start + chunk.end, archive_size), chunk


def test_chunk_hashes_combine_to_the_whole() -> None:
    data = bytes((i * 7) % 251 for i in range(int(6.5 * MIB)))
    for exp in range(4):
        chunks = plan_chunks(len(data), MIB << exp)
        assert combine_hex([tree_hash(data[c.start : c.end + 1]) for c in chunks]) == tree_hash(data)


def test_unaligned_chunk_sizes_are_refused() -> None:
    for bad in (0, 1000, 3 * MIB, MIB + 1):
        with pytest.raises(ValueError, match="not tree-hash aligned"):
            plan_chunks(10 * MIB, bad)



def test_bandwidth_limiter_paces_without_sleeping_for_real() -> None:
    fake = SleepingClock()
    limiter = BandwidthLimiter(1000, clock=fake.clock, sleep=fake.sleep)
    for _ in range(10):
        limiter.consume(500)
    # 5000 bytes at 1000 B/s with a 250-byte burst: about 4.75 s of waiting.
    assert 4.5 <= fake.now <= 5.0


def test_wait_for_job_backs_off_and_caps() -> None:
    fake = SleepingClock()
    answers = iter([{"Completed": False}] * 6 + [{"Completed": True, "StatusCode": "Succeeded", "JobId": "j"}])

    class Client:
        def describe_job(self, **_kwargs: Any) -> dict[str, Any]:
            return next(answers)

    job = wait_for_job(Client(), "v", "j", initial_delay=1, max_delay=4, sleep=fake.sleep, clock=fake.clock)
    assert job["JobId"] == "j"
    assert fake.slept == [1, 2, 4, 4, 4, 4]


def test_wait_for_job_timeout_and_failure() -> None:
    fake = SleepingClock()

    class Pending:
        def describe_job(self, **_kwargs: Any) -> dict[str, Any]:
            return {"Completed": False}

    with pytest.raises(JobNotReadyError, match="still in progress"):
        wait_for_job(Pending(), "v", "j", timeout=10, sleep=fake.sleep, clock=fake.clock)
    assert fake.now == pytest.approx(10)

    class Failed:
        def describe_job(self, **_kwargs: Any) -> dict[str, Any]:
            return {"Completed": True, "StatusCode": "Failed", "StatusMessage": "archive deleted"}

    with pytest.raises(JobNotReadyError, match="archive deleted"):
        wait_for_job(Failed(), "v", "j", sleep=fake.sleep, clock=fake.clock)


def test_get_job_output_checks_arguments_before_any_request() -> None:
    class Exploding:
        def get_job_output(self, **_kwargs: Any) -> None:
            raise AssertionError("no request may be made")

    for args in (("", "job", "vault"), ("-", "", "vault"), ("-", "job", "")):
        with pytest.raises(ValueError, match="required"):
            get_job_output(*args, client=Exploding())
    with pytest.raises(TypeError):
        get_job_output("-", "job")  # type: ignore[call-arg]


def _client() -> Any:
    return boto3.client("glacier", region_name="us-east-1", aws_access_key_id="a",
                        aws_secret_access_key="b", endpoint_url="http://stubbed.invalid")


def _body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def _describe(size: int, whole_hash: str) -> dict[str, Any]:
    return {"JobId": "job-1", "Action": "ArchiveRetrieval", "StatusCode": "Succeeded",
            "Completed": True, "ArchiveSizeInBytes": size, "RetrievalByteRange": f"0-{size - 1}",
            "SHA256TreeHash": whole_hash, "ArchiveSHA256TreeHash": whole_hash, "ArchiveId": "arch"}


def test_stubbed_chunked_download_makes_exactly_these_calls(tmp_path: Path) -> None:
    data = bytes((i * 13) % 256 for i in range(5 * MIB + 100))
    client = _client()
    stubber = Stubber(client)
    stubber.add_response("describe_job", _describe(len(data), tree_hash(data)),
                         {"accountId": "-", "vaultName": "v", "jobId": "job-1"})
    for start in range(0, len(data), 2 * MIB):
        end = min(start + 2 * MIB, len(data)) - 1
        piece = data[start : end + 1]
        stubber.add_response(
            "get_job_output",
            {"body": _body(piece), "checksum": tree_hash(piece), "status": 206,
             "contentRange": f"bytes {start}-{end}/{len(data)}", "acceptRanges": "bytes",
             "contentType": "application/octet-stream"},
            {"accountId": "-", "vaultName": "v", "jobId": "job-1", "range": f"bytes={start}-{end}"},
        )
    with stubber:
        result = download_job_output("v", "job-1", tmp_path / "out.bin", chunk_size=2 * MIB,
                                     workers=1, client=client)
    stubber.assert_no_pending_responses()
    assert (tmp_path / "out.bin").read_bytes() == data
    assert (result.chunks, result.fetched, result.tree_hash) == (3, 3, tree_hash(data))
    assert not (tmp_path / "out.bin.icevault-journal").exists()


def test_stubbed_corrupt_chunk_is_retried_then_given_up(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    client = _client()
    stubber = Stubber(client)
    stubber.add_response("describe_job", _describe(len(data), tree_hash(data)))
    bad = bytes([data[0] ^ 1]) + data[1:]
    for _ in range(3):
        stubber.add_response("get_job_output", {
            "body": _body(bad), "checksum": tree_hash(data), "status": 206,
            "contentRange": f"bytes 0-{len(data) - 1}/{len(data)}"})
    fake = SleepingClock()
    config = DownloadConfig(max_attempts=3, sleep=fake.sleep, clock=fake.clock)
    with stubber, pytest.raises(RetriesExceededError, match="checksum-mismatch") as raised:
        download_job_output("v", "job-1", tmp_path / "out.bin", chunk_size=MIB, workers=1,
                            client=client, config=config)
    assert raised.value.exit_code == 3  # a verification failure, as the CLI documents
    assert not (tmp_path / "out.bin").exists()
    assert len(fake.slept) == 2 and all(s <= 0.5 for s in fake.slept)


def test_stubbed_expired_job_says_how_to_start_again(tmp_path: Path) -> None:
    client = _client()
    stubber = Stubber(client)
    stubber.add_client_error("describe_job", "ResourceNotFoundException", "The job ID was not found: j",
                             404)
    with stubber, pytest.raises(JobExpiredError, match="icevault retrieve --vault v"):
        download_job_output("v", "j", tmp_path / "o", client=client)


def test_stubbed_whole_mismatch_leaves_no_file(tmp_path: Path) -> None:
    data = b"x" * 1000
    client = _client()
    stubber = Stubber(client)
    stubber.add_response("describe_job", _describe(len(data), "0" * 64))
    stubber.add_response("get_job_output", {
        "body": _body(data), "checksum": tree_hash(data), "status": 206,
        "contentRange": "bytes 0-999/1000"})
    with stubber, pytest.raises(ChecksumMismatchError, match="does not match the job"):
        download_job_output("v", "job-1", tmp_path / "out.bin", client=client)
    assert list(tmp_path.iterdir()) == []


def test_config_chunk_size_is_not_overridden_by_defaults(tmp_path: Path) -> None:
    data = bytes((i * 7) % 256 for i in range(2 * MIB + 10))
    client = _client()
    stubber = Stubber(client)
    stubber.add_response("describe_job", _describe(len(data), tree_hash(data)))
    for start in range(0, len(data), MIB):
        end = min(start + MIB, len(data)) - 1
        piece = data[start:end + 1]
        stubber.add_response(
            "get_job_output",
            {"body": _body(piece), "checksum": tree_hash(piece), "status": 206,
             "contentRange": f"bytes {start}-{end}/{len(data)}"},
            {"accountId": "-", "vaultName": "v", "jobId": "job-1", "range": f"bytes={start}-{end}"},
        )
    with stubber:
        result = download_job_output("v", "job-1", tmp_path / "out.bin", client=client,
                                     config=DownloadConfig(chunk_size=MIB, workers=1))
    stubber.assert_no_pending_responses()
    assert result.chunks == 3
    assert (tmp_path / "out.bin").read_bytes() == data


class Events(Subscriber):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_queued(self, **kwargs: Any) -> None:
        self.seen.append("queued")

    def on_progress(self, **kwargs: Any) -> None:
        self.seen.append("progress")

    def on_done(self, **kwargs: Any) -> None:
        self.seen.append("done")


@pytest.mark.parametrize("size", [1000, 3 * MIB + 5])  # one UploadArchive; a multipart upload
def test_stream_uploads_check_the_servers_checksum_and_tell_subscribers(size: int) -> None:
    data = bytes((i * 3) % 256 for i in range(size))
    multipart = size > MIB

    def stub(wrong: bool) -> Any:
        client = _client()
        stubber = Stubber(client)
        if multipart:
            stubber.add_response("initiate_multipart_upload", {"uploadId": "u", "location": "l"})
            for start in range(0, size, MIB):
                piece = data[start:start + MIB]
                stubber.add_response("upload_multipart_part", {"checksum": tree_hash(piece)})
            stubber.add_response("complete_multipart_upload", {
                "archiveId": "a", "location": "l",
                "checksum": "0" * 64 if wrong else tree_hash(data)})
        else:
            stubber.add_response("upload_archive", {
                "archiveId": "a", "location": "l",
                "checksum": "0" * 64 if wrong else tree_hash(data)})
        return client, stubber

    client, stubber = stub(wrong=False)
    events = Events()
    with stubber:
        result = upload_archive("v", io.BytesIO(data), part_size=MIB, workers=1, client=client,
                                subscribers=[events])
    assert result.tree_hash == tree_hash(data)
    assert events.seen[0] == "queued" and events.seen[-1] == "done"
    client, stubber = stub(wrong=True)
    with stubber, pytest.raises(ChecksumMismatchError):
        upload_archive("v", io.BytesIO(data), part_size=MIB, workers=1, client=client)


def test_clients_share_one_parse_of_the_service_model(monkeypatch: pytest.MonkeyPatch) -> None:
    # A migration makes three clients; each parse of Glacier's model costs 50-100 ms of start.
    import botocore.loaders

    from icevault.client.api import make_glacier_client

    reads: list[str] = []
    load_file = botocore.loaders.JSONFileLoader.load_file

    def counted(self: Any, file_path: str) -> Any:
        if "glacier" in file_path:
            reads.append(file_path)
        return load_file(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counted)
    first = make_glacier_client(endpoint_url="http://127.0.0.1:9", region="us-east-1")
    before = list(reads)  # the first client may read it (unless an earlier test did)
    others = [make_glacier_client(endpoint_url="http://127.0.0.1:9", region=region,
                                  max_pool_connections=4) for region in ("eu-west-1", "us-east-1")]
    assert reads == before
    assert [c.meta.region_name for c in (first, *others)] == ["us-east-1", "eu-west-1", "us-east-1"]
    assert all(c.meta.service_model.service_name == "glacier" for c in (first, *others))
    for client in (first, *others):
        client.close()
