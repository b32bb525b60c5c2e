"""SNS topics as webhooks the operator registered.

icevault has no SNS. Jobs and vault notification configurations name a topic by its ARN, as
on AWS, and any well-formed SNS topic ARN is accepted there, as AWS accepts it (SDKs' own
tests name made-up topics). A completed job's JSON is POSTed only to the URL the operator
registered for that topic in the vault's account (``icevault admin create-topic``): neither
a caller who may only start jobs nor an account's root can make the server send requests to
an address of their choosing, and a delivery goes only to an address the operator's policy
allows (:mod:`icevault.core.netpolicy`).
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from icevault.core.errors import InvalidParameterValueError, ResourceNotFoundError
from icevault.service.context import Context

_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
# arn:PARTITION:sns:REGION:ACCOUNT:NAME, a FIFO topic's name ending in .fifo.
_ARN_RE = re.compile(
    r"arn:aws(?:-[a-z]+)*:sns:([a-z0-9-]{1,32}):([0-9]{12}):([A-Za-z0-9_-]{1,256}(?:\.fifo)?)")


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
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidParameterValueError(f"Invalid topic URL: {url!r}. An http(s) URL")
        try:
            literal = ipaddress.ip_address(parts.hostname)
        except ValueError:
            literal = None  # a name: checked each time it is resolved, when delivering
        if literal is not None and literal.is_link_local:
            raise InvalidParameterValueError(
                f"Invalid topic URL: {url!r}. Webhooks never go to link-local addresses")
        self.ctx.meta.put_topic(account_id, name, url, self.ctx.clock.now_ms())
        return topic_arn(self.ctx.region, account_id, name)

    def delete(self, account_id: str, name: str) -> None:
        if not self.ctx.meta.delete_topic(account_id, name):
            raise ResourceNotFoundError(f"Topic does not exist: {name}")

    @staticmethod
    def validate(arn: str) -> None:
        """Refuse what is not an SNS topic ARN (any topic's, registered or not)."""
        if not _ARN_RE.fullmatch(arn):
            raise InvalidParameterValueError(
                f"Invalid SNSTopic: {arn[:300]!r}. An SNS topic ARN, "
                "arn:aws:sns:REGION:ACCOUNT:NAME")

    def url_for(self, arn: str, account_id: str) -> str | None:
        """Where a notification of ``account_id``'s job to ``arn`` goes: the URL registered
        for the topic in that account and this region, if there is one."""
        match = _ARN_RE.fullmatch(arn)
        if match is None or match.group(1) != self.ctx.region or match.group(2) != account_id:
            return None
        return self.ctx.meta.get_topic_url(account_id, match.group(3))
