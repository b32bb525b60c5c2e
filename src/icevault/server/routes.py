"""Method + raw path to one of the 33 Glacier operations, with typed path parameters.

The raw path is split on '/' before each segment is percent-decoded, so an encoded slash
(``%2F``) stays inside its segment, as Glacier's clients expect.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import unquote

from icevault.core.errors import InvalidParameterValueError, ResourceNotFoundError


class Op(enum.StrEnum):
    ABORT_MULTIPART_UPLOAD = "AbortMultipartUpload"
    ABORT_VAULT_LOCK = "AbortVaultLock"
    ADD_TAGS_TO_VAULT = "AddTagsToVault"
    COMPLETE_MULTIPART_UPLOAD = "CompleteMultipartUpload"
    COMPLETE_VAULT_LOCK = "CompleteVaultLock"
    CREATE_VAULT = "CreateVault"
    DELETE_ARCHIVE = "DeleteArchive"
    DELETE_VAULT = "DeleteVault"
    DELETE_VAULT_ACCESS_POLICY = "DeleteVaultAccessPolicy"
    DELETE_VAULT_NOTIFICATIONS = "DeleteVaultNotifications"
    DESCRIBE_JOB = "DescribeJob"
    DESCRIBE_VAULT = "DescribeVault"
    GET_DATA_RETRIEVAL_POLICY = "GetDataRetrievalPolicy"
    GET_JOB_OUTPUT = "GetJobOutput"
    GET_VAULT_ACCESS_POLICY = "GetVaultAccessPolicy"
    GET_VAULT_LOCK = "GetVaultLock"
    GET_VAULT_NOTIFICATIONS = "GetVaultNotifications"
    INITIATE_JOB = "InitiateJob"
    INITIATE_MULTIPART_UPLOAD = "InitiateMultipartUpload"
    INITIATE_VAULT_LOCK = "InitiateVaultLock"
    LIST_JOBS = "ListJobs"
    LIST_MULTIPART_UPLOADS = "ListMultipartUploads"
    LIST_PARTS = "ListParts"
    LIST_PROVISIONED_CAPACITY = "ListProvisionedCapacity"
    LIST_TAGS_FOR_VAULT = "ListTagsForVault"
    LIST_VAULTS = "ListVaults"
    PURCHASE_PROVISIONED_CAPACITY = "PurchaseProvisionedCapacity"
    REMOVE_TAGS_FROM_VAULT = "RemoveTagsFromVault"
    SET_DATA_RETRIEVAL_POLICY = "SetDataRetrievalPolicy"
    SET_VAULT_ACCESS_POLICY = "SetVaultAccessPolicy"
    SET_VAULT_NOTIFICATIONS = "SetVaultNotifications"
    UPLOAD_ARCHIVE = "UploadArchive"
    UPLOAD_MULTIPART_PART = "UploadMultipartPart"


@dataclass(frozen=True, slots=True)
class Route:
    """A matched request: the operation, the account segment as sent, and path ids."""

    op: Op
    account: str
    vault: str | None = None
    resource_id: str | None = None


# (shape of the path after "/{account}", with "*" for a variable segment) -> method -> op
_TABLE: dict[tuple[str, ...], dict[str, Op]] = {
    ("vaults",): {"GET": Op.LIST_VAULTS},
    ("vaults", "*"): {"PUT": Op.CREATE_VAULT, "GET": Op.DESCRIBE_VAULT, "DELETE": Op.DELETE_VAULT},
    ("vaults", "*", "archives"): {"POST": Op.UPLOAD_ARCHIVE},
    ("vaults", "*", "archives", "*"): {"DELETE": Op.DELETE_ARCHIVE},
    ("vaults", "*", "multipart-uploads"): {
        "POST": Op.INITIATE_MULTIPART_UPLOAD,
        "GET": Op.LIST_MULTIPART_UPLOADS,
    },
    ("vaults", "*", "multipart-uploads", "*"): {
        "PUT": Op.UPLOAD_MULTIPART_PART,
        "POST": Op.COMPLETE_MULTIPART_UPLOAD,
        "DELETE": Op.ABORT_MULTIPART_UPLOAD,
        "GET": Op.LIST_PARTS,
    },
    ("vaults", "*", "jobs"): {"POST": Op.INITIATE_JOB, "GET": Op.LIST_JOBS},
    ("vaults", "*", "jobs", "*"): {"GET": Op.DESCRIBE_JOB},
    ("vaults", "*", "jobs", "*", "output"): {"GET": Op.GET_JOB_OUTPUT},
    ("vaults", "*", "access-policy"): {
        "PUT": Op.SET_VAULT_ACCESS_POLICY,
        "GET": Op.GET_VAULT_ACCESS_POLICY,
        "DELETE": Op.DELETE_VAULT_ACCESS_POLICY,
    },
    ("vaults", "*", "lock-policy"): {
        "POST": Op.INITIATE_VAULT_LOCK,
        "GET": Op.GET_VAULT_LOCK,
        "DELETE": Op.ABORT_VAULT_LOCK,
    },
    ("vaults", "*", "lock-policy", "*"): {"POST": Op.COMPLETE_VAULT_LOCK},
    ("vaults", "*", "notification-configuration"): {
        "PUT": Op.SET_VAULT_NOTIFICATIONS,
        "GET": Op.GET_VAULT_NOTIFICATIONS,
        "DELETE": Op.DELETE_VAULT_NOTIFICATIONS,
    },
    ("vaults", "*", "tags"): {"POST": Op.ADD_TAGS_TO_VAULT, "GET": Op.LIST_TAGS_FOR_VAULT},
    ("policies", "data-retrieval"): {
        "PUT": Op.SET_DATA_RETRIEVAL_POLICY,
        "GET": Op.GET_DATA_RETRIEVAL_POLICY,
    },
    ("provisioned-capacity",): {
        "POST": Op.PURCHASE_PROVISIONED_CAPACITY,
        "GET": Op.LIST_PROVISIONED_CAPACITY,
    },
}


def _shape(segments: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """Replace the variable segments (vault name, ids) by '*' and collect them."""
    shape: list[str] = []
    values: list[str] = []
    for index, segment in enumerate(segments):
        # Under /vaults, segment 1 is the vault name and segment 3 an archive, upload,
        # job or lock id; everything else is a fixed word.
        if segments[0] == "vaults" and index in (1, 3):
            shape.append("*")
            values.append(segment)
        else:
            shape.append(segment)
    return tuple(shape), values


def match(method: str, raw_path: str, query: dict[str, str]) -> Route:
    """Find the operation for a request or raise the Glacier error a client should see."""
    path = raw_path.split("?", 1)[0]
    raw_segments = path.split("/")
    if len(raw_segments) < 3 or raw_segments[0] != "":
        raise ResourceNotFoundError(f"No Glacier resource at {path}")
    if raw_segments[-1] == "" and len(raw_segments) > 3:
        raw_segments = raw_segments[:-1]  # tolerate one trailing slash
    segments = [unquote(s) for s in raw_segments[1:]]
    if any(segment in (".", "..") for segment in segments):
        # SigV4 signs the path with dot segments removed; routing the raw path would let a
        # signature made for one resource act on another. No Glacier path has them.
        raise InvalidParameterValueError(
            f"Invalid path {path[:200]}: a '.' or '..' segment is not allowed"
        )
    account, rest = segments[0], segments[1:]
    if not rest:
        raise ResourceNotFoundError(f"No Glacier resource at {path}")
    shape, values = _shape(rest)
    methods = _TABLE.get(shape)
    if methods is None:
        raise ResourceNotFoundError(f"No Glacier resource at {path}")
    op = methods.get(method)
    if op is None:
        allowed = ", ".join(sorted(methods))
        raise InvalidParameterValueError(
            f"The method {method} is not supported on {path} (allowed: {allowed})",
            headers={"Allow": allowed},
        )
    if op is Op.ADD_TAGS_TO_VAULT:
        operation = query.get("operation")
        if operation == "remove":
            op = Op.REMOVE_TAGS_FROM_VAULT
        elif operation != "add":
            raise InvalidParameterValueError(
                f"Invalid operation query parameter: {operation!r} (expected add or remove)"
            )
    vault = values[0] if values else None
    resource_id = values[1] if len(values) > 1 else None
    return Route(op, account, vault, resource_id)
