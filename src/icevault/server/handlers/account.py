"""Account-level operations: the data retrieval policy and provisioned capacity."""

from __future__ import annotations

from aiohttp import web

from icevault.core.models import iso8601
from icevault.server.call import Call
from icevault.server.wire import empty_response, json_response, read_json_object


async def get_data_retrieval_policy(call: Call) -> web.StreamResponse:
    policy = await call.run(call.glacier.account.get_retrieval_policy, call.account)
    return json_response({"Policy": policy})


async def set_data_retrieval_policy(call: Call) -> web.StreamResponse:
    body = read_json_object(call.body)
    await call.run(call.glacier.account.set_retrieval_policy, call.account, body.get("Policy"))
    return empty_response(204)


async def purchase_provisioned_capacity(call: Call) -> web.StreamResponse:
    unit = await call.run(call.glacier.account.purchase_capacity, call.account)
    return empty_response(201, {"x-amz-capacity-id": unit.id})


async def list_provisioned_capacity(call: Call) -> web.StreamResponse:
    units = await call.run(call.glacier.account.list_capacity, call.account)
    return json_response(
        {
            "ProvisionedCapacityList": [
                {
                    "CapacityId": unit.id,
                    "StartDate": iso8601(unit.start_at),
                    "ExpirationDate": iso8601(unit.expires_at),
                }
                for unit in units
            ]
        }
    )
