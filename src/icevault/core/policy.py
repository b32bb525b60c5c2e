"""IAM-style policy documents: parsing and evaluation (pure; no I/O).

A document is ``{"Version": ..., "Statement": [...]}``; each statement has ``Effect``
(Allow | Deny), ``Action``/``NotAction``, ``Resource``/``NotResource``, optionally
``Principal`` (resource policies: vault access and vault lock policies) and ``Condition``.
:func:`evaluate` answers whether a document allows, denies or says nothing about one request;
combining several documents (explicit Deny wins, then Allow, else deny) is the access service's.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from icevault.core.errors import InvalidParameterValueError, SerializationError
from icevault.core.parsing import load_json

MAX_POLICY_BYTES = 20 * 1024


class Decision(enum.Enum):
    ALLOW = "Allow"
    DENY = "Deny"
    NONE = "None"


@dataclass(frozen=True, slots=True)
class Statement:
    effect: Decision
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    not_resources: tuple[str, ...] = ()
    principals: tuple[str, ...] | None = None  # None: no Principal element (identity policy)
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (operator, key, values)


@dataclass(frozen=True, slots=True)
class Policy:
    statements: tuple[Statement, ...]


@dataclass(frozen=True, slots=True)
class Request:
    """What a statement is matched against. ``context`` gives a condition key's values,
    or None when the request has no such key (computed lazily, e.g. an archive's age)."""

    action: str
    resource: str
    principal_arn: str
    principal_account: str
    context: Callable[[str], Sequence[str] | None] = field(default=lambda _key: None)
    # A resource policy's Allow that names only the caller's account delegates to that
    # account's own policies; it grants a user of the account nothing by itself. Set for
    # such users, so that only statements naming them (or everyone) allow.
    direct_allows_only: bool = False


def _malformed(reason: str) -> InvalidParameterValueError:
    return InvalidParameterValueError(f"Policy is malformed: {reason}")


def _strings(value: Any, element: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _malformed(f"{element} must be a string or a non-empty list of strings")


def _principals(value: Any) -> tuple[str, ...]:
    if value == "*":
        return ("*",)
    if isinstance(value, dict) and set(value) <= {"AWS"} and "AWS" in value:
        return _strings(value["AWS"], "Principal.AWS")
    raise _malformed("Principal must be \"*\" or {\"AWS\": ...}")


def _conditions(value: Any) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    if not isinstance(value, dict):
        raise _malformed("Condition must be an object")
    out = []
    for operator, block in value.items():
        base = operator.removesuffix("IfExists")
        if base not in _OPERATORS and base != "Null":
            raise _malformed(f"unsupported condition operator {operator}")
        if not isinstance(block, dict):
            raise _malformed(f"Condition {operator} must map keys to values")
        for key, values in block.items():
            if isinstance(values, (bool, int, float)) and not isinstance(values, str):
                values = str(values).lower() if isinstance(values, bool) else str(values)
            if isinstance(values, list):
                values = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
            out.append((operator, key.lower(), _strings(values, f"Condition {operator} {key}")))
    return tuple(out)


@lru_cache(maxsize=1024)
def parse_policy(text: str, *, resource_policy: bool) -> Policy:
    """Parse and check a policy document; a malformed one is InvalidParameterValue.

    Parsed documents are cached (they are immutable), so evaluation per request is cheap."""
    if len(text.encode()) > MAX_POLICY_BYTES:
        raise InvalidParameterValueError("Policy is too large: the limit is 20 KB")
    try:
        document = load_json(text, "policy")
    except SerializationError as exc:
        raise _malformed(exc.message) from None
    if not isinstance(document, dict) or "Statement" not in document:
        raise _malformed("a policy is an object with a Statement")
    raw = document["Statement"]
    raw_statements = raw if isinstance(raw, list) else [raw]
    statements = []
    for item in raw_statements:
        if not isinstance(item, dict):
            raise _malformed("each Statement must be an object")
        effect = item.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise _malformed("Effect must be Allow or Deny")
        if ("Action" in item) == ("NotAction" in item):
            raise _malformed("a statement needs exactly one of Action and NotAction")
        if ("Resource" in item) == ("NotResource" in item):
            raise _malformed("a statement needs exactly one of Resource and NotResource")
        principals = None
        if resource_policy:
            if "Principal" not in item:
                raise _malformed("statements of a vault policy need a Principal")
            principals = _principals(item["Principal"])
        elif "Principal" in item:
            raise _malformed("identity policies have no Principal")
        statements.append(
            Statement(
                effect=Decision(effect),
                actions=_strings(item["Action"], "Action") if "Action" in item else (),
                not_actions=_strings(item["NotAction"], "NotAction") if "NotAction" in item else (),
                resources=_strings(item["Resource"], "Resource") if "Resource" in item else (),
                not_resources=(
                    _strings(item["NotResource"], "NotResource") if "NotResource" in item else ()
                ),
                principals=principals,
                conditions=_conditions(item.get("Condition", {})),
            )
        )
    return Policy(tuple(statements))


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _wildcard(pattern, ignore_case).fullmatch(value) is not None


def _principal_matches(principals: tuple[str, ...], request: Request, *, allow: bool) -> bool:
    for principal in principals:
        if principal == "*":
            return True
        if principal in (request.principal_account, f"arn:aws:iam::{request.principal_account}:root"):
            if not (allow and request.direct_allows_only):
                return True
            continue
        if wildcard_match(principal, request.principal_arn):
            return True
    return False


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _compare(base: str, actual: str, expected: str) -> bool:
    if base in ("StringEquals", "StringNotEquals"):
        return actual == expected
    if base in ("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"):
        return actual.lower() == expected.lower()
    if base in ("StringLike", "StringNotLike"):
        return wildcard_match(expected, actual)
    if base == "Bool":
        return actual.lower() == expected.lower()
    if base in ("IpAddress", "NotIpAddress"):
        try:
            return ipaddress.ip_address(actual) in ipaddress.ip_network(expected, strict=False)
        except ValueError:
            return False
    a, e = _number(actual), _number(expected)
    if a is None or e is None:
        return False
    return {
        "NumericEquals": a == e,
        "NumericNotEquals": a == e,
        "NumericLessThan": a < e,
        "NumericLessThanEquals": a <= e,
        "NumericGreaterThan": a > e,
        "NumericGreaterThanEquals": a >= e,
    }[base]


_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "NumericNotEquals",
            "NotIpAddress"}
_OPERATORS = {
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
    "StringLike", "StringNotLike", "NumericEquals", "NumericNotEquals", "NumericLessThan",
    "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals", "Bool",
    "IpAddress", "NotIpAddress",
}


def _condition_holds(operator: str, key: str, expected: tuple[str, ...], request: Request) -> bool:
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    actual = request.context(key)
    if base == "Null":
        return (actual is None) == (expected[0].lower() == "true")
    if actual is None:
        return if_exists or base in _NEGATED
    if base in _NEGATED:
        return not any(_compare(base, a, e) for a in actual for e in expected)
    return any(_compare(base, a, e) for a in actual for e in expected)


def statement_applies(statement: Statement, request: Request) -> bool:
    if statement.actions:
        if not any(wildcard_match(a, request.action, ignore_case=True) for a in statement.actions):
            return False
    elif any(wildcard_match(a, request.action, ignore_case=True) for a in statement.not_actions):
        return False
    if statement.resources:
        if not any(wildcard_match(r, request.resource) for r in statement.resources):
            return False
    elif any(wildcard_match(r, request.resource) for r in statement.not_resources):
        return False
    if statement.principals is not None and not _principal_matches(
        statement.principals, request, allow=statement.effect is Decision.ALLOW
    ):
        return False
    return all(_condition_holds(op, key, values, request) for op, key, values in statement.conditions)


def evaluate(policy: Policy, request: Request) -> Decision:
    """Deny if any applicable statement denies, Allow if one allows, else NONE."""
    decision = Decision.NONE
    for statement in policy.statements:
        if statement_applies(statement, request):
            if statement.effect is Decision.DENY:
                return Decision.DENY
            decision = Decision.ALLOW
    return decision
