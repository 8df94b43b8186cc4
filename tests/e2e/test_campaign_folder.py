"""Campaign folders as a user meets them: killed and resumed, refused when busy, stopped
when the disk is full."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from fuzz.campaign.folder import read_jsonl
from fuzz.corpus.entry import entry_folders, load_entry
from tests.e2e.procs import tagged

pytestmark = pytest.mark.qemu

#: Paused cases on pairs whose refusals are many and fast; --known EMPTY makes them new.
#: One worker: with two, which worker records a signature both meet is a race, and so is
#: what each draws next (Hypothesis shrinks only what its own worker recorded).
# One refusing pair, and no loading past its refusals (not what these tests are about): a
# campaign of a few seconds that announces its first finding while shrinking it. (Six
# cases met and shrank the device findings too, 46 s.)
CAMPAIGN = ["--pairs", "10.0:11.1", "--no-guests", "--max-cases", "3", "--seed", "3",
            "-j", "1", "--no-past-refusals"]  # fmt: skip


def _fuzz(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fuzz", "fuzz", *args],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip


def _signatures(folder: Path) -> set[str]:
    return {str(load_entry(path).signature) for path in entry_folders(folder / "corpus")}


def _announced(folder: Path) -> bool:
    events = folder / "events.jsonl"
    return events.is_file() and '"type": "FindingSeen"' in events.read_text(errors="replace")


def test_a_campaign_killed_mid_shrink_resumes_to_the_same_signatures(farm, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    whole = tmp_path / "whole"
    r = _fuzz(*CAMPAIGN, "--known", str(empty), "--out", str(whole))
    assert r.returncode == 1, r.stdout + r.stderr  # new findings
    expected = _signatures(whole)
    assert expected

    killed = tmp_path / "killed"
    tag = uuid.uuid4().hex
    env = {**os.environ, "MIGFUZZ_TEST_TAG": tag}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuzz", "fuzz", *CAMPAIGN, "--known", str(empty),
         "--out", str(killed)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not _announced(killed):
            time.sleep(0.05)
        assert proc.poll() is None, "the campaign ended before it announced a finding"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 30  # workers get SIGTERM from the kernel and clean up
    while time.monotonic() < deadline and tagged(tag):
        time.sleep(0.2)
    assert tagged(tag) == [], "a worker or QEMU outlived the killed driver"

    r = _fuzz("--resume", str(killed))
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr, r.stdout + r.stderr
    assert "resuming (session 2)" in r.stderr
    assert _signatures(killed) == expected
    names = [p.name for p in entry_folders(killed / "corpus")]
    assert len(names) == len(set(names)) == len(expected)  # no entry twice
    leftovers = [p.name for p in (killed / "corpus").iterdir() if p.name.startswith(".")]
    claims = {c.name: c.read_text() for c in (killed / "corpus" / ".claims").glob("*")}
    assert leftovers == [], (claims, r.stderr[-3000:])  # no claim, no half-written entry
    events = [json.loads(line) for line in (killed / "events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in events].count("CampaignStarted") == 2


def test_a_busy_or_full_campaign_folder_is_refused_in_one_line(farm, tmp_path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep me")
    r = _fuzz("--pairs", "11.1:11.1", "--max-cases", "1", "--out", str(full))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "--resume" in r.stderr
    assert (full / "mine.txt").read_text() == "keep me"

    busy = tmp_path / "busy"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuzz", "fuzz", "--pairs", "11.1:11.1", "--budget", "60s",
         "-j", "1", "--out", str(busy)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (busy / "campaign.json").is_file():
            time.sleep(0.05)
        time.sleep(0.5)
        for how in ("--resume", "--out"):  # the same one-line refusal, naming the pid
            r = (
                _fuzz(how, str(busy))
                if how == "--resume"
                else _fuzz("--pairs", "11.1:11.1", "--max-cases", "1", how, str(busy))
            )
            assert r.returncode == 2, r.stdout + r.stderr
            assert f"in use by pid {proc.pid}" in r.stderr, r.stderr
            assert r.stderr.strip().count("\n") == 0 and "--resume" not in r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 300 KiB tmpfs: room for a campaign's record, logs and one entry, not two."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_campaign_in_one_line_and_keeps_what_it_announced(
    farm, tmp_path, small_disk
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    tag = uuid.uuid4().hex
    out = small_disk / "campaign"
    r = _fuzz("--pairs", "10.0:11.1", "--no-guests", "--max-cases", "20", "-j", "2",
              "--known", str(empty), "--out", str(out),
              env={**os.environ, "MIGFUZZ_TEST_TAG": tag})  # fmt: skip
    assert r.returncode == 3, r.stdout + r.stderr  # the environment failed, not a finding
    [line] = [x for x in r.stderr.splitlines() if x.startswith("migfuzz: error:")]
    assert "No space left on device" in line and "entries written before are whole" in line
    assert "Traceback" not in r.stderr
    # Every entry it announced as written is whole, and nothing is left running.
    events = read_jsonl(out / "events.jsonl")  # a line the full disk tore is skipped
    announced = [e["path"] for e in events if e.get("type") == "FindingSeen"]
    assert announced
    for path in announced:
        load_entry(Path(path))
    assert tagged(tag) == []


def _drawn(folder: Path) -> list[str]:
    """The keys of the cases a campaign judged, in order."""
    return [e["case"] for e in read_jsonl(folder / "events.jsonl") if e["type"] == "CaseJudged"]


def _drawn_if_any(folder: Path) -> list[str]:
    return _drawn(folder) if (folder / "events.jsonl").is_file() else []


def _seed_line(stderr: str) -> int:
    first = stderr.splitlines()[0]
    assert first.startswith("fuzzing with seed "), stderr
    return int(first.removeprefix("fuzzing with seed ").split(":", 1)[0])


def test_each_campaign_draws_a_fresh_seed_unless_one_is_given(farm, tmp_path) -> None:
    # A fuzzer run every night must explore new ground every night; --seed S draws again.
    small = ["--pairs", "11.1:11.1", "--max-cases", "8", "-j", "1"]
    runs = {}
    for name, seed in (("a", []), ("b", []), ("c", ["--seed", "77"]), ("d", ["--seed", "77"])):
        r = _fuzz(*small, *seed, "--out", str(tmp_path / name))
        assert r.returncode in (0, 1), r.stdout + r.stderr
        record = json.loads((tmp_path / name / "campaign.json").read_text())
        assert record["seed"] == _seed_line(r.stderr)
        runs[name] = (record["seed"], _drawn(tmp_path / name))
        assert len(runs[name][1]) == 8
    assert runs["a"][0] != runs["b"][0]
    # Different cases (a few may coincide: two seeds can draw one simple case alike).
    assert len(set(runs["a"][1]) & set(runs["b"][1])) <= 2
    assert len(set(runs["a"][1])) == 8  # and no case is run twice in one campaign
    assert runs["c"][0] == runs["d"][0] == 77
    assert runs["c"][1] == runs["d"][1]

    # A resume goes on with the recorded seed, whatever a new draw would be.
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuzz", "fuzz", "--pairs", "11.1:11.1", "--max-cases", "30",
         "-j", "1", "--out", str(stopped)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_drawn_if_any(stopped)) < 3:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    seed, before = _seed_line(stderr), _drawn(stopped)
    r = _fuzz("--resume", str(stopped))
    assert r.returncode in (0, 1), r.stdout + r.stderr
    assert r.stderr.startswith(f"resuming (session 2) with seed {seed}:"), r.stderr
    # The interrupted Hypothesis run is run again from its start, on the same seed: it
    # draws the same first cases, then goes on to the campaign's 30 distinct ones (fewer
    # than 30 and the campaign could end before the SIGTERM: 16 did, in 6 s).
    after = _drawn(stopped)[len(before) :]
    assert after[: len(before)] == before
    assert len(set(before + after)) == 30
