"""Node and block rows for a Dask cluster, from the client's side.

A thread polls the scheduler about once a second. Each Dask worker is a node: a row when it
joins (with its real hostname, CPU count and memory, asked of the worker itself) and one when
it leaves. When the cluster object is known (``LocalCluster``, a dask-jobqueue cluster: any
``SpecCluster``), each entry of ``cluster.workers`` is a block: a batch job for dask-jobqueue
(with its scheduler job id), a worker process for ``LocalCluster``. A block gets a row when it
is submitted (``PENDING``), when its first worker connects (``RUNNING``), and when it ends:
``SCALED_IN`` if the cluster removed it (scale-in, shutdown), ``COMPLETED`` if its workers
went away on their own (walltime, exit), as Parsl records jobs that left the queue.

Polling rather than a scheduler plugin keeps this working on any scheduler the user points
at, including ones taskscope did not start and cannot install code into.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskscope.monitoring.messages import BlockInfo, Message, NodeInfo

logger = logging.getLogger(__name__)

# A block whose workers are all gone is over only if none comes back within this time: a
# nanny replaces a dead worker within seconds, and that is the same block going on.
BLOCK_EMPTY_GRACE = 10.0


def block_of_worker(name: Any, block_names: set[str]) -> str:
    """The block a worker belongs to: its own name, or the job name it was started under.

    dask-jobqueue names the workers of a job with several processes ``<job>-<i>``.
    """
    text = str(name)
    if text in block_names:
        return text
    head, _, tail = text.rpartition("-")
    if head and tail.isdigit() and (head in block_names or not block_names):
        return head
    return text


@dataclass(frozen=True)
class NodeFacts:
    """What a worker says about the machine it runs on."""

    hostname: str
    cpu_count: int
    total_memory: int
    python_v: str


def node_facts() -> NodeFacts:
    """Runs on a worker (through ``client.run``)."""
    import psutil

    return NodeFacts(
        hostname=socket.gethostname(),
        cpu_count=os.cpu_count() or 1,
        total_memory=int(psutil.virtual_memory().total),
        python_v=platform.python_version(),
    )


@dataclass
class _Node:
    uid: str
    block_id: str
    facts: NodeFacts
    threads: int


@dataclass
class _Block:
    job_id: str | None
    status: str
    empty_since: float | None = None


class DaskClusterWatch:
    """Sends NodeInfo/BlockInfo for one executor's Dask cluster until stopped."""

    def __init__(
        self,
        client: Any,
        cluster: Any | None,
        send: Callable[[Message], None],
        run_id: str,
        executor_label: str,
        interval: float = 1.0,
    ) -> None:
        self.client = client
        self.cluster = cluster
        self.send = send
        self.run_id = run_id
        self.label = executor_label
        self.interval = interval
        self._nodes: dict[str, _Node] = {}
        self._blocks: dict[str, _Block] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"taskscope-dask-watch-{executor_label}", daemon=True
        )

    def start(self) -> None:
        self.poll()
        self._thread.start()

    def stop_polling(self) -> None:
        """Stop the thread after one last poll. Called while the cluster still runs: a short
        run can end before the thread's first poll saw a worker, and once the cluster is
        scaled down the workers are leaving and their blocks gone from ``cluster.workers``
        (the block's RUNNING row was then missing)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        try:
            self.poll()
        except Exception as e:  # noqa: BLE001 - the scheduler may already be gone
            logger.debug("last cluster poll failed: %s", e)

    def stop(self, end_blocks: bool) -> None:
        """Every node inactive (this run no longer uses it) and, with ``end_blocks`` (the
        executor owned the cluster and shut it down), every block ``SCALED_IN``. Blocks of a
        cluster the user owns keep running after the run. Polls one last time first unless
        ``stop_polling`` did."""
        if not self._stop.is_set():
            self.stop_polling()
        now = time.time()
        for addr in list(self._nodes):
            self._node_left(addr, now)
        if not end_blocks:
            return
        for name, block in self._blocks.items():
            if block.status not in ("", "SCALED_IN", "COMPLETED"):
                self._block_status(name, "SCALED_IN", now)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as e:  # noqa: BLE001 - keep watching through a scheduler hiccup
                logger.warning("polling the Dask scheduler for node/block rows failed: %s", e)

    # --- one poll --------------------------------------------------------------------------

    def _cluster_blocks(self) -> dict[str, Any] | None:
        """Block name -> its job (or worker) object, or None when there is no SpecCluster."""
        spec = getattr(self.cluster, "workers", None)
        if not isinstance(spec, dict):
            return None
        return {str(name): job for name, job in list(spec.items())}

    def poll(self) -> None:
        now = time.time()
        blocks = self._cluster_blocks()
        for name, job in (blocks or {}).items():
            known = self._blocks.get(name)
            if known is None:
                known = self._blocks[name] = _Block(None, "")
            if known.status:
                continue
            # A batch job is "submitted" once the scheduler gave it an id; until then it has
            # no row (LocalCluster workers have no job id at all and get one at once).
            known.job_id = _job_id(job)
            if known.job_id is not None or not hasattr(job, "job_id"):
                self._block_status(name, "PENDING", now)
        workers = _all_workers(self.client)
        block_names = set(self._blocks)
        new = [addr for addr in workers if addr not in self._nodes]
        if new:
            facts = self.client.run(node_facts, workers=new, on_error="return")
            for addr in new:
                fact = facts.get(addr)
                if not isinstance(fact, NodeFacts):
                    continue  # the worker left before it answered; the next poll retries
                info = workers[addr]
                block = block_of_worker(info.get("name", addr), block_names)
                node = _Node(addr, block, fact, int(info.get("nthreads", 1)))
                self._nodes[addr] = node
                self._send_node(node, True, now)
                known = self._blocks.get(block)
                if known is not None and known.status in ("", "PENDING", "COMPLETED"):
                    self._block_status(block, "RUNNING", now)
        for addr in [a for a in self._nodes if a not in workers]:
            self._node_left(addr, now)
        if blocks is not None:
            self._end_blocks(blocks, now)

    def _end_blocks(self, blocks: dict[str, Any], now: float) -> None:
        live = {node.block_id for node in self._nodes.values()}
        for name, block in self._blocks.items():
            if block.status in ("", "SCALED_IN", "COMPLETED"):
                continue
            if name not in blocks:  # the cluster let it go: Parsl's deliberate scale-in
                self._block_status(name, "SCALED_IN", now)
            elif block.status == "RUNNING" and name not in live:
                block.empty_since = block.empty_since or now
                if now - block.empty_since >= BLOCK_EMPTY_GRACE:
                    self._block_status(name, "COMPLETED", now)
            else:
                block.empty_since = None

    def _node_left(self, addr: str, now: float) -> None:
        node = self._nodes.pop(addr)
        self._send_node(node, False, now)

    def _send_node(self, node: _Node, active: bool, now: float) -> None:
        f = node.facts
        self.send(
            NodeInfo(
                run_id=self.run_id,
                hostname=f.hostname,
                uid=node.uid,
                block_id=node.block_id,
                cpu_count=f.cpu_count,
                total_memory=f.total_memory,
                active=active,
                worker_count=node.threads,
                python_v=f.python_v,
                timestamp=now,
            )
        )

    def _block_status(self, name: str, status: str, now: float) -> None:
        block = self._blocks[name]
        block.status = status
        block.empty_since = None
        self.send(
            BlockInfo(
                run_id=self.run_id,
                executor_label=self.label,
                block_id=name,
                status=status,
                timestamp=now,
                job_id=block.job_id,
            )
        )


def _all_workers(client: Any) -> dict[str, dict]:
    """Every worker's info; recent Dask lists only 5 unless asked for all (-1)."""
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before the n_workers argument lists all of them
        info = client.scheduler_info()
    return info.get("workers", {})


def _job_id(job: Any) -> str | None:
    job_id = getattr(job, "job_id", None)  # dask-jobqueue Job; LocalCluster's Nanny has none
    return str(job_id) if job_id is not None else None
