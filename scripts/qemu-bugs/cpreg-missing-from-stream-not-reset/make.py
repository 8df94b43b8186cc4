#!/usr/bin/env python3
"""How this reproducer's files were made (with migfuzz; repro.sh itself needs only QEMU).

A guest on QEMU 11.1 (virt-5.2, cortex-a57) writes 0 -- the reset value -- to DBGBVR0_EL1
and stops at its checkpoint; the saved stream is ``stream.lz4``. ``patched.lz4`` is the same
stream with DBGBVR0_EL1 left out of the CPU's cpreg list, which QEMU promises to load with
the register at its reset value. Both are loaded on 11.1, the guest resumed, and what it
reads back compared; the whole thing is written as a migfuzz entry whose ``repro.sh``
runs plain QEMU.

    .venv/bin/python scripts/qemu-bugs/cpreg-missing-from-stream-not-reset/make.py [VERSION]
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import TransferOutcome
from fuzz.corpus.entry import Entry, VersionRef, write_entry
from fuzz.judge.oracles import Divergence, Evidence
from fuzz.judge.tolerance import judge_tolerance
from fuzz.run.past_refusal import cpu_tables, rewrite_every_cpu
from fuzz.run.runner import FreshDestination, FreshSource
from fuzz.stream.cpregs import CpReg, to_kvm_id
from fuzz.stream.decode import decode_stream
from fuzz.stream.patch import CpregPatch, PatchAction
from fuzz.versions.farm import Farm
from fuzz.versions.probe import capabilities
from strategies.cases import rebuild_guest

HERE = Path(__file__).resolve().parent
REGISTER = "DBGBVR0_EL1"
KVM_ID = to_kvm_id(CpReg.aa64(2, 0, 0, 0, 4))


async def make(version: str) -> None:
    binary = Farm().get(version)
    guest = rebuild_guest([{"op": "sysreg", "register": REGISTER, "value": "0x0"}], 1)
    case = Case(MachineConfig("virt-5.2", "cortex-a57"), guest)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        saved = await FreshSource(binary, work).save(case)
        assert saved.stream is not None, saved.outcome.summary()
        decoded = decode_stream(saved.stream)
        tables = cpu_tables(decoded)
        edited = rewrite_every_cpu(
            saved.stream, decoded, [{k: v for k, v in t.items() if k != KVM_ID} for t in tables]
        )
        control = await FreshDestination(binary, work).load(case, saved.stream, resave=True)
        pair = await FreshDestination(binary, work).load(case, edited, resave=True)
    came_back = None if pair.resave is None else cpu_tables(decode_stream(pair.resave))[0][KVM_ID]
    dropped = CpregPatch(KVM_ID, PatchAction.DROP, tables[0][KVM_ID], None)
    evidence = Evidence(
        TransferOutcome(version, version, saved.outcome, control.outcome),
        TransferOutcome(version, version, saved.outcome, pair.outcome),
        control.resave,
        pair.resave,
        saved.stream,
    )
    judged = judge_tolerance(evidence, dropped, came_back)
    print(
        f"{REGISTER} left out, came back {came_back:#x}: {judged}"
        if came_back is not None
        else f"{REGISTER} left out: {judged}"
    )
    if not isinstance(judged, Divergence):
        return
    farm = Farm()
    line = capabilities(binary, farm.cache_dir).version_line
    ref = VersionRef(version, binary.content_hash(), line)
    entry = Entry(
        judged.signature,
        ref,
        ref,
        case,
        evidence.control,
        evidence.pair,
        {**judged.details, "tolerance": {"dropped": dropped.to_json()}},
        saved.stream,
        patched_stream=edited,
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder, _ = write_entry(Path(tmp), entry, binary, binary)
        for name in ("repro.sh", "stream.lz4", "patched.lz4", "guest.bin", "guest.s"):
            shutil.copy(folder / name, HERE / name)
        shutil.copy(folder / "outcome.json", HERE / "outcome.json")


if __name__ == "__main__":
    asyncio.run(make(sys.argv[1] if len(sys.argv) > 1 else "11.1"))
