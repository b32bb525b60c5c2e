"""Names and ids are matched whole: a trailing newline is not part of a valid name.

Python's ``$`` also matches before a final newline, so ``re.match(r"^[a-z]+$", "evil\\n")``
succeeds: every name and id check must match the whole string."""

from __future__ import annotations

import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from tests.support import ServerProcess


@pytest.mark.parametrize("call", ["create_vault", "upload_archive", "initiate_job",
                                  "initiate_multipart_upload", "describe_vault"])
def test_a_vault_name_ending_in_a_newline_is_refused(sigv4_server: ServerProcess,
                                                     call: str) -> None:
    glacier = sigv4_server.client()
    glacier.create_vault(vaultName="evil")
    args: dict[str, object] = {"vaultName": "evil\n"}
    if call == "upload_archive":
        args["body"] = b"x"
    elif call == "initiate_job":
        args["jobParameters"] = {"Type": "inventory-retrieval"}
    elif call == "initiate_multipart_upload":
        args["partSize"] = str(1024 * 1024)
    before = glacier.describe_vault(vaultName="evil")["NumberOfArchives"]
    with pytest.raises(ClientError) as caught:
        getattr(glacier, call)(**args)
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "InvalidParameterValueException"
    assert "Invalid vault name" in error["Error"]["Message"]
    names = [v["VaultName"] for v in glacier.list_vaults()["VaultList"]]
    assert "evil\n" not in names
    assert glacier.describe_vault(vaultName="evil")["NumberOfArchives"] == before


def test_a_user_name_ending_in_a_newline_is_refused(sigv4_server: ServerProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "icevault", "admin", "--data-dir", str(sigv4_server.data_dir),
         "create-user", "evil\n"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout
    assert "Invalid user name" in result.stderr


def test_wildcards_in_policies_match_whole_values() -> None:
    from icevault.core.policy import wildcard_match

    assert wildcard_match("arn:aws:glacier:*:*:vaults/photos", "arn:aws:glacier:r:1:vaults/photos")
    assert not wildcard_match("arn:aws:glacier:*:*:vaults/photos",
                              "arn:aws:glacier:r:1:vaults/photos\n")
