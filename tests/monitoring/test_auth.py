"""Sealing and checking hub frames (monitoring/auth.py), one case at a time."""

from __future__ import annotations

import pytest

from taskscope.monitoring.auth import OVERHEAD, FrameGate, FrameSealer, new_secret

pytestmark = pytest.mark.attack


def test_a_sealed_frame_opens_once_to_its_payload():
    secret = new_secret()
    sealer, gate = FrameSealer(secret, "run"), FrameGate(secret, "run")
    frames = [sealer.seal(b"payload %d" % i) for i in range(3)]
    assert [bytes(gate.open(f)) for f in frames] == [b"payload 0", b"payload 1", b"payload 2"]
    assert gate.open(frames[1]) is None  # replayed
    assert len(frames[0]) == len(b"payload 0") + OVERHEAD
    assert gate.open(sealer.seal(b"")) is not None  # an empty payload is still a frame


@pytest.mark.parametrize(
    "change",
    [
        "payload byte",
        "header byte",
        "mac byte",
        "truncated",
        "extended",
        "other run",
        "other secret",
        "junk",
        "big junk",
    ],
)
def test_any_change_is_refused_and_counted(change: str):
    secret = new_secret()
    gate = FrameGate(secret, "run")
    frame = bytearray(FrameSealer(secret, "run").seal(b"x" * 100))
    if change == "payload byte":
        frame[OVERHEAD - 32 + 5] ^= 1
    elif change == "header byte":
        frame[3] ^= 1
    elif change == "mac byte":
        frame[-1] ^= 1
    elif change == "truncated":
        frame = frame[:-10]
    elif change == "extended":
        frame += b"more"
    elif change == "other run":
        frame = bytearray(FrameSealer(secret, "another run").seal(b"x" * 100))
    elif change == "other secret":
        frame = bytearray(FrameSealer(new_secret(), "run").seal(b"x" * 100))
    elif change == "junk":
        frame = bytearray(b"T" + bytes(200))
    elif change == "big junk":
        frame = bytearray(b"T" + bytes(8 * 2**20))  # refused on its header, not hashed whole
    assert gate.open(bytes(frame)) is None
    assert gate.take_refused() == 1 and gate.take_refused() == 0


def test_a_run_needs_a_secret():
    with pytest.raises(ValueError, match="secret"):
        FrameSealer("", "run")
