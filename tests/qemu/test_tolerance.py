"""The tolerance oracle on real QEMU: a version loading its own stream with one cpreg left
out must come back as from the whole stream (QEMU's ``cpu_post_load`` promise); under TCG it
does not (the register comes back as heap bytes, or the load is refused where they do not
read back): ``docs/qemu-bugs.md``."""

from __future__ import annotations

import pytest

from fuzz.core.capabilities import settings_for
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import Verdict
from fuzz.judge.oracles import Agree
from fuzz.run.session import Session
from fuzz.versions.probe import capabilities

pytestmark = pytest.mark.qemu


def test_a_stream_missing_a_cpreg_breaks_the_promise_on_11_1(binaries, farm) -> None:
    binary = binaries["11.1"]
    settings = settings_for({"11.1": capabilities(binary, farm.cache_dir)}, tolerance=True)
    seen = []
    with Session(settings) as session:
        for cpu in ("cortex-a57", "cortex-a72"):
            run = session.run_case(binary, binary, Case(MachineConfig("virt-5.2", cpu)))
            check = run.tolerance
            assert check is not None and run.control.verdict is Verdict.COMPLETED
            # The register left out held its reset value: a kept promise would agree.
            assert check.dropped.src_value is not None
            seen += [str(c) for c in check.causes]
            assert set(run.causes) >= set(check.causes)
    assert seen, "every left-out register came back at its reset value"
    assert all(s.startswith("tolerance: ") for s in seen)


def test_without_the_edit_the_same_cases_agree(binaries, farm) -> None:
    """The oracle's own control: the unedited stream comes back clean on the same cases."""
    binary = binaries["11.1"]
    settings = settings_for({"11.1": capabilities(binary, farm.cache_dir)})
    with Session(settings) as session:
        for cpu in ("cortex-a57", "cortex-a72"):
            run = session.run_case(binary, binary, Case(MachineConfig("virt-5.2", cpu)))
            assert isinstance(run.judgement, Agree), run.judgement
            assert run.tolerance is None
