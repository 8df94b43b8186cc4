"""A live case whose destination refuses the state is signed as the paused load of the same
case signs it, on real QEMU: one refusal met live and paused is one finding, not two, and
its run is the paused twin's (with the stream a reproducer needs)."""

from __future__ import annotations

import pytest

from fuzz.core.case import Case, MachineConfig
from fuzz.core.live import LiveMigration, Multifd, Postcopy, feature_counts
from fuzz.judge.oracles import Divergence
from fuzz.run.session import Session
from fuzz.versions.probe import probed_settings
from strategies.guests import SetFpReg, SetGpr
from strategies.image import build_guest, build_live_guest

pytestmark = pytest.mark.qemu

CONFIG = MachineConfig("virt-5.2", "cortex-a57")
OPS = [SetGpr(1, 1), SetFpReg(0, 1)]


@pytest.mark.parametrize(
    ("src", "dst", "migration"),
    [
        ("5.2", "7.2", LiveMigration(multifd=Multifd(2))),
        ("10.0", "11.1", LiveMigration(multifd=Multifd(2))),
        # Under postcopy the destination says "loadvm failed during postcopy: ...".
        ("10.0", "11.1", LiveMigration(postcopy=Postcopy(after_ms=0))),
    ],
)
def test_a_refused_live_load_is_signed_as_the_paused_one(  # type: ignore[no-untyped-def]
    farm, src: str, dst: str, migration: LiveMigration
) -> None:
    source, destination = farm.get(src), farm.get(dst)
    settings = probed_settings([source, destination], farm.cache_dir, reuse=False)
    paused = Case(CONFIG, build_guest(OPS))
    live = Case(CONFIG, build_live_guest(OPS), live=migration)
    with Session(settings) as session:
        (paused_run,) = session.run_cases(source, [destination], paused)
        (live_run,) = session.run_cases(source, [destination], live)
        stats = dict(session.cases.stats)
    assert isinstance(paused_run.judgement, Divergence), paused_run.judgement
    assert isinstance(live_run.judgement, Divergence), live_run.judgement
    named = paused_run.past.first_causes if paused_run.past else paused_run.judgement.signatures()
    assert live_run.judgement.signatures() == named
    assert "error loading device 'cpu'" not in str(live_run.judgement.signature)
    # The paused twin's run stands for it: its stream makes the better reproducer.
    assert live_run.case.live is None and live_run.source_stream is not None
    assert live_run.judgement.details["met_live"]
    assert stats["paused_twins"] == 1
    # Not a live feature: the summary's "over unix 175, ..." counts what FEATURE_COUNT_PREFIX
    # starts (it once said "paused 151").
    assert dict(feature_counts(stats)).keys() == set(migration.features())
