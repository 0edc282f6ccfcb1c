"""The base of every message body, and the bound checks every kind shares."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from metamesh.errors import ProtocolError, Reason
from metamesh.protocol._fields import MAX_ITEMS, names_ok
from metamesh.protocol.limits import LAN, Limits

__all__ = ["Body", "bad"]


def bad(key: str, value: Any) -> ProtocolError:
    return ProtocolError(Reason.BAD_FIELD, f"{key}={value!r:.60}")


class Body(msgspec.Struct, frozen=True, gc=False):
    """A message body: a frozen typed struct whose fields are the body's map on the wire.

    ``KIND`` is its name in the topic and in the header's ``k``. Array fields
    hold numpy arrays; on the wire each is an index into the message's array
    frames (``metamesh.protocol.arrays``). Construction checks nothing: the
    decoder validates what arrives, in C, then calls :meth:`check`.
    """

    KIND: ClassVar[str]
    #: Fields holding names (a name, a list of them, or a map keyed by them).
    NAMES: ClassVar[tuple[str, ...]] = ()
    #: Fields holding arrays (an array, or a map of them).
    ARRAYS: ClassVar[tuple[str, ...]] = ()

    def check(self, limits: Limits) -> None:
        """Rules the field types cannot state; raises :class:`ProtocolError`.

        Checks the characters of names, and applies the container limits of
        a profile below the protocol's own (``EDGE``): the field types carry
        the LAN bounds.
        """
        for name in self.NAMES:
            if not names_ok(getattr(self, name)):
                raise bad(name, getattr(self, name))
        if limits is not LAN and (limits.max_list_len < MAX_ITEMS or limits.max_map_len < MAX_ITEMS):
            self.within(limits)

    def within(self, limits: Limits) -> None:
        """No list or map longer than a profile lower than LAN allows."""
        for name in self.__struct_fields__:
            value = getattr(self, name)
            cap = limits.max_map_len if isinstance(value, dict) else limits.max_list_len
            if isinstance(value, list | tuple | dict) and len(value) > cap:
                raise bad(name, f"{len(value)} items")
