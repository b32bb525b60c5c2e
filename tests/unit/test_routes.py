from __future__ import annotations

import pytest

from icevault.core.errors import InvalidParameterValueError, ResourceNotFoundError
from icevault.server.routes import Op, match


@pytest.mark.parametrize(
    ("method", "path", "query", "op", "vault", "rid"),
    [
        ("GET", "/-/vaults", {}, Op.LIST_VAULTS, None, None),
        ("PUT", "/-/vaults/v", {}, Op.CREATE_VAULT, "v", None),
        ("GET", "/-/vaults/v", {}, Op.DESCRIBE_VAULT, "v", None),
        ("DELETE", "/-/vaults/v", {}, Op.DELETE_VAULT, "v", None),
        ("POST", "/-/vaults/v/archives", {}, Op.UPLOAD_ARCHIVE, "v", None),
        ("DELETE", "/-/vaults/v/archives/a-b_c", {}, Op.DELETE_ARCHIVE, "v", "a-b_c"),
        ("POST", "/-/vaults/v/multipart-uploads", {}, Op.INITIATE_MULTIPART_UPLOAD, "v", None),
        ("GET", "/-/vaults/v/multipart-uploads", {}, Op.LIST_MULTIPART_UPLOADS, "v", None),
        ("PUT", "/-/vaults/v/multipart-uploads/u", {}, Op.UPLOAD_MULTIPART_PART, "v", "u"),
        ("POST", "/-/vaults/v/multipart-uploads/u", {}, Op.COMPLETE_MULTIPART_UPLOAD, "v", "u"),
        ("DELETE", "/-/vaults/v/multipart-uploads/u", {}, Op.ABORT_MULTIPART_UPLOAD, "v", "u"),
        ("GET", "/-/vaults/v/multipart-uploads/u", {}, Op.LIST_PARTS, "v", "u"),
        ("POST", "/-/vaults/v/jobs", {}, Op.INITIATE_JOB, "v", None),
        ("GET", "/-/vaults/v/jobs", {}, Op.LIST_JOBS, "v", None),
        ("GET", "/-/vaults/v/jobs/j", {}, Op.DESCRIBE_JOB, "v", "j"),
        ("GET", "/-/vaults/v/jobs/j/output", {}, Op.GET_JOB_OUTPUT, "v", "j"),
        ("POST", "/-/vaults/v/tags", {"operation": "add"}, Op.ADD_TAGS_TO_VAULT, "v", None),
        ("POST", "/-/vaults/v/tags", {"operation": "remove"}, Op.REMOVE_TAGS_FROM_VAULT, "v", None),
        ("GET", "/-/vaults/v/tags", {}, Op.LIST_TAGS_FOR_VAULT, "v", None),
        ("POST", "/-/vaults/v/lock-policy/L", {}, Op.COMPLETE_VAULT_LOCK, "v", "L"),
        ("GET", "/-/policies/data-retrieval", {}, Op.GET_DATA_RETRIEVAL_POLICY, None, None),
        ("POST", "/123456789012/provisioned-capacity", {}, Op.PURCHASE_PROVISIONED_CAPACITY, None, None),
        ("GET", "/-/vaults/my%2Fvault", {}, Op.DESCRIBE_VAULT, "my/vault", None),
        ("GET", "/-/vaults/v/?x=1", {}, Op.DESCRIBE_VAULT, "v", None),
    ],
)
def test_match(method: str, path: str, query: dict[str, str], op: Op, vault: str | None, rid: str | None) -> None:
    route = match(method, path, query)
    assert (route.op, route.vault, route.resource_id) == (op, vault, rid)


def test_every_operation_of_botocores_model_routes_to_itself() -> None:
    """botocore's Glacier service model is the authority on the 33 operations, their methods
    and URIs: each one, with its placeholders filled in, reaches the operation of its name."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("glacier")
    assert len(model.operation_names) == 33
    assert set(model.operation_names) == {op.value for op in Op}
    values = {"accountId": "-", "vaultName": "v", "uploadId": "u", "lockId": "l",
              "jobId": "j", "archiveId": "a"}
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http["requestUri"]
        for key, value in values.items():
            uri = uri.replace("{" + key + "}", value)
        path, _, query = uri.partition("?")
        params = dict(item.split("=", 1) for item in query.split("&") if item)
        assert match(http["method"], path, params).op.value == name


def test_unknown_path_is_not_found() -> None:
    with pytest.raises(ResourceNotFoundError):
        match("GET", "/-/nothing-here", {})
    with pytest.raises(ResourceNotFoundError):
        match("GET", "/", {})


def test_wrong_method_is_a_client_error() -> None:
    with pytest.raises(InvalidParameterValueError) as info:
        match("PATCH", "/-/vaults/v", {})
    assert info.value.headers["Allow"] == "DELETE, GET, PUT"


def test_tags_need_an_operation() -> None:
    with pytest.raises(InvalidParameterValueError):
        match("POST", "/-/vaults/v/tags", {"operation": "rename"})
