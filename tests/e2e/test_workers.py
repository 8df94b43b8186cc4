"""``migfuzz fuzz -j N`` as a user runs it: parallel workers, a clean pair, a worker killed."""

from __future__ import annotations

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

pytestmark = pytest.mark.qemu


def test_a_clean_pair_with_guests_reports_no_divergence(farm, tmp_path) -> None:
    """11.1 -> 11.1 must agree on every drawn guest: the state and read-back oracles included."""
    corpus = tmp_path / "corpus"
    r = subprocess.run(
        [sys.executable, "-m", "fuzz", "fuzz", "--pairs", "11.1:11.1", "--max-cases", "24",
         "--seed", "5", "-j", "2", "--corpus", str(corpus)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fuzz finished: 24 cases" in r.stdout
    assert "distinct divergences met: 0" in r.stdout, r.stdout
    assert entry_folders(corpus) == []


def _workers(driver: int) -> list[int]:
    return [pid for pid in children(driver) if not is_qemu(pid)]


def test_a_killed_worker_loses_no_announced_finding(farm, tmp_path) -> None:
    corpus = tmp_path / "corpus"
    tag = uuid.uuid4().hex
    # What is tested is what a kill loses, not shrinking: 5 s of it per run, not 45 (the
    # test took 24 to 83 s, mostly shrinking what was found after the kill).
    env = {**os.environ, "MIGFUZZ_TEST_TAG": tag, "MIGFUZZ_SHRINK_SECONDS": "5"}
    log = tmp_path / "out.txt"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fuzz", "fuzz", "--pairs", "10.0:11.1,11.1:10.0",
             "--no-guests", "--budget", "20s", "-j", "2", "--corpus", str(corpus),
             "--seed", "3"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            victim = None
            while time.monotonic() < deadline and proc.poll() is None and victim is None:
                if "[new]" in log.read_text(errors="replace"):
                    busy = [w for w in _workers(proc.pid) if any(map(is_qemu, children(w)))]
                    victim = busy[0] if busy else None
                time.sleep(0.05)
            assert victim is not None, log.read_text()
            os.kill(victim, signal.SIGKILL)
            proc.wait(timeout=400)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert proc.returncode == 1, text
    # Replaced while there is budget left; after the deadline (e.g. killed while shrinking)
    # the campaign finishes with the workers it has.
    assert re.search(r"worker \d+: worker process died; (a new worker takes over|not replaced)",
                     text), text  # fmt: skip
    assert "Traceback" not in text
    announced = re.findall(r"first case written: (\S+);", text)
    assert announced, text
    for path in announced:
        entry = load_entry(Path(path))  # whole and valid
        assert entry.stream is not None and str(entry.signature) in text
    folders = {str(f) for f in entry_folders(corpus)}
    assert set(announced) <= folders
    assert len(folders) == len({load_entry(Path(f)).signature for f in folders})  # none twice
    half_written = [p for p in corpus.iterdir() if p.name.startswith(".") and p.name != ".claims"]
    assert half_written == []
    time.sleep(0.5)
    assert tagged_qemus(tag) == []
