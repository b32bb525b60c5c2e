"""Account-level settings: the data retrieval policy and provisioned capacity."""

from __future__ import annotations

import calendar
import json
from datetime import UTC, datetime
from typing import Any

from icevault.core.errors import (
    InvalidParameterValueError,
    LimitExceededError,
    MissingParameterValueError,
    PolicyEnforcedError,
)
from icevault.core.ids import new_lock_id
from icevault.core.models import CapacityUnit
from icevault.core.parsing import MAX_LONG
from icevault.service.context import HOUR_MS, Context

RETRIEVAL_POLICY_KEY = "data_retrieval_policy"
DEFAULT_RETRIEVAL_POLICY: dict[str, Any] = {"Rules": [{"Strategy": "FreeTier"}]}
MAX_CAPACITY_UNITS = 2


def one_month_later(ms: int) -> int:
    """The same day and time next month; days past the month's end fall on its last day."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp() * 1000)


def check_retrieval_policy(policy: Any) -> dict[str, Any]:
    if not isinstance(policy, dict) or not isinstance(policy.get("Rules"), list):
        raise InvalidParameterValueError("The data retrieval policy needs a list of Rules")
    rules = policy["Rules"]
    if len(rules) != 1 or not isinstance(rules[0], dict):
        raise InvalidParameterValueError("A data retrieval policy has exactly one rule")
    rule = rules[0]
    strategy = rule.get("Strategy")
    if strategy not in ("BytesPerHour", "FreeTier", "None"):
        raise InvalidParameterValueError(
            f"Invalid Strategy: {strategy}. Valid strategies are BytesPerHour, FreeTier and None"
        )
    per_hour = rule.get("BytesPerHour")
    if strategy == "BytesPerHour":
        if (
            not isinstance(per_hour, int) or isinstance(per_hour, bool)
            or not 1 <= per_hour <= MAX_LONG
        ):
            raise InvalidParameterValueError(
                "BytesPerHour is required with the BytesPerHour strategy, as an integer from 1 "
                f"to {MAX_LONG}"
            )
        return {"Rules": [{"Strategy": strategy, "BytesPerHour": per_hour}]}
    if per_hour is not None:
        raise InvalidParameterValueError(
            f"BytesPerHour must not be set with the {strategy} strategy"
        )
    return {"Rules": [{"Strategy": strategy}]}


class AccountService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def get_retrieval_policy(self, account_id: str) -> dict[str, Any]:
        stored = self.ctx.meta.get_account_setting(account_id, RETRIEVAL_POLICY_KEY)
        return DEFAULT_RETRIEVAL_POLICY if stored is None else dict(json.loads(stored))

    def set_retrieval_policy(self, account_id: str, policy: Any) -> None:
        if policy is None:
            raise MissingParameterValueError("Required parameter missing: Policy")
        checked = check_retrieval_policy(policy)
        self.ctx.meta.set_account_setting(account_id, RETRIEVAL_POLICY_KEY, json.dumps(checked))

    def enforce_retrieval_rate(self, account_id: str, new_bytes: int) -> None:
        """Refuse a retrieval that would take the last hour past the BytesPerHour limit."""
        rule = self.get_retrieval_policy(account_id)["Rules"][0]
        if rule["Strategy"] != "BytesPerHour":
            return
        now = self.ctx.clock.now_ms()
        recent = self.ctx.meta.retrieval_bytes_since(account_id, now - HOUR_MS)
        if recent + new_bytes > rule["BytesPerHour"]:
            raise PolicyEnforcedError(
                f"Retrieving {new_bytes} bytes would exceed the data retrieval policy's limit of "
                f"{rule['BytesPerHour']} bytes per hour ({recent} bytes retrieved in the last hour)"
            )

    def purchase_capacity(self, account_id: str) -> CapacityUnit:
        now = self.ctx.clock.now_ms()
        unit = CapacityUnit(new_lock_id(), now, one_month_later(now))
        if not self.ctx.meta.purchase_capacity(account_id, unit, now, MAX_CAPACITY_UNITS):
            raise LimitExceededError(
                f"An account can have at most {MAX_CAPACITY_UNITS} provisioned capacity units"
            )
        return unit

    def list_capacity(self, account_id: str) -> list[CapacityUnit]:
        return self.ctx.meta.list_capacity(account_id)
