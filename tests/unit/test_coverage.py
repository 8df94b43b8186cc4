"""State coverage without QEMU: the counting (:mod:`fuzz.judge.coverage`), the sampler's
share and choice of save (:mod:`fuzz.campaign.coverage`), ``coverage.json`` in a campaign
folder, the driver's sum and the campaign's last lines."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fuzz.campaign import coverage as sampling
from fuzz.campaign.coverage import TIME_SHARE, CoverageSampler, measured_save, novelties
from fuzz.campaign.driver import Summary
from fuzz.campaign.folder import COVERAGE, CampaignFolder
from fuzz.core.case import Case, GuestProgram, MachineConfig
from fuzz.core.devices import Device
from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.events import CoverageMeasured
from fuzz.judge.coverage import (
    Coverage,
    exercised,
    fields_of,
    section_of,
    summary_lines,
)
from fuzz.judge.oracles import Agree, ControlFailed, Evidence, InvalidCase, Judgement
from fuzz.run.engine import CaseRun

RESET = {
    "cpu/0/env.pc": "0x0",
    "cpu/0/env.xregs[0]": "0x0",
    "cpu/0/env.xregs[1]": "0x0",
    "cpu/1/env.pc": "0x0",
    "cpu/0/cpreg/SCTLR_EL1": "0xc50838",
    "pl031/lr": "0x0",
    "pl031/cr": "0x1",
    "timer/cpu_ticks_offset": "0x10",
    "globalstate/runstate": "prelaunch",
    "ram/mach-virt.ram": "digest-a",
}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, set()),
        ({"cpu/0/env.pc": "0x40100000"}, {"cpu/env.pc"}),
        # Another CPU or array slot exercises the same field: one name.
        ({"cpu/1/env.pc": "0x4"}, {"cpu/env.pc"}),
        ({"cpu/0/env.xregs[1]": "0x5", "cpu/0/env.xregs[0]": "0x6"}, {"cpu/env.xregs"}),
        ({"cpu/0/cpreg/SCTLR_EL1": "0xc50839"}, {"cpu/cpreg/SCTLR_EL1"}),
        ({"pl031/lr": "0x1234", "pl031/cr": "0x1"}, {"pl031/lr"}),  # cr kept its value
        # Volatile fields and the RAM digests differ whatever the guest did: never counted.
        ({"timer/cpu_ticks_offset": "0x99", "globalstate/runstate": "paused"}, set()),
        ({"ram/mach-virt.ram": "digest-b"}, set()),
    ],
)
def test_a_save_exercises_the_fields_whose_value_left_reset(
    changes: dict[str, str], expected: set[str]
) -> None:
    assert exercised({**RESET, **changes}, RESET) == expected


def test_a_field_in_one_map_only_is_not_exercised() -> None:
    save = {**RESET, "pl061/dir": "0xff"}  # the reference lacks it
    reference = {k: v for k, v in RESET.items() if k != "pl031/lr"}
    assert exercised({**save, "pl031/lr": "0x9"}, reference) == set()


def test_the_fields_a_reference_holds_are_its_counted_rule_paths() -> None:
    assert fields_of(RESET) == {
        "cpu/env.pc", "cpu/env.xregs", "cpu/cpreg/SCTLR_EL1", "pl031/lr", "pl031/cr",
    }  # fmt: skip
    assert section_of("cpu/cpreg/SCTLR_EL1") == "cpu"
    assert section_of("0000:00:00.0/gpex_root/0/parent_obj.config") == "0000:00:00.0"


def _coverage() -> Coverage:
    coverage = Coverage()
    known = fields_of(RESET)
    coverage.add("11.1", ["cpu/env.pc", "cpu/env.xregs"], known)
    coverage.add("11.1", ["cpu/env.pc", "pl031/lr"])
    coverage.add("11.1", [])
    coverage.add("5.2", ["cpu/env.pc"], ["cpu/env.pc", "pl061/dir"])
    return coverage


def test_coverage_counts_saves_per_field_and_per_section() -> None:
    v = _coverage().versions["11.1"]
    assert v.saves == 3
    assert v.sections["cpu"].fields == {
        "cpu/env.pc": 2, "cpu/env.xregs": 1, "cpu/cpreg/SCTLR_EL1": 0,
    }  # fmt: skip
    assert v.sections["cpu"].saves == 2  # a save counts once per section
    assert v.sections["pl031"].fields == {"pl031/lr": 1, "pl031/cr": 0}
    assert v.sections["pl031"].saves == 1
    totals = v.totals()
    assert (totals.sections_exercised, totals.sections) == (2, 2)
    assert (totals.fields_exercised, totals.fields, totals.saves) == (3, 5, 3)


def test_merging_adds_counts_and_known_fields() -> None:
    total = _coverage()
    total.merge(_coverage())
    v = total.versions["11.1"]
    assert v.saves == 6 and v.sections["cpu"].fields["cpu/env.pc"] == 4
    assert v.sections["cpu"].saves == 4 and v.sections["pl031"].fields["pl031/cr"] == 0
    assert total.versions["5.2"].sections["pl061"].fields == {"pl061/dir": 0}
    assert total.fields_exercised() == 3 + 1


def test_coverage_json_round_trips_with_fields_named_in_their_section() -> None:
    coverage = _coverage()
    data = json.loads(json.dumps(coverage.to_json()))
    assert data["format"] == 1
    assert data["versions"]["11.1"]["saves"] == 3
    assert data["versions"]["11.1"]["sections"]["pl031"] == {
        "saves": 1, "fields": {"cr": 0, "lr": 1},
    }  # fmt: skip
    assert Coverage.from_json(data) == coverage


@pytest.mark.parametrize(
    "data",
    [
        None, [], {"format": 2, "versions": {}}, {"format": 1},
        {"format": 1, "versions": {"11.1": {"saves": -1, "sections": {}}}},
        {"format": 1, "versions": {"11.1": {"saves": 1, "sections": {"cpu": {"saves": 1}}}}},
        {"format": 1, "versions": {"11.1": {"saves": 1, "sections": {"cpu": {
            "saves": 1, "fields": {"pc": "1"}}}}}},
    ],
)  # fmt: skip
def test_a_garbled_coverage_json_is_none_not_an_error(data: Any) -> None:
    assert Coverage.from_json(data) is None


def test_the_last_lines_say_exercised_of_how_many_per_version_oldest_first() -> None:
    assert summary_lines(_coverage()) == [
        "coverage 5.2: 1 of 2 sections, 1 of 2 fields exercised (in 1 measured save)",
        "coverage 11.1: 2 of 2 sections, 3 of 5 fields exercised (in 3 measured saves)",
    ]
    assert summary_lines(Coverage()) == ["coverage: no save was measured"]


def test_the_driver_adds_up_measured_saves() -> None:
    summary = Summary()
    summary.add(CoverageMeasured("11.1", ("cpu/env.pc",), ("cpu/env.pc", "pl031/lr"), 0, 0.1))
    summary.add(CoverageMeasured("11.1", ("cpu/env.pc", "pl031/lr"), (), 1, 0.05))
    v = summary.coverage.versions["11.1"]
    assert v.saves == 2 and v.sections["cpu"].fields == {"cpu/env.pc": 2}
    assert v.sections["pl031"].fields == {"pl031/lr": 1}


def test_a_campaign_folder_keeps_coverage_across_sessions(tmp_path: Path) -> None:
    root = tmp_path / "c"
    with CampaignFolder.create(root, {"seed": 1}) as folder:
        assert folder.read_coverage() == Coverage()  # none yet
        folder.write_coverage(_coverage())
    with CampaignFolder.reopen(root) as folder:  # a resume goes on from it
        coverage = folder.read_coverage()
        coverage.add("11.1", ["pl031/cr"])
        folder.write_coverage(coverage)
    data = json.loads((root / COVERAGE).read_text())
    assert data["versions"]["11.1"]["saves"] == 4
    assert data["versions"]["11.1"]["sections"]["pl031"]["fields"] == {"cr": 1, "lr": 1}
    (root / COVERAGE).write_text("{")  # a torn file starts again rather than stopping it
    with CampaignFolder.reopen(root) as folder:
        assert folder.read_coverage() == Coverage()


# -- the sampler ------------------------------------------------------------------------

CONFIG = MachineConfig("virt", "max")


def _run(judgement: Judgement, stream: bytes | None, resave: bytes | None) -> CaseRun:
    save = StepOutcome(Stage.SAVE, "11.1", Verdict.COMPLETED)
    load = StepOutcome(Stage.LOAD, "11.1", Verdict.COMPLETED)
    transfer = TransferOutcome("11.1", "11.1", save, load)
    evidence = Evidence(transfer, transfer, control_resave=resave, source_stream=stream)
    return CaseRun(Case(CONFIG), evidence, stream, judgement)


def test_the_save_measured_is_the_source_stream_else_the_controls_resave() -> None:
    agree = Agree()
    assert measured_save([_run(agree, b"source", b"resave")]) == b"source"
    assert measured_save([_run(agree, None, b"resave")]) == b"resave"  # long-lived processes
    assert measured_save([None, _run(agree, None, None)]) is None
    assert measured_save([_run(InvalidCase("setup"), b"s", b"r")]) is None
    assert measured_save([_run(ControlFailed("refused"), b"s", None)]) is None


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_sampler_measures_only_within_its_time_share(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    events: list[CoverageMeasured] = []
    sampler = CoverageSampler(None, {}, events.append, worker=3, clock=clock)  # type: ignore[arg-type]
    maps = {b"reset": RESET, b"case": {**RESET, "pl031/lr": "0x7"}}

    def slow_map(data: bytes) -> dict[str, str]:
        clock.now += 1.0  # each decode costs a second
        return dict(maps[data])

    monkeypatch.setattr(sampling, "field_map", slow_map)
    monkeypatch.setattr(sampler, "_save_at_reset", lambda _v, _c: slow_map(b"reset"))
    run = _run(Agree(), b"case", None)
    assert not sampler.due()  # nothing has run yet
    clock.now = 10.0
    assert sampler.measure("11.1", Case(CONFIG), [run]) == {"pl031/lr"}  # reference + save: 2 s
    assert sampler.spent == 2.0 and sampler.measured == 1
    [event] = events
    assert (event.version, event.exercised, event.worker) == ("11.1", ("pl031/lr",), 3)
    assert set(event.known) == fields_of(RESET)
    clock.now = 2.0 / TIME_SHARE - 1  # still over its share: not measured
    assert sampler.measure("11.1", Case(CONFIG), [run]) == frozenset()
    clock.now = 2.0 / TIME_SHARE + 1
    assert sampler.measure("11.1", Case(CONFIG), [run]) == {"pl031/lr"}  # reference kept
    assert sampler.spent == 3.0 and len(events) == 2
    assert events[1].known == ()  # its fields were reported already


def test_a_save_doing_something_new_is_measured_out_of_turn_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    events: list[CoverageMeasured] = []
    sampler = CoverageSampler(None, {}, events.append, clock=clock)  # type: ignore[arg-type]
    monkeypatch.setattr(sampling, "field_map", lambda _data: {**RESET, "pl031/lr": "0x7"})
    monkeypatch.setattr(sampler, "_save_at_reset", lambda _v, _c: dict(RESET))
    its = GuestProgram(b"\0", operations=({"op": "its", "device": 1},))
    case = Case(CONFIG, guest=its)
    assert novelties(case) == {"op: its (gic 2, its on)"}  # no ITS on a GICv2: per GIC
    assert not sampler.due()  # no time share yet: only something new is measured
    run = _run(Agree(), b"case", None)
    assert sampler.measure("11.1", case, [run]) == {"pl031/lr"}
    assert sampler.measure("11.1", case, [run]) == frozenset()  # seen on 11.1 now
    assert sampler.measure("10.0", case, [run]) == {"pl031/lr"}  # not on 10.0
    assert sampler.measure("10.0", Case(CONFIG), [run]) == frozenset()  # nothing new
    assert len(events) == 2
    with_device = replace(CONFIG, devices=(Device("nvme", (("addr", "0x1"),)),))
    assert novelties(Case(with_device)) == {"device: nvme"}
    gicv3 = replace(CONFIG, machine_options=(("gic-version", "3"),))
    assert novelties(Case(gicv3, guest=its)) == {"op: its (gic 3, its on)"}
