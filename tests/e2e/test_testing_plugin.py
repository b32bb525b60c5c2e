"""The pytest plugin as a user's project meets it: installed, found through its entry point,
fixtures pointing unchanged application code at a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

APPLICATION = '''
import boto3


def archive_vault(name: str, payload: bytes) -> str:
    """Application code under test: no endpoint, no credentials, as in production."""
    glacier = boto3.client("glacier")
    glacier.create_vault(vaultName=name)
    return glacier.upload_archive(vaultName=name, body=payload)["archiveId"]


def vault_names() -> list[str]:
    return [v["VaultName"] for v in boto3.client("glacier").list_vaults()["VaultList"]]
'''

TESTS = '''
import os

from pathlib import Path

import pytest

from icevault.testing import Fault
from myapp import archive_vault, vault_names


def test_unchanged_application_reaches_the_fixture_server(icevault_server):
    archive_id = archive_vault("backups", b"nightly")
    assert len(archive_id) == 138
    assert vault_names() == ["backups"]
    assert os.environ["AWS_ENDPOINT_URL_GLACIER"] == icevault_server.endpoint_url


def test_each_test_gets_a_fresh_server(icevault_server):
    assert vault_names() == []


def test_glacier_client_fixture(glacier_client, icevault_server):
    glacier_client.create_vault(vaultName="direct")
    assert vault_names() == ["direct"]


@pytest.mark.icevault(auth="off", tier_delays={"bulk": "5h"})
def test_marker_options(icevault_server, glacier_client):
    glacier_client.create_vault(vaultName="v")
    archive_id = glacier_client.upload_archive(vaultName="v", body=b"x")["archiveId"]
    job = glacier_client.initiate_job(vaultName="v", jobParameters={
        "Type": "archive-retrieval", "ArchiveId": archive_id, "Tier": "Bulk"})["jobId"]
    assert glacier_client.describe_job(vaultName="v", jobId=job)["StatusCode"] == "InProgress"
    icevault_server.advance_clock(hours=5)
    assert glacier_client.describe_job(vaultName="v", jobId=job)["StatusCode"] == "Succeeded"


def test_session_server_first(icevault_session_server):
    archive_vault("left-behind", b"x")
    icevault_session_server.inject(Fault.throttle("ListVaults"))


def test_session_server_second_is_clean(icevault_session_server):
    assert vault_names() == []  # the vault and the throttling rule are gone


@pytest.fixture(scope="session")
def session_endpoint(icevault_session_server):
    # A user's own session fixture may build on it: it is session-scoped itself.
    return icevault_session_server.endpoint_url


def test_session_fixture_of_the_user(session_endpoint, icevault_session_server):
    assert session_endpoint == icevault_session_server.endpoint_url
    assert vault_names() == []


def test_environment_is_restored():
    assert os.environ.get("AWS_ENDPOINT_URL_GLACIER") is None
'''


def test_plugin_fixtures_in_a_users_project(pytester: pytest.Pytester,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL_GLACIER", "AWS_PROFILE", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(myapp=APPLICATION, test_app=TESTS)
    # A separate interpreter, so the plugin is found the way a user's run finds it: through
    # the installed package's pytest11 entry point (no -p, no conftest).
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=8)


def _readme_block(after: str) -> str:
    readme = (Path(__file__).parents[2] / "docs" / "testing.md").read_text()
    start = readme.index("```python\n", readme.index(after)) + len("```python\n")
    return readme[start:readme.index("```", start)]


def test_the_readme_example_passes_as_written(pytester: pytest.Pytester) -> None:
    # The testing kit's documented example, exactly as printed, is a passing test suite.
    pytester.makepyfile(myapp=_readme_block("Your application, unchanged"),
                        test_myapp=_readme_block("Its tests:"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=4)
