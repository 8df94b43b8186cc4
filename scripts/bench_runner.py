#!/usr/bin/env python3
"""Throughput of the runner, and of a plain sequential save/restore, on the same machine.

Measures, for one pair of versions:

* ``plain``: what a hand-written script does -- start QEMU with ``-S``, ``migrate`` to a
  file over QMP, quit; start the destination with ``-incoming``, wait, quit. No control,
  no trace, no guest. This is the baseline the brief asks migfuzz to be compared with.
* ``case``: one migfuzz case without a guest (save once, restore on A and on B, traced).
* ``guest``: one migfuzz case with an empty generated guest (run to its checkpoint, save,
  restore on A and B, read back).

Prints the median seconds per unit of work and units per second. Usage::

    .venv/bin/python scripts/bench_runner.py [--src 10.0] [--dst 11.1] [-n 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from fuzz.case import Case, MachineConfig
from fuzz.farm import Farm, QemuBinary
from fuzz.machine import QemuMachine
from fuzz.probe import capabilities
from fuzz.runner import save_and_restore
from strategies.image import build_guest


async def _wait_migration(vm: QemuMachine) -> None:
    while True:
        info = await vm.execute("query-migrate")
        if isinstance(info, dict) and info.get("status") in ("completed", "failed"):
            return
        await asyncio.sleep(0.002)


async def plain(src: QemuBinary, dst: QemuBinary, machine: str, workdir: Path) -> None:
    """The baseline: one save and one restore, nothing else."""
    args = ["-machine", machine, "-cpu", "cortex-a57", "-m", "64M", "-S"]
    stream = workdir / "plain.stream"
    async with QemuMachine(src, args, workdir) as vm:
        await vm.execute("migrate", {"uri": f"exec:cat > {stream}"})
        await _wait_migration(vm)
    async with QemuMachine(dst, [*args, "-incoming", "defer"], workdir) as vm:
        await vm.execute("migrate-incoming", {"uri": f"exec:cat {stream}"})
        await _wait_migration(vm)


def timed(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", default="10.0")
    p.add_argument("--dst", default="11.1")
    p.add_argument("-n", type=int, default=20, help="repetitions of each measurement")
    args = p.parse_args()
    farm = Farm()
    src, dst = farm.get(args.src), farm.get(args.dst)
    machine = capabilities(src, farm.cache_dir).default_virt
    trace = lambda b: capabilities(b, farm.cache_dir).trace_works  # noqa: E731
    plain_case = Case(MachineConfig(machine, "cortex-a57"))
    guest_case = Case(MachineConfig(machine, "cortex-a57"), guest=build_guest([]))

    def run(case: Case) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(save_and_restore(src, [src, dst], case, Path(tmp), trace_load=trace))

    def run_plain() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            asyncio.run(plain(src, dst, machine, Path(tmp)))

    run(plain_case)  # warm caches (probe, page cache)
    rows = [
        ("plain save+restore (baseline)", timed(run_plain, args.n)),
        ("migfuzz case, no guest (save + 2 restores)", timed(lambda: run(plain_case), args.n)),
        ("migfuzz case, empty guest", timed(lambda: run(guest_case), args.n)),
    ]
    print(f"{args.src} -> {args.dst}, {machine}, cortex-a57, 64 MiB; {args.n} runs each")
    for label, times in rows:
        med = statistics.median(times)
        print(
            f"  {label:45} median {med * 1000:7.1f} ms  ({1 / med:5.2f}/s)"
            f"  min {min(times) * 1000:6.1f}  max {max(times) * 1000:6.1f}"
        )


if __name__ == "__main__":
    main()
