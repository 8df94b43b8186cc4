"""The one case path's steps, grouping and process start, with fakes for QEMU.

A same-version pair restores once (its control is the pair); a cross-version pair restores
on both versions from one save; a group of guests builds each guest only when its case
runs; a case is invalid by its guest's own doing only when the guest said so; QEMU starts
through ``setpriv --pdeathsig`` where the system has it.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.core.settings import RunSettings
from fuzz.judge.oracles import Evidence, InvalidCase, judge
from fuzz.run import machine
from fuzz.run.engine import CaseRun, _guest_refused_itself, _steps
from fuzz.run.runner import LoadResult, SaveResult
from strategies.cases import CaseGroup
from strategies.guests import operations_from_json
from strategies.image import UART_BASE, build_guest

CONFIG = MachineConfig("virt", "cortex-a57")


def _binary(name: str) -> QemuBinary:
    return QemuBinary(name=name, path=Path(f"/nonexistent/qemu-{name}"), origin="test")


class _Destinations:
    """Records which versions were asked to load, with what re-save wish."""

    def __init__(self) -> None:
        self.loads: list[tuple[str, bool]] = []

    async def __call__(self, binary: QemuBinary) -> _Destinations._One:
        return _Destinations._One(self, binary.name)

    class _One:
        def __init__(self, owner: _Destinations, name: str) -> None:
            self.owner, self.name = owner, name

        async def load(self, case: Case, state: object, *, resave: bool = False) -> LoadResult:
            self.owner.loads.append((self.name, resave))
            outcome = StepOutcome(Stage.LOAD, self.name, Verdict.COMPLETED)
            return LoadResult(outcome, b"resave" if resave else None)


def _run_steps(src: str, dst: str, resave: bool = True) -> tuple[Evidence, list[tuple[str, bool]]]:
    destinations = _Destinations()

    async def save() -> SaveResult:
        return SaveResult(StepOutcome(Stage.SAVE, src, Verdict.COMPLETED), b"stream")

    async def main() -> Evidence:
        _saved, (evidence,) = await _steps(
            _binary(src), [_binary(dst)], Case(CONFIG), RunSettings(),
            save=save, destination=destinations, resave=resave,
        )  # fmt: skip
        return evidence

    return asyncio.run(main()), destinations.loads


def test_a_same_version_pair_restores_once_and_is_its_own_control() -> None:
    evidence, loads = _run_steps("11.1", "11.1")
    assert loads == [("11.1", True)]
    assert evidence.pair.load == evidence.control.load
    assert evidence.pair_resave == evidence.control_resave == b"resave"


def test_a_cross_version_pair_restores_on_both_versions_from_one_save() -> None:
    evidence, loads = _run_steps("10.0", "11.1")
    assert loads == [("10.0", True), ("11.1", True)]
    assert evidence.control.dst == "10.0" and evidence.pair.dst == "11.1"


def test_no_resave_is_asked_for_when_the_caller_says_so() -> None:
    _evidence, loads = _run_steps("10.0", "11.1", resave=False)
    assert [wish for _name, wish in loads] == [False, False]


def test_a_group_builds_each_guest_only_when_its_case_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[int] = []

    def counting(operations: list[object], *, smp: int = 1, uart: int = UART_BASE) -> object:
        built.append(len(operations))
        return build_guest(operations, smp=smp, uart=uart)  # type: ignore[arg-type]

    monkeypatch.setattr("strategies.cases.build_guest", counting)
    ops = [
        operations_from_json(
            [{"op": "memory", "offset": hex(8 * i), "count": 1, "value": "0x1", "step": "0x0"}]
        )
        for i in range(3)
    ]
    group = CaseGroup(CONFIG, ops)
    assert len(group) == 3 and built == []
    first = group[0]
    assert len(built) == 1 and first.guest is not None and first.config == CONFIG
    assert group[0] is first and len(built) == 1  # built once
    assert [c.guest for c in group[1:]] == [group[1].guest, group[2].guest]
    assert len(built) == 3
    with pytest.raises(IndexError):
        group[3]


def _invalid(details: dict[str, object]) -> CaseRun:
    saved = StepOutcome(
        Stage.SAVE, "11.1", Verdict.SETUP_ERROR, ("guest did not reach",), details=details
    )
    evidence = Evidence(
        TransferOutcome("11.1", "11.1", saved, None), TransferOutcome("11.1", "11.1", saved, None)
    )
    return CaseRun(Case(CONFIG), evidence, None, judge(evidence), reused=True)


def test_an_invalid_case_is_the_guests_own_doing_only_when_the_guest_said_so() -> None:
    reported = _invalid({"guest_ended": True})
    assert isinstance(reported.judgement, InvalidCase)
    assert _guest_refused_itself(reported)
    assert not _guest_refused_itself(_invalid({"guest_ended": False}))
    assert not _guest_refused_itself(_invalid({}))  # e.g. "save failed": QEMU's, confirm it


def test_qemu_starts_through_setpriv_where_it_has_pdeathsig_else_without_a_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    machine._pdeathsig_wrapper.cache_clear()
    try:
        if shutil.which("setpriv") is not None:
            prefix = machine._pdeathsig_wrapper()
            assert prefix[1:] == ("--pdeathsig", "KILL")  # util-linux 2.38 here
        machine._pdeathsig_wrapper.cache_clear()
        monkeypatch.setattr("fuzz.run.machine.shutil.which", lambda _name: None)
        assert machine._pdeathsig_wrapper() == ()  # the preexec_fn path then
    finally:
        machine._pdeathsig_wrapper.cache_clear()
