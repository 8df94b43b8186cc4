"""State coverage on real QEMU: a short campaign writes ``coverage.json`` into its folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzz.campaign.driver import Campaign, worker_spec
from fuzz.campaign.folder import COVERAGE, CampaignFolder
from fuzz.events import CoverageMeasured
from fuzz.judge.coverage import summary_lines
from fuzz.versions.farm import Farm
from strategies import case_strategy

pytestmark = pytest.mark.qemu


def test_a_campaign_writes_the_coverage_of_its_measured_saves(farm: Farm, tmp_path: Path) -> None:
    root = tmp_path / "campaign"
    spec = worker_spec(farm, [("11.1", "11.1")], case_strategy(), root / "corpus",
                       max_cases=10, seed=5)  # fmt: skip
    events: list[object] = []
    with CampaignFolder.create(root, {"seed": 5}) as folder:
        summary = Campaign(spec, jobs=1, emit=events.append, folder=folder).run()
    measured = [e for e in events if isinstance(e, CoverageMeasured)]
    assert measured, "the first valid case's save is always measured"
    data = json.loads((root / COVERAGE).read_text())
    version = data["versions"]["11.1"]
    assert version["saves"] == len(measured) == summary.coverage.versions["11.1"].saves
    sections = version["sections"]
    # The board's devices are known from the reset save, exercised or not.
    assert {"cpu", "pl011", "pl031", "pl061", "fw_cfg"} <= set(sections)
    # Any guest runs its own preamble (vectors, PC, registers) before its checkpoint.
    cpu = sections["cpu"]["fields"]
    assert cpu["env.pc"] >= 1 and sections["cpu"]["saves"] == len(measured)
    assert all(n == 0 for n in sections["configuration"]["fields"].values())
    assert "ram" not in sections and "globalstate" not in sections  # never counted
    [line] = summary_lines(summary.coverage)
    assert line.startswith("coverage 11.1: ") and "fields exercised (in" in line
    logged = [json.loads(line) for line in (root / "events.jsonl").read_text().splitlines()]
    assert not [e for e in logged if e["type"] == "CoverageMeasured"]  # coverage.json has them
