"""Shared test setup. Keep this small: fixtures belong beside the tests that use them."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest

_LOOPBACK_NAMES = {"localhost", "ip6-localhost", "ip6-loopback"}


def _loopback(host: Any) -> bool:
    if host is None or isinstance(host, bytes | bytearray):
        host = (host or b"").decode() or "localhost"
    host = str(host).strip("[]")
    if host in _LOOPBACK_NAMES or host == "":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return ip.is_loopback or ip.is_unspecified or bool(mapped and mapped.is_loopback)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any test that tries to reach a non-loopback address (tests talk to the stub on
    127.0.0.1 only; a test that would call a real API fails loudly instead)."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(address: Any, family: int) -> None:
        if family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            raise RuntimeError(
                f"test tried to reach the network: {address!r} (only loopback is allowed)"
            )

    def connect(self: socket.socket, address: Any) -> Any:
        check(address, self.family)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        check(address, self.family)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _loopback(host):
            raise RuntimeError(f"test tried to resolve {host!r} (only loopback is allowed)")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
