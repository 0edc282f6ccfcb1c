"""Arrays on the wire: a ``[dtype, shape]`` descriptor in the header, raw bytes in a frame.

Sending never copies a C-contiguous little-endian array; receiving wraps the
frame's memory with ``np.frombuffer``, so decoded arrays are read-only views
of the received frame. torch tensors go through ``.numpy()`` by duck typing:
this module never imports torch and nothing is ever pickled.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from metamesh.errors import ProtocolError, Reason
from tests.protocol.v1.limits import Limits

__all__ = ["as_wire_array", "check_finite", "describe", "from_frame"]

_FLOAT_CODES = frozenset({"<f4", "<f8"})


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


def describe(arr: np.ndarray) -> list[Any]:
    """The header descriptor of an array: ``[dtype code, [dim, ...]]``."""
    return [arr.dtype.str, list(arr.shape)]


def from_frame(descriptor: Any, frame: Any, limits: Limits) -> np.ndarray:
    """Validate a descriptor against its frame and wrap the frame's memory without copying.

    Raises :class:`ProtocolError` (``bad_array``, ``bad_dtype``,
    ``too_many_elements``, ``shape_mismatch``); never reads the array data.
    """
    if not (isinstance(descriptor, list) and len(descriptor) == 2):
        raise ProtocolError(Reason.BAD_ARRAY, f"descriptor {descriptor!r:.60}")
    code, shape = descriptor
    if not isinstance(code, str) or code not in limits.allowed_dtypes:
        raise ProtocolError(Reason.BAD_DTYPE, f"dtype {code!r:.40}")
    if not isinstance(shape, list) or len(shape) > limits.max_ndim:
        raise ProtocolError(Reason.BAD_ARRAY, f"shape {shape!r:.60}")
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise ProtocolError(Reason.BAD_ARRAY, f"shape {shape!r:.60}")
        count *= dim
    if count > limits.max_array_elements:
        raise ProtocolError(Reason.TOO_MANY_ELEMENTS, f"{count} elements")
    dtype = np.dtype(code)
    buf = memoryview(getattr(frame, "buffer", frame))
    if buf.nbytes != count * dtype.itemsize:
        raise ProtocolError(
            Reason.SHAPE_MISMATCH,
            f"{code}{shape} needs {count * dtype.itemsize} bytes, frame has {buf.nbytes}",
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
