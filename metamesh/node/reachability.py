"""Why a node cannot reach its network, said at WARNING while it is cut off.

A node with seeds that has heard from no peer within ``dead_after`` (the time
after which it would call a silent peer dead: 3 s on ``local``, 30 s on
``lan``) logs one WARNING per unanswered seed with the likely cause, then again
after twice as long, and so on up to once every ten ``dead_after``, for as long
as no peer is alive. Once a peer is alive the count starts over.

The cause comes from the configuration (on an encrypted network a seed needs
its node id, ``ID@tcp://...``, and ``authorized/ID.key`` must exist) and from a
watch on the transport's channel to each seed (a ZeroMQ socket monitor on its DEALER),
attached before it connects:

    connect retried, never connected   nothing listening at that address
    connect pending, never answered    packets dropped (firewall) or host down
    handshake refused (ZAP 400)        the seed does not admit this node's key
    handshake failed                   the seed's key is not the one expected
                                       (wrong id), or not a ROUTER port
    connected, dropped, no handshake   plain node vs encrypted seed, or a PUB port
    handshake done, hello unanswered   not metamesh, another protocol version,
                                       clocks apart, or an unknown signing key

A seed's monitor is closed once it answers. :func:`diagnose` is pure; the
monitor only records which of those happened last.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from metamesh.gossip.keys import CurveKeys
from metamesh.gossip.transport import ConnectionWatch

__all__ = ["Reachability", "SeedView", "diagnose"]

log = logging.getLogger(__name__)

#: The longest gap between two warnings, in ``dead_after`` periods.
MAX_GAP = 10


@dataclass(slots=True)
class SeedView:
    """What is known of one seed: as given, and what its connection did last."""

    seed: str
    peer_id: str
    endpoint: str = ""
    stage: str = ""
    """The latest telling event: '', delayed, refused, connected, dropped, handshake_ok,
    handshake_failed, auth_failed."""
    attempt_connected: bool = False
    error: str = ""
    answered: bool = False


def diagnose(view: SeedView, *, keys: CurveKeys | None, keys_dir: Path | None, own_id: str) -> str:
    """The likely reason ``view``'s seed has not answered, for a human."""
    where = keys_dir if keys_dir is not None else Path("KEYS")
    if keys is not None:
        if not view.peer_id:
            return (
                "on an encrypted network (--keys) a seed must name its node id, as ID@tcp://HOST:PORT, "
                f"ID being the name of its key file in {where}/authorized/"
            )
        if keys.server_key(view.peer_id) is None:
            known = ", ".join(sorted(keys.authorized)[:5]) or "none"
            return (
                f"there is no {where}/authorized/{view.peer_id}.key: is {view.peer_id!r} the seed's "
                f"node id? (keys there: {known})"
            )
    port = view.endpoint.rsplit(":", 1)[-1] if view.endpoint else "?"
    match view.stage:
        case "auth_failed" if keys is not None:  # only a Curve handshake is refused by ZAP
            return (
                f"the seed refused this node's key {keys.public.decode()} ({where}/node.key): "
                f"copy that file to the seed's keys as authorized/{own_id}.key and restart the seed"
            )
        case "handshake_failed" if keys is not None:
            return (
                f"the encrypted handshake failed: the seed's key is not the one in "
                f"{where}/authorized/{view.peer_id}.key (is {view.peer_id!r} its node id?), the seed is "
                f"not encrypted, or {port} is not its --router-port"
            )
        case "handshake_failed" | "dropped":
            return (
                "the seed dropped the connection during the handshake: it may be on an encrypted "
                f"network (start this node with --keys), or {port} is not its --router-port (its PUB port?)"
            )
        case "handshake_ok" | "connected":
            return (
                "connected, but the seed does not answer hellos: is it a metamesh node of a compatible "
                "version, with its clock near this one's? (on an encrypted network: does it have "
                "this node's signing key? its log says why it refused a message)"
            )
        case "refused":
            return (
                f"nothing is listening at {view.endpoint} (connection refused): is the seed running, "
                f"and is {port} its --router-port?"
            )
        case "delayed":
            return (
                f"no answer from {view.endpoint} at all: is the host up, and does a firewall "
                f"let TCP port {port} through?"
            )
    return view.error or "no answer"


class Reachability:
    """Seeds watched while no peer answers; every method runs on the node's loop, none blocks.

    ``failed`` returns True when the seed's DEALER should be made anew: libzmq gives up a
    connection whose key the server refused, so the same socket would never try again.
    """

    def __init__(
        self,
        seeds: Sequence[str],
        *,
        own_id: str,
        keys: CurveKeys | None,
        keys_dir: Path | None,
        bound: float,
        now: float,
    ) -> None:
        self._views = {s: SeedView(s, s.rpartition("@")[0]) for s in seeds}
        self._own_id = own_id
        self.keys = keys
        """The node's Curve keys (set once loaded, at start)."""
        self._keys_dir = keys_dir
        self._bound = bound
        self._gap = bound
        self._next = now + bound
        self._since = now  # no peer alive since
        self._warned = False
        self._monitors: dict[str, ConnectionWatch] = {}  # by endpoint

    def trying(self, seed: str, endpoint: str) -> None:
        """``seed`` resolved to ``endpoint``; a request to it follows."""
        if seed in self._views:
            self._views[seed].endpoint = endpoint

    def wants_watch(self, endpoint: str) -> bool:
        """Whether a channel about to connect to ``endpoint`` should be watched: an unanswered seed's."""
        return endpoint not in self._monitors and any(
            v.endpoint == endpoint and not v.answered for v in self._views.values()
        )

    def watching(self, endpoint: str, watch: ConnectionWatch) -> None:
        """The watch attached to the channel to ``endpoint``."""
        self._monitors[endpoint] = watch

    def failed(self, seed: str, error: str) -> bool:
        """A request to ``seed`` failed with ``error``; True: replace its DEALER."""
        view = self._views.get(seed)
        if view is None:
            return False
        view.error = error
        self._drain()
        if view.stage == "auth_failed" and view.endpoint in self._monitors:
            self._unmonitor(view.endpoint)  # a new DEALER gets a new monitor
            return True
        return False

    def answered(self, seed: str) -> None:
        view = self._views.get(seed)
        if view is None or view.answered:
            return
        view.answered = True
        self._unmonitor(view.endpoint)
        if self._warned:
            log.info("seed %s answered; this node is in its network", seed)

    def due(self, now: float, peers_alive: int) -> list[tuple[str, str]]:
        """Warn about each unanswered seed if no peer is alive and a warning is due;
        returns the ``(seed, cause)`` pairs warned about."""
        if peers_alive:
            self._gap, self._next, self._since = self._bound, now + self._bound, now
            return []
        if now < self._next:
            return []
        pending = [v for v in self._views.values() if not v.answered]
        if not pending:
            return []
        self._next = now + self._gap
        self._gap = min(self._gap * 2, MAX_GAP * self._bound)
        self._drain()
        self._warned = True
        out = []
        for view in pending:
            cause = diagnose(view, keys=self.keys, keys_dir=self._keys_dir, own_id=self._own_id)
            log.warning("no peer has answered for %.0f s; seed %s: %s", now - self._since, view.seed, cause)
            out.append((view.seed, cause))
        return out

    def close(self) -> None:
        """Close every monitor; call before the context terminates."""
        for endpoint in list(self._monitors):
            self._unmonitor(endpoint)

    def _unmonitor(self, endpoint: str) -> None:
        watch = self._monitors.pop(endpoint, None)
        if watch is not None:
            watch.close()

    def _drain(self) -> None:
        for endpoint, watch in self._monitors.items():
            views = [v for v in self._views.values() if v.endpoint == endpoint]
            for event in watch.events():
                for view in views:
                    _record(view, event)


_STAGES = {
    "connected": "connected",
    "handshake_succeeded": "handshake_ok",
    "handshake_failed_auth": "auth_failed",
    "handshake_failed": "handshake_failed",
}


def _record(view: SeedView, event: str) -> None:
    """Fold one watch event into what the seed's connection did last."""
    if event == "connect_delayed":
        view.attempt_connected = False
        if not view.stage:
            view.stage = "delayed"
    elif event == "connect_retried":
        if not view.attempt_connected:
            view.stage = "refused"
    elif event == "disconnected":
        if view.stage == "connected":
            view.stage = "dropped"
    elif event in _STAGES:
        view.attempt_connected = view.attempt_connected or event == "connected"
        view.stage = _STAGES[event]
