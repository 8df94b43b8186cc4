"""Stateful sequences: sequence.json round trip, step checks, repro.sh generation."""

from __future__ import annotations

import subprocess

import pytest

from fuzz.core.case import MachineConfig
from fuzz.core.outcome import LoadOutcome
from fuzz.errors import CorpusError
from fuzz.judge.loads import compare_loads
from fuzz.judge.oracles import Signature
from fuzz.run.long_lived import hmp_error
from fuzz.stateful.engine import FALLBACK_GUESTS
from fuzz.stateful.model import Action, StatefulSequence, Step
from fuzz.stateful.repro import repro_script
from strategies.cases import rebuild_guest

OPS = ({"op": "memory", "offset": "0x10", "count": 2, "value": "0x1111", "step": "0x1"},)
STEPS = (
    Step(Action.START, 0, version="11.1", guest=0),
    Step(Action.RUN, 0),
    Step(Action.SAVE, 0, snapshot=0),
    Step(Action.START, 1, version="11.1", guest=None),
    Step(Action.LOAD, 1, snapshot=0, read_back=True),
    Step(Action.RESET, 1),
    Step(Action.LOAD, 1, snapshot=0),
    Step(Action.READ_BACK, 1),
)


def _sequence(steps: tuple[Step, ...] = STEPS) -> StatefulSequence:
    return StatefulSequence(
        signature=Signature("history", "read-back after the load"),
        config=MachineConfig("virt-11.1", "cortex-a57"),
        guests=(OPS,),
        steps=steps,
        failing_step=len(steps) - 1,
        expected="a",
        actual="b",
        versions={"11.1": {"sha256": "x", "version_line": "QEMU 11.1"}},
    )


def test_sequence_json_round_trips() -> None:
    sequence = _sequence()
    assert StatefulSequence.loads(sequence.dumps()) == sequence


@pytest.mark.parametrize(
    "steps",
    [
        (Step(Action.RUN, 0),),
        (Step(Action.START, 0, version="11.1"), Step(Action.LOAD, 0, snapshot=3)),
        (Step(Action.START, 0, version="11.1"), Step(Action.START, 0, version="11.1")),
        (Step(Action.START, 0, version="11.1", guest=4),),
    ],
    ids=["unstarted", "unsaved", "twice", "no-such-guest"],
)
def test_steps_that_do_not_fit_are_refused(steps: tuple[Step, ...]) -> None:
    with pytest.raises(CorpusError):
        _sequence(steps)


def test_a_corrupt_sequence_json_is_a_corpus_error() -> None:
    with pytest.raises(CorpusError):
        StatefulSequence.loads("{")
    data = _sequence().to_json()
    data["format"] = 99
    with pytest.raises(CorpusError):
        StatefulSequence.from_json(data)


def test_hmp_answers() -> None:
    assert hmp_error("drive_add 0 if=none,id=x,file=f", "OK\r\n") is None
    assert hmp_error("drive_add 0 if=none,id=x,file=f", "Could not open") is not None
    assert hmp_error("loadvm s0", "") is None
    assert hmp_error("loadvm s0", "warning: something\r\n") is None
    assert hmp_error("loadvm s0", "Error: Device has no snapshot") is not None


def test_loads_compare_outcome_then_read_back() -> None:
    done = "x=0x1\n@@MIGFUZZ-DONE@@\n"
    same = LoadOutcome("completed", "", done)
    assert compare_loads(same, LoadOutcome("completed", "", done)) is None
    found = compare_loads(same, LoadOutcome("crashed", "exit -11"))
    assert found is not None and found[0].detail.startswith("load outcome")
    found = compare_loads(same, LoadOutcome("completed", "", "garbage"))
    assert found is not None and found[0].detail == "read-back after the load"


def test_repro_script_replays_every_step_and_is_valid_sh() -> None:
    guest = rebuild_guest(OPS, 1)
    script = repro_script(_sequence(), {0: guest})
    assert script.startswith("#!/bin/sh\n")
    for needle in (
        'start p0 "$QEMU_11_1" -device loader,file=$HERE/guests/g0.bin',
        "savevm s0",
        "loadvm s0",
        "hmp p1 system_reset",
        'read_back p1 "$WORK/read7"',
        # the load at step 6 is compared with the read-back step after it
        'compare "read-back after step 6" "$WORK/fread6" "$WORK/read7"',
        'compare "read-back after step 4" "$WORK/fread4" "$WORK/read4"',
        "MACHINE=${MACHINE:-virt-11.1}",
        # the FIFO readers are killed on exit too (one whose QEMU never started blocks)
        'echo $! > "$WORK/$n.mon.pid"',
    ):
        assert needle in script, needle
    assert "drop_stale" not in script
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)


def test_the_fallback_guests_differ_in_code() -> None:
    """They fill a run's pool when drawn guests are empty or alike: a history needs two."""
    images = {rebuild_guest(ops, 1).image for ops in FALLBACK_GUESTS}
    assert len(images) == len(FALLBACK_GUESTS) == 2
