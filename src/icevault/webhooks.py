"""Webhook delivery over HTTP(S): the adapter behind the notifier's port.

Written on ``http.client`` rather than with a client library: the checked address must be
the one connected to. A library resolves the name again when it connects (a name may
resolve to an allowed address for the check and to the metadata service for the
connection), and redirects it follows would lead anywhere. Here each address the name
resolves to is checked by :class:`~icevault.core.netpolicy.AddressPolicy`, the connection
is made to the first allowed one (TLS still verifies the certificate for the name), and a
redirect is an answer like any other: the delivery failed.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
from urllib.parse import urlsplit

from icevault.core.netpolicy import AddressPolicy
from icevault.service.notifications import Delivery

log = logging.getLogger(__name__)

_ANSWER_READ = 64 * 1024  # of a receiver's answer, read and dropped


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the certificate verified for the URL's host."""

    def __init__(self, host: str, address: str, port: int, timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


class HttpWebhookSender:
    """POSTs a notification to a URL, to an address the policy allows."""

    def __init__(self, policy: AddressPolicy, timeout_s: float = 5.0) -> None:
        self.policy = policy
        self.timeout_s = timeout_s
        self._tls = ssl.create_default_context()

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Delivery:
        parts = urlsplit(url)
        host = parts.hostname
        if parts.scheme not in ("http", "https") or not host:
            return Delivery.REFUSED
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            self._failed(host, f"cannot resolve: {exc}")
            return Delivery.FAILED
        addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
        allowed = [a for a in addresses if self.policy.refusal(a, port) is None]
        if not allowed:
            self._failed(host, f"refused: {self.policy.refusal(addresses[0], port)}")
            return Delivery.REFUSED
        target = f"{parts.path or '/'}{'?' + parts.query if parts.query else ''}"
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = _PinnedHTTPSConnection(host, allowed[0], port, self.timeout_s, self._tls)
        else:
            conn = http.client.HTTPConnection(allowed[0], port, timeout=self.timeout_s)
        try:
            conn.request("POST", target, body=body, headers={
                "Host": parts.netloc.rsplit("@", 1)[-1], **headers})
            answer = conn.getresponse()
            answer.read(_ANSWER_READ)
        except (OSError, http.client.HTTPException) as exc:
            self._failed(host, str(exc) or type(exc).__name__)
            return Delivery.FAILED
        finally:
            conn.close()
        if 200 <= answer.status < 300:
            return Delivery.DELIVERED
        # A redirect is not followed: it would send the notification where nobody chose.
        self._failed(host, f"answered {answer.status}")
        return Delivery.FAILED

    @staticmethod
    def _failed(host: str, why: str) -> None:
        # The host only: a webhook URL's path or query may hold a token. The detail stays in
        # the operator's log; what accounts see of a delivery is its outcome.
        log.warning("notification failed", extra={
            "event": "notification_failed", "host": host, "reason": why})
