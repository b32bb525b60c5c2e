from __future__ import annotations

import json

import pytest

from icevault.core.errors import InvalidParameterValueError
from icevault.core.policy import Decision, Request, evaluate, parse_policy

ARN = "arn:aws:glacier:us-east-1:111122223333:vaults/photos"


def request(action: str = "glacier:DeleteArchive", resource: str = ARN, **context: str) -> Request:
    return Request(
        action=action, resource=resource,
        principal_arn="arn:aws:iam::111122223333:user/alice", principal_account="111122223333",
        context=lambda key: [context[key]] if key in context else None,
    )


def policy(*statements: dict, resource_policy: bool = False) -> object:  # type: ignore[type-arg]
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}),
                        resource_policy=resource_policy)


def test_allow_deny_and_nothing() -> None:
    p = policy({"Effect": "Allow", "Action": "glacier:*", "Resource": ARN},
               {"Effect": "Deny", "Action": "glacier:Delete*", "Resource": "*"})
    assert evaluate(p, request("glacier:DescribeVault")) is Decision.ALLOW  # type: ignore[arg-type]
    assert evaluate(p, request("glacier:DeleteArchive")) is Decision.DENY  # type: ignore[arg-type]
    assert evaluate(p, request("glacier:DescribeVault", resource=ARN + "2")) is Decision.NONE  # type: ignore[arg-type]


def test_actions_are_case_insensitive_and_not_action() -> None:
    p = policy({"Effect": "Allow", "NotAction": "glacier:delete*", "Resource": "*"})
    assert evaluate(p, request("glacier:ListJobs")) is Decision.ALLOW  # type: ignore[arg-type]
    assert evaluate(p, request("glacier:DeleteVault")) is Decision.NONE  # type: ignore[arg-type]


@pytest.mark.parametrize(("condition", "context", "applies"), [
    ({"NumericLessThan": {"glacier:ArchiveAgeInDays": "365"}}, {"glacier:archiveageindays": "10"}, True),
    ({"NumericLessThan": {"glacier:ArchiveAgeInDays": "365"}}, {"glacier:archiveageindays": "400"}, False),
    ({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:sourceip": "10.1.2.3"}, True),
    ({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, {"aws:sourceip": "127.0.0.1"}, True),
    ({"Bool": {"aws:SecureTransport": "false"}}, {"aws:securetransport": "false"}, True),
    ({"Bool": {"aws:SecureTransport": True}}, {"aws:securetransport": "false"}, False),
    ({"StringEquals": {"glacier:ResourceTag/Team": "ops"}}, {"glacier:resourcetag/team": "ops"}, True),
    ({"StringLike": {"glacier:ResourceTag/Team": "o*"}}, {"glacier:resourcetag/team": "ops"}, True),
    ({"StringEquals": {"glacier:ResourceTag/Team": "ops"}}, {}, False),
    ({"StringEqualsIfExists": {"glacier:ResourceTag/Team": "ops"}}, {}, True),
    ({"StringNotEquals": {"glacier:ResourceTag/Team": "ops"}}, {}, True),
    ({"Null": {"glacier:ResourceTag/Team": "true"}}, {}, True),
])
def test_conditions(condition: dict, context: dict[str, str], applies: bool) -> None:  # type: ignore[type-arg]
    p = policy({"Effect": "Deny", "Action": "glacier:*", "Resource": "*", "Condition": condition})
    expected = Decision.DENY if applies else Decision.NONE
    assert evaluate(p, request(**context)) is expected  # type: ignore[arg-type]


def test_principals_in_resource_policies() -> None:
    for principal, matches in [("*", True), ({"AWS": "111122223333"}, True),
                               ({"AWS": "arn:aws:iam::111122223333:root"}, True),
                               ({"AWS": "arn:aws:iam::111122223333:user/alice"}, True),
                               ({"AWS": ["arn:aws:iam::999999999999:root"]}, False)]:
        p = policy({"Effect": "Allow", "Principal": principal, "Action": "glacier:*", "Resource": "*"},
                   resource_policy=True)
        assert (evaluate(p, request()) is Decision.ALLOW) is matches, principal  # type: ignore[arg-type]


@pytest.mark.parametrize("document", [
    "not json", "[]", '{"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}',
    '{"Statement": [{"Effect": "Allow", "Resource": "*"}]}',
    '{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Weird": {}}}]}',
    '{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]}',
])
def test_malformed_identity_policies(document: str) -> None:
    with pytest.raises(InvalidParameterValueError, match="Policy is malformed"):
        parse_policy(document, resource_policy=False)


def test_resource_policies_need_a_principal_and_size_limit() -> None:
    with pytest.raises(InvalidParameterValueError):
        parse_policy('{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}', resource_policy=True)
    big = json.dumps({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "x" * 21000}]})
    with pytest.raises(InvalidParameterValueError, match="too large"):
        parse_policy(big, resource_policy=False)
