"""The transport sweep on real QEMU: a campaign that opens with it runs every headline live
feature on the pair, each one a judged live case, and a clean pair stays clean."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fuzz.campaign.driver import Campaign, worker_spec
from fuzz.core.live import HEADLINE_MIGRATIONS
from fuzz.corpus.entry import entry_folders
from fuzz.events import CaseJudged
from strategies import case_strategy, sweep_plan

pytestmark = pytest.mark.qemu

CLEAN = ("11.1.2", "11.1")  # two point releases of one series: they must agree


def test_a_sweep_runs_every_headline_feature_live_on_a_clean_pair(farm, tmp_path) -> None:
    spec = worker_spec(farm, [CLEAN], case_strategy(live_every=32), tmp_path / "corpus",
                       max_cases=len(HEADLINE_MIGRATIONS), seed=3)  # fmt: skip
    sweep = sweep_plan([CLEAN], spec.caps, fan_out=False)
    assert len(sweep) == len(HEADLINE_MIGRATIONS)  # both 11.1 builds offer all four
    events: list[object] = []
    summary = Campaign(replace(spec, sweep=tuple(sweep)), jobs=1, emit=events.append).run()
    judged = [e for e in events if isinstance(e, CaseJudged)]
    assert [e.kind for e in judged] == ["agree"] * len(HEADLINE_MIGRATIONS), judged
    assert summary.live_per_pair[CLEAN] == {
        "unix": 3, "file": 1, "multifd": 1, "xbzrle": 1, "postcopy": 1, "mapped-ram": 1,
    }  # fmt: skip
    assert all(ran == offered == 1 for _name, ran, offered in summary.live_pairs())
    assert summary.engine["live"] == len(HEADLINE_MIGRATIONS)  # a run per destination
    assert not entry_folders(tmp_path / "corpus")
