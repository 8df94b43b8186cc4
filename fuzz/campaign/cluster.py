"""Campaign workers on a Dask distributed cluster: the same worker body, another executor.

``migfuzz fuzz --scheduler tcp://HOST:PORT`` hands each worker slot to a Dask worker
instead of a local process pool. :class:`ClusterPool` has the shape the campaign's
driver expects of any pool (an event channel, a stop flag, ``submit`` -> future), so the
driver's loop is the same for both:

* **Events** flow back through a ``distributed.Queue`` (pickled, since a Queue carries
  only msgpack data), not in a batch returned with the future: a finding must reach the
  driver's log when it is announced, and a worker killed mid-run returns nothing at all.
* **Stop** is cooperative, as in a local pool: neither engine interrupts a running task,
  so the worker polls a ``distributed.Event`` before each case.
* **A dead worker**: Dask re-runs a task whose worker died (and gives up with
  ``KilledWorker`` after a few deaths). A re-run would start the slot's share again from
  its first case, so it returns a :class:`Rerun` at once instead (a per-task
  ``distributed.Event`` says "started"), and the driver replaces the slot with a fresh
  one for what is left, as it does when a local pool breaks.
* **Every node has its own QEMU farm.** Work carries the binaries' hashes; a node whose
  binary differs, or that cannot see the corpus folder, returns :class:`SetupFailed`
  (a lost worker with its reasons, never a finding) and gets no more work.

Only the driver writes the campaign folder's logs; workers write corpus entries (and
Hypothesis's database) into the campaign folder's paths, which must therefore be the same
shared folder on every node (see the README). ``distributed`` is an optional dependency:
this module imports it only when a pool is made.
"""

from __future__ import annotations

import contextlib
import pickle
import queue
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz.core.binary import QemuBinary
from fuzz.errors import HarnessError, UsageError

#: A worker body: runs one slot's spec with an event sink and a stop flag.
Body = Callable[[Any, Callable[[object], None], Callable[[], bool]], object]


@dataclass(frozen=True)
class NodeRequirements:
    """What a node must have to run a worker, as the driver sees it."""

    binaries: Mapping[str, tuple[Path, str]]
    """Version name -> (binary path, its SHA-256)."""
    folders: tuple[Path, ...]
    """Folders the worker reads or writes (corpus, known corpora): they must exist."""


def requirements(binaries: Mapping[str, QemuBinary], folders: Sequence[Path]) -> NodeRequirements:
    """The requirements of a campaign's workers: its binaries' hashes, its folders."""
    hashes = {name: (b.path, b.content_hash()) for name, b in binaries.items()}
    return NodeRequirements(hashes, tuple(folders))


def unmet(required: NodeRequirements, *, threads: int, sha256: Callable[[Path], str]) -> list[str]:
    """Why this node cannot run a worker; empty if it can.

    A worker process runs one task at a time: corpus claims are held per process, so two
    tasks in one process could both think they own a signature.

    :param threads: the Dask worker's thread count.
    :param sha256: hashes a file (injected so the rule is testable without big files).
    """
    reasons = []
    if threads != 1:
        reasons.append(f"the Dask worker has {threads} threads: start it with --nthreads 1")
    for name, (path, expected) in sorted(required.binaries.items()):
        if not path.is_file():
            reasons.append(f"QEMU {name}: no binary at {path} (run 'migfuzz qemu install')")
            continue
        found = sha256(path)
        if found != expected:
            reasons.append(
                f"QEMU {name}: binary {path} differs (sha256 {found[:12]}, the driver's "
                f"is {expected[:12]}): install the same lock on every node"
            )
    reasons += [
        f"folder {folder} is not reachable here (share it at the same path, e.g. NFS)"
        for folder in required.folders
        if not folder.is_dir()
    ]
    return reasons


@dataclass(frozen=True)
class SetupFailed:
    """A task's result: its node cannot run workers (and gets no more)."""

    host: str
    """The node's host as Dask names it (what a task's ``workers=`` restriction takes)."""
    name: str
    reasons: tuple[str, ...]

    def describe(self) -> str:
        """One line for the campaign's log."""
        return f"node {self.name} cannot run workers: {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class _Placed:
    """The first message of a task: where it runs (the driver watches that worker)."""

    key: str
    address: str


@dataclass(frozen=True)
class Rerun:
    """A task's result: Dask re-ran it after its worker died; it ran nothing again."""

    address: str


def _file_sha256(path: Path) -> str:
    return QemuBinary(name="", path=path, origin="").content_hash()


def _run_task(
    body: Body, spec: object, required: NodeRequirements, channel: str, key: str
) -> object:
    """A worker slot on a Dask worker: check the node, then run ``body`` once."""
    from distributed import Event, Queue, get_client, get_worker  # noqa: PLC0415
    from distributed.comm import get_address_host  # noqa: PLC0415

    worker = get_worker()
    started = Event(f"{key}-started", client=get_client())
    if started.is_set():
        return Rerun(worker.address)
    started.set()
    reasons = unmet(required, threads=worker.state.nthreads, sha256=_file_sha256)
    if reasons:
        host = get_address_host(worker.address)
        return SetupFailed(host, f"{socket.gethostname()} ({host})", tuple(reasons))
    events = Queue(f"{channel}-events", client=get_client())
    stop = Event(f"{channel}-stop", client=get_client())
    events.put(pickle.dumps(_Placed(key, worker.address)))
    return body(spec, lambda event: events.put(pickle.dumps(event)), stop.is_set)


class _Events:
    """The driver's end of the event channel, shaped like a ``multiprocessing.Queue``."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel
        self._batch: list[object] = []
        self.placed: dict[str, str] = {}
        """Task key -> the address of the Dask worker that runs it."""

    def _take(self, items: list[bytes]) -> None:
        for item in items:
            event = pickle.loads(item)
            if isinstance(event, _Placed):
                self.placed[event.key] = event.address
            else:
                self._batch.append(event)

    def get(self, timeout: float) -> object:
        """The next event, waiting up to ``timeout`` s. :raise queue.Empty: none came."""
        if not self._batch:
            try:
                self._take([self._channel.get(timeout=timeout)])
            except TimeoutError:
                raise queue.Empty from None
            self._take(self._channel.get(batch=True))
        if not self._batch:
            raise queue.Empty
        return self._batch.pop(0)

    def get_nowait(self) -> object:
        """The next event if one is waiting. :raise queue.Empty: none is."""
        if not self._batch:
            self._take(self._channel.get(batch=True))
        if not self._batch:
            raise queue.Empty
        return self._batch.pop(0)


class ClusterPool:
    """Worker slots on the Dask cluster whose scheduler is at ``address``.

    Executor-shaped: :meth:`submit` returns a future; ``events`` and ``stop`` are the
    event channel and stop flag every task of this pool shares.

    :param body: what each task runs (picklable by reference: a module-level function).
    :raise UsageError: ``distributed`` is not installed.
    :raise HarnessError: the scheduler cannot be reached.
    """

    replaces_at_once = True
    """The cluster takes new work while other tasks run: a lost slot is replaced at once."""

    def __init__(self, address: str, body: Body, required: NodeRequirements) -> None:
        distributed = _import_distributed()
        try:
            self._client = distributed.Client(address, timeout=10, set_as_default=False)
        except OSError as err:
            raise HarnessError(f"--scheduler {address}: cannot reach it ({err})") from err
        self.body = body
        self._required = required
        self._channel = f"migfuzz-{uuid.uuid4().hex}"
        self._keys: list[str] = []
        self._bad_hosts: set[str] = set()
        self._running: list[Any] = []
        self._lost_some = False
        self._checked = 0.0
        self.events = _Events(distributed.Queue(f"{self._channel}-events", client=self._client))
        self.stop = distributed.Event(f"{self._channel}-stop", client=self._client)

    def executor(self, _workers: int) -> contextlib.AbstractContextManager[ClusterPool]:
        """The executor of one generation of slots: this pool (the cluster outlives it)."""
        return contextlib.nullcontext(self)

    def submit(self, fn: Body, spec: object) -> Any:
        """Run ``fn(spec, emit, stop)`` on a worker of a node not known to be unfit."""
        key = f"{self._channel}-task{len(self._keys)}"
        self._keys.append(key)
        hosts = self._good_hosts() if self._bad_hosts else None
        self._running = [f for f in self._running if not f.done()]
        if self._lost_some:
            # A replacement: let a restarted worker join first, rather than queue the
            # task behind a busy one (one task per worker, see unmet()).
            with contextlib.suppress(TimeoutError):
                self._client.wait_for_workers(len(self._running) + 1, timeout=10)
        future = self._client.submit(
            _run_task, fn, spec, self._required, self._channel, key,
            key=key, pure=False, workers=hosts, allow_other_workers=False,
        )  # fmt: skip
        self._running.append(future)
        return future

    def lost(self, future: Any) -> str | None:
        """Why ``future``'s worker was lost (None: it ended normally).

        :raise Exception: whatever the worker body raised.
        """
        from distributed import KilledWorker  # noqa: PLC0415

        try:
            result = future.result()
        except KilledWorker as err:
            self._lost_some = True
            return f"Dask gave up on the task after its workers died ({err})"
        if isinstance(result, Rerun):
            self._lost_some = True
            return f"worker process died (Dask re-ran its task on {result.address})"
        if isinstance(result, SetupFailed):
            self._bad_hosts.add(result.host)
            return result.describe()
        return None

    def vanished(self, futures: Iterable[Any]) -> dict[Any, str]:
        """Running futures whose Dask worker left the cluster, with why (checked once a
        second). Dask would re-run such a task, maybe only once another worker is free;
        the driver replaces it at once instead, and drops the re-run."""
        now = time.monotonic()
        if now - self._checked < 1.0:
            return {}
        self._checked = now
        alive = set(self._client.nthreads())
        gone = {}
        for future in futures:
            address = self.events.placed.get(future.key)
            if address is not None and address not in alive:
                future.cancel()
                gone[future] = f"worker process died (its Dask worker {address} left)"
        self._lost_some = self._lost_some or bool(gone)
        return gone

    def can_replace(self) -> bool:
        """Whether some node not known to be unfit is left for a replacement."""
        return not self._bad_hosts or bool(self._good_hosts())

    def _good_hosts(self) -> list[str]:
        workers = self._client.scheduler_info().get("workers", {}).values()
        return sorted({w["host"] for w in workers} - self._bad_hosts)

    def close(self) -> None:
        """Drop this pool's events from the scheduler and disconnect."""
        with contextlib.suppress(Exception):
            distributed = _import_distributed()
            for key in self._keys:
                distributed.Event(f"{key}-started", client=self._client).clear()
            self.stop.clear()
            self.events._channel.close()
        self._client.close()

    def __enter__(self) -> ClusterPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def cluster_slots(address: str) -> int:
    """How many tasks the cluster at ``address`` runs at once (its worker threads).

    :raise UsageError: ``distributed`` is not installed.
    :raise HarnessError: the scheduler cannot be reached, or it has no worker.
    """
    distributed = _import_distributed()
    try:
        with distributed.Client(address, timeout=10, set_as_default=False) as client:
            threads = sum(client.nthreads().values())
    except OSError as err:
        raise HarnessError(f"--scheduler {address}: cannot reach it ({err})") from err
    if threads == 0:
        raise HarnessError(f"--scheduler {address}: no worker is connected (start some)")
    return int(threads)


def _import_distributed() -> Any:
    try:
        import distributed  # noqa: PLC0415
    except ImportError as err:
        raise UsageError(
            "--scheduler needs Dask: pip install 'migfuzz[dask]' (or 'dask[distributed]')"
        ) from err
    return distributed
