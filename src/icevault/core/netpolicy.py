"""Where the server may send a webhook: an address check made on the address it connects to.

A topic's URL names a host; what it resolves to is checked each time, and the connection is
made to the checked address (so a name that resolves to an allowed address when registered
and to the metadata service later is still refused). Always refused: link-local addresses
(the cloud metadata services at 169.254.169.254 and fe80::/10), multicast, unspecified and
reserved ones, and the server's own listening address. Loopback and private ranges only
when the operator allows them (``--webhook-allow-private``): LAN webhooks are a real use,
but the default must not let a topic reach what sits beside the server.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _plain(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (::ffff:169.254.169.254) as the IPv4 address it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    allow_private: bool = False
    # The server's own listening (address, port) pairs: its API, admin API and console.
    own: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    def refusal(self, host: str, port: int) -> str | None:
        """Why a connection to ``host`` (an IP address) and ``port`` is refused, or None."""
        address = _plain(ipaddress.ip_address(host.split("%", 1)[0]))
        if address.is_link_local:
            return "a link-local address"
        if address.is_multicast or address.is_unspecified or (
                address.is_reserved and not address.is_loopback):  # ::1 lies in ::/8
            return "not a unicast address"
        for own_host, own_port in self.own:
            if port == own_port and (address.is_loopback or str(address) == own_host
                                     or own_host in ("0.0.0.0", "::")):  # noqa: S104
                return "this server's own listening address"
        if address.is_global:
            return None
        if self.allow_private and (address.is_private or address.is_loopback):
            return None
        return ("a loopback or private address (the operator allows those with "
                "--webhook-allow-private)")
