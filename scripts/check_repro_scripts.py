#!/usr/bin/env python3
"""Run every reproducer's ``repro.sh`` by hand (no migfuzz involved) and check its output.

For each one-shot corpus entry: ``sh repro.sh`` must show the control loading on the source,
and the destination printing the recorded first error line (or the recorded assertion, for a
crash); a same-version refusal must show the control itself refusing with its recorded
line; a read-back finding must exit 1 saying the read-back differs. With
``--resave`` the stream is re-created on the source first. A stateful entry's
``repro.sh`` runs with each version's QEMU from the farm (``QEMU_<version>``) and must end
with ``BUG:`` and exit status 1. Usage::

    .venv/bin/python scripts/check_repro_scripts.py corpus/ [--resave]

Exits 1 if any entry does not reproduce. Needs the ``lz4`` command unless ``--resave``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from fuzz.corpus.entry import Entry, entry_folders, load_entry
from fuzz.stateful.replay import is_sequence_entry, load_sequence_entry
from fuzz.stateful.repro import version_variable
from fuzz.versions.farm import Farm


def expected_line(entry: Entry) -> str:
    """The line the hand run must print too: the destination's (the control's, for a
    same-version finding)."""
    same_version = entry.signature.same_version
    step = (entry.control if same_version else entry.pair).failing_step
    if step is None:
        return ""
    errors = [m for m in step.messages if not m.lower().startswith("warning:")]
    return (errors or [""])[0]


def check_sequence(folder: Path) -> bool:
    """Run a stateful entry's ``repro.sh`` on the farm's binaries; whether it shows the bug."""
    farm = Farm()
    env = dict(os.environ)
    for version in load_sequence_entry(folder).versions:
        env[version_variable(version)] = shlex.join(farm.get(version).command())
    run = subprocess.run(
        ["sh", str(folder / "repro.sh")], capture_output=True, text=True, errors="replace",
        timeout=300, env=env, check=False,
    )  # fmt: skip
    ok = run.returncode == 1 and "BUG:" in run.stdout
    print(f"{'OK  ' if ok else 'FAIL'} {folder.name}: exit {run.returncode}")
    if not ok:
        print("     " + (run.stdout + run.stderr).strip().replace("\n", "\n     "))
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", type=Path)
    p.add_argument("--resave", action="store_true", help="re-create each stream on the source")
    args = p.parse_args()
    failures = 0
    for folder in entry_folders(args.corpus):
        if is_sequence_entry(folder):
            failures += not check_sequence(folder)
            continue
        entry = load_entry(folder)
        want = expected_line(entry)
        run = subprocess.run(
            ["sh", str(folder / "repro.sh"), *(["--resave"] if args.resave else [])],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        text = run.stdout + run.stderr
        pair_part = text.split("== pair:", 1)[-1]
        if "== the guest read-back" in run.stdout:  # a read-back finding: the items differ
            ok = run.returncode == 1 and "BUG: the read-back differs" in run.stdout
        elif entry.signature.same_version:
            ok = want in text and "control: loaded" not in run.stdout
        else:
            ok = "control: loaded" in text and want in pair_part and "pair: loaded" not in pair_part
        failures += not ok
        print(f"{'OK  ' if ok else 'FAIL'} {folder.name}: {want[:90]}")
        if not ok:
            print("     " + text.strip().replace("\n", "\n     "))
    print(f"{len(entry_folders(args.corpus)) - failures} reproduced, {failures} did not")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
