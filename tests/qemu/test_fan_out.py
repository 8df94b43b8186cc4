"""One save, many destinations, on real QEMU: each pair is judged as it would be on its own.

The fan-out restores one save on one control and on every destination. It must change
nothing about any pair's judgement: a pair that refuses still refuses with the same
signature, one that loads still agrees, whether the others refused or loaded. And on
long-lived processes (a group of guests on pairs that load), every pair still agrees. A new
signature that a fanned-out destination shows is recorded for that pair.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.campaign.driver import Campaign, worker_spec
from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.settings import RunSettings
from fuzz.corpus.entry import entry_folders, load_entry
from fuzz.events import CaseJudged, FindingSeen
from fuzz.judge.oracles import Agree
from fuzz.run.session import Session
from fuzz.versions.farm import Farm
from fuzz.versions.probe import probed_settings
from strategies.cases import rebuild_guest
from strategies.configs import accepted_by
from tests.qemu.conftest import COMMON_MACHINE
from tests.qemu.test_loop import tiny_cases

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
    settings = probed_settings([src, other], farm.cache_dir, reuse=True)
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


def test_a_new_signature_on_a_fanned_out_destination_is_recorded_for_its_own_pair(
    farm: Farm, tmp_path: Path
) -> None:
    # Every case is drawn for 10.0 -> 10.0.2 or 10.0 -> 11.1 and fanned out to the other.
    # Each pair refuses cortex-a57 for its own reason: both are recorded, each with the
    # pair that showed it, and both shrunk side by side.
    if "10.0.2" not in farm.installed():
        pytest.skip("10.0.2 is not installed (scripts/setup installs it from qemu.lock)")
    pairs = [("10.0", "10.0.2"), ("10.0", "11.1")]
    spec = worker_spec(
        farm, pairs, tiny_cases, tmp_path / "corpus", max_cases=6, seed=1, fan_out=accepted_by
    )
    events: list[object] = []
    Campaign(spec, jobs=1, emit=events.append).run()
    seen = {str(e.signature): e.pair for e in events if isinstance(e, FindingSeen)}
    assert seen == {
        "refused-on-load: Failed to load cpu:cpreg_vmstate_array_len": ("10.0", "10.0.2"),
        "refused-on-load: cpreg only in incoming stream: ID_AA64ISAR0_EL1": ("10.0", "11.1"),
    }
    for folder in entry_folders(tmp_path / "corpus"):
        entry = load_entry(folder)
        assert seen[str(entry.signature)] == (entry.src.name, entry.dst.name)
        assert entry.case.config.machine_options == () and entry.case.config.smp == 1
    judged = [e.pair for e in events if isinstance(e, CaseJudged)]
    assert len(judged) == 6 and set(judged) == set(pairs)
    # The very first case was judged on both pairs, from one save, before either finding
    # was announced.
    order = [type(e).__name__ for e in events if isinstance(e, CaseJudged | FindingSeen)]
    assert order[:4] == ["CaseJudged", "CaseJudged", "FindingSeen", "FindingSeen"], order
