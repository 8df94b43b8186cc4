"""Cases and outcomes are plain values that round-trip through JSON exactly."""

from __future__ import annotations

import json
import signal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz.core import command as qemu_command
from fuzz.core.case import MachineConfig
from fuzz.core.outcome import (
    SIGNAL_NAMES,
    Stage,
    StepOutcome,
    TransferOutcome,
    Verdict,
    qemu_error_lines,
)
from fuzz.errors import CorpusError

names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
pairs = st.lists(st.tuples(names, names), max_size=4).map(tuple)
configs = st.builds(
    MachineConfig,
    machine=names,
    cpu=names,
    machine_options=pairs,
    cpu_properties=pairs,
    smp=st.integers(1, 8),
    memory_mib=st.integers(16, 4096),
)
steps = st.builds(
    StepOutcome,
    stage=st.sampled_from(Stage),
    version=names,
    verdict=st.sampled_from(Verdict),
    messages=st.lists(st.text(max_size=30), max_size=3).map(tuple),
    returncode=st.none() | st.integers(-64, 255),
    seconds=st.floats(0, 100).map(lambda x: round(x, 4)),
)


@given(configs)
def test_config_json_round_trip(config: MachineConfig) -> None:
    assert MachineConfig.from_json(json.loads(json.dumps(config.to_json()))) == config


@given(st.builds(TransferOutcome, src=names, dst=names, save=steps, load=st.none() | steps))
def test_transfer_json_round_trip(outcome: TransferOutcome) -> None:
    assert TransferOutcome.from_json(json.loads(json.dumps(outcome.to_json()))) == outcome


def test_qemu_args_keep_option_order() -> None:
    config = MachineConfig(
        "virt-7.2",
        "max",
        machine_options=(("gic-version", "3"), ("its", "off")),
        cpu_properties=(("sve", "off"), ("pauth", "on")),
        smp=2,
    )
    args = qemu_command.base(config).argv()
    assert args[args.index("-machine") + 1] == "virt-7.2,gic-version=3,its=off"
    assert args[args.index("-cpu") + 1] == "max,sve=off,pauth=on"
    assert args[args.index("-smp") + 1] == "2"


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"cpu": "x"},
        {"machine": "v", "cpu": "c", "smp": "many"},
        {"machine": "v", "cpu": "c", "cpu_properties": [["a"]]},
    ],
)
def test_corrupt_config_is_a_corpus_error(bad: object) -> None:
    with pytest.raises(CorpusError):
        MachineConfig.from_json(bad)


def test_verdict_is_decided_by_the_first_failing_step() -> None:
    ok = StepOutcome(Stage.SAVE, "a", Verdict.COMPLETED)
    bad = StepOutcome(Stage.LOAD, "b", Verdict.REFUSED, ("warning: x", "error while loading"))
    t = TransferOutcome("a", "b", ok, bad)
    assert t.verdict is Verdict.REFUSED and t.failing_step is bad
    assert t.summary() == "a -> b: refused: error while loading"
    assert (
        TransferOutcome("a", "b", StepOutcome(Stage.SAVE, "a", Verdict.CRASHED), None).verdict
        is Verdict.CRASHED
    )


def test_error_lines_lose_the_binary_path_prefix() -> None:
    text = (
        "/x/y/usr/bin/qemu-system-aarch64: load of migration failed\n"
        "\nqemu-system-aarch64: second\n"
    )
    assert qemu_error_lines(text) == ("load of migration failed", "second")


def test_signature_names_every_register_only_in_the_incoming_stream_sorted() -> None:
    from fuzz.judge.oracles import step_signature

    line = "handle_cpreg_only_in_incoming_stream: system register {} in the incoming stream"
    messages = (
        "warning: handle_cpreg_missing_in_incoming_stream: system register 0x1013f602",
        line.format("0x1013c030"),
        line.format("0x200f3a00"),
        "load of migration failed: Invalid argument: error while loading state",
    )
    step = StepOutcome(Stage.LOAD, "11.1", Verdict.REFUSED, messages)
    reversed_step = StepOutcome(Stage.LOAD, "11.1", Verdict.REFUSED, messages[::-1])
    from fuzz.judge.oracles import step_causes

    sig = step_signature(step)
    assert [str(c) for c in step_causes(step)] == [
        "refused-on-load: cpreg only in incoming stream: ID_AA64ISAR0_EL1",
        "refused-on-load: cpreg only in incoming stream: P15_0_*",
    ]
    assert sig == step_causes(step)[0]
    assert step_causes(reversed_step) == step_causes(step)


def test_signal_names_are_the_platforms() -> None:
    assert {int(s): s.name for s in signal.Signals} == SIGNAL_NAMES


@pytest.mark.parametrize(("returncode", "named"), [(-6, "(SIGABRT)"), (-11, "(SIGSEGV)"),
                                                  (-40, "(signal 40)")])  # fmt: skip
def test_a_summary_names_the_signal_qemu_died_by(returncode: int, named: str) -> None:
    step = StepOutcome(Stage.LOAD, "11.1", Verdict.CRASHED, returncode=returncode)
    assert step.summary() == f"load on 11.1: crashed {named}"
