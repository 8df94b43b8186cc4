#!/usr/bin/env python3
"""Throughput of migfuzz against a plain save/restore script, on this machine.

Why: migfuzz does more per case than a hand-written migration script (a control restore,
traces, a generated guest, comparisons). This measures how much more, as cases per second
and CPU time per case, so a slow-down can be told apart from the work a case must do.

For one pair of versions (default 11.1 -> 11.1), with each job count in ``--jobs``:

* ``plain`` (a): a sequential script -- per unit a fresh source QEMU started ``-S``,
  ``migrate`` to a file over QMP, quit; a fresh destination with ``-incoming defer``,
  ``migrate-incoming`` from the file, wait until it completed, failed or QEMU exited (a
  refused load ends QEMU: that ends the unit), quit. No control, no guest, no trace. The
  save and the restore are timed apart: a migfuzz case is one save and two restores, so
  the baseline is ``1 / (t_save + 2 * t_restore)`` "plain-equivalent cases" per second.
  With ``-j N`` there are N such loops in N processes.
* ``paused`` (b): ``migfuzz fuzz --pairs SRC:DST --no-guests`` (machines paused at reset).
* ``guests`` (c): ``migfuzz fuzz --pairs SRC:DST`` (generated guests).
* ``campaign`` (d): ``migfuzz fuzz`` over all pairs (``--campaign-seconds``). With the
  fan-out (the default), one save is judged on every destination of its source that starts
  the configuration, and each pair judged counts as a case, as migfuzz counts them.
* ``floor`` (e): the most (c) could give on this machine. Per process, cases with a
  generated guest (one memory write each, a new one per case) on one configuration
  (``--machine``, ``--cpu``, 64 MiB, 1 CPU), one after another on long-lived processes
  through the engine's own path (:func:`fuzz.run.engine.execute_cases_reused`), judged: no
  fresh sample, no new configuration, no Hypothesis. What (c) spends above this is the
  price of its configuration diversity and of its guard against reuse artefacts.
* ``report`` (f): no QEMU. ``migfuzz report`` and the resume fold
  (:func:`fuzz.campaign.folder.resume_state` over the event log) on synthetic campaign folders
  whose ``events.jsonl`` holds ``--report-events`` events each (default 600k, a night of
  a default campaign, and 4M, a week of nights): realistic ``CaseJudged`` lines (~330
  bytes, the kinds and signatures of a default campaign, same-version findings among
  them), a ``RunStarted`` per worker every 100 cases, one session per night. Each runs in
  a child process: its wall time and peak resident memory (``ru_maxrss``).

Every CLI run starts from a copy of the repository's corpus, so that known signatures are
counted, not shrunk: a first finding's shrink runs cases the loop does not count, and in
a short measurement it can take all the time (11.1 -> 11.1 meets the Z-register bug).

The CLI runs get ``-j J``. CPU time is user + sys of the measured processes and everything
they waited for (QEMU included); the CLI's own ``engine:`` and ``time:`` lines say how its
cases ran and how their CPU time splits between migfuzz and QEMU. ``--machine`` and
``--cpu`` apply to ``plain`` and ``floor`` only: migfuzz draws its own. Usage::

    .venv/bin/python scripts/bench.py [--src 11.1] [--dst 11.1] [--seconds 30] \\
        [--jobs 1,8] [--only plain,paused,guests,campaign,floor] [--campaign-seconds 60] \\
        [--fuzz-arg=--no-past-refusals]
    .venv/bin/python scripts/bench.py --only report [--report-events 600000,4000000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.errors import MigfuzzError, MonitorError, UsageError
from fuzz.judge.oracles import Agree
from fuzz.run.engine import execute_cases_reused
from fuzz.run.machine import QemuMachine
from fuzz.run.persistent import ProcessPool
from fuzz.versions.farm import Farm, default_cache_dir
from fuzz.versions.probe import probed_settings
from strategies.cases import rebuild_guest

REPO = Path(__file__).resolve().parent.parent
MIGFUZZ = REPO / ".venv" / "bin" / "migfuzz"
SUMMARY = re.compile(r"(\d+) cases in ([\d.]+) s")
MEASUREMENTS = {
    "a": "plain", "b": "paused", "c": "guests", "d": "campaign", "e": "floor",
    "f": "report",
}  # fmt: skip
QEMU_MEASUREMENTS = {"a", "b", "c", "d", "e"}
PHASE_TIMEOUT = 60.0  # seconds one save or one restore may take before the bench gives up
POLL = 0.002


class BenchError(Exception):
    """A one-line reason the bench cannot go on."""


# -- (a) the plain loop ---------------------------------------------------------------


def _cpu_seconds() -> float:
    """User + sys of this process and of every child it has waited for."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def _children_cpu() -> float:
    """User + sys of every child (and waited-for descendant) this process has reaped."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


async def _wait_migration(vm: QemuMachine, *, incoming: bool) -> str:
    """Poll ``query-migrate`` until completed or failed; on the destination, also stop
    when QEMU exits (a refused load). Returns "completed", "failed" or "exited"."""
    deadline = time.monotonic() + PHASE_TIMEOUT
    while time.monotonic() < deadline:
        if incoming and vm.returncode is not None:
            return "exited"
        try:
            info = await vm.execute("query-migrate")
        except MonitorError:
            if incoming and await vm.wait_exit(2.0) is not None:
                return "exited"
            raise
        status = info.get("status") if isinstance(info, dict) else None
        if status in ("completed", "failed"):
            return str(status)
        await asyncio.sleep(POLL)
    raise BenchError(f"QEMU {vm.binary.name}: migration did not end in {PHASE_TIMEOUT:.0f} s")


async def _plain_unit(
    src: QemuBinary, dst: QemuBinary, args: list[str], workdir: Path
) -> tuple[float, float, float, float, str]:
    """One save and one restore; returns (save s, restore s, save CPU s, restore CPU s,
    how the restore ended)."""
    stream = workdir / "plain.stream"
    t0, c0 = time.perf_counter(), _cpu_seconds()
    async with QemuMachine(src, args, workdir) as vm:
        await vm.execute("migrate", {"uri": f"exec:cat > {stream}"})
        saved = await _wait_migration(vm, incoming=False)
    if saved != "completed":
        raise BenchError(f"QEMU {src.name}: the save {saved}: {vm.stderr_tail().strip()}")
    t1, c1 = time.perf_counter(), _cpu_seconds()
    async with QemuMachine(dst, [*args, "-incoming", "defer"], workdir) as vm:
        await vm.execute("migrate-incoming", {"uri": f"exec:cat {stream}"})
        restored = await _wait_migration(vm, incoming=True)
    t2, c2 = time.perf_counter(), _cpu_seconds()
    stream.unlink(missing_ok=True)
    return t1 - t0, t2 - t1, c1 - c0, c2 - c1, restored


async def _plain_loop(
    src: QemuBinary, dst: QemuBinary, args: list[str], seconds: float
) -> dict[str, Any]:
    """Run plain units for ``seconds`` (after one untimed warm-up unit)."""
    with tempfile.TemporaryDirectory(prefix="migfuzz-bench-") as tmp:
        workdir = Path(tmp)
        await _plain_unit(src, dst, args, workdir)
        result: dict[str, Any] = {
            "units": 0, "save": 0.0, "restore": 0.0, "save_cpu": 0.0, "restore_cpu": 0.0,
            "ends": {},
        }  # fmt: skip
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            save, restore, save_cpu, restore_cpu, end = await _plain_unit(src, dst, args, workdir)
            result["units"] += 1
            result["save"] += save
            result["restore"] += restore
            result["save_cpu"] += save_cpu
            result["restore_cpu"] += restore_cpu
            result["ends"][end] = result["ends"].get(end, 0) + 1
        result["wall"] = time.perf_counter() - start
        return result


Loop = Callable[[QemuBinary, QemuBinary, list[str], float], Coroutine[Any, Any, dict[str, Any]]]


@dataclass(frozen=True)
class _Job:
    """What each process of a measurement runs: ``loop(src, dst, args, seconds)``."""

    loop: Loop
    src: QemuBinary
    dst: QemuBinary
    args: list[str]
    seconds: float


def _worker(job: _Job, queue: multiprocessing.Queue[dict[str, Any]]) -> None:
    """One process of a measurement: runs its loop, sends its totals back."""
    try:
        queue.put(asyncio.run(job.loop(job.src, job.dst, job.args, job.seconds)))
    except KeyboardInterrupt:
        queue.put({"error": "interrupted"})
    except (MigfuzzError, BenchError, OSError) as err:
        queue.put({"error": str(err).splitlines()[0] if str(err) else repr(err)})


@dataclass
class Row:
    """One line of the result table."""

    label: str
    jobs: int
    cases_per_s: float | None
    cpu_ms: float | None
    note: str = ""
    extra: list[str] = field(default_factory=list)


def _run_workers(job: _Job, jobs: int) -> list[dict[str, Any]]:
    """Run ``jobs`` copies of ``job`` in as many processes; returns each one's totals."""
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[dict[str, Any]] = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(job, queue), daemon=True) for _ in range(jobs)]
    results: list[dict[str, Any]] = []
    try:
        for p in procs:
            p.start()
        while len(results) < jobs:
            results.append(queue.get(timeout=job.seconds + 2 * PHASE_TIMEOUT + 60))
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        # The workers got the SIGINT too and shut their QEMU down; give them the time.
        for p in procs:
            p.join(timeout=10)
        raise
    except Exception as err:  # queue.Empty: a worker died without an answer
        raise BenchError(f"-j {jobs}: a bench worker gave no result ({err!r})") from err
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()  # its QEMU dies with it (PR_SET_PDEATHSIG)
                p.join()
    return results


def _measured(label: str, job: _Job, jobs: int, unit: str) -> tuple[list[dict[str, Any]], int]:
    """Run ``job`` in ``jobs`` processes: their totals, and how many ``unit`` they finished
    (each process counts them under ``unit + "s"``).

    :raise BenchError: a process failed, or none finished one.
    """
    results = _run_workers(job, jobs)
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        raise BenchError(f"{label} -j {jobs}: {errors[0]}")
    done = sum(r[unit + "s"] for r in results)
    if done == 0:
        raise BenchError(f"{label} -j {jobs}: no {unit} finished in {job.seconds:g} s")
    return results, done


def run_plain(
    src: QemuBinary, dst: QemuBinary, args: list[str], seconds: float, jobs: int
) -> tuple[Row, Row]:
    """Measurement (a) with ``jobs`` processes: the units row and the plain-equivalent row."""
    results, units = _measured("plain", _Job(_plain_loop, src, dst, args, seconds), jobs, "unit")
    units_per_s = sum(r["units"] / r["wall"] for r in results if r["units"])
    # Each process does one case-equivalent per (mean save + 2 x mean restore).
    equiv_per_s = sum(r["units"] / (r["save"] + 2 * r["restore"]) for r in results if r["units"])
    cpu_unit = sum(r["save_cpu"] + r["restore_cpu"] for r in results) / units
    cpu_case = sum(r["save_cpu"] + 2 * r["restore_cpu"] for r in results) / units
    save_ms = 1000 * sum(r["save"] for r in results) / units
    restore_ms = 1000 * sum(r["restore"] for r in results) / units
    ends: dict[str, int] = {}
    for r in results:
        for k, v in r["ends"].items():
            ends[k] = ends.get(k, 0) + v
    how = ", ".join(f"{v} {k}" for k, v in sorted(ends.items()))
    units_row = Row(
        "plain units (save + restore)", jobs, units_per_s, 1000 * cpu_unit,
        note=f"{units} units; save {save_ms:.0f} ms, restore {restore_ms:.0f} ms; loads: {how}",
    )  # fmt: skip
    equiv_row = Row("plain-equivalent cases", jobs, equiv_per_s, 1000 * cpu_case)
    return units_row, equiv_row


# -- (e) the floor: one configuration on long-lived processes ---------------------------


def _floor_case(config: MachineConfig, index: int) -> Case:
    """The ``index``-th floor case: one memory write, its own value, so no two are alike."""
    write = {"op": "memory", "offset": hex(0x100 + 0x10 * (index % 4096)), "count": 1,
             "value": hex(0x1111 + index), "step": "0x1"}  # fmt: skip
    return Case(config, rebuild_guest([write], config.smp))


async def _floor_loop(
    src: QemuBinary, dst: QemuBinary, args: list[str], seconds: float
) -> dict[str, Any]:
    """Run floor cases for ``seconds`` (after one untimed case that starts the processes).

    ``args`` is ``[machine, cpu]``. QEMU's CPU is counted as :func:`_qemu_cpu` says.
    """
    machine, cpu = args
    config = MachineConfig(machine, cpu, memory_mib=64, smp=1)
    settings = probed_settings([src, dst], default_cache_dir(), reuse=True)
    with tempfile.TemporaryDirectory(prefix="migfuzz-bench-floor-") as tmp:
        pool = ProcessPool(Path(tmp), settings)
        try:
            await execute_cases_reused(src, [dst], _floor_case(config, 0), settings, pool)
            cases, disagreed = 0, 0
            python0, qemu0 = _self_cpu(), _qemu_cpu(pool)
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                cases += 1
                (run,) = await execute_cases_reused(
                    src, [dst], _floor_case(config, cases), settings, pool
                )
                disagreed += not isinstance(run.judgement, Agree)
            wall = time.perf_counter() - start
            python, qemu = _self_cpu() - python0, _qemu_cpu(pool) - qemu0
        finally:
            await pool.close()
    return {"cases": cases, "wall": wall, "python": python, "qemu": qemu, "other": disagreed}


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _qemu_cpu(pool: ProcessPool) -> float:
    """User + sys of the QEMUs reaped so far and of the pool's live ones (from ``/proc``):
    a process the pool retires (after its last use) moves from one sum to the other."""
    tick = os.sysconf("SC_CLK_TCK")
    total = _children_cpu()
    for pid in pool.pids():
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def run_floor(src: QemuBinary, dst: QemuBinary, args: list[str], seconds: float, jobs: int) -> Row:
    """Measurement (e) with ``jobs`` processes."""
    results, cases = _measured("floor", _Job(_floor_loop, src, dst, args, seconds), jobs, "case")
    python = 1000 * sum(r["python"] for r in results) / cases
    qemu = 1000 * sum(r["qemu"] for r in results) / cases
    other = sum(r["other"] for r in results)
    note = f"{cases} cases; {python:.0f} ms Python + {qemu:.0f} ms QEMU per case"
    if other:
        note += f"; {other} not judged 'agree'"
    per_s = sum(r["cases"] / r["wall"] for r in results if r["cases"])
    return Row("migfuzz floor (one config)", jobs, per_s, python + qemu, note)


# -- (b)-(d) the migfuzz CLI ------------------------------------------------------------


def _run_cli(argv: list[str]) -> tuple[int, str, str, float]:
    """Run the CLI in its own process group; returns (status, stdout, stderr, CPU s).

    CPU is the RUSAGE_CHILDREN delta: the CLI and every descendant it waited for.
    On Ctrl-C the group gets SIGINT (migfuzz stops cleanly), then SIGKILL.
    """
    before = _children_cpu()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
        cwd=REPO, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    return proc.returncode, out, err, _children_cpu() - before


def run_cli(label: str, extra: list[str], seconds: float, jobs: int, *, known: bool) -> Row:
    """One ``migfuzz fuzz`` run of measurement ``label`` with ``-j jobs``.

    :param known: start from a copy of the repository's corpus, so that signatures it
        already holds are counted, not shrunk again (as in a campaign's steady state).
    """
    base = [str(MIGFUZZ), "fuzz", *extra, "--budget", f"{seconds:g}s", "--seed", "1"]
    with tempfile.TemporaryDirectory(prefix="migfuzz-bench-corpus-") as tmp:
        corpus = Path(tmp) / "corpus"
        if known:
            shutil.copytree(REPO / "corpus", corpus)
        status, out, err, cpu = _run_cli([*base, "--corpus", str(corpus), "-j", str(jobs)])
    m = SUMMARY.search(out) or SUMMARY.search(err)
    if m is None:
        tail = (err.strip() or out.strip() or "no output").splitlines()[-1]
        return Row(label, jobs, None, None, f"failed (exit {status}): {tail[:100]}")
    cases, secs = int(m.group(1)), float(m.group(2))
    where = [
        line.strip()
        for line in out.splitlines()
        if line.strip().startswith(("engine:", "time:", "distinct divergences"))
    ]
    return Row(
        label, jobs, cases / secs if secs else None, 1000 * cpu / cases if cases else None,
        "", where,
    )  # fmt: skip


# -- (f) the report on a week-long event log (no QEMU) ----------------------------------

#: The synthetic campaign's versions: every ordered pair of two of them is one of its pairs.
REPORT_VERSIONS = ("5.2", "7.2", "10.0", "11.1")
REPORT_JOBS = 8
#: Judged cases a second (a 5-minute default campaign logged ~5.8k events).
REPORT_RATE = 19.0
#: Events a night: a session of the synthetic campaign (~190 MB of log).
REPORT_NIGHT = 600_000
#: Registers of the synthetic refusals (what the corpus's real ones name).
_REGISTERS = (
    "ID_AA64ISAR0_EL1", "ID_AA64ISAR1_EL1", "ID_AA64PFR0_EL1", "ID_AA64MMFR2_EL1",
    "DACR32_EL2", "IFSR32_EL2", "CNTHP_TVAL_EL2", "CNTHP_CTL_EL2", "p15,0,c2", "p15,4,c3",
    "p15,6,c1", "ZCR_EL1", "SMCR_EL1", "TCR2_EL1", "PIRE0_EL1", "POR_EL0",
)  # fmt: skip
#: Same-version findings, by the source version whose own A -> A shows them.
_SAME_VERSION = {
    "5.2": "same-version-refused-on-load: error while loading state for instance 0x0 of "
    "device 'cpu': EL3 is not supported",
    "11.1": "same-version-state: restored state differs: cpu/0/env.vfp.zregs[0] truncated",
}


def _synthetic_signatures() -> list[str]:
    """The cross-version signatures of the synthetic campaign."""
    sigs = [f"refused-on-load: cpreg only in incoming stream: {r}" for r in _REGISTERS]
    sigs += [
        "crashed-on-load: assertion in vmstate_load_state: first_elem || !n_elems || !size",
        "refused-on-load: error loading device cpu after cpu/irq-line-state",
        "state: restored state differs: cpu/0/env.cp15.cntkctl",
        "state: guest read-back differs: CNTV_CVAL_EL0",
    ]
    return sigs


def write_synthetic_campaign(root: Path, events: int, *, seed: int = 1) -> tuple[int, int]:
    """A campaign folder whose ``events.jsonl`` holds at least ``events`` events (a
    default campaign's kinds, pairs and signatures; one session per
    :data:`REPORT_NIGHT` events); returns (events, bytes) written."""
    rng = random.Random(seed)
    pairs = [(a, b) for a in REPORT_VERSIONS for b in REPORT_VERSIONS if a != b]
    signatures = _synthetic_signatures()
    root.mkdir(parents=True)
    (root / "corpus").mkdir()
    versions = {
        v: {"sha256": f"{i:x}" * 64, "version_line": f"QEMU emulator version {v}.0",
            "path": f"/opt/qemu/{v}/qemu-system-aarch64"}
        for i, v in enumerate(REPORT_VERSIONS, 1)
    }  # fmt: skip
    record = {
        "format": 1, "pairs": [f"{a}:{b}" for a, b in pairs], "seed": seed,
        "budget_seconds": REPORT_NIGHT / REPORT_RATE, "max_cases": None, "jobs": REPORT_JOBS,
        "versions": versions, "migfuzz": "bench", "started": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    (root / "campaign.json").write_text(json.dumps(record, indent=2))
    t, written, size = 1_767_225_600.0, 0, 0
    seen: set[str] = set()
    run_index = dict.fromkeys(range(REPORT_JOBS), 0)
    worker_cases = dict.fromkeys(range(REPORT_JOBS), 0)
    with open(root / "events.jsonl", "w", encoding="utf-8") as out:

        def put(event_type: str, /, **data: Any) -> None:
            nonlocal written, size
            line = json.dumps({**data, "t": round(t, 3), "type": event_type}, sort_keys=True)
            line += "\n"
            out.write(line)
            written, size = written + 1, size + len(line)

        while written < events:
            night_end = written + REPORT_NIGHT
            put("CampaignStarted", jobs=REPORT_JOBS, resumed=written > 0, seed=seed)
            for worker in range(REPORT_JOBS):
                put("RunStarted", worker=worker, run_index=run_index[worker])
            while written < min(events, night_end) - 1:
                t += rng.expovariate(REPORT_RATE)
                worker = rng.randrange(REPORT_JOBS)
                src, dst = rng.choice(pairs)
                kind, sig, reason = _synthetic_case(rng, src, dst, signatures)
                put("CaseJudged", pair=[src, dst], kind=kind, signature=sig,
                    causes=[sig] if sig else [], reason=reason,
                    seconds=round(rng.uniform(0.05, 2.0), 3), worker=worker,
                    case=f"{rng.getrandbits(48):012x}")  # fmt: skip
                if sig and sig not in seen:
                    seen.add(sig)
                    path = f"corpus/{len(seen):03d}"
                    put("FindingSeen", signature=sig, pair=[src, dst], path=path, worker=worker)
                    put("ReproducerWritten", signature=sig, path=path, minimize_tests=40)
                worker_cases[worker] += 1
                if worker_cases[worker] % 100 == 0:
                    run_index[worker] += 1
                    put("RunStarted", worker=worker, run_index=run_index[worker])
            put("CampaignStopped", interrupted=False, cases=0, seconds=0.0)
            t += 12 * 3600.0  # the day between two nights
    return written, size


def _synthetic_case(
    rng: random.Random, src: str, dst: str, signatures: list[str]
) -> tuple[str, str | None, str]:
    """(kind, signature, reason) of one synthetic judged case on ``src -> dst``."""
    roll = rng.random()
    if roll < 0.03:
        return "control-failed", None, f"{src} -> {src}: guest read-back incomplete"
    if roll < 0.13:
        return "invalid", None, (
            f"{src} -> {dst}: setup-error: machine type 'virt-{src}' not supported"
        )  # fmt: skip
    if roll < 0.14:
        return "harness", None, "MonitorError: QMP connection lost while waiting for RESUME"
    if roll < 0.16 and src in _SAME_VERSION:
        return "divergence", _SAME_VERSION[src], _SAME_VERSION[src]
    if roll < 0.60:
        sig = signatures[min(int(rng.expovariate(0.3)), len(signatures) - 1)]
        return "divergence", sig, sig
    return "agree", None, ""


_RESUME_FOLD = (
    "import sys; from pathlib import Path; "
    "from fuzz.campaign.folder import read_jsonl, resume_state; "
    "root = Path(sys.argv[1]); "
    "print(resume_state(read_jsonl(root / 'events.jsonl'), root).cases)"
)
_IMPORT_ONLY = "import fuzz.report.gather, fuzz.report.html"


def _child_peak(argv: list[str]) -> tuple[float, float, float, str]:
    """Run ``argv`` (cwd: the repository); its (wall s, CPU s, peak resident MB, stdout).

    :raise BenchError: it failed.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        said, why = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        tail = (why.strip() or said.strip() or "no output").splitlines()[-1]
        raise BenchError(f"{argv[1:3]} failed (exit {proc.returncode}): {tail[:120]}")
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, said  # ru_maxrss: KiB on Linux


def run_report(sizes: list[int]) -> list[str]:
    """Measurement (f): a line per (log, step): events, MB, wall s, CPU s, peak MB."""
    python = sys.executable
    lines = [f"{'events':>9} {'log MB':>7}  {'step':30} {'wall s':>7} {'CPU s':>7} {'peak MB':>8}"]
    wall, cpu, peak, _ = _child_peak([python, "-c", _IMPORT_ONLY])
    lines.append(
        f"{'-':>9} {'-':>7}  {'import fuzz.report.gather (floor)':30} "
        f"{wall:7.2f} {cpu:7.2f} {peak:8.0f}"
    )
    for events in sizes:
        with tempfile.TemporaryDirectory(prefix="migfuzz-bench-report-") as tmp:
            root = Path(tmp) / "campaign"
            print(f"  report: writing a {events}-event log ...", file=sys.stderr, flush=True)
            written, size = write_synthetic_campaign(root, events)
            mb = size / 1e6
            steps = [
                ("migfuzz report", [python, "-m", "fuzz", "report", str(root)]),
                ("resume fold (resume_state)", [python, "-c", _RESUME_FOLD, str(root)]),
            ]
            for label, argv in steps:
                print(f"  report: {label} on {written} events ...", file=sys.stderr, flush=True)
                wall, cpu, peak, _ = _child_peak(argv)
                lines.append(
                    f"{written:9d} {mb:7.0f}  {label:30} {wall:7.2f} {cpu:7.2f} {peak:8.0f}"
                )
    return lines


# -- the command line --------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, validated; raises UsageError with a one-line message."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--src", default="11.1", help="source QEMU version (default 11.1)")
    p.add_argument("--dst", default="11.1", help="destination QEMU version (default 11.1)")
    p.add_argument("--machine", default="virt", help="machine type for plain, e.g. virt-10.0")
    p.add_argument("--cpu", default="cortex-a57", help="CPU model for plain")
    p.add_argument("--seconds", type=float, default=30.0, help="seconds per measurement")
    p.add_argument("--campaign-seconds", type=float, default=60.0, help="budget of (d)")
    p.add_argument("--fuzz-arg", action="append", default=[], metavar="ARG",
                   help="one more argument for the migfuzz runs (b)-(d), e.g. "
                        "--fuzz-arg=--no-past-refusals for an A/B (repeatable)")  # fmt: skip
    p.add_argument("--jobs", default=f"1,{os.cpu_count() or 1}", help="comma list of -j values")
    p.add_argument("--only", default="a,b,c,d,e", help="comma list of a..f or their names")
    p.add_argument("--report-events", default="600000,4000000",
                   help="comma list of event-log sizes for (f) report")  # fmt: skip
    args = p.parse_args(argv)
    try:
        args.report_events = [int(n) for n in args.report_events.split(",") if n.strip()]
    except ValueError:
        raise UsageError(f"--report-events {args.report_events!r}: expected numbers") from None
    if not args.report_events or min(args.report_events) < 1:
        raise UsageError("--report-events: every value must be 1 or more")
    try:
        args.jobs = sorted({int(j) for j in args.jobs.split(",") if j.strip()})
    except ValueError:
        raise UsageError(f"--jobs {args.jobs!r}: expected a comma list of numbers") from None
    if not args.jobs or min(args.jobs) < 1:
        raise UsageError("--jobs: every value must be 1 or more")
    names = {v: k for k, v in MEASUREMENTS.items()}
    only = set()
    for item in (s.strip().lower() for s in args.only.split(",") if s.strip()):
        if item not in MEASUREMENTS and item not in names:
            raise UsageError(f"--only {item!r}: expected a..f or {', '.join(names)}")
        only.add(names.get(item, item))
    if not only:
        raise UsageError("--only: nothing to measure")
    args.only = only
    if args.seconds <= 0 or args.campaign_seconds <= 0:
        raise UsageError("--seconds and --campaign-seconds must be positive")
    return args


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_table(rows: list[Row], baseline: dict[int, float]) -> None:
    """The result table: one row per (measurement, jobs)."""
    print(f"{'measurement':30} {'-j':>3} {'cases/s':>9} {'CPU ms/case':>12} {'vs plain':>9}")
    for r in rows:
        base = baseline.get(r.jobs)
        ratio = (
            f"{r.cases_per_s / base:8.2f}x"
            if base and r.cases_per_s is not None and not r.label.startswith("plain units")
            else "-"
        )
        print(
            f"{r.label:30} {r.jobs:3d} {_fmt(r.cases_per_s, '9.2f'):>9} "
            f"{_fmt(r.cpu_ms, '12.1f'):>12} {ratio:>9}  {r.note}".rstrip()
        )


def _measure(
    args: argparse.Namespace, src: QemuBinary, dst: QemuBinary, qemu_args: list[str]
) -> tuple[list[Row], dict[int, float]]:
    """Run the selected measurements in order; the rows and (a)'s baseline per job count."""
    rows: list[Row] = []
    baseline: dict[int, float] = {}
    if "a" in args.only:
        for j in args.jobs:
            print(f"  plain -j {j} ...", file=sys.stderr, flush=True)
            units_row, equiv_row = run_plain(src, dst, qemu_args, args.seconds, j)
            rows += [units_row, equiv_row]
            if equiv_row.cases_per_s:
                baseline[j] = equiv_row.cases_per_s
    if args.only & {"b", "c", "d"}:
        pair = f"{src.name}:{dst.name}"
        plan = [
            ("b", "migfuzz paused cases", ["--pairs", pair, "--no-guests"], args.seconds),
            ("c", "migfuzz cases with guests", ["--pairs", pair], args.seconds),
            ("d", "migfuzz default campaign", [], args.campaign_seconds),
        ]
        for key, label, extra, seconds in plan:
            if key not in args.only:
                continue
            for j in args.jobs:
                print(f"  {label} -j {j} ...", file=sys.stderr, flush=True)
                rows.append(run_cli(label, [*extra, *args.fuzz_arg], seconds, j, known=True))
    if "e" in args.only:
        for j in args.jobs:
            print(f"  floor -j {j} ...", file=sys.stderr, flush=True)
            rows.append(run_floor(src, dst, [args.machine, args.cpu], args.seconds, j))
    return rows, baseline


def main(argv: list[str] | None = None) -> int:
    """Run the selected measurements and print the table; returns the exit status."""
    args = _parse_args(argv)
    report = run_report(args.report_events) if "f" in args.only else []
    if report:
        print("(f) report on synthetic event logs, each step in a child process:")
        print("\n".join(report), flush=True)
    if not args.only & QEMU_MEASUREMENTS:
        return 0
    farm = Farm(default_cache_dir())
    src, dst = farm.get(args.src), farm.get(args.dst)
    for b in (src, dst):
        if not b.path.is_file() or (b.loader is not None and not b.loader.is_file()):
            raise UsageError(f"QEMU {b.name}: binary missing at {b.path}")
    cli_wanted = args.only & {"b", "c", "d"}
    if cli_wanted and not MIGFUZZ.is_file():
        raise UsageError(f"{MIGFUZZ} not found: run scripts/setup")
    qemu_args = ["-accel", "tcg", "-machine", args.machine, "-cpu", args.cpu, "-m", "64M", "-S"]
    print(
        f"bench: {src.name} -> {dst.name}; plain and floor: {args.machine}, {args.cpu}, 64 MiB; "
        f"{args.seconds:g} s per measurement ({args.campaign_seconds:g} s campaign); "
        f"-j {','.join(map(str, args.jobs))}; {os.cpu_count()} CPUs",
        flush=True,
    )
    rows, baseline = _measure(args, src, dst, qemu_args)
    print()
    _print_table(rows, baseline)
    where = [(r, line) for r in rows for line in r.extra]
    if where:
        print("\nwhere a case's time goes:")
        for r, line in where:
            print(f"  [{r.label}, -j {r.jobs}] {line}")
    return 0


def _entry() -> int:
    """main() with one-line errors and exit status 2; 130 on Ctrl-C."""
    try:
        return main()
    except (UsageError, BenchError, MigfuzzError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
        print(f"bench: error: {first}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(_entry())
