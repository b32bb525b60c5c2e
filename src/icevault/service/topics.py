"""SNS topics as webhooks an administrator registered.

icevault has no SNS. Jobs and vault notification configurations name a topic by its ARN, as
on AWS, and a completed job's JSON is POSTed to the URL registered for that topic. Only an
administrator (``icevault admin create-topic``) chooses URLs: a caller who may only start
jobs cannot make the server send requests to an address of its choosing.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from icevault.core.errors import InvalidParameterValueError, ResourceNotFoundError
from icevault.service.context import Context

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_ARN_RE = re.compile(r"^arn:aws:sns:([a-z0-9-]+):([0-9]{12}):([A-Za-z0-9_-]{1,256})$")


def topic_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:sns:{region}:{account_id}:{name}"


class TopicService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def create(self, account_id: str, name: str, url: str) -> str:
        if not _NAME_RE.fullmatch(name):
            raise InvalidParameterValueError(
                f"Invalid topic name: {name!r}. Up to 256 letters, digits, '-' and '_'"
            )
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidParameterValueError(f"Invalid topic URL: {url!r}. An http(s) URL")
        self.ctx.meta.put_topic(account_id, name, url, self.ctx.clock.now_ms())
        return topic_arn(self.ctx.region, account_id, name)

    def delete(self, account_id: str, name: str) -> None:
        if not self.ctx.meta.delete_topic(account_id, name):
            raise ResourceNotFoundError(f"Topic does not exist: {name}")

    def require(self, account_id: str, arn: str) -> None:
        """Refuse a topic that is not one of ``account_id``'s registered topics."""
        match = _ARN_RE.fullmatch(arn)
        if (
            match is None
            or match.group(1) != self.ctx.region
            or match.group(2) != account_id
            or self.ctx.meta.get_topic_url(account_id, match.group(3)) is None
        ):
            raise InvalidParameterValueError(
                f"Invalid SNSTopic: {arn[:300]}. Topic does not exist: name a topic of this "
                "account registered with `icevault admin create-topic`"
            )

    def url_for(self, arn: str) -> str | None:
        match = _ARN_RE.fullmatch(arn)
        if match is None:
            return None
        return self.ctx.meta.get_topic_url(match.group(2), match.group(3))
