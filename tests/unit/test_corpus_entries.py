"""Reproducer entries on disk, without QEMU: the committed corpus read back, corrupt copies
refused with a clear :class:`CorpusError`, and atomic writes.

The entries are the committed ones (``corpus/``), recorded from real QEMU runs; their
``repro.sh`` files were written by migfuzz and checked against QEMU by
``scripts/check_repro_scripts.py``, so regenerating them must give the same text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

import fuzz.corpus.entry
from fuzz.core.binary import QemuBinary
from fuzz.corpus.entry import (
    FORMAT,
    Entry,
    VersionRef,
    entry_folders,
    iter_entries,
    load_entry,
    repro_script,
    write_entry,
)
from fuzz.errors import CorpusError
from fuzz.stateful.replay import load_sequence_entry

CORPUS = Path(__file__).parents[2] / "corpus"
ENTRY = CORPUS / "refused-on-load-cpreg-only-in-incoming-stream-cnthp-tval-el2-c51e8249"


def binary_of(argv: list[str], name: str) -> QemuBinary:
    """The farm binary a recorded argv started: loader, library path, binary, ``-L``."""
    return QemuBinary(
        name=name,
        path=Path(argv[3]),
        origin=f"debian:{name}",
        loader=Path(argv[0]),
        library_path=tuple(Path(p) for p in argv[2].split(":")),
        data_dir=Path(argv[5]),
    )


def binaries(entry: Entry) -> tuple[QemuBinary, QemuBinary]:
    assert entry.pair.load is not None
    return (
        binary_of(entry.control.save.details["argv"], entry.src.name),
        binary_of(entry.pair.load.details["argv"], entry.dst.name),
    )


@pytest.fixture
def entry_copy(tmp_path: Path) -> Path:
    folder = tmp_path / ENTRY.name
    shutil.copytree(ENTRY, folder)
    return folder


# -- the committed entries ---------------------------------------------------------------


def test_a_committed_entry_reads_back_whole() -> None:
    entry = load_entry(ENTRY)
    assert entry.path == ENTRY and entry.name == ENTRY.name
    assert str(entry.signature) == (
        "refused-on-load: cpreg only in incoming stream: CNTHP_TVAL_EL2"
    )
    assert entry.src == VersionRef(
        "5.2",
        "57d0d6663ff2104db7ca2a41a5b4dea12d0e944dc143d085d88f32692d83f430",
        "QEMU emulator version 5.2.0 Debian 1:5.2+dfsg-11+deb11u3",
    )
    assert entry.dst.name == "11.1" and entry.dst.version_line.startswith("QEMU emulator ")
    assert entry.case.config.machine == "virt-5.2" and entry.case.config.cpu == "max"
    assert entry.case.config.machine_options == (("secure", "on"),)
    assert entry.case.seed is None
    guest = entry.case.guest
    assert guest is not None
    assert guest.digest() == "e15296d5529e0f2b"
    assert guest.image == (ENTRY / "guest.bin").read_bytes()
    assert guest.source() == (ENTRY / "guest.s").read_text()
    assert guest.load_address == guest.entry == 0x40100000
    assert (guest.checkpoint, guest.resume, guest.done) == (
        b"@@MIGFUZZ-CHECKPOINT@@",
        b"g",
        b"@@MIGFUZZ-DONE@@",
    )
    assert guest.operations == ({"op": "drop_el", "el": 1, "secure": False},)
    assert entry.stream is not None and entry.stream.startswith(b"QEVM")
    assert entry.pair.verdict == "refused" and entry.control.verdict == "completed"
    assert set(entry.findings) >= {"summary", "messages", "signature", "localization"}


def test_the_committed_corpus_reads_entry_by_entry() -> None:
    folders = entry_folders(CORPUS)
    assert folders == sorted(p for p in CORPUS.iterdir() if p.is_dir())
    assert len(folders) >= 10  # one per root cause (README: signatures)
    entries = list(iter_entries(CORPUS))
    assert all(isinstance(e, Entry) for e in entries)
    one_shot = [f for f in folders if not (f / "sequence.json").exists()]
    assert [e.path for e in entries if isinstance(e, Entry)] == one_shot
    # Every other entry is a stateful one, and reads as such.
    stateful = [load_sequence_entry(f) for f in folders if f not in one_shot]
    assert [s.path for s in stateful] == sorted(set(folders) - set(one_shot))
    # One entry folder is a corpus of one.
    assert entry_folders(ENTRY) == [ENTRY]


@pytest.mark.parametrize(
    "folder",
    [
        CORPUS / "refused-on-load-cpreg-only-in-incoming-stream-cnthp-tval-el2-c51e8249",
        CORPUS / "same-version-state-guest-read-back-differs-z-6988d6cb",
    ],
    ids=["5.2-11.1", "read-back-11.1"],
)
def test_repro_script_is_the_one_committed(folder: Path) -> None:
    entry = load_entry(folder)
    assert repro_script(entry, *binaries(entry)) == (folder / "repro.sh").read_text()


def test_repro_script_of_a_users_build_and_of_a_case_without_guest(tmp_path: Path) -> None:
    entry = load_entry(ENTRY)
    build = QemuBinary("dev", Path("/home/me/qemu/build/qemu-system-aarch64"), "user")
    script = repro_script(entry, build, build)
    assert "QEMU_SRC=${QEMU_SRC:-/home/me/qemu/build/qemu-system-aarch64}" in script
    assert "$CACHE/" not in script.split("CACHE=", 1)[1].split("\n", 1)[1]
    # A Debian binary outside a farm layout, or in a path sh would need quoted, stays whole.
    for path in (
        "/q/bin/qemu-system-aarch64",
        "/qemu/5.2/root/bin/qemu-system-aarch64",
        "/my cache/qemu/5.2/root/usr/bin/qemu-system-aarch64",
    ):
        odd = QemuBinary("5.2", Path(path), "debian:bullseye")
        assert "$CACHE/qemu" not in repro_script(entry, odd, odd)
    farm = QemuBinary("5.2", Path("/c/qemu/5.2/root/usr/bin/qemu-system-aarch64"), "debian:x")
    assert "QEMU_SRC=${QEMU_SRC:-$CACHE/qemu/5.2/root/usr/bin/qemu-system-aarch64}" in (
        repro_script(entry, farm, farm)
    )
    paused = Entry(
        entry.signature,
        entry.src,
        entry.dst,
        fuzz.corpus.entry.Case(entry.case.config),
        entry.control,
        entry.pair,
    )
    script = repro_script(paused, farm, farm)
    assert "guest.bin" not in script and "printf 'cont" not in script
    assert '  ( printf \'migrate "exec:cat > %s"' in script
    assert "# case: virt-5.2,secure=on max smp=1 64M\n" in script


# -- corrupt entries: one CorpusError that names the problem -----------------------------


def edit_json(folder: Path, name: str, change) -> None:
    path = folder / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "case.json").unlink(), r"case\.json: missing"),
        (lambda f: (f / "outcome.json").unlink(), r"outcome\.json: missing"),
        (
            lambda f: (f / "case.json").write_text((f / "case.json").read_text()[:200]),
            r"case\.json: not valid JSON",
        ),
        (
            lambda f: (f / "outcome.json").write_bytes(b"\xff\xfe{}"),
            r"outcome\.json: not valid JSON",
        ),
        (lambda f: (f / "case.json").write_text("[1, 2]"), r"case\.json: expected a JSON object"),
        (
            lambda f: edit_json(f, "case.json", lambda d: d.update(format=2)),
            r"case\.json: format 2, this migfuzz reads 1",
        ),
        (
            lambda f: edit_json(f, "outcome.json", lambda d: d.pop("format")),
            r"outcome\.json: format None, this migfuzz reads 1",
        ),
        (
            lambda f: os.truncate(f / "outcome.json", (16 << 20) + 1),
            r"outcome\.json: larger than 16777216 bytes",
        ),
        (
            lambda f: edit_json(f, "outcome.json", lambda d: d.update(signature="x")),
            r"signature must be an object",
        ),
        (
            lambda f: edit_json(f, "case.json", lambda d: d.update(guest=[1])),
            r"case\.json: 'guest' must be an object or null",
        ),
        (lambda f: (f / "guest.bin").unlink(), r"guest image missing"),
        (
            lambda f: (f / "guest.bin").write_bytes(b"\x00" * 4),
            r"guest\.bin does not match its "
            r"recorded hash",
        ),
        (
            lambda f: edit_json(f, "case.json", lambda d: d["guest"].pop("entry")),
            r"case\.json: bad guest \(KeyError\('entry'\)\)",
        ),
        (
            lambda f: edit_json(f, "case.json", lambda d: d["guest"].update(load_address="x")),
            r"case\.json: bad guest \(ValueError",
        ),
        (
            lambda f: edit_json(f, "case.json", lambda d: d["guest"].update(checkpoint="\u20ac")),
            r"case\.json: bad guest \(UnicodeEncodeError",
        ),
        (
            lambda f: edit_json(f, "case.json", lambda d: d.update(src=None)),
            r"version must be an object with a 'name'",
        ),
        (
            lambda f: edit_json(f, "case.json", lambda d: d.update(dst={"sha256": "x"})),
            r"version must be an object with a 'name'",
        ),
        (
            lambda f: edit_json(f, "outcome.json", lambda d: d.update(pair=None)),
            r"transfer outcome",
        ),
        (lambda f: edit_json(f, "outcome.json", lambda d: d.pop("control")), r"transfer outcome"),
        (
            lambda f: (f / "stream.lz4").write_bytes(b"not lz4"),
            r"stream\.lz4: not a valid lz4 frame",
        ),
        (
            lambda f: (f / "stream.lz4").write_bytes((f / "stream.lz4").read_bytes()[:1000]),
            r"stream\.lz4: not a valid lz4 frame",
        ),
        (shutil.rmtree, r"not a corpus entry folder"),
    ],
    ids=lambda value: None if callable(value) else re.sub(r"\W+", "-", value).strip("-"),
)
def test_a_damaged_entry_is_a_corpus_error(entry_copy: Path, damage, message: str) -> None:
    damage(entry_copy)
    with pytest.raises(CorpusError, match=message):
        load_entry(entry_copy)
    # In a corpus, the bad entry is reported and the others still read.
    shutil.copytree(
        ENTRY.parent / "refused-on-load-failed-to-load-arm-gicv3-cpu-5f6a23e8",
        entry_copy.parent / "zz-good",
    )
    results = list(iter_entries(entry_copy.parent))
    assert isinstance(results[-1], Entry)
    if entry_copy.exists():
        assert isinstance(results[0], CorpusError)


def test_optional_parts_may_be_missing(entry_copy: Path) -> None:
    (entry_copy / "guest.s").unlink()
    (entry_copy / "stream.lz4").unlink()
    edit_json(entry_copy, "outcome.json", lambda d: d.update(findings=["x"]))
    edit_json(entry_copy, "case.json", lambda d: d.update(seed="7"))
    entry = load_entry(entry_copy)
    assert entry.case.guest is not None and entry.case.guest.source() == ""
    assert entry.stream is None and entry.findings == {} and entry.case.seed is None
    edit_json(entry_copy, "case.json", lambda d: d.update(guest=None, seed=42))
    entry = load_entry(entry_copy)
    assert entry.case.guest is None and entry.case.seed == 42


def test_a_file_where_a_folder_should_be(tmp_path: Path) -> None:
    assert entry_folders(tmp_path / "nothing") == []
    (tmp_path / "file").write_text("x")
    assert entry_folders(tmp_path / "file") == []
    with pytest.raises(CorpusError, match="not a corpus entry folder"):
        load_entry(tmp_path / "file")


# -- writing: atomic, whole, round trip ---------------------------------------------------


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    entry = load_entry(ENTRY)
    src, dst = binaries(entry)
    folder, written = write_entry(tmp_path / "a" / "corpus", entry, src, dst)
    assert written and folder == tmp_path / "a" / "corpus" / ENTRY.name
    again = load_entry(folder)
    for attribute in ("signature", "src", "dst", "case", "control", "pair", "findings", "stream"):
        assert getattr(again, attribute) == getattr(entry, attribute), attribute
    assert again.case.guest is not None and entry.case.guest is not None
    assert again.case.guest.source() == entry.case.guest.source()
    assert (folder / "repro.sh").read_text() == (ENTRY / "repro.sh").read_text()
    assert (folder / "repro.sh").stat().st_mode & 0o777 == 0o755
    assert folder.stat().st_mode & 0o777 == 0o755
    assert (folder / "guest.bin").read_bytes() == (ENTRY / "guest.bin").read_bytes()
    outcome = json.loads((folder / "outcome.json").read_text())
    assert outcome["format"] == FORMAT and outcome["recorded_by"].startswith("migfuzz ")
    assert outcome["recorded_at"].endswith("Z")
    case = json.loads((folder / "case.json").read_text())
    assert case == {**json.loads((ENTRY / "case.json").read_text())}
    assert sorted(p.name for p in (tmp_path / "a" / "corpus").iterdir()) == [ENTRY.name]
    # Written as the committed files are: indented, keys in their order.
    assert (folder / "case.json").read_text() == (ENTRY / "case.json").read_text()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", outcome["recorded_at"])


def test_an_entry_without_guest_or_stream(tmp_path: Path) -> None:
    entry = load_entry(ENTRY)
    paused = Entry(
        entry.signature,
        entry.src,
        entry.dst,
        fuzz.corpus.entry.Case(entry.case.config, seed=3),
        entry.control,
        entry.pair,
    )
    folder, _ = write_entry(tmp_path, paused, *binaries(entry))
    assert sorted(p.name for p in folder.iterdir()) == ["case.json", "outcome.json", "repro.sh"]
    again = load_entry(folder)
    assert again.case.guest is None and again.stream is None and again.case.seed == 3


def test_an_existing_entry_is_kept_unless_replaced(tmp_path: Path) -> None:
    entry = load_entry(ENTRY)
    src, dst = binaries(entry)
    folder, _ = write_entry(tmp_path, entry, src, dst)
    newer = Entry(
        entry.signature,
        entry.src,
        entry.dst,
        entry.case,
        entry.control,
        entry.pair,
        findings={"new": True},
        stream=b"QEVM",
    )
    assert write_entry(tmp_path, newer, src, dst) == (folder, False)
    assert load_entry(folder).findings == entry.findings
    assert write_entry(tmp_path, newer, src, dst, replace=True) == (folder, True)
    again = load_entry(folder)
    assert again.findings == {"new": True} and again.stream == b"QEVM"
    assert sorted(p.name for p in tmp_path.iterdir()) == [ENTRY.name]


@pytest.mark.parametrize("replace", [False, True])
def test_a_failed_write_leaves_nothing_half_written(tmp_path: Path, monkeypatch, replace) -> None:
    entry = load_entry(ENTRY)
    src, dst = binaries(entry)
    if replace:
        folder, _ = write_entry(tmp_path, entry, src, dst)
        before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def broken(*_args: object) -> str:
        # Mid-write, the entry is a dot-folder beside the others, never under its name.
        [building] = [p.name for p in tmp_path.iterdir() if p.name != ENTRY.name]
        assert building.startswith(f".{ENTRY.name}.")
        raise OSError("disk full")

    monkeypatch.setattr(fuzz.corpus.entry, "repro_script", broken)
    with pytest.raises(OSError, match="disk full"):
        write_entry(tmp_path, entry, src, dst, replace=replace)
    if replace:
        assert [p.name for p in tmp_path.iterdir()] == [ENTRY.name]
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    else:
        assert list(tmp_path.iterdir()) == []
    # A half write in a dot-folder is never an entry.
    (tmp_path / f".{ENTRY.name}.x").mkdir()
    assert all(not p.name.startswith(".") for p in entry_folders(tmp_path))
