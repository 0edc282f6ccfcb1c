"""Gossip: how knowledge moves between peers.

ZeroMQ transport, membership, discovery, domains with hysteresis, the mesh,
relay with dedup, and the merge rules. Pure logic lives in its own modules and
takes values, returning values; sockets sit behind the transport interface.
"""
