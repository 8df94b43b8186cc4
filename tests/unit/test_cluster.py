"""fuzz.campaign.cluster: what a node needs to run workers; the pool on an in-process cluster."""

from __future__ import annotations

import hashlib
import pickle
import queue
from pathlib import Path

import pytest

from fuzz.campaign.cluster import NodeRequirements, SetupFailed, _Events, _Placed, unmet


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def node(tmp_path) -> tuple[Path, NodeRequirements]:
    binary = tmp_path / "qemu-system-aarch64"
    binary.write_bytes(b"qemu 11.1")
    required = NodeRequirements({"11.1": (binary, _sha(binary))}, (tmp_path,))
    return binary, required


def test_a_node_with_the_same_binaries_and_folders_can_run_workers(node) -> None:
    _binary, required = node
    assert unmet(required, threads=1, sha256=_sha) == []


def test_a_different_binary_is_a_setup_error_naming_both_hashes(node) -> None:
    binary, required = node
    binary.write_bytes(b"qemu 11.1, rebuilt")
    (reason,) = unmet(required, threads=1, sha256=_sha)
    assert reason.startswith(f"QEMU 11.1: binary {binary} differs")
    assert _sha(binary)[:12] in reason and required.binaries["11.1"][1][:12] in reason


def test_a_missing_binary_folder_or_extra_thread_is_a_setup_error(node, tmp_path) -> None:
    binary, required = node
    binary.unlink()
    elsewhere = NodeRequirements(required.binaries, (tmp_path / "nfs" / "corpus",))
    reasons = unmet(elsewhere, threads=2, sha256=_sha)
    assert len(reasons) == 3
    assert "--nthreads 1" in reasons[0]
    assert f"no binary at {binary}" in reasons[1]
    assert "nfs/corpus is not reachable here" in reasons[2]


def test_a_setup_failure_says_which_node_and_why() -> None:
    failed = SetupFailed("10.0.0.7", "node7 (10.0.0.7)", ("a", "b"))
    assert failed.describe() == "node node7 (10.0.0.7) cannot run workers: a; b"


class _Channel:
    """A distributed.Queue's get, from a list."""

    def __init__(self, items: list[object]) -> None:
        self.items = [pickle.dumps(i) for i in items]

    def get(self, timeout: float | None = None, batch: bool = False) -> object:
        if batch:
            items, self.items = self.items, []
            return items
        if not self.items:
            raise TimeoutError
        return self.items.pop(0)


def test_the_event_channel_keeps_placements_apart_and_order() -> None:
    events = _Events(_Channel([_Placed("k0", "tcp://a:1"), "e1", "e2", _Placed("k1", "b")]))
    assert events.get(timeout=0.1) == "e1"
    assert events.get_nowait() == "e2"
    assert events.placed == {"k0": "tcp://a:1", "k1": "b"}
    with pytest.raises(queue.Empty):
        events.get_nowait()
    with pytest.raises(queue.Empty):
        events.get(timeout=0.1)


def test_a_channel_of_placements_only_is_empty() -> None:
    with pytest.raises(queue.Empty):
        _Events(_Channel([_Placed("k0", "a")])).get(timeout=0.1)


def _body(spec: object, emit, stop) -> object:
    emit(("ran", spec))
    return spec


def test_a_node_whose_binary_differs_gets_no_work(node) -> None:
    """On an in-process cluster: the task reports the mismatch; the pool has no node left."""
    distributed = pytest.importorskip("distributed")
    from fuzz.campaign.cluster import ClusterPool

    binary, required = node
    wrong = NodeRequirements({"11.1": (binary, "0" * 64)}, required.folders)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        with ClusterPool(cluster.scheduler_address, _body, required) as pool:
            future = pool.submit(pool.body, 7)
            assert pool.lost(future) is None and future.result() == 7
            assert pool.events.get(timeout=5) == ("ran", 7)
        with ClusterPool(cluster.scheduler_address, _body, wrong) as pool:
            reason = pool.lost(pool.submit(pool.body, 8))
            assert reason is not None and "cannot run workers: QEMU 11.1" in reason
            assert not pool.can_replace()
            with pytest.raises(queue.Empty):
                pool.events.get(timeout=0.2)
