"""CreateVault, DescribeVault, ListVaults, DeleteVault and the vault tag operations."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from icevault.core.errors import (
    InvalidParameterValueError,
    MissingParameterValueError,
    SerializationError,
)
from icevault.server import parse
from icevault.server.call import Call
from icevault.server.wire import empty_response, json_response, read_json_object, vault_json


async def create_vault(call: Call) -> web.StreamResponse:
    ref = await call.run(call.glacier.vaults.create, call.vault)
    return empty_response(201, {"Location": ref.location()})


async def describe_vault(call: Call) -> web.StreamResponse:
    vault = await call.lookup(call.glacier.vaults.describe, call.vault)
    return json_response(vault_json(vault, call.region))


async def list_vaults(call: Call) -> web.StreamResponse:
    query = call.request.query
    limit = parse.limit(query, default=10, maximum=1000)
    page = await call.run(call.glacier.vaults.list_vaults, call.account, query.get("marker"), limit)
    return json_response(
        {"Marker": page.marker, "VaultList": [vault_json(v, call.region) for v in page.vaults]}
    )


async def delete_vault(call: Call) -> web.StreamResponse:
    await call.run(call.glacier.vaults.delete, call.vault)
    return empty_response(204)


async def list_tags(call: Call) -> web.StreamResponse:
    tags = await call.run(call.glacier.vaults.list_tags, call.vault)
    return json_response({"Tags": tags})


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SerializationError("Tags must be an object of string keys and string values")
    return value


async def add_tags(call: Call) -> web.StreamResponse:
    body = read_json_object(call.body)
    if "Tags" not in body or body["Tags"] is None:
        raise MissingParameterValueError("Required parameter missing: Tags")
    tags = _string_map(body["Tags"])
    await call.run(call.glacier.vaults.add_tags, call.vault, tags)
    return empty_response(204)


async def remove_tags(call: Call) -> web.StreamResponse:
    body = read_json_object(call.body)
    keys = body.get("TagKeys")
    if keys is None:
        raise MissingParameterValueError("Required parameter missing: TagKeys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise InvalidParameterValueError("TagKeys must be a list of strings")
    await call.run(call.glacier.vaults.remove_tags, call.vault, keys)
    return empty_response(204)
