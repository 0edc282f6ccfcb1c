import asyncio

import numpy as np
import zmq
import zmq.asyncio

from metamesh.protocol import Delta, Envelope, decode, encode


def _inside(arr: np.ndarray, frame: zmq.Frame) -> bool:
    start = np.frombuffer(frame.buffer, dtype=np.uint8).__array_interface__["data"][0]
    ptr = arr.__array_interface__["data"][0]
    return start <= ptr and ptr + arr.nbytes <= start + len(frame.buffer)


async def test_40mb_delta_decodes_without_copying(zctx: zmq.asyncio.Context) -> None:
    weights = np.random.default_rng(1).standard_normal(10 * 1024 * 1024).astype(np.float32)
    zctx.setsockopt(zmq.LINGER, 0)
    with zctx.socket(zmq.PULL) as pull, zctx.socket(zmq.PUSH) as push:
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push.connect(f"tcp://127.0.0.1:{port}")
        env = Envelope("a", 1, "d", Delta("m", {"w": weights}, 0, 100), 1.0)
        await push.send_multipart(encode(env), copy=False)
        frames = await asyncio.wait_for(pull.recv_multipart(copy=False), 30)
    got = decode(frames)
    assert isinstance(got.body, Delta)
    arr = got.body.tensors["w"]
    assert arr.nbytes == 40 * 1024 * 1024
    assert _inside(arr, frames[2]), "decoded array is not a view of the received frame"
    assert np.shares_memory(arr, np.frombuffer(frames[2].buffer, dtype=np.uint8))
    np.testing.assert_array_equal(arr, weights)
