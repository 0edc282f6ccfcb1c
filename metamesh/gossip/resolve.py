"""Host names looked up by the node, in a thread of their own, never by ZeroMQ.

ZeroMQ resolves a ``tcp://NAME:PORT`` endpoint on its I/O thread, synchronously, on
every connect and reconnect; when the resolver does not answer, every socket of the
context stands still for its whole timeout (5 s and more per try). So names a user
gives are looked up here, with a deadline, and sockets only ever see IP literals.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading

from metamesh.errors import TransportError
from metamesh.protocol.endpoints import format_tcp, split_tcp

__all__ = ["resolve_host", "resolve_tcp"]


async def resolve_host(host: str, timeout: float) -> str:
    """An IP literal for ``host`` (IPv4 preferred); literals come back as they are."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    found: asyncio.Future[list[str]] = loop.create_future()

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            result: list[str] | BaseException = [str(info[4][0]) for info in infos]
        except OSError as exc:
            result = exc

        def settle() -> None:
            if found.done():
                return
            if isinstance(result, BaseException):
                found.set_exception(result)
            else:
                found.set_result(result)

        if not loop.is_closed():
            loop.call_soon_threadsafe(settle)

    # A daemon thread: a lookup that hangs past the deadline must not hold up the node's exit.
    threading.Thread(target=lookup, name=f"resolve {host}", daemon=True).start()
    try:
        addresses = await asyncio.wait_for(found, timeout)
    except TimeoutError:
        raise TransportError(f"looking up {host!r} took over {timeout:g} s") from None
    except OSError as exc:
        raise TransportError(f"cannot look up {host!r}: {exc}") from exc
    if not addresses:
        raise TransportError(f"{host!r} has no address")
    return min(addresses, key=lambda a: ":" in a)  # IPv4 first


async def resolve_tcp(endpoint: str, timeout: float) -> str:
    """``tcp://NAME:PORT`` with its name replaced by an IP literal."""
    try:
        host, port = split_tcp(endpoint)
    except ValueError as exc:
        raise TransportError(str(exc)) from None
    return format_tcp(await resolve_host(host, timeout), port)
