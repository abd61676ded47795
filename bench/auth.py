"""What authenticating the hub's frames costs (monitoring/auth.py), and what a flood costs.

Prints one JSON line per section and saves them to bench/results/auth.json.
Sections:
- per-batch: sealing (worker side) and checking (hub side) a frame of 1, 50 and 500
  messages, next to decoding the same frame, in µs per frame;
- refuse: what the hub spends refusing a junk frame, an unsealed batch, and a frame with a
  wrong MAC, in µs per frame;
- flood: a live run (MonitoringHub + the real worker-side sender) recording 2,000 tasks,
  alone and while another process's socket sends 100,000 hostile frames: the time until the
  last real row is in the database, and how many hostile frames were counted;
- flood-peers: the same 100,000 hostile frames spread over 10 connections of the attacker
  process (one real connection against ten hostile ones: the per-peer fairness of the ROUTER
  socket, which takes a frame from each connection in turn).
Run: .venv/bin/python bench/auth.py [section ...]
"""

from __future__ import annotations

import json
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "auth.json"


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load": round(os.getloadavg()[0], 2),
    }


def _messages(run: str, count: int) -> list:
    from taskscope.store.messages import TaskStatus, TryRun

    now = time.time()
    out: list = []
    for i in range(count):
        out.append(
            TryRun(run, i, 0, "host", "0", now, now + 1e-3)
            if i % 2
            else TaskStatus(run, i, 0, "exec_done", now)
        )
    return out


def _per_call_us(action, number: int) -> float:
    best = min(timeit.repeat(action, number=number, repeat=5))
    return round(best / number * 1e6, 2)


def per_batch() -> dict:
    from taskscope.monitoring.auth import FrameGate, FrameSealer, new_secret
    from taskscope.store.messages import decode_batch, encode_batch

    run, secret = str(uuid.uuid4()), new_secret()
    sealer, gate = FrameSealer(secret, run), FrameGate(secret, run)
    figures = {}
    for count in (1, 50, 500):
        payload = encode_batch(_messages(run, count))
        frames = [sealer.seal(payload) for _ in range(20_000 if count < 500 else 2_000)]
        it = iter(frames)
        number = len(frames) // 5
        figures[f"{count}_messages"] = {
            "frame_bytes": len(frames[0]),
            "seal_us": _per_call_us(lambda payload=payload: sealer.seal(payload), number),
            "check_us": _per_call_us(lambda it=it: gate.open(next(it)), number),
            "decode_us": _per_call_us(lambda payload=payload: decode_batch(payload), number),
        }
    return {
        "section": "per-batch",
        "machine": machine(),
        **figures,
        "note": "check = MAC + replay check on the hub before decoding; best of 5",
    }


def refuse() -> dict:
    import logging

    from taskscope.monitoring.auth import FrameGate, FrameSealer, new_secret
    from taskscope.store.messages import encode_batch

    logging.disable(logging.WARNING)  # the gate logs once per reason; keep the output clean
    run, secret = str(uuid.uuid4()), new_secret()
    gate = FrameGate(secret, run)
    rng = random.Random(1)
    junk = rng.randbytes(200)
    unsealed = encode_batch(_messages(run, 50))
    wrong_mac = FrameSealer(new_secret(), run).seal(encode_batch(_messages(run, 50)))
    big_junk = b"T" + rng.randbytes(16 * 2**20)  # looks sealed, 16 MiB
    replayed = FrameSealer(secret, run).seal(encode_batch(_messages(run, 500)))
    gate.open(replayed)
    figures = {
        name: _per_call_us(lambda frame=frame: gate.open(frame), number)
        for name, frame, number in (
            ("junk_200_bytes_us", junk, 20_000),
            ("unsealed_batch_us", unsealed, 20_000),
            ("wrong_mac_us", wrong_mac, 20_000),
            ("junk_16_mib_us", big_junk, 2_000),
            ("replayed_500_messages_us", replayed, 20_000),
        )
    }
    return {
        "section": "refuse",
        "machine": machine(),
        **figures,
        "wrong_mac_frame_bytes": len(wrong_mac),
        "replayed_frame_bytes": len(replayed),
    }


ATTACKER = """
import random, sys, time, zmq
from taskscope.monitoring.auth import FrameSealer, new_secret
from taskscope.store.messages import TaskInfo, encode_batch
port, run, count, peers = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
forged = encode_batch([TaskInfo(run, 999_999, "forged", False, "x", time.time())])
other = FrameSealer(new_secret(), run).seal(forged)
rng = random.Random(3)
frames = [rng.choice((forged, other, rng.randbytes(120))) for _ in range(count)]
context = zmq.Context()
pushes = []
for _ in range(peers):
    push = context.socket(zmq.DEALER)
    push.setsockopt(zmq.SNDHWM, 0)
    push.setsockopt(zmq.LINGER, 60_000)
    push.connect(f"tcp://127.0.0.1:{port}")
    pushes.append(push)
print("ready", flush=True)
start = time.perf_counter()
for i, frame in enumerate(frames):
    pushes[i % peers].send(frame)
print(round(time.perf_counter() - start, 3), flush=True)  # handed to ZeroMQ
for push in pushes:
    push.close()
context.term()
"""


def _run_with_flood(folder: Path, hostile: int, peers: int = 1) -> dict:
    import msgspec

    from taskscope.monitoring import MonitoringHub, wrapper
    from taskscope.monitoring.messages import TaskInfo, TaskStatus, WorkflowEnd, WorkflowStart
    from taskscope.store.spool import SEQUENCE_TABLE, spool_dir, spooled_sequences

    tasks = 2_000
    db = folder / "monitoring.db"
    hub = MonitoringHub(logging_endpoint=f"sqlite:///{db}")
    run = str(uuid.uuid4())
    hub.start(run, str(folder / "run"))
    now = time.time()
    hub.send(
        WorkflowStart(
            run,
            "bench",
            "1",
            now,
            "h",
            "u",
            str(folder),
            "3",
            "0",
            [],
            os.getpid(),
            hub.heartbeat_interval,
        )
    )
    # The attacker is another process, as it would be: in this one it would take the GIL
    # from the workload and measure this script, not the hub.
    attacker = (
        subprocess.Popen(
            [sys.executable, "-c", ATTACKER, str(hub.port), run, str(hostile), str(peers)],
            stdout=subprocess.PIPE,
            text=True,
        )
        if hostile
        else None
    )
    if attacker is not None:
        assert attacker.stdout.readline().strip() == "ready"  # its frames made; sending now
    start = time.perf_counter()
    target = msgspec.structs.replace(hub._target, hub_pid=-1)  # report over the socket
    for task_id in range(tasks):
        hub.send(TaskInfo(run, task_id, "f", False, "x", time.time()))
        wrapper.MonitoredCall(lambda: None, target, task_id, 0)()
        hub.send(TaskStatus(run, task_id, 0, "exec_done", time.time()))
    for batch_sender in list(wrapper.sender._senders.values()):
        batch_sender.flush()  # what this process's wrapper buffered, sent now
    sent_s = time.perf_counter() - start  # the workload itself (slowed by any CPU contention)
    # What the real senders sealed: sender id -> last sequence number.
    sealed = {
        batch_sender._sealer._sender: batch_sender._sealer._sequence
        for (_, _, sender_run), batch_sender in wrapper.sender._senders.items()
        if sender_run == run  # an earlier run of this script has its own sender
    }

    def all_real_frames_spooled() -> bool:
        # Accepted: still in the spool, or applied (its segment gone, its sequence recorded).
        spooled = spooled_sequences(spool_dir(db))
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            for sender, last in conn.execute(f"SELECT sender, last_sequence FROM {SEQUENCE_TABLE}"):
                spooled[sender] = max(last, spooled.get(sender, 0))
        except sqlite3.Error:
            pass  # not created yet
        finally:
            conn.close()
        return all(spooled.get(sender, 0) >= last for sender, last in sealed.items())

    # The receive loop is what a flood competes with (refused frames never reach the spool
    # or the apply loop): how long after the last send it has accepted every real frame.
    while not all_real_frames_spooled():
        time.sleep(0.002)
    spooled_s = time.perf_counter() - start

    def real_rows() -> int:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return conn.execute(
                "SELECT count(*) FROM try WHERE task_try_time_returned IS NOT NULL"
            ).fetchone()[0]
        except sqlite3.Error:
            return 0
        finally:
            conn.close()

    while real_rows() < tasks:
        time.sleep(0.01)
    recorded_s = time.perf_counter() - start
    attacker_sent_s = None
    if attacker is not None:
        attacker_sent_s = float(attacker.communicate(timeout=300)[0].split()[0])
    hub.send(WorkflowEnd(run, time.time(), "completed", tasks, 0))
    deadline = time.monotonic() + 120
    while hub._writer and time.monotonic() < deadline:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        dropped = conn.execute("SELECT messages_dropped FROM taskscope_run").fetchone()[0]
        conn.close()
        if dropped >= hostile:
            break
        time.sleep(0.05)
    hub.close()
    conn = sqlite3.connect(db)
    forged_rows = conn.execute("SELECT count(*) FROM task WHERE task_id = 999999").fetchone()[0]
    conn.close()
    return {
        "tasks": tasks,
        "hostile_frames": hostile,
        "hostile_peers": peers if hostile else 0,
        # How long the attacker took to hand its frames to ZeroMQ (the flood's span).
        "attacker_sent_in_s": attacker_sent_s,
        "all_real_rows_in_s": round(recorded_s, 3),
        "workload_s": round(sent_s, 3),
        # From the last real frame sent to the last real row written: the hub's own lag.
        "hub_lag_after_last_send_s": round(recorded_s - sent_s, 3),
        "real_frames_spooled_after_last_send_s": round(spooled_s - sent_s, 4),
        "dropped_counted": hub.messages_dropped,
        "forged_rows": forged_rows,
        "writer_cpu_s": round(hub.writer_cpu_seconds, 3),
    }


def flood() -> dict:
    import logging

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as quiet, tempfile.TemporaryDirectory() as loud:
        alone = _run_with_flood(Path(quiet), 0)
        flooded = _run_with_flood(Path(loud), 100_000)
    return {"section": "flood", "machine": machine(), "alone": alone, "flooded": flooded}


def flood_peers() -> dict:
    import logging

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as quiet, tempfile.TemporaryDirectory() as loud:
        alone = _run_with_flood(Path(quiet), 0)
        flooded = _run_with_flood(Path(loud), 100_000, peers=10)
    return {"section": "flood-peers", "machine": machine(), "alone": alone, "flooded": flooded}


SECTIONS = {"per-batch": per_batch, "refuse": refuse, "flood": flood, "flood-peers": flood_peers}


def main(argv: list[str]) -> None:
    names = argv or list(SECTIONS)
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in names:
        line = SECTIONS[name]()
        print(json.dumps(line), flush=True)
        saved[name] = line
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(saved, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
