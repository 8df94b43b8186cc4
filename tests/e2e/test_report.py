"""``migfuzz report`` as a maintainer meets it: the page opened in headless Chromium.

No QEMU: the campaign folder is hand-made (``tests/report_fixture.py``) around a real
corpus entry. Chromium renders the page (``--dump-dom``), takes a screenshot, and logs its
console to stderr; the page must show the matrix and every signature's section, contain
no ``undefined``/``NaN``, and log no script or console error.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz.report.gather import gather
from tests.report_fixture import Campaign, make_campaign

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no headless Chromium: install it with 'apt-get install -y chromium'"
)


def _chromium(*args: str, page: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         "--enable-logging=stderr", "--v=0", *args, page.as_uri()],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Campaign, Path]:
    campaign = make_campaign(tmp_path_factory.mktemp("report") / "campaign", findings=False)
    done = subprocess.run(
        [sys.executable, "-m", "fuzz", "report", str(campaign.root)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = campaign.root / "report.html"
    assert f"report: {page}" in done.stdout
    return campaign, page


def test_the_page_renders_with_the_matrix_and_every_signature(rendered: tuple[Campaign, Path]):
    campaign, page = rendered
    done = _chromium("--dump-dom", page=page)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert '<img id="matrix"' in dom and "data:image/png;base64," in dom
    assert '<img id="timeline"' in dom
    for sig in gather(campaign.root).signatures:
        assert f"{html.escape(sig.signature, quote=False)}</h3>" in dom
    assert campaign.entry.name in dom  # the entry's path, next to its repro.sh
    assert "repro.sh</summary>" in dom and "guest listing (guest.s)</summary>" in dom
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", dom)  # pictures aside
    for bad in ("undefined", "NaN"):
        assert bad not in text
    # Chromium logs every console message as "INFO:CONSOLE" (console.error too) and an
    # uncaught exception as "Uncaught ...": a page without scripts must log none.
    console = [
        line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line
    ]
    assert not console, console


def test_the_page_screenshots_and_loads_nothing_from_the_network(
    rendered: tuple[Campaign, Path], tmp_path: Path
):
    _campaign, page = rendered
    shot = tmp_path / "report.png"
    done = _chromium("--hide-scrollbars", "--window-size=1200,2000", f"--screenshot={shot}",
                     page=page)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    text = page.read_text()
    assert "<script" not in text and "<link" not in text and 'src="http' not in text


def test_the_promised_only_box_hides_what_qemu_does_not_promise(
    rendered: tuple[Campaign, Path], tmp_path: Path
):
    """The hand-made campaign's entry is not promised (the max CPU): the page offers the
    box, and checking it (here: the same page with the box checked) shows another page."""
    campaign, page = rendered
    dom = _chromium("--dump-dom", page=page).stdout
    assert '<input type="checkbox" id="promised-only">' in dom
    assert '<img id="matrix-promised"' in dom
    assert '<section class="signature not-promised"' in dom
    assert "not promised \u2014 CPU model max" in html.unescape(dom)
    checked = tmp_path / "checked.html"
    checked.write_text(
        page.read_text().replace('id="promised-only">', 'id="promised-only" checked>', 1)
    )
    shots = []
    for name, source in (("all", page), ("promised", checked)):
        shot = tmp_path / f"{name}.png"
        done = _chromium("--hide-scrollbars", "--window-size=1200,2000", f"--screenshot={shot}",
                         page=source)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        shots.append(shot.read_bytes())
    assert shots[0] != shots[1]
    assert campaign.signature in page.read_text()
