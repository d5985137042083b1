"""The HTTP client of a destination: keep-alive, bounded connections, and, unless the
destination sets ``allow_private: true``, no connection to a loopback, private,
link-local or otherwise non-public address.

The check is made where the connection is opened, on the addresses the name resolves
to right then, and the connection goes to the very address that was checked: a name
that resolves to a public address when configured and to 127.0.0.1 later (DNS
rebinding) is refused too. TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable

import httpcore
import httpx
from httpcore._backends.auto import AutoBackend

from .config import Destination, is_public


class PrivateAddressRefused(httpcore.ConnectError):
    pass


class PublicOnlyBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self._backend = AutoBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [str(info[4][0]) for info in infos]
        for a in addresses:
            if not is_public(ipaddress.ip_address(a.split("%", 1)[0])):
                raise PrivateAddressRefused(
                    f"refused: {host} resolves to {a}, a private or loopback address (allow_private is false)"
                )
        if not addresses:
            raise httpcore.ConnectError(f"{host} does not resolve")
        return await self._backend.connect_tcp(
            addresses[0], port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise PrivateAddressRefused("refused: unix sockets are local")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


class PublicOnlyTransport(httpx.AsyncHTTPTransport):
    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        # httpx offers no parameter for the network backend: give its pool one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PublicOnlyBackend(),
        )


def client_for(destination: Destination) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=destination.concurrency,
        max_keepalive_connections=destination.concurrency,
        keepalive_expiry=30,
    )
    transport = (
        httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
        if destination.allow_private
        else PublicOnlyTransport(limits)
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(destination.timeout),
        follow_redirects=False,
        trust_env=False,
    )
