"""Length-prefixed frames over a pipe: many frames per read, one write per batch."""

from __future__ import annotations

import os
import struct

_HEADER = struct.Struct("<I")
HEADER_SIZE = _HEADER.size

# A worker's shared-memory slot: the id of the task it is running, or IDLE.
SLOT = struct.Struct("<q")
IDLE = -1


def frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def write_all(fd: int, data: bytes) -> None:
    """Blocking write of a whole buffer (the worker side; its pipe is blocking)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class FrameReader:
    """Accumulates bytes and yields complete frame payloads."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        frames = []
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_SIZE:
            (size,) = _HEADER.unpack_from(buf, pos)
            if end - pos - HEADER_SIZE < size:
                break
            start = pos + HEADER_SIZE
            frames.append(bytes(buf[start : start + size]))
            pos = start + size
        if pos:
            del buf[:pos]
        return frames
