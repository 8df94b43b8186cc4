"""The ``migfuzz`` command as a user runs it: output, exit statuses, no leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.procs import children, is_qemu, tagged_qemus

pytestmark = pytest.mark.qemu

MIGFUZZ = [sys.executable, "-m", "fuzz"]


def migfuzz(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MIGFUZZ, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_run_reports_the_10_0_to_11_1_refusal(farm) -> None:
    r = migfuzz(
        "run", "--src", "10.0", "--dst", "11.1", "--machine", "virt-10.0", "--cpu", "cortex-a57"
    )
    assert r.returncode == 1, r.stderr
    assert "control 10.0 -> 10.0: completed" in r.stdout
    assert "pair    10.0 -> 11.1: refused" in r.stdout
    assert "0x1013c030" in r.stdout
    assert "verdict: divergence" in r.stdout


def test_run_same_version_is_exit_zero(farm) -> None:
    r = migfuzz("run", "--src", "7.2", "--dst", "7.2", "--machine", "virt-7.2", "--cpu", "max")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "verdict: same as control" in r.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--src", "9.9", "--dst", "11.1", "--machine", "virt-10.0", "--cpu", "cortex-a57"],
         "unknown QEMU version '9.9'"),
        (["run", "--src", "5.2", "--dst", "11.1", "--machine", "virt-10.0", "--cpu", "cortex-a57"],
         "QEMU 5.2 has no machine type 'virt-10.0'"),
        (["run", "--src", "5.2", "--dst", "7.2", "--machine", "virt-5.2", "--cpu", "cortex-a76"],
         "QEMU 5.2 has no CPU model 'cortex-a76'"),
        (["--qemu", "dev=/bin/ls", "run", "--src", "dev", "--dst", "11.1", "--machine", "virt-10.0",
          "--cpu", "cortex-a57"], "not a QEMU binary"),
        (["--qemu", "dev=/no/such/qemu", "qemu", "list"], "no executable file there"),
        (["qemu", "install", "9.9"], "no Debian QEMU '9.9'"),
        (["run", "--src", "10.0"], "required"),
        (["run", "--src", "10.0", "--dst", "10.0", "--machine", "virt-10.0", "--cpu", "max",
          "--cpu-props", "sve"], "expected NAME=VALUE"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(farm, args: list[str], expected: str) -> None:
    r = migfuzz(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_a_bad_shrink_limit_is_one_line_and_no_campaign_starts(farm, tmp_path) -> None:
    env = {**os.environ, "MIGFUZZ_SHRINK_SECONDS": "soon"}
    out = tmp_path / "campaign"
    r = migfuzz("fuzz", "--pairs", "11.1:11.1", "--max-cases", "1", "--out", str(out), env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [
        "migfuzz: error: MIGFUZZ_SHRINK_SECONDS='soon': not a number of seconds (>= 0)"
    ]
    assert not out.exists()


def test_bad_input_on_a_cold_cache_is_still_one_line(tmp_path) -> None:
    # A fresh machine has no package lists: reading them is a slow step whose status must
    # not add a line to the one-line error that follows (it did, on 571e13b).
    cold = tmp_path / "cache"
    r = migfuzz("--cache-dir", str(cold), "qemu", "install", "9.9")
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Debian QEMU '9.9'" in lines[0], r.stderr
    assert list((cold / "debian").glob("*/apt/lists/*Release")), "the lists were not read cold"


def test_a_users_own_binary_is_just_another_version(farm, tmp_path) -> None:
    wrapper = tmp_path / "qemu-dev"
    wrapper.write_text("#!/bin/sh\nexec " + " ".join(farm.get("10.0").command()) + ' "$@"\n')
    wrapper.chmod(0o755)
    r = migfuzz("--qemu", f"mine={wrapper}", "run", "--src", "mine", "--dst", "11.1",
                "--machine", "virt-10.0", "--cpu", "cortex-a57")  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "control mine -> mine: completed" in r.stdout and "mine -> 11.1: refused" in r.stdout


def test_qemu_list_shows_all_four_versions_with_capabilities(farm) -> None:
    r = migfuzz("qemu", "list")
    assert r.returncode == 0, r.stderr
    for version, suite in [
        ("5.2", "bullseye"),
        ("7.2", "bookworm"),
        ("10.0", "trixie"),
        ("11.1", "sid"),
    ]:
        assert f"debian:{suite}" in r.stdout
        assert f"[{version}] QEMU emulator version {version}" in r.stdout
    assert "virt-5.2..virt-11.1" in r.stdout
    assert "pauth-qarma3" in r.stdout and "gic-version" in r.stdout


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_killing_the_runner_mid_case_leaves_no_qemu(farm, sig: signal.Signals, tmp_path) -> None:
    """Signal ``migfuzz run`` while one of its QEMUs is alive; none may survive it."""
    tag = uuid.uuid4().hex
    env = {**os.environ, "MIGFUZZ_TEST_TAG": tag}
    args = ["run", "--src", "10.0", "--dst", "11.1", "--machine", "virt-10.0", "--cpu", "max"]
    for _attempt in range(20):
        log = tmp_path / "stderr.txt"
        with open(log, "wb") as stderr:
            proc = subprocess.Popen(
                [*MIGFUZZ, *args], env=env, stdout=subprocess.DEVNULL, stderr=stderr
            )
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline and not seen:
            seen = [c for c in children(proc.pid) if is_qemu(c)]
            time.sleep(0.001)
        if seen and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(timeout=30)
            break
        proc.wait(timeout=30)
    else:
        pytest.fail("never caught a QEMU alive under the runner")
    time.sleep(0.5)
    assert not [p for p in seen if is_qemu(p)], f"QEMU {seen} outlived the runner ({sig.name})"
    assert tagged_qemus(tag) == []
    if sig is not signal.SIGKILL:
        assert proc.returncode == 130
        assert "Traceback" not in log.read_text()


SEQUENCE_ENTRY = str(
    Path(__file__).parents[2] / "corpus" / "history-read-back-after-the-load-b70bac23"
)


def test_regress_and_repro_replay_a_stateful_entry(farm) -> None:
    """A sequence entry is an entry like any other: regress passes it, repro says *same*."""
    r = migfuzz("regress", SEQUENCE_ENTRY)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS     history-read-back-after-the-load-b70bac23" in r.stdout
    assert "1 passed, 0 failed" in r.stdout
    r = migfuzz("repro", SEQUENCE_ENTRY)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "verdict:  same divergence: history: read-back after the load (step 8)" in r.stdout


@pytest.mark.parametrize("command", ["bisect", "bug"])
def test_one_shot_commands_refuse_a_stateful_entry_in_one_line(farm, command: str) -> None:
    r = migfuzz(command, SEQUENCE_ENTRY)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        f"migfuzz: error: {SEQUENCE_ENTRY}: a stateful entry; '{command}' takes one-shot "
        "entries (its repro.sh replays the steps with plain QEMU)"
    ]


def test_repro_runs_says_how_reliably_the_recorded_cause_shows(farm) -> None:
    entry = str(
        Path(__file__).parents[2] / "corpus"
        / "refused-on-load-cpreg-only-in-incoming-stream-p15-4-3cfabc70"
    )  # fmt: skip
    r = migfuzz("repro", "--runs", "3", entry)
    assert r.returncode == 1, r.stdout + r.stderr  # the divergence is still there
    assert "reliability: 3/3 runs showed the recorded cause" in r.stdout
    r = migfuzz("repro", "--runs", "0", entry)
    assert r.returncode == 2
    assert r.stderr.strip() == "migfuzz: error: --runs 0: must be at least 1"
