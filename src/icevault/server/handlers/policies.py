"""Vault access policies, vault lock and vault notifications."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from icevault.core.errors import SerializationError
from icevault.core.models import iso8601
from icevault.server.call import Call
from icevault.server.wire import empty_response, json_response, optional_str, read_json_object


def _policy_text(body: dict[str, Any]) -> str | None:
    return optional_str(body, "Policy")


async def set_vault_access_policy(call: Call) -> web.StreamResponse:
    body = read_json_object(call.body)
    await call.run(call.glacier.policies.set_access_policy, call.vault, _policy_text(body))
    return empty_response(204)


async def get_vault_access_policy(call: Call) -> web.StreamResponse:
    document = await call.run(call.glacier.policies.get_access_policy, call.vault)
    return json_response({"Policy": document})


async def delete_vault_access_policy(call: Call) -> web.StreamResponse:
    await call.run(call.glacier.policies.delete_access_policy, call.vault)
    return empty_response(204)


async def initiate_vault_lock(call: Call) -> web.StreamResponse:
    body = read_json_object(call.body)
    lock = await call.run(call.glacier.policies.initiate_lock, call.vault, _policy_text(body))
    return empty_response(201, {"x-amz-lock-id": lock.lock_id})


async def complete_vault_lock(call: Call) -> web.StreamResponse:
    assert call.route.resource_id is not None
    await call.run(call.glacier.policies.complete_lock, call.vault, call.route.resource_id)
    return empty_response(204)


async def abort_vault_lock(call: Call) -> web.StreamResponse:
    await call.run(call.glacier.policies.abort_lock, call.vault)
    return empty_response(204)


async def get_vault_lock(call: Call) -> web.StreamResponse:
    lock = await call.run(call.glacier.policies.get_lock, call.vault)
    return json_response(
        {
            "CreationDate": iso8601(lock.created_at),
            "ExpirationDate": None if lock.expires_at is None else iso8601(lock.expires_at),
            "Policy": lock.policy,
            "State": lock.state.value,
        }
    )


async def set_vault_notifications(call: Call) -> web.StreamResponse:
    body = read_json_object(call.body)
    events = body.get("Events")
    if events is not None and (
        not isinstance(events, list) or not all(isinstance(e, str) for e in events)
    ):
        raise SerializationError("Events must be a list of strings")
    await call.run(
        call.glacier.policies.set_notifications, call.vault, optional_str(body, "SNSTopic"), events
    )
    return empty_response(204)


async def get_vault_notifications(call: Call) -> web.StreamResponse:
    config = await call.run(call.glacier.policies.get_notifications, call.vault)
    return json_response({"Events": list(config.events), "SNSTopic": config.sns_topic})


async def delete_vault_notifications(call: Call) -> web.StreamResponse:
    await call.run(call.glacier.policies.delete_notifications, call.vault)
    return empty_response(204)
