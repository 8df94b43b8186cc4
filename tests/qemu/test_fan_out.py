"""One save, many destinations, on real QEMU: each pair is judged as it would be on its own.

The fan-out restores one save on one control and on every destination. It must change
nothing about any pair's judgement: a pair that refuses still refuses with the same
signature, one that loads still agrees, whether the others refused or loaded. And on
long-lived processes (a group of guests on pairs that load), every pair still agrees.
"""

from __future__ import annotations

import pytest

from fuzz.case import Case, MachineConfig
from fuzz.farm import Farm, QemuBinary
from fuzz.oracles import Agree
from fuzz.probe import capabilities
from fuzz.session import Session
from fuzz.settings import RunSettings
from strategies.cases import rebuild_guest
from tests.qemu.conftest import COMMON_MACHINE

pytestmark = pytest.mark.qemu

GUEST = [{"op": "memory", "offset": "0x10", "count": 2, "value": "0x1111", "step": "0x1"}]


def _said(run: object) -> tuple[str, str]:
    judgement = run.judgement  # type: ignore[attr-defined]
    return type(judgement).__name__, str(getattr(judgement, "signature", ""))


@pytest.mark.parametrize("guest", [False, True], ids=["paused", "guest"])
def test_each_pair_of_a_fan_out_is_judged_as_on_its_own(
    binaries: dict[str, QemuBinary], guest: bool
) -> None:
    case = Case(
        MachineConfig(COMMON_MACHINE, "cortex-a57"), rebuild_guest(GUEST, 1) if guest else None
    )
    src = binaries["10.0"]
    dsts = [binaries[v] for v in ("11.1", "5.2", "10.0", "7.2")]
    with Session(RunSettings(reuse=False)) as session:
        fanned = session.run_cases(src, dsts, case)
        alone = [session.run_case(src, dst, case) for dst in dsts]
    assert [r.pair.dst for r in fanned] == [d.name for d in dsts]
    assert [_said(r) for r in fanned] == [_said(r) for r in alone]
    # Both kinds are in the comparison: 10.0 -> 11.1 refuses cortex-a57 (ID_AA64ISAR0_EL1
    # is only in the stream), 10.0 -> 10.0 agrees.
    kinds = {kind for kind, _sig in map(_said, fanned)}
    assert {"Divergence", "Agree"} <= kinds, [_said(r) for r in fanned]


def test_a_group_on_long_lived_processes_agrees_on_every_pair(farm: Farm) -> None:
    if "11.1.2" not in farm.installed():
        pytest.skip("11.1.2 is not installed (scripts/setup installs it from qemu.lock)")
    src, other = farm.get("11.1"), farm.get("11.1.2")
    snapshots = frozenset(
        b.name for b in (src, other) if capabilities(b, farm.cache_dir).has_snapshot_load
    )
    settings = RunSettings(reuse=True, snapshot_versions=snapshots)
    config = MachineConfig("virt", "cortex-a57")
    ops = [
        [{**GUEST[0], "offset": hex(0x10 + 0x100 * i), "value": hex(0x1111 * (i + 1))}]
        for i in range(8)
    ]
    with Session(settings) as session:
        runs = [
            session.run_cases(
                src, [other, src], Case(config, rebuild_guest(o, 1)), more_alike=i + 1 < len(ops)
            )
            for i, o in enumerate(ops)
        ]
        stats = dict(session.cases.stats)
    assert stats["reused"] > 0, stats  # the later guests ran on long-lived processes
    for pair_runs in runs:
        assert [_said(r) for r in pair_runs] == [("Agree", "")] * 2
        assert all(isinstance(r.judgement, Agree) for r in pair_runs)
    assert any(r.reused for pair_runs in runs for r in pair_runs)
    assert stats["disagreed"] == 0
