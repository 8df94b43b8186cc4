"""One save, many destinations: the fan-out's steps, its destinations and its group rule.

A case's save is restored on the control and then on every destination in order (a
same-version destination is the control); a drawn pair's case goes to every other
destination of its source that starts the configuration; a destination that refuses a
configuration is skipped for the rest of its group, while the others go on; each pair's run
is counted as a case of its own. QEMU is faked here: these are the loop's and the engine's
own rules (tests/qemu/test_fan_out.py runs the real thing). A campaign record keeps whether
it fanned out, so a resume does as the campaign did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fuzz.campaign.loop import BudgetExhausted, FuzzLoop
from fuzz.campaign.sessions import FuzzOptions
from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, GuestProgram, MachineConfig
from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.core.settings import RunSettings
from fuzz.corpus.store import CorpusStore
from fuzz.events import CaseJudged
from fuzz.judge.oracles import Agree, Divergence, Evidence, Signature, judge
from fuzz.run.engine import CaseRun, _steps
from fuzz.run.runner import LoadResult, SaveResult

CONFIG = MachineConfig("virt-10.0", "cortex-a57")


def _guests(n: int) -> list[Case]:
    """A group of ``n`` distinct cases on CONFIG (the loop skips a case it already ran)."""
    return [Case(CONFIG, GuestProgram(image=bytes([i]))) for i in range(n)]


REFUSAL = "Failed to load cpu:cpreg_vmstate_array_len"


def _binary(name: str) -> QemuBinary:
    return QemuBinary(name=name, path=Path(f"/nonexistent/qemu-{name}"), origin="test")


class _Loads:
    """A fake destination factory: records each load; ``refuse`` names versions that refuse."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.refuse = refuse
        self.loads: list[str] = []

    async def __call__(self, binary: QemuBinary) -> _Loads:
        self.current = binary.name
        return self

    async def load(self, case: Case, state: object, *, resave: bool = False) -> LoadResult:
        name = self.current
        self.loads.append(name)
        if name in self.refuse:
            return LoadResult(StepOutcome(Stage.LOAD, name, Verdict.REFUSED, (REFUSAL,)))
        return LoadResult(StepOutcome(Stage.LOAD, name, Verdict.COMPLETED), name.encode())


def _fan(src: str, dsts: Sequence[str], refuse: frozenset[str] = frozenset()) -> tuple[
    list[Evidence], list[str], int
]:  # fmt: skip
    loads = _Loads(refuse)
    saves = 0

    async def save() -> SaveResult:
        nonlocal saves
        saves += 1
        return SaveResult(StepOutcome(Stage.SAVE, src, Verdict.COMPLETED), b"stream")

    async def main() -> list[Evidence]:
        _saved, evidence = await _steps(
            _binary(src), [_binary(d) for d in dsts], Case(CONFIG), RunSettings(),
            save=save, destination=loads, resave=True,
        )  # fmt: skip
        return evidence

    return asyncio.run(main()), loads.loads, saves


def test_one_save_and_one_control_serve_every_destination_in_order() -> None:
    evidence, loads, saves = _fan("10.0", ["11.1", "10.0", "10.0.2"])
    assert saves == 1
    assert loads == ["10.0", "11.1", "10.0.2"]  # the control once, then each other version
    assert [e.pair.dst for e in evidence] == ["11.1", "10.0", "10.0.2"]
    assert all(e.control == evidence[0].control for e in evidence)
    assert [e.pair_resave for e in evidence] == [b"11.1", b"10.0", b"10.0.2"]
    assert evidence[1].pair.load == evidence[1].control.load  # A -> A is the control


def test_a_refusing_destination_does_not_change_the_others_judgement() -> None:
    evidence, _loads, _saves = _fan("10.0", ["11.1", "10.0.2"], refuse=frozenset({"11.1"}))
    refused, loaded = (judge(e) for e in evidence)
    assert isinstance(refused, Divergence) and refused.signature.kind == "refused-on-load"
    assert isinstance(loaded, Agree)


def test_no_destination_loads_when_the_control_was_refused() -> None:
    evidence, loads, _saves = _fan("10.0", ["11.1", "10.0.2"], refuse=frozenset({"10.0"}))
    assert loads == ["10.0"]
    assert all(e.pair.load is not None and e.pair.load.verdict is Verdict.NOT_RUN for e in evidence)


# -- the loop ------------------------------------------------------------------------------


class _Caps:
    def __init__(self, name: str) -> None:
        self.name = name


def _case_run(src: str, dst: str, case: Case, refuse: bool, reads: str = "0x1") -> CaseRun:
    saved = StepOutcome(Stage.SAVE, src, Verdict.COMPLETED)
    control = StepOutcome(Stage.LOAD, src, Verdict.COMPLETED, details={"transcript": "x0=0x1"})
    verdict = Verdict.REFUSED if refuse else Verdict.COMPLETED
    pair = StepOutcome(
        Stage.LOAD,
        dst,
        verdict,
        (REFUSAL,) if refuse else (),
        details={"transcript": f"x0={reads}"},
    )
    evidence = Evidence(
        TransferOutcome(src, src, saved, control), TransferOutcome(src, dst, saved, pair)
    )
    return CaseRun(case, evidence, b"stream", judge(evidence))


class _Session:
    """Runs nothing: ``refuse`` names the destinations that refuse every case; ``misread``
    those whose guests read back x0 wrong, from the case at index ``misread_from`` on."""

    def __init__(
        self, refuse: frozenset[str], misread: frozenset[str] = frozenset(), misread_from: int = 0
    ) -> None:
        self.refuse = refuse
        self.misread = misread
        self.misread_from = misread_from
        self.calls: list[list[str]] = []

    def run_cases(
        self, src: QemuBinary, dsts: Sequence[QemuBinary], case: Case, *, more_alike: bool
    ) -> list[CaseRun]:
        wrong = len(self.calls) >= self.misread_from
        self.calls.append([d.name for d in dsts])
        return [
            _case_run(
                src.name, d.name, case, d.name in self.refuse,
                "0x2" if wrong and d.name in self.misread else "0x1",
            )
            for d in dsts
        ]  # fmt: skip


def _loop(
    tmp_path: Path, pairs: list[tuple[str, str]], *, accepts: frozenset[str] | None,
    refuse: frozenset[str] = frozenset(), session: _Session | None = None,
) -> tuple[FuzzLoop, _Session, list[Any]]:  # fmt: skip
    names = {n for p in pairs for n in p}
    session = session or _Session(refuse)
    events: list[Any] = []
    known = frozenset(
        sig
        for run in (
            _case_run("a", "b", Case(CONFIG), True),
            _case_run("a", "b", Case(CONFIG), False, "0x2"),
        )
        for sig in run.causes
    )  # every divergence here is known: counted, never shrunk
    loop = FuzzLoop(
        session, {n: _binary(n) for n in names}, {n: _Caps(n) for n in names},  # type: ignore[arg-type]
        pairs, lambda _s, _d: None,  # type: ignore[arg-type,return-value]
        store=CorpusStore(tmp_path, known_elsewhere=known), max_cases=100, emit=events.append,
        fan_out=None if accepts is None else (lambda caps, _config: caps.name in accepts),  # type: ignore[attr-defined]
    )  # fmt: skip
    return loop, session, events


def test_without_a_fan_out_a_case_goes_to_its_drawn_pair_only(tmp_path: Path) -> None:
    loop, _session, _events = _loop(tmp_path, [("a", "b"), ("a", "c")], accepts=None)
    assert loop.destinations(("a", "c"), CONFIG) == ["c"]


def test_the_fan_out_adds_the_sources_other_destinations_that_start_the_config(
    tmp_path: Path,
) -> None:
    pairs = [("a", "b"), ("c", "b"), ("a", "c"), ("a", "d"), ("a", "e")]
    loop, _session, _events = _loop(tmp_path, pairs, accepts=frozenset({"b", "c", "e"}))
    assert loop.destinations(("a", "d"), CONFIG) == ["d", "b", "c", "e"]  # drawn pair first
    assert loop.destinations(("c", "b"), CONFIG) == ["b"]  # c's only destination


def test_while_shrinking_only_the_pairs_being_shrunk_are_run(tmp_path: Path) -> None:
    pairs = [("a", "b"), ("a", "c"), ("a", "d")]
    loop, _session, _events = _loop(tmp_path, pairs, accepts=frozenset({"b", "c", "d"}))
    loop._shrinking = True
    loop._minimal = {Signature("refused-on-load", "x"): (("a", "c"), Case(CONFIG))}
    assert loop.destinations(("a", "b"), CONFIG) == ["c"]


def test_a_refusing_destination_leaves_the_group_and_each_pair_counts_as_a_case(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = [("a", "b"), ("a", "c")]
    loop, session, events = _loop(
        tmp_path, pairs, accepts=frozenset({"b", "c"}), refuse=frozenset({"b"})
    )
    monkeypatch.setattr("fuzz.campaign.loop.observe", lambda _run: None)  # Hypothesis's, in a test
    loop._body((("a", "b"), _guests(3)))
    assert session.calls == [["b", "c"], ["c"], ["c"]]
    judged = [(e.pair, e.kind) for e in events if isinstance(e, CaseJudged)]
    assert judged == [
        (("a", "b"), "divergence"), (("a", "c"), "agree"), (("a", "c"), "agree"),
        (("a", "c"), "agree"),
    ]  # fmt: skip
    assert loop.cases == 4


def test_a_group_ends_once_every_destination_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = [("a", "b"), ("a", "c")]
    loop, session, _events = _loop(
        tmp_path, pairs, accepts=frozenset({"b", "c"}), refuse=frozenset({"b", "c"})
    )
    monkeypatch.setattr("fuzz.campaign.loop.observe", lambda _run: None)
    loop._body((("a", "c"), _guests(3)))
    assert session.calls == [["c", "b"]]
    assert loop.cases == 2


def test_a_destination_leaves_the_group_after_the_same_divergence_twice_in_a_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # b reads back wrong from the second guest on: it shows that divergence on guests 2 and
    # 3, then leaves; c, which agrees, runs every guest.
    session = _Session(frozenset(), misread=frozenset({"b"}), misread_from=1)
    loop, session, events = _loop(
        tmp_path, [("a", "b"), ("a", "c")], accepts=frozenset({"b", "c"}), session=session
    )
    monkeypatch.setattr("fuzz.campaign.loop.observe", lambda _run: None)
    loop._body((("a", "b"), _guests(5)))
    assert session.calls == [["b", "c"], ["b", "c"], ["b", "c"], ["c"], ["c"]]
    kinds = [(e.pair[1], e.kind) for e in events if isinstance(e, CaseJudged)]
    assert kinds.count(("b", "divergence")) == 2 and kinds.count(("c", "agree")) == 5


def test_a_case_count_is_never_overshot_by_the_fan_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pairs = [("a", "b"), ("a", "c"), ("a", "d")]
    loop, session, _events = _loop(tmp_path, pairs, accepts=frozenset({"b", "c", "d"}))
    loop.max_cases = 5
    monkeypatch.setattr("fuzz.campaign.loop.observe", lambda _run: None)
    with pytest.raises(BudgetExhausted):
        loop._body((("a", "c"), _guests(3)))
    assert session.calls == [["c", "b", "d"], ["c", "b"]]  # the drawn pair always first
    assert loop.cases == 5


def test_a_case_drawn_again_is_skipped_uncounted_but_shrinking_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop, session, events = _loop(tmp_path, [("a", "b")], accepts=frozenset({"b"}))
    monkeypatch.setattr("fuzz.campaign.loop.observe", lambda _run: None)
    first, second, third = _guests(3)
    loop._body((("a", "b"), [first, first, second]))
    loop._body((("a", "b"), [second, third, first]))
    assert len(session.calls) == 3 and loop.cases == 3
    assert len([e for e in events if isinstance(e, CaseJudged)]) == 3
    # A shrink step runs what Hypothesis asks, seen or not (on the shrunk pair only).
    loop._shrinking = True
    monkeypatch.setattr(loop, "destinations", lambda _pair, _config, _live=None: ["b"])
    loop._body((("a", "b"), [first]))
    assert len(session.calls) == 4


def test_a_campaign_record_keeps_the_fan_out_and_an_older_one_resumes_without(
    tmp_path: Path,
) -> None:
    options = FuzzOptions(
        (("10.0", "11.1"), ("10.0", "7.2")), 3, 60.0, None, True, False, True, (), fan_out=False
    )
    record = options.to_json()
    assert FuzzOptions.from_json(record, tmp_path) == options
    assert FuzzOptions.from_json({**record, "fan_out": True}, tmp_path).fan_out
    older = {k: v for k, v in record.items() if k != "fan_out"}
    assert FuzzOptions.from_json(older, tmp_path).fan_out is False  # it ran without


def test_a_stop_while_a_second_cause_is_taken_leaves_no_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One save, two destinations, two new causes: b refuses, c reads back wrong. Ctrl-C
    # lands while the second is checked for reliability; the first was claimed already.
    session = _Session(frozenset({"b"}), misread=frozenset({"c"}))
    loop, session, _events = _loop(
        tmp_path, [("a", "b"), ("a", "c")], accepts=frozenset({"b", "c"}), session=session
    )
    loop.store = CorpusStore(tmp_path)  # nothing known: both causes are new
    monkeypatch.setattr("fuzz.campaign.loop.observe", lambda _run: None)
    checked: list[Any] = []

    def reliability(pair: Any, case: Case, sig: Any) -> tuple[int, int]:
        checked.append(sig)
        if len(checked) == 2:
            raise BudgetExhausted  # what the driver's stop does mid-check
        return 3, 3

    written: list[Any] = []

    def write(pair: Any, run: Any, sig: Any, findings: Any, *, flaky: bool = False) -> Path:
        written.append(sig)  # the first case of a new cause (the fake binaries have no hash)
        return tmp_path / f"entry-{len(written)}"

    stopping = False
    monkeypatch.setattr(loop, "_write", write)
    monkeypatch.setattr(loop, "reliability", reliability)
    monkeypatch.setattr(loop, "should_stop", lambda: stopping)
    with pytest.raises(BudgetExhausted):
        loop._body((("a", "b"), _guests(1)))
    stopping = True
    loop._record_minimal()  # what the Hypothesis run's ``finally`` does
    assert len(checked) == 2 and written == checked[:1]  # the first cause's case stays
    assert not (tmp_path / ".claims").exists()


def test_the_fan_out_leaves_out_destinations_without_a_live_cases_settings_or_devices(
    tmp_path: Path,
) -> None:
    """A live case drawn for a -> b (both with zstd) is not fanned out to c, whose build
    has no zstd (10.2.2 built here without it: refused, a false finding); a configuration
    with nvme is not fanned out to a release that blocks its migration."""
    import dataclasses

    from fuzz.core.capabilities import MigrationFacts
    from fuzz.core.devices import Device
    from fuzz.core.live import LiveMigration, Multifd
    from strategies.configs import accepted_by
    from tests.unit.test_configs import NEW

    def caps(version: str, compressions: tuple[str, ...]) -> object:
        facts = MigrationFacts(
            ("events", "multifd"), {"multifd-channels": 2, "multifd-compression": "none"},
            multifd_compressions=compressions,
        )  # fmt: skip
        types = ("nvme", "virtio-rng-pci")
        return dataclasses.replace(NEW, version=version, migration=facts, device_types=types)

    pairs = [("a", "b"), ("a", "c")]
    loop, _session, _events = _loop(tmp_path, pairs, accepts=None)
    loop.fan_out = accepted_by
    loop.caps = {  # type: ignore[assignment]
        "a": caps("11.1.3", ("none", "zstd")), "b": caps("11.1.2", ("none", "zstd")),
        "c": caps("10.2.2", ("none", "zlib")),
    }  # fmt: skip
    config = dataclasses.replace(CONFIG, machine=NEW.default_virt)
    zstd = LiveMigration(multifd=Multifd(2, "zstd"))
    assert loop.destinations(("a", "b"), config, zstd) == ["b"]
    assert loop.destinations(("a", "b"), config, LiveMigration()) == ["b", "c"]
    nvme = dataclasses.replace(config, devices=(Device("nvme", (("addr", "0x1"),)),))
    assert loop.destinations(("a", "b"), nvme) == ["b"]
    rng = dataclasses.replace(config, devices=(Device("virtio-rng-pci", (("addr", "0x1"),)),))
    assert loop.destinations(("a", "b"), rng) == ["b", "c"]
