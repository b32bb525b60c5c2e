"""Who may run which admin action on whom, decided by the admin service (the admin API's
one door), without a server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from icevault.core.errors import AccessDeniedError, MissingParameterValueError
from icevault.core.identity import Principal
from icevault.service.glacier import Glacier


def _user(glacier: Glacier, name: str, *actions: str) -> Principal:
    account = glacier.identity.default_account()
    glacier.identity.create_user(account, name)
    if actions:
        glacier.identity.put_user_policy(account, name, "p", json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}))
    return Principal(account, name, None)


def call(glacier: Glacier, who: Principal, action: str, **params: str) -> dict[str, Any] | None:
    return glacier.admin.call(who, action, dict(params), "127.0.0.1", False)


def test_keys_are_their_owners(glacier: Glacier) -> None:
    kim = _user(glacier, "kim", "icevault:CreateAccessKey", "icevault:DisableAccessKey",
                "icevault:ListAccessKeys")
    _user(glacier, "lee")
    made = call(glacier, kim, "CreateAccessKey")
    assert made is not None and made["AccessKey"]["UserName"] == "kim"
    with pytest.raises(AccessDeniedError, match="user lee's keys"):
        call(glacier, kim, "CreateAccessKey", user="lee")
    root_key = glacier.identity.new_key(kim.account_id, None)
    with pytest.raises(AccessDeniedError, match="account root's keys"):
        call(glacier, kim, "DisableAccessKey", key_id=root_key.id)
    listed = call(glacier, kim, "ListAccessKeys")
    assert listed is not None
    assert {k["UserName"] for k in listed["AccessKeys"]} == {"kim"}
    root = Principal(kim.account_id, None, None)
    assert call(glacier, root, "CreateAccessKey", user="lee") is not None


def test_topics_and_accounts_are_the_operators(glacier: Glacier) -> None:
    operator = Principal(glacier.identity.default_account(), None, None)
    made = call(glacier, operator, "CreateAccount", account_id="222233334444")
    assert made is not None
    other_root = Principal("222233334444", None, None)
    for action, params in (("CreateTopic", {"name": "t", "url": "https://hooks.example/"}),
                           ("CreateAccount", {}), ("DeleteTopic", {"name": "t"})):
        with pytest.raises(AccessDeniedError, match="operator"):
            call(glacier, other_root, action, **params)
    with pytest.raises(AccessDeniedError, match="is not yours"):
        call(glacier, other_root, "ListUsers", account_id=operator.account_id)
    with pytest.raises(MissingParameterValueError):
        call(glacier, operator, "CreateTopic", name="t")
