"""``migfuzz fuzz`` as a user runs it: findings summary, and Ctrl-C keeps what was written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from fuzz.corpus.entry import entry_folders, load_entry
from tests.e2e.procs import tagged_qemus

pytestmark = pytest.mark.qemu


def test_ctrl_c_keeps_reproducers_and_leaves_no_qemu(farm, tmp_path) -> None:
    corpus = tmp_path / "corpus"
    tag = uuid.uuid4().hex
    env = {**os.environ, "MIGFUZZ_TEST_TAG": tag}
    log = tmp_path / "out.txt"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fuzz", "fuzz", "--pairs", "10.0:11.1,11.1:10.0",
             "--budget", "5m", "--corpus", str(corpus), "--seed", "7"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and proc.poll() is None and not entry_folders(corpus):
                time.sleep(0.2)
            assert entry_folders(corpus), log.read_text()
            time.sleep(1.0)  # let it get into the next cases (and maybe a write) before Ctrl-C
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:  # a failed test must not leave a campaign running
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert proc.returncode == 130, text
    assert "fuzz interrupted" in text and "Traceback" not in text
    time.sleep(0.5)
    assert tagged_qemus(tag) == []
    for folder in entry_folders(corpus):
        entry = load_entry(folder)  # every entry left behind is whole and valid
        assert entry.stream is not None or entry.case.live is not None  # live: no stream
        assert str(entry.signature) in text
    assert not [p for p in corpus.iterdir() if p.name.startswith(".")]


def test_fuzz_summary_names_signatures_pairs_and_reproducers(farm, tmp_path) -> None:
    corpus = tmp_path / "corpus"
    r = subprocess.run(
        [sys.executable, "-m", "fuzz", "fuzz", "--pairs", "10.0:11.1", "--max-cases", "3",
         "--no-guests", "--corpus", str(corpus), "--seed", "2", "-j", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "fuzz finished: 3 cases" in r.stdout
    assert "pairs: 10.0->11.1" in r.stdout
    # Shrinking may meet further signatures: each gets a reproducer, and the summary says so.
    folders = entry_folders(corpus)
    assert folders
    assert f"distinct divergences met: {len(folders)}" in r.stdout
    for folder in folders:
        assert f"reproducer: {folder}" in r.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--pairs", "10.0-11.1"], "--pairs '10.0-11.1': expected SRC:DST"),
        (["--pairs", "10.0:9.9"], "unknown QEMU version '9.9'"),
        (["--budget", "soon"], "--budget 'soon'"),
        (["--max-cases", "0"], "--max-cases 0"),
    ],
)
def test_fuzz_bad_input_is_one_line_exit_2(farm, tmp_path, args, expected) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "fuzz", "fuzz", "--corpus", str(tmp_path / "c"), *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], r.stderr
