"""Arrays on the wire: a ``[dtype, shape]`` descriptor in the header, raw bytes in a frame.

Sending never copies a C-contiguous little-endian array; receiving wraps the
frame's memory with ``np.frombuffer``, so decoded arrays are read-only views
of the received frame. In a body an array field is, on the wire, the index
of its frame: the codec's msgspec hooks swap one for the other (``put`` when
encoding; ``take``, then ``resolve`` once the frames are checked, when decoding).
torch tensors go through ``.numpy()`` by duck typing: this module
never imports torch and nothing is ever pickled.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from typing import Any

import msgspec
import numpy as np

from metamesh.errors import ProtocolError, Reason
from metamesh.protocol.limits import Limits

__all__ = ["BAD_REF", "as_wire_array", "check_finite", "from_frame", "put", "resolve", "take"]

_FLOAT_CODES = frozenset({"<f4", "<f8"})
BAD_REF = "not the index of an array frame"
#: The arrays of the message being encoded (sync calls: one list per context).
_OUT: ContextVar[tuple[list[np.ndarray], list[Any]]] = ContextVar("metamesh_arrays_out")
_EMPTY = np.empty(0, np.uint8)


class _Ref(np.ndarray):
    """Stands in an array field while the header is decoded; ``index`` is its frame's."""

    index: int


def as_wire_array(value: Any) -> np.ndarray:
    """A C-contiguous little-endian numpy view of ``value``; copies only when it must.

    Accepts numpy arrays, numpy scalars and anything with torch's
    ``detach().cpu().numpy()`` (a CPU tensor shares memory; a GPU one is moved).
    """
    if not isinstance(value, np.ndarray):
        detach = getattr(value, "detach", None)
        value = detach().cpu().numpy() if detach is not None else np.asarray(value)
    arr: np.ndarray = value
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr


def put(value: Any) -> Any:
    """msgspec ``enc_hook``: an array becomes the index of its frame; a numpy scalar its value."""
    if isinstance(value, np.generic):
        return value.item()
    if not isinstance(value, np.ndarray) and not hasattr(value, "detach"):
        raise TypeError(f"cannot put a {type(value).__name__} on the wire")
    arrays, descriptors = _OUT.get()
    arr = as_wire_array(value)
    arrays.append(arr)
    descriptors.append([arr.dtype.str, list(arr.shape)])
    return len(arrays) - 1


def take(kind: type, ref: Any) -> Any:
    """msgspec ``dec_hook``: an array field's index, held until ``resolve`` puts the array there."""
    if kind is not np.ndarray or type(ref) is not int or not 0 <= ref < 65_536:
        raise ValueError(BAD_REF)
    out = _EMPTY.view(_Ref)
    out.index = ref
    return out


def resolve(body: Any, arrays: list[np.ndarray]) -> None:
    """Put each validated array in the field that refers to it; every frame exactly once."""
    fields = [(name, getattr(body, name)) for name in body.ARRAYS]
    used = [v.index for _, v in fields if isinstance(v, _Ref)]
    used += [r.index for _, v in fields if not isinstance(v, np.ndarray) for r in v.values()]
    if sorted(used) != list(range(len(arrays))):
        raise ProtocolError(Reason.BAD_ARRAY, f"{len(arrays)} array frames, references {used!r:.60}")
    for name, value in fields:
        if isinstance(value, _Ref):
            msgspec.structs.force_setattr(body, name, arrays[value.index])
        else:
            value.update({k: arrays[r.index] for k, r in value.items()})


def from_frame(code: str, shape: tuple[int, ...], frame: Any, limits: Limits) -> np.ndarray:
    """Check a (structurally valid) descriptor against its frame and wrap the frame's memory.

    Raises :class:`ProtocolError` (``bad_dtype``, ``bad_array``,
    ``too_many_elements``, ``shape_mismatch``); never reads the array data.
    """
    if code not in limits.allowed_dtypes:
        raise ProtocolError(Reason.BAD_DTYPE, f"dtype {code!r:.40}")
    if len(shape) > limits.max_ndim:
        raise ProtocolError(Reason.BAD_ARRAY, f"shape {shape!r:.60}")
    count = math.prod(shape)
    if count > limits.max_array_elements:
        raise ProtocolError(Reason.TOO_MANY_ELEMENTS, f"{count} elements")
    dtype = np.dtype(code)
    buf = memoryview(getattr(frame, "buffer", frame))
    if buf.nbytes != count * dtype.itemsize:
        raise ProtocolError(
            Reason.SHAPE_MISMATCH,
            f"{code}{list(shape)} needs {count * dtype.itemsize} bytes, frame has {buf.nbytes}",
        )
    if count == 0:
        return np.empty(shape, dtype=dtype)
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


def check_finite(arr: np.ndarray) -> None:
    """Reject NaN and infinities in a floating array.

    One BLAS dot product is NaN or inf whenever any element is, and reads the
    data once without allocating; only a non-finite result (possible for huge
    finite float64 values) takes the exact element-wise path.
    """
    code = arr.dtype.str
    if code == "<f2":
        ok = bool(np.isfinite(arr).all())
    elif code in _FLOAT_CODES:
        flat = arr.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            ok = math.isfinite(float(np.dot(flat, flat))) or bool(np.isfinite(flat).all())
    else:
        return
    if not ok:
        raise ProtocolError(Reason.NON_FINITE, f"{code}{list(arr.shape)} holds NaN or inf")
