"""``migfuzz bisect`` on real QEMUs: a committed entry over the four default versions.

The entry ``refused-on-load-cpreg-only-in-incoming-stream-p15-4`` (10.0 -> 11.1,
``virt-10.0,secure=on cortex-a57``): 11.1 refuses the Hyp registers 10.0 sends. Checked by
hand with ``migfuzz repro``: 10.0 -> 10.0 agrees, 10.0 -> 11.1 refuses; 5.2 and 7.2 have no
``virt-10.0`` machine type, so as sources they are unusable (not "fixed").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzz.cli import EXIT_OK, main
from fuzz.versions.farm import Farm

pytestmark = pytest.mark.qemu

ENTRY = (
    Path(__file__).resolve().parents[2]
    / "corpus/refused-on-load-cpreg-only-in-incoming-stream-p15-4-3cfabc70"
)


def test_bisect_p15_4_over_the_default_versions(
    farm: Farm, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--cache-dir", str(farm.cache_dir), "bisect", str(ENTRY), "--json",
            "--versions", "5.2,7.2,10.0,11.1"]  # fmt: skip
    assert main(argv) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    dst, src = data["axes"]
    assert [(p["name"], p["status"]) for p in dst["points"]] == [
        ("10.0", "agree"), ("11.1", "same cause"),
    ]  # fmt: skip
    assert (dst["first_bad"], dst["first_fixed"]) == ("11.1", None)
    assert dst["conclusion"].startswith("appears in 11.1 (")
    assert "(first bad destination), absent in 10.0 (" in dst["conclusion"]
    assert dst["conclusion"].endswith("and earlier; not fixed in any installed version")
    assert [(p["name"], p["status"]) for p in src["points"]] == [
        ("5.2", "unusable"), ("7.2", "unusable"), ("10.0", "same cause"), ("11.1", "agree"),
    ]  # fmt: skip
    assert src["points"][0]["detail"] == "5.2: no machine type 'virt-10.0'"
    assert (src["first_bad"], src["first_fixed"]) == ("10.0", "11.1")
