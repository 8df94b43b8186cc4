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
  through the engine's own path (:func:`fuzz.engine.execute_cases_reused`), judged: no
  fresh sample, no new configuration, no Hypothesis. What (c) spends above this is the
  price of its configuration diversity and of its guard against reuse artefacts.

Every CLI run starts from a copy of the repository's corpus, so that known signatures are
counted, not shrunk: a first finding's shrink runs cases the loop does not count, and in
a short measurement it can take all the time (11.1 -> 11.1 meets the Z-register bug).

The CLI runs get ``-j J``. CPU time is user + sys of the measured processes and everything
they waited for (QEMU included); the CLI's own ``engine:`` and ``time:`` lines say how its
cases ran and how their CPU time splits between migfuzz and QEMU. ``--machine`` and
``--cpu`` apply to ``plain`` and ``floor`` only: migfuzz draws its own. Usage::

    .venv/bin/python scripts/bench.py [--src 11.1] [--dst 11.1] [--seconds 30] \\
        [--jobs 1,8] [--only plain,paused,guests,campaign,floor] [--campaign-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
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

from fuzz.case import Case, MachineConfig
from fuzz.engine import execute_cases_reused
from fuzz.errors import MigfuzzError, MonitorError, UsageError
from fuzz.farm import Farm, QemuBinary, default_cache_dir
from fuzz.machine import QemuMachine
from fuzz.oracles import Agree
from fuzz.persistent import ProcessPool
from fuzz.probe import probed_settings
from strategies.cases import rebuild_guest

REPO = Path(__file__).resolve().parent.parent
MIGFUZZ = REPO / ".venv" / "bin" / "migfuzz"
SUMMARY = re.compile(r"(\d+) cases in ([\d.]+) s")
MEASUREMENTS = {"a": "plain", "b": "paused", "c": "guests", "d": "campaign", "e": "floor"}
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
    p.add_argument("--jobs", default=f"1,{os.cpu_count() or 1}", help="comma list of -j values")
    p.add_argument("--only", default="a,b,c,d,e", help="comma list of a..e or their names")
    args = p.parse_args(argv)
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
            raise UsageError(f"--only {item!r}: expected a..e or {', '.join(names)}")
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
                rows.append(run_cli(label, extra, seconds, j, known=True))
    if "e" in args.only:
        for j in args.jobs:
            print(f"  floor -j {j} ...", file=sys.stderr, flush=True)
            rows.append(run_floor(src, dst, [args.machine, args.cpu], args.seconds, j))
    return rows, baseline


def main(argv: list[str] | None = None) -> int:
    """Run the selected measurements and print the table; returns the exit status."""
    args = _parse_args(argv)
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
