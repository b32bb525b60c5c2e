from __future__ import annotations

import pytest

from icevault.core.netpolicy import AddressPolicy

STRICT = AddressPolicy(own=frozenset({("127.0.0.1", 9099)}))
LAN = AddressPolicy(allow_private=True, own=frozenset({("127.0.0.1", 9099)}))


@pytest.mark.parametrize("host", ["169.254.169.254", "::ffff:169.254.169.254", "fe80::1",
                                  "0.0.0.0", "224.0.0.1", "240.0.0.1"])
def test_always_refused(host: str) -> None:
    assert STRICT.refusal(host, 80) is not None
    assert LAN.refusal(host, 80) is not None


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "192.168.0.9", "172.16.0.1", "::1",
                                  "fd00::1", "100.64.0.1"])
def test_private_only_when_allowed(host: str) -> None:
    assert "private" in (STRICT.refusal(host, 8080) or "")
    if host != "100.64.0.1":  # shared address space: neither private nor global
        assert LAN.refusal(host, 8080) is None


def test_the_servers_own_address_is_refused_even_when_private_is_allowed() -> None:
    assert LAN.refusal("127.0.0.1", 9099) == "this server's own listening address"
    assert LAN.refusal("127.0.0.2", 9099) == "this server's own listening address"
    assert LAN.refusal("127.0.0.1", 9100) is None


def test_public_addresses_are_allowed() -> None:
    assert STRICT.refusal("93.184.216.34", 443) is None
    assert STRICT.refusal("2606:2800:220:1:248:1893:25c8:1946", 443) is None
