"""Where a peer can be reached, as it travels on the wire: ``tcp://`` + an IP literal + a port.

Advertised endpoints are IP literals because ZeroMQ resolves a host name on its I/O
thread, synchronously: a peer advertising a name whose lookup hangs would freeze every
socket of the receiving node for the resolver's whole timeout, on every reconnect. Names
a user gives (seeds, ``--advertise``) are resolved by the node itself, off that thread.
"""

from __future__ import annotations

import ipaddress

__all__ = ["IPAddress", "format_tcp", "parse_tcp", "split_tcp"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def split_tcp(endpoint: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` as ``(host, port)``, host without IPv6 brackets; ValueError otherwise."""
    scheme, sep, rest = endpoint.partition("://")
    if scheme != "tcp" or not sep:
        raise ValueError(f"{endpoint!r} is not a tcp:// endpoint")
    host, colon, port_text = rest.rpartition(":")
    digits = port_text.isascii() and port_text.isdigit()
    if not colon or not host or not digits or not 0 < int(port_text) < 65536:
        raise ValueError(f"{endpoint!r} has no port between 1 and 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def parse_tcp(endpoint: str) -> tuple[IPAddress, int]:
    """``tcp://IP:PORT`` (IPv6 in brackets) as ``(address, port)``; ValueError for anything else."""
    host, port = split_tcp(endpoint)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{endpoint!r}: {host!r} is not an IP address") from None
    if address.version == 6 and not endpoint.startswith("tcp://["):
        raise ValueError(f"{endpoint!r}: an IPv6 address goes in brackets")
    return address, port


def format_tcp(host: str, port: int) -> str:
    return f"tcp://[{host}]:{port}" if ":" in host else f"tcp://{host}:{port}"
