"""The fuzz loop, corpus, repro and regress on real QEMU with a small, known search space.

The strategy here is deliberately tiny (one pair, cortex-a57, a few optional options) so
the divergence is certain (11.1 refuses 10.0's cortex-a57 stream) and the test fast.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import strategies as st

from fuzz.campaign.driver import Campaign, worker_spec
from fuzz.core.capabilities import Capabilities
from fuzz.core.case import Case, MachineConfig
from fuzz.corpus.entry import entry_folders, load_entry
from fuzz.events import FindingSeen, ReproducerWritten

pytestmark = pytest.mark.qemu


def tiny_cases(src: Capabilities, dst: Capabilities) -> st.SearchStrategy[Case]:
    options = st.lists(
        st.sampled_from([("gic-version", "3"), ("virtualization", "on")]), unique=True, max_size=2
    )
    props = st.lists(st.sampled_from([("pmu", "off")]), unique=True, max_size=1)
    return st.builds(
        lambda mo, cp, n: Case(MachineConfig("virt-10.0", "cortex-a57", tuple(mo), tuple(cp), n)),
        options, props, st.integers(1, 2),
    )  # fmt: skip


@pytest.fixture(scope="module")
def fuzzed_corpus(farm, tmp_path_factory) -> tuple[Path, object]:
    corpus = tmp_path_factory.mktemp("corpus")
    spec = worker_spec(farm, [("10.0", "11.1")], tiny_cases, corpus, max_cases=6, seed=1)
    events: list[object] = []
    summary = Campaign(spec, jobs=1, emit=events.append).run()
    summary.events = events  # type: ignore[attr-defined]
    return corpus, summary


def test_a_recorded_signature_is_counted_not_shrunk_again(fuzzed_corpus) -> None:
    _, summary = fuzzed_corpus
    written = [e for e in summary.events if isinstance(e, ReproducerWritten)]
    announced = [e for e in summary.events if isinstance(e, FindingSeen)]
    assert len(announced) == len(written) == 1, (announced, written)


def test_loop_records_one_entry_per_signature(fuzzed_corpus) -> None:
    corpus, summary = fuzzed_corpus
    [entry_dir] = entry_folders(corpus)
    entry = load_entry(entry_dir)
    assert (
        str(entry.signature) == "refused-on-load: cpreg only in incoming stream: ID_AA64ISAR0_EL1"
    )
    [stats] = summary.findings.values()
    assert stats.count == summary.cases >= 6 and stats.pairs == {("10.0", "11.1")}
    assert stats.path == entry_dir
    for name in ("case.json", "outcome.json", "stream.lz4", "repro.sh"):
        assert (entry_dir / name).is_file()
    assert not [p for p in corpus.iterdir() if p.name.startswith(".")]


def test_reproducer_is_minimal(fuzzed_corpus) -> None:
    corpus, _ = fuzzed_corpus
    [entry_dir] = entry_folders(corpus)
    cfg = load_entry(entry_dir).case.config
    assert cfg.machine_options == () and cfg.cpu_properties == () and cfg.smp == 1


def test_repro_sh_reproduces_by_hand(fuzzed_corpus) -> None:
    corpus, _ = fuzzed_corpus
    [entry_dir] = entry_folders(corpus)
    for args in ([], ["--resave"]):
        r = subprocess.run(
            ["sh", str(entry_dir / "repro.sh"), *args], capture_output=True, text=True, timeout=60
        )
        text = r.stdout + r.stderr
        assert "control: loaded" in text, text
        assert "0x1013c030 in the incoming stream but unknown on the destination" in text, text
        assert "pair: loaded" not in text


def _migfuzz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fuzz", *args], capture_output=True, text=True, timeout=300
    )


def test_repro_says_same_divergence(fuzzed_corpus) -> None:
    corpus, _ = fuzzed_corpus
    [entry_dir] = entry_folders(corpus)
    r = _migfuzz("repro", str(entry_dir))
    assert "verdict:  same divergence" in r.stdout, r.stdout + r.stderr
    assert r.returncode == 1


def test_repro_on_another_destination_says_fixed(fuzzed_corpus, farm) -> None:
    corpus, _ = fuzzed_corpus
    [entry_dir] = entry_folders(corpus)
    ten = farm.get("10.0").path  # a "patched" 11.1: here, 10.0 itself, which loads the stream
    wrapper = corpus.parent / "patched-qemu"
    wrapper.write_text("#!/bin/sh\nexec " + " ".join(farm.get("10.0").command()) + ' "$@"\n')
    wrapper.chmod(0o755)
    assert ten.exists()
    r = _migfuzz("repro", str(entry_dir), "--dst", f"11.1={wrapper}")
    assert "verdict:  fixed" in r.stdout, r.stdout + r.stderr
    assert r.returncode == 0


def test_regress_passes_then_fails_naming_an_edited_entry(fuzzed_corpus, tmp_path) -> None:
    corpus, _ = fuzzed_corpus
    r = _migfuzz("regress", str(corpus))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS" in r.stdout and "1 passed, 0 failed" in r.stdout
    # Edit the recorded outcome of a copy: regress must fail and name the entry.
    import shutil

    copy = tmp_path / "corpus"
    shutil.copytree(corpus, copy)
    [entry_dir] = entry_folders(copy)
    for name in ("outcome.json",):
        data = json.loads((entry_dir / name).read_text())
        data["signature"]["detail"] = "cpreg only in incoming stream: SCTLR_EL1"
        (entry_dir / name).write_text(json.dumps(data))
    r = _migfuzz("regress", str(copy))
    assert r.returncode == 1
    assert f"CHANGED  {entry_dir.name}: different divergence" in r.stdout
    # A corrupt entry is one clear line and does not stop the others.
    (entry_dir / "case.json").write_text("{not json")
    r = _migfuzz("regress", str(copy))
    assert r.returncode == 1 and "ERROR" in r.stdout and "case.json: not valid JSON" in r.stdout
    assert "Traceback" not in r.stderr
