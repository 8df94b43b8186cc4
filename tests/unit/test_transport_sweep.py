"""The transport sweep's plan, its share per worker, and what a campaign's summary says of
live cases per pair: pure logic on the recorded probes of every installed version."""

from __future__ import annotations

import itertools
from dataclasses import astuple, replace
from pathlib import Path

from fuzz.campaign.driver import Summary, sweep_share
from fuzz.campaign.sessions import FuzzOptions
from fuzz.core.live import HEADLINE_MIGRATIONS, headline_offers, unsupported
from fuzz.events import CaseJudged
from strategies.sweep import SWEEP_GUEST_KINDS, sweep_plan
from tests.migration_probes import PROBES

PAIRS = [(a, b) for a, b in itertools.product(PROBES, repeat=2) if a != b]


def test_the_headline_migrations_each_set_their_own_feature_alone() -> None:
    for name, live in HEADLINE_MIGRATIONS.items():
        features = live.features()
        assert name in features
        assert set(features) <= {name, live.transport}


def test_who_offers_what_follows_the_probes() -> None:
    offers = headline_offers(PAIRS, PROBES)
    # 5.2 and 7.2 have no mapped-ram (9.0): no pair with either offers it; all offer the rest.
    assert all("5.2" not in p and "7.2" not in p for p in offers["mapped-ram"])
    assert ("10.0", "11.1") in offers["mapped-ram"]
    for name in ("multifd", "xbzrle", "postcopy"):
        assert offers[name] == PAIRS


def test_with_a_fan_out_the_plan_has_one_case_per_source_and_feature_it_offers() -> None:
    plan = sweep_plan(PAIRS, PROBES)
    swept = [(pair[0], _feature(group.live)) for pair, group in plan]
    assert len(swept) == len(set(swept))
    offers = headline_offers(PAIRS, PROBES)
    offered = {(a, name) for name, pairs in offers.items() for a, _b in pairs}
    assert set(swept) == offered
    for (src, dst), group in plan:
        assert group.live is not None and not unsupported(group.live, (PROBES[src], PROBES[dst]))


def test_without_a_fan_out_every_pair_gets_every_feature_it_offers() -> None:
    plan = sweep_plan(PAIRS, PROBES, fan_out=False)
    swept = {(pair, _feature(group.live)) for pair, group in plan}
    offers = headline_offers(PAIRS, PROBES)
    assert swept == {(pair, name) for name, pairs in offers.items() for pair in pairs}
    assert len(plan) == sum(len(pairs) for pairs in offers.values())


def test_the_sweep_guest_sets_state_of_several_kinds_and_builds() -> None:
    (_pair, group), *_ = sweep_plan([("11.1", "11.1.2")], PROBES)
    (ops,) = group.operations
    assert len({type(op) for op in ops}) >= SWEEP_GUEST_KINDS
    for op in ops:  # every number an operation sets is other than reset's 0
        numbers = [v for v in astuple(op) if isinstance(v, int) and not isinstance(v, bool)]
        assert not numbers or any(numbers), op
    case = group[0]
    assert case.live == group.live and case.guest is not None and case.guest.image


def test_a_pair_that_shares_no_feature_gets_no_sweep() -> None:
    # A probe without migration facts (format 2) offers nothing but the plain migration.
    bare = {**PROBES, "old": replace(PROBES["5.2"], migration=None)}
    assert sweep_plan([("old", "11.1"), ("11.1", "old")], bare) == []


def test_the_sweep_is_dealt_to_the_first_slots_and_not_to_replacements() -> None:
    plan = list(range(7))
    shares = [sweep_share(plan, slot, 3) for slot in range(3)]
    assert sorted(x for share in shares for x in share) == plan
    assert sweep_share(plan, 3, 3) == ()


def test_the_summary_counts_live_cases_per_pair_against_the_pairs_that_offer_them() -> None:
    pairs = [("10.0", "11.1"), ("5.2", "11.1")]
    summary = Summary(live_offered=headline_offers(pairs, PROBES))
    summary.add(CaseJudged(pairs[0], "agree", None, "", 1.0, live=("file", "mapped-ram")))
    summary.add(CaseJudged(pairs[0], "agree", None, "", 1.0, live=("unix", "multifd")))
    summary.add(CaseJudged(pairs[1], "agree", None, "", 1.0, live=("unix", "multifd")))
    summary.add(CaseJudged(pairs[1], "agree", None, "", 1.0))  # paused: not live
    assert summary.live_per_pair[pairs[0]] == {"file": 1, "mapped-ram": 1, "unix": 1, "multifd": 1}
    reach = {name: (ran, offered) for name, ran, offered in summary.live_pairs()}
    assert reach["multifd"] == (2, 2)
    assert reach["mapped-ram"] == (1, 1)  # 5.2 offers none
    assert reach["postcopy"] == (0, 2)


def _feature(live: object) -> str:
    (name,) = [n for n, m in HEADLINE_MIGRATIONS.items() if m == live]
    return name


def test_the_campaign_record_keeps_whether_it_sweeps(tmp_path: Path) -> None:
    options = FuzzOptions((("10.0", "11.1"),), 3, 60.0, None, True, False, True, (), sweep=False)
    record = options.to_json()
    assert record["sweep"] is False
    assert FuzzOptions.from_json(record, tmp_path) == options
    older = {k: v for k, v in record.items() if k != "sweep"}
    assert FuzzOptions.from_json(older, tmp_path).sweep is False  # it ran without
