"""``migfuzz fuzz --scheduler ADDR`` on a Dask LocalCluster: a Dask worker killed mid-case."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from fuzz.corpus.entry import entry_folders, load_entry
from tests.e2e.procs import children, is_qemu, tagged_qemus

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.qemu


@pytest.fixture
def cluster(monkeypatch):
    """Two single-threaded Dask worker processes; their QEMUs carry a test tag."""
    tag = uuid.uuid4().hex
    monkeypatch.setenv("MIGFUZZ_TEST_TAG", tag)  # inherited by the worker processes
    # What is tested is what a kill loses, not shrinking: 5 s of it per run, not 45, and no
    # look past refusals (the test took 30 to 72 s, mostly shrinking what was found after
    # the kill, and more findings behind refusals to shrink).
    monkeypatch.setenv("MIGFUZZ_SHRINK_SECONDS", "5")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as local,
        distributed.Client(local) as client,
    ):
        yield local.scheduler_address, client, tag
    assert tagged_qemus(tag) == []


def _busy_worker(client) -> int | None:
    """The pid of a Dask worker process with a live QEMU child."""
    pids = client.run(os.getpid).values()
    busy = [pid for pid in pids if any(map(is_qemu, children(pid)))]
    return busy[0] if busy else None


def test_a_killed_dask_worker_loses_no_announced_finding(farm, tmp_path, cluster) -> None:
    address, client, tag = cluster
    known, out_dir = tmp_path / "known", tmp_path / "campaign"
    known.mkdir()
    log = tmp_path / "out.txt"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fuzz", "fuzz", "--scheduler", address,
             "--pairs", "10.0:11.1,11.1:10.0", "--no-guests", "--no-past-refusals",
             "--max-cases", "20",
             "--known", str(known), "--out", str(out_dir)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            victim = None
            while time.monotonic() < deadline and proc.poll() is None and victim is None:
                if "[new]" in log.read_text(errors="replace"):
                    victim = _busy_worker(client)
                time.sleep(0.05)
            assert victim is not None, log.read_text()
            os.kill(victim, signal.SIGKILL)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert proc.returncode == 1, text  # finished, with new findings
    assert "Traceback" not in text
    assert re.search(r"worker \d+: worker process died \(.*\); a new worker takes over", text), text
    # The campaign record says where its workers ran.
    assert json.loads((out_dir / "campaign.json").read_text())["scheduler"] == address
    records = [json.loads(line) for line in (out_dir / "events.jsonl").read_text().splitlines()]
    announced = [r["path"] for r in records if r["type"] == "FindingSeen"]
    assert announced, text
    for path in announced:
        load_entry(Path(path))  # whole and valid
    corpus = out_dir / "corpus"
    folders = entry_folders(corpus)
    assert {str(f) for f in folders} >= set(announced)
    assert len(folders) == len({load_entry(f).signature for f in folders})  # none twice
    half_written = [p for p in corpus.iterdir() if p.name.startswith(".") and p.name != ".claims"]
    assert half_written == []
    assert "fuzz finished: 20 cases" in text, text  # the lost slot's share was run again
    time.sleep(0.5)
    assert tagged_qemus(tag) == []
