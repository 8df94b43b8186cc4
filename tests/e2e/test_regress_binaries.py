"""``migfuzz regress`` on another build of a recorded version (issue 14 items 2 and 3).

One committed entry is copied to a temporary corpus and its recorded signature edited, so
every replay now differs from what it recorded. With the destination's recorded SHA-256
also edited (as if Debian had rebuilt 11.1 since), the change is *changed with the
binary*: reported, exit 0, unless ``--strict``. With the true SHA-256 it is a regression.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.versions.farm import Farm

pytestmark = pytest.mark.qemu

ROOT = Path(__file__).parents[2]
ENTRY = ROOT / "corpus" / "refused-on-load-cpreg-only-in-incoming-stream-p15-6-880406ec"
FAKE_SHA256 = "0123456789ab" + "f" * 52
EDITED = {"kind": "refused-on-load", "detail": "cpreg only in incoming stream: SCTLR_EL1"}


def migfuzz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fuzz", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _edit_json(path: Path, edit: dict[str, object]) -> None:
    data = json.loads(path.read_text())
    for key, value in edit.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    path.write_text(json.dumps(data, indent=2) + "\n")


@pytest.fixture
def edited_corpus(tmp_path: Path) -> tuple[Path, Path]:
    """A one-entry corpus whose recorded signature no replay gives: (corpus, entry)."""
    corpus = tmp_path / "corpus"
    entry = corpus / ENTRY.name
    shutil.copytree(ENTRY, entry)
    for name in ("case.json", "outcome.json"):
        _edit_json(entry / name, {"signature": EDITED})
    return corpus, entry


def test_a_change_on_another_build_is_reported_and_fails_only_when_strict(
    farm: Farm, edited_corpus: tuple[Path, Path]
) -> None:
    corpus, entry = edited_corpus
    true_sha256 = json.loads((entry / "case.json").read_text())["dst"]["sha256"]
    assert farm.get("11.1").content_hash() == true_sha256  # the farm has the recorded 11.1
    _edit_json(entry / "case.json", {"dst": {"sha256": FAKE_SHA256}})

    r = migfuzz("regress", str(corpus))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"  11.1  {true_sha256[:12]}  QEMU emulator version 11.1" in r.stdout  # the header
    [line] = [x for x in r.stdout.splitlines() if "changed with the binary:" in x]
    assert line.startswith(f"BINARY   {entry.name}: changed with the binary: dst 11.1: ")
    assert f"recorded {FAKE_SHA256[:12]} (QEMU emulator version 11.1" in line
    assert f"now {true_sha256[:12]} (QEMU emulator version 11.1" in line
    assert "recorded signature: refused-on-load: cpreg only in incoming stream: SCTLR_EL1" in line
    assert "now: different divergence: refused-on-load: cpreg only in incoming stream: " in line
    assert "summary: 0 same, 1 changed with the binary, 0 changed on the recorded" in r.stdout

    r = migfuzz("regress", "--strict", str(corpus))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "changed with the binary (--strict: a failure): dst 11.1" in r.stdout
    assert "0 passed, 1 failed" in r.stdout

    _edit_json(entry / "case.json", {"dst": {"sha256": true_sha256}})
    r = migfuzz("regress", str(corpus))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"CHANGED  {entry.name}: different divergence: recorded refused-on-load" in r.stdout
    assert "0 changed with the binary, 1 changed on the recorded binary" in r.stdout


def test_the_corpus_tier_passes_a_change_on_another_build_with_a_warning(
    farm: Farm, edited_corpus: tuple[Path, Path]
) -> None:
    corpus, entry = edited_corpus
    _edit_json(entry / "case.json", {"dst": {"sha256": ""}})  # recorded without a hash

    def corpus_tier(**extra: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "MIGFUZZ_STRICT"}
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(ROOT / "tests" / "corpus")],
            capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
            env={**env, "MIGFUZZ_CORPUS": str(corpus), **extra},
        )  # fmt: skip

    r = corpus_tier()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed, 1 warning" in r.stdout, r.stdout
    assert "BinaryChangedWarning" in r.stdout and "changed with the binary: dst 11.1" in r.stdout

    r = corpus_tier(MIGFUZZ_STRICT="1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 failed, 1 passed" in r.stdout, r.stdout
    assert "changed with the binary: dst 11.1: recorded no sha256" in r.stdout


def test_fuzz_recheck_replays_open_findings_on_new_binaries_and_marks_the_fixed(
    farm: Farm, tmp_path: Path
) -> None:
    """Three open findings in a ``--known`` corpus: one on its recorded binaries (not
    replayed), one whose destination binary changed and that still refuses (*same*), and
    one whose destination is now a build that loads it (10.0 standing in for a fixed 11.1
    build under another name): *fixed*, said and logged before any case is drawn."""
    corpus = tmp_path / "known"
    untouched, still, fixed = (corpus / f"{n}-{ENTRY.name}" for n in ("a", "b", "c"))
    for entry in (untouched, still, fixed):
        shutil.copytree(ENTRY, entry)
    _edit_json(still / "case.json", {"dst": {"sha256": FAKE_SHA256}})
    _edit_json(fixed / "case.json", {"dst": {"name": "10.0", "sha256": FAKE_SHA256}})

    out = tmp_path / "campaign"
    r = migfuzz("fuzz", "--recheck", "--known", str(corpus), "--pairs", "11.1:11.1",
                "--max-cases", "1", "--no-guests", "-j", "1", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("[recheck]")]
    assert "2 open finding(s) on binaries they were not recorded on" in lines[0]
    assert not [x for x in lines if untouched.name in x]
    [still_line] = [x for x in lines if still.name in x]
    assert "same divergence: refused-on-load: cpreg only in incoming stream: P15_6_*" in still_line
    [fixed_line] = [x for x in lines if f"{fixed.name}:" in x]
    assert "fixed: control and pair now agree" in fixed_line
    assert "[recheck] 1 of 2 fixed" in r.stderr
    logged = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    verdicts = {Path(e["entry"]).name: e["verdict"] for e in logged if e["type"] == "Rechecked"}
    assert verdicts == {still.name: "same divergence", fixed.name: "fixed"}
