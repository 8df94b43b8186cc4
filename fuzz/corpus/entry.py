"""Reproducer entries on disk: one folder per distinct divergence.

``corpus/<signature-slug>-<short-hash>/`` holds:

* ``case.json`` -- versions (by name and binary hash), machine/CPU configuration, guest
  operations, seed; ``format`` versions the layout;
* ``outcome.json`` -- the signature, its promise grade (:mod:`fuzz.judge.promise`: recorded
  for a reader, re-computed from the entry whenever it is read), the control's and the
  pair's outcomes with the destination's messages, and whatever the oracles found (e.g.
  responsible registers);
* ``stream.lz4`` -- the source's migration stream, lz4-frame compressed;
* ``patched.lz4`` -- for a finding made past a cpreg refusal, the stream the destination
  loaded: the source's with its cpreg list patched (``outcome.json`` says how);
* ``guest.bin`` and ``guest.s`` -- the guest image and its GNU-as listing, if any;
* ``repro.sh`` -- the exact QEMU command lines, for a maintainer without migfuzz;
* ``sanitizer.txt`` -- for a crash of a sanitizer build, the whole report.

Writes are atomic: an entry is built in a dot-folder and renamed into place, so a crash
mid-write never leaves a half entry that later reads as valid, and an existing entry is
only ever replaced whole (``replace=True``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lz4.frame

from fuzz import __version__
from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, GuestProgram, MachineConfig
from fuzz.core.command import NONE, STDIO, Channel, QemuCommand, ShellText
from fuzz.core.live import LiveMigration
from fuzz.core.outcome import TransferOutcome
from fuzz.corpus.live_repro import live_repro_script
from fuzz.corpus.script import item_comparisons, portable_command
from fuzz.errors import CorpusError
from fuzz.judge.oracles import Signature
from fuzz.judge.promise import FIELDS as PROMISE_FIELDS
from fuzz.judge.promise import Grade, grade

FORMAT = 1
_MAX_JSON = 16 << 20


@dataclass(frozen=True)
class VersionRef:
    """A QEMU version as a reproducer records it: name, binary hash, version line."""

    name: str
    sha256: str
    version_line: str = ""

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"name": self.name, "sha256": self.sha256, "version_line": self.version_line}

    @classmethod
    def from_json(cls, data: Any) -> VersionRef:
        """Parse :meth:`to_json` output."""
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise CorpusError(f"version must be an object with a 'name', not {data!r}")
        return cls(
            str(data["name"]), str(data.get("sha256", "")), str(data.get("version_line", ""))
        )


@dataclass(frozen=True)
class Entry:
    """One reproducer: what to run, what happened, and the source stream."""

    signature: Signature
    src: VersionRef
    dst: VersionRef
    case: Case
    control: TransferOutcome
    pair: TransferOutcome
    findings: dict[str, Any] = field(default_factory=dict)
    stream: bytes | None = None
    path: Path | None = None
    patched_stream: bytes | None = None
    """What the destination loaded, where it was not ``stream``: the source's stream with
    its cpreg list patched (a finding behind a refusal, :mod:`fuzz.judge.past_refusal`)."""

    @property
    def name(self) -> str:
        """The entry's folder name."""
        return f"{self.signature.slug()}-{self.signature.short_hash()}"

    @property
    def promise(self) -> Grade:
        """Whether QEMU promises what this entry shows broken: computed from the entry
        (signature, versions, configuration), never read from ``outcome.json``."""
        return promise_of(self.signature, self.src, self.dst, self.case.config)


def promise_of(
    signature: Signature, src: VersionRef, dst: VersionRef, config: MachineConfig
) -> Grade:
    """The promise grade (:func:`fuzz.judge.promise.grade`) of a finding between two
    recorded versions, placed by name or else by their version lines."""
    return grade(
        signature, src.name, dst.name, config,
        src_line=src.version_line, dst_line=dst.version_line,
    )  # fmt: skip


def _guest_json(guest: GuestProgram) -> dict[str, Any]:
    return {
        "image": "guest.bin",
        "listing": "guest.s",
        "sha256": guest.digest(),
        "load_address": guest.load_address,
        "entry": guest.entry,
        "checkpoint": guest.checkpoint.decode("latin-1"),
        "resume": guest.resume.decode("latin-1"),
        "done": guest.done.decode("latin-1"),
        "operations": list(guest.operations),
        **({"live": True} if guest.live else {}),
    }


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_folder(root: Path, name: str, fill: Callable[[Path], None]) -> Path:
    """Write the folder ``root/name`` atomically: ``fill`` writes its files into a new
    dot-folder, every file is fsynced, then the dot-folder is renamed into place (an
    existing folder of that name is replaced whole).

    :return: the folder.
    :raise OSError: it could not be written (``root`` keeps what it had).
    """
    final = root / name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        fill(tmp)
        for folder, _dirs, files in os.walk(tmp):
            for file in files:
                with open(os.path.join(folder, file), "rb") as fh:
                    os.fsync(fh.fileno())
        tmp.chmod(0o755)
        if final.exists():
            old = root / f".{name}.old-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write_entry(
    corpus_dir: Path, entry: Entry, src: QemuBinary, dst: QemuBinary, *, replace: bool = False
) -> tuple[Path, bool]:
    """Write ``entry`` under ``corpus_dir`` atomically.

    :return: (the entry's folder, whether it was written). An existing entry with the
        same signature is kept unless ``replace``.
    """
    corpus_dir.mkdir(parents=True, exist_ok=True)
    final = corpus_dir / entry.name
    if final.exists() and not replace:
        return final, False

    def fill(tmp: Path) -> None:
        case = entry.case
        _write_json(tmp / "case.json", {
            "format": FORMAT,
            "signature": entry.signature.to_json(),
            "src": entry.src.to_json(),
            "dst": entry.dst.to_json(),
            "config": case.config.to_json(),
            "guest": None if case.guest is None else _guest_json(case.guest),
            "seed": case.seed,
            **({} if case.live is None else {"live": case.live.to_json()}),
        })  # fmt: skip
        _write_json(tmp / "outcome.json", {
            "format": FORMAT,
            "signature": entry.signature.to_json(),
            **entry.promise.to_json(),
            "control": entry.control.to_json(),
            "pair": entry.pair.to_json(),
            "findings": entry.findings,
            "recorded_by": f"migfuzz {__version__}",
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })  # fmt: skip
        if entry.stream is not None:
            (tmp / "stream.lz4").write_bytes(lz4.frame.compress(entry.stream))
        if entry.patched_stream is not None:
            (tmp / "patched.lz4").write_bytes(lz4.frame.compress(entry.patched_stream))
        if case.guest is not None:
            (tmp / "guest.bin").write_bytes(case.guest.image)
            (tmp / "guest.s").write_text(case.guest.source())
        script = tmp / "repro.sh"
        if entry.case.live is not None:
            script.write_text(live_repro_script(entry, src, dst, read_back_differences(entry)))
        else:
            script.write_text(repro_script(entry, src, dst))
        script.chmod(0o755)
        if report := sanitizer_text(entry):
            (tmp / "sanitizer.txt").write_text(report)

    return write_folder(corpus_dir, entry.name, fill), True


def sanitizer_text(entry: Entry) -> str:
    """The sanitizer reports of the entry's failing steps (pair, then control), or "".

    Each is also in ``outcome.json`` (the step's ``details``); ``sanitizer.txt`` is the
    file a maintainer opens.
    """
    parts = []
    for label, transfer in (("pair", entry.pair), ("control", entry.control)):
        step = transfer.failing_step
        if step is None:
            continue
        text = step.details.get("sanitizer_report", "")
        if isinstance(text, str) and text:
            parts.append(f"# {label}: {step.stage} on {step.version}\n{text}\n")
    return "\n".join(parts)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > _MAX_JSON:
            raise CorpusError(f"{path}: larger than {_MAX_JSON} bytes")
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise CorpusError(f"{path}: missing") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CorpusError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise CorpusError(f"{path}: expected a JSON object")
    if data.get("format") != FORMAT:
        raise CorpusError(f"{path}: format {data.get('format')!r}, this migfuzz reads {FORMAT}")
    return data


def _guest_from_json(folder: Path, data: Any) -> GuestProgram | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise CorpusError(f"{folder / 'case.json'}: 'guest' must be an object or null")
    try:
        image = (folder / str(data.get("image", "guest.bin"))).read_bytes()
    except OSError as err:
        raise CorpusError(f"{folder}: guest image missing ({err})") from err
    try:
        listing_path = folder / str(data.get("listing", "guest.s"))
        listing = listing_path.read_text() if listing_path.exists() else ""
        guest = GuestProgram(
            image=image,
            load_address=int(data["load_address"]),
            entry=int(data["entry"]),
            checkpoint=str(data["checkpoint"]).encode("latin-1"),
            resume=str(data["resume"]).encode("latin-1"),
            done=str(data["done"]).encode("latin-1"),
            operations=tuple(data.get("operations", [])),
            live=data.get("live") is True,
            listing=listing,
        )
    except (KeyError, TypeError, ValueError, UnicodeError) as err:
        raise CorpusError(f"{folder / 'case.json'}: bad guest ({err!r})") from err
    if data.get("sha256") and guest.digest() != data["sha256"]:
        raise CorpusError(f"{folder}: guest.bin does not match its recorded hash")
    return guest


def load_entry(folder: Path) -> Entry:
    """Read one entry, checking everything; :class:`CorpusError` names the problem."""
    if not folder.is_dir():
        raise CorpusError(f"{folder}: not a corpus entry folder")
    case_data = _read_json(folder / "case.json")
    outcome_data = _read_json(folder / "outcome.json")
    signature = Signature.from_json(outcome_data.get("signature"))
    case = Case(
        config=MachineConfig.from_json(case_data.get("config")),
        guest=_guest_from_json(folder, case_data.get("guest")),
        seed=case_data.get("seed") if isinstance(case_data.get("seed"), int) else None,
        live=None if case_data.get("live") is None else LiveMigration.from_json(case_data["live"]),
    )
    findings = outcome_data.get("findings", {})
    return Entry(
        signature=signature,
        src=VersionRef.from_json(case_data.get("src")),
        dst=VersionRef.from_json(case_data.get("dst")),
        case=case,
        control=TransferOutcome.from_json(outcome_data.get("control")),
        pair=TransferOutcome.from_json(outcome_data.get("pair")),
        findings=findings if isinstance(findings, dict) else {},
        stream=_read_lz4(folder / "stream.lz4"),
        path=folder,
        patched_stream=_read_lz4(folder / "patched.lz4"),
    )


def _read_lz4(path: Path) -> bytes | None:
    """The decompressed content of ``path``, None if there is no such file.

    :raise CorpusError: it is not an lz4 frame.
    """
    if not path.exists():
        return None
    try:
        data: bytes = lz4.frame.decompress(path.read_bytes())
    except (OSError, RuntimeError) as err:
        raise CorpusError(f"{path}: not a valid lz4 frame ({err})") from err
    return data


def read_promise(folder: Path) -> Grade | None:
    """The promise grade of the one-shot entry in ``folder``, computed from its
    ``case.json`` and its signature (the recorded grade is not trusted), without reading
    its stream or guest; None for a stateful entry or one that does not read."""
    try:
        case_data = _read_json(folder / "case.json")
        outcome_data = _read_json(folder / "outcome.json")
        return promise_of(
            Signature.from_json(outcome_data.get("signature")),
            VersionRef.from_json(case_data.get("src")),
            VersionRef.from_json(case_data.get("dst")),
            MachineConfig.from_json(case_data.get("config")),
        )
    except CorpusError:
        return None


def record_promise(folder: Path) -> bool:
    """Write the entry's promise grade, as computed now, into its ``outcome.json`` (after
    the signature), leaving every other field as it was; for entries recorded before the
    grade, or graded by an older rule.

    :return: whether the file changed.
    :raise CorpusError: the entry does not read.
    """
    path = folder / "outcome.json"
    graded = load_entry(folder).promise.to_json()
    data = _read_json(path)
    if all(data.get(key) == graded[key] for key in PROMISE_FIELDS):
        return False
    rest = [(k, v) for k, v in data.items() if k not in PROMISE_FIELDS]
    at = next((i + 1 for i, (k, _v) in enumerate(rest) if k == "signature"), len(rest))
    updated = dict([*rest[:at], *graded.items(), *rest[at:]])
    tmp = path.with_name(f".{path.name}.tmp")
    _write_json(tmp, updated)
    tmp.replace(path)
    return True


def entry_folders(corpus_dir: Path) -> list[Path]:
    """Every entry folder under ``corpus_dir`` (dot-folders are unfinished writes), one-shot
    and stateful alike; ``corpus_dir`` itself if it is one."""
    if any((corpus_dir / name).is_file() for name in ("case.json", "sequence.json")):
        return [corpus_dir]
    if not corpus_dir.is_dir():
        return []
    return sorted(p for p in corpus_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def iter_entries(corpus_dir: Path) -> Iterator[Entry | CorpusError]:
    """Each one-shot entry, or the :class:`CorpusError` of a corrupt one (one bad entry
    stops nothing). Stateful entries (``sequence.json``, :mod:`fuzz.stateful.replay`) are
    not one-shot cases and are left out."""
    for folder in entry_folders(corpus_dir):
        if (folder / "sequence.json").is_file():
            continue
        try:
            yield load_entry(folder)
        except CorpusError as err:
            yield err


#: What a reproducer's QEMU commands read: the guest image beside the script, the stream
#: in its work folder.
_IMAGE = ShellText("$HERE/guest.bin")
_STREAM = ShellText("$WORK/src.stream")


def repro_commands(case: Case) -> tuple[QemuCommand, QemuCommand]:
    """The source (``--resave``) and the restore command of ``case``'s ``repro.sh``: the
    engine's :func:`~fuzz.core.command.source` and :func:`~fuzz.core.command.destination`
    with the reproducer's channels: the monitor on stdin (HMP) or none, no serial port,
    the stream read from ``$WORK/src.stream`` instead of ``-incoming defer``."""
    image = _IMAGE if case.guest is not None else None
    save = qemu_command.source(case, image).with_channels(monitor=STDIO, serial=NONE)
    restore = qemu_command.destination(case).with_channels(monitor=NONE, serial=NONE)
    return save, restore.reading_stream(_STREAM)


def repro_script(entry: Entry, src: QemuBinary, dst: QemuBinary) -> str:
    """A shell script that reproduces ``entry`` by hand with plain QEMU (no migfuzz).

    By default it restores the recorded stream on the source (the control) and on the
    destination; with ``--resave`` it first re-creates the stream on the source through
    HMP commands on stdin. For a read-back finding it then restores again, resumes the
    guest and compares the items that differed, and exits 1 if they still do.
    """
    case = entry.case
    save, restore = repro_commands(case)
    run_guest = "printf 'cont\\n'; sleep 2; printf 'stop\\n'; " if case.guest is not None else ""
    restore_lines = (
        "$QEMU {command} </dev/null & pid=$!\n"
        'sleep 3; if kill $pid 2>/dev/null; then echo "{label}: loaded"; fi\n'
        "wait $pid 2>/dev/null\n"
    )
    return "\n".join(
        [
            "#!/bin/sh",
            f"# migfuzz reproducer: {entry.signature}",
            f"# {entry.src.name} ({entry.src.version_line})",
            f"#   -> {entry.dst.name} ({entry.dst.version_line})",
            f"# case: {case.config.describe()}"
            + (f", guest {case.guest.digest()}" if case.guest else ""),
            f"# recorded: {entry.pair.summary()}",
            "#",
            "# Usage: ./repro.sh [--resave]    binaries: QEMU_SRC=... QEMU_DST=... (command words)",
            "# Needs the 'lz4' command (Debian package lz4) unless --resave is given.",
            "set -u",
            'HERE=$(cd "$(dirname "$0")" && pwd)',
            "WORK=$(mktemp -d); trap 'rm -rf \"$WORK\"' EXIT",
            "CACHE=${MIGFUZZ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/migfuzz}",
            f"QEMU_SRC=${{QEMU_SRC:-{portable_command(src)}}}",
            f"QEMU_DST=${{QEMU_DST:-{portable_command(dst)}}}",
            'if [ "${1:-}" = "--resave" ]; then',
            f'  ( {run_guest}printf \'migrate "exec:cat > %s"\\nquit\\n\' "$WORK/src.stream" )'
            " | \\",
            f"    $QEMU_SRC {save.shell()} \\",
            "    >/dev/null",
            "else",
            '  lz4 -dcq "$HERE/stream.lz4" > "$WORK/src.stream" || exit 2',
            "fi",
            *_patched_setup(entry),
            f"echo '== control: restore on {entry.src.name}'",
            "QEMU=$QEMU_SRC",
            *_use_stream(entry, "control"),
            restore_lines.format(command=restore.shell(), label="control").rstrip(),
            f"echo '== pair: restore on {entry.dst.name}'",
            "QEMU=$QEMU_DST",
            *_use_stream(entry, "pair"),
            restore_lines.format(command=restore.shell(), label="pair").rstrip(),
            *_read_back_lines(entry, restore),
            "",
        ]
    )


def _patched_setup(entry: Entry) -> list[str]:
    """For a finding behind a refusal: keep the control's stream, unpack the pair's."""
    if entry.patched_stream is None:
        return []
    tolerance = entry.findings.get("tolerance")
    if isinstance(tolerance, dict):
        dropped = tolerance.get("dropped", {})
        name = dropped.get("name", "one register") if isinstance(dropped, dict) else "?"
        said = [
            f"# The pair restores the source's stream with {name} left out of the cpreg",
            "# list (patched.lz4), on the same version: QEMU promises a register the stream",
            "# lacks keeps its reset value, which is the value the stream held for it.",
        ]
    else:
        behind = entry.findings.get("behind") or ["a cpreg refusal"]
        first = behind[0] if isinstance(behind, list) else str(behind)
        said = [
            f"# Found behind: {first}. The pair restores the source's stream with its cpreg",
            "# list patched (patched.lz4; outcome.json's past_refusal.patches says how).",
        ]
        past = entry.findings.get("past_refusal")
        left_out = past.get("left_out") if isinstance(past, dict) else None
        if left_out:
            said.append(f"# Left out of it, as the destination sends none: {', '.join(left_out)}.")
    return [
        *said,
        "# With --resave the control restores the new stream, the pair the recorded one.",
        'cp "$WORK/src.stream" "$WORK/control.stream"',
        'lz4 -dcq "$HERE/patched.lz4" > "$WORK/pair.stream" || exit 2',
    ]


def _use_stream(entry: Entry, label: str) -> list[str]:
    """The line that puts ``label``'s stream where the restore reads it (patched only)."""
    if entry.patched_stream is None:
        return []
    return [f'cp "$WORK/{label}.stream" "$WORK/src.stream"']


_READ_BACK = """\
# read_back LABEL: restore with $QEMU, 'cont', send the guest its resume byte on the UART,
# and keep what it prints (its read-back, one name=0x... line per item) in $WORK/LABEL.uart.
read_back() {{
  mkfifo "$WORK/$1.in" "$WORK/$1.out" || exit 2
  cat "$WORK/$1.out" > "$WORK/$1.uart" &
  ( sleep 1; printf 'cont\\n'; sleep 0.5; printf '{resume}' > "$WORK/$1.in"; sleep 2
    printf 'quit\\n' ) | \\
    $QEMU {command} >/dev/null 2>&1
  wait
}}
# item LABEL NAME: the value NAME read back in LABEL's UART ("exception": the EXC line).
item() {{
  if [ "$2" = exception ]; then grep -a '^EXC' "$WORK/$1.uart" | head -n 1 | tr -d '\\r'
  else awk -F= -v k="$2" '{{ sub(/\\r$/, "") }} $1 == k {{ print $2; exit }}' "$WORK/$1.uart"; fi
}}
STATUS=0"""


def read_back_differences(entry: Entry) -> list[dict[str, Any]]:
    """The guest read-back items a read-back finding recorded as differing (``name``,
    ``expected``, ``actual``); empty for any other finding or a case without a guest."""
    found = entry.findings.get("differences")
    if not isinstance(found, list) or entry.case.guest is None:
        return []
    return [d for d in found if isinstance(d, dict) and isinstance(d.get("name"), str)]


def _read_back_lines(entry: Entry, restore: QemuCommand) -> list[str]:
    """For a read-back finding: restore again on both sides, resume the guest, and compare
    the items that differed (exit status 1 if they still do). A same-version finding
    compares A -> A with what the guest read before the save (recorded: a resave's UART
    is not kept); a cross-version one compares A -> B with A -> A."""
    items = read_back_differences(entry)
    if not items:
        return []
    assert entry.case.guest is not None
    same_version = entry.signature.same_version
    resume = entry.case.guest.resume.decode("latin-1")
    # The restore's command with the monitor on stdin and the UART on the FIFO pair.
    read_back = restore.with_channels(monitor=STDIO, serial=Channel.pipe(ShellText("$WORK/$1")))
    command = read_back.shell(breaks=("serial", "incoming"), indent="      ")
    lines = [
        "echo '== the guest read-back after each restore'",
        _READ_BACK.format(resume=resume, command=command),
        *_use_stream(entry, "control"),
        "QEMU=$QEMU_SRC; read_back control",
        *([] if same_version else [*_use_stream(entry, "pair"), "QEMU=$QEMU_DST; read_back pair"]),
    ]
    lines += item_comparisons(
        items, entry.src.name, entry.dst.name, same_version=same_version,
        before="before the save", after="after the restore",
    )  # fmt: skip
    lines += [
        '[ "$STATUS" = 1 ] && echo "BUG: the read-back differs"',
        '[ "$STATUS" = 0 ] && echo "OK: the read-back is the same"',
        'exit "$STATUS"',
    ]
    return lines
