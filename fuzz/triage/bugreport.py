"""A QEMU bug report, in markdown, from one corpus entry.

``migfuzz bug ENTRY`` writes the text a QEMU maintainer can act on without migfuzz: a
one-line title; the exact versions (version line, and the Debian package from the lock
file, :mod:`fuzz.versions.lock`); the plain QEMU command lines of the source, the save, the
destination and the load (the commands of the entry's ``repro.sh``,
:func:`fuzz.corpus.entry.repro_commands`, with the files beside the report); what the
same-version control does (expected) and what the cross-version pair does, in QEMU's own
error lines (actual); whether QEMU promises that migration at all (the ``Promise:``
line, :mod:`fuzz.judge.promise`); the responsible registers with both values, AArch32 ones
under their architectural names beside the encoding; the state the pair restored
differently; and, when given, the version range found by :mod:`fuzz.triage.bisect`.

Pure: it reads a loaded :class:`~fuzz.corpus.entry.Entry` (and optionally a lock and bisect
axes) and starts nothing, so it is tested on committed entries without QEMU.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fuzz.core import command as qemu_command
from fuzz.core.case import Case
from fuzz.core.command import NONE, STDIO, Channel, QemuCommand, ShellText
from fuzz.core.outcome import StepOutcome, TransferOutcome
from fuzz.corpus.entry import Entry, VersionRef, read_back_differences
from fuzz.corpus.live_repro import live_commands
from fuzz.errors import InvalidInput
from fuzz.stream.cpregs import CpReg, from_kvm_id
from fuzz.triage.bisect import Axis, qemu_release
from fuzz.versions.lock import Lock, LockedVersion

__all__ = ["bug_report", "title"]

#: At most this many changed fields are listed (the rest are counted).
MAX_STATE_ROWS = 30

_KIND_TEXT = {
    "refused-on-load": "destination refuses the migration stream",
    "crashed-on-load": "destination crashes loading the migration stream",
    "hung-on-load": "destination hangs loading the migration stream",
    "refused-on-save": "source refuses to save",
    "crashed-on-save": "source crashes saving",
    "state": "destination restores different state",
}


def _release(ref: VersionRef) -> str:
    return qemu_release(ref.version_line) or ref.name


def title(entry: Entry) -> str:
    """The report's one-line title: versions, machine, CPU, what goes wrong and why.

    E.g. ``arm: migration 10.0.13 -> 11.1.3 (virt-10.0,secure=on, cortex-a57): destination
    refuses the migration stream: cpreg only in incoming stream: P15_4_*``.
    """
    sig = entry.signature
    what = _KIND_TEXT.get(sig.kind, sig.kind)
    config = entry.case.config
    machine = ",".join([config.machine, *(f"{k}={v}" for k, v in config.machine_options)])
    cpu = ",".join([config.cpu, *(f"{k}={v}" for k, v in config.cpu_properties)])
    detail = f": {sig.detail}" if sig.detail else ""
    versions = f"{_release(entry.src)} -> {_release(entry.dst)}"
    if entry.src.name == entry.dst.name:
        versions = f"{_release(entry.src)} -> same version"
    return f"arm: migration {versions} ({machine}, {cpu}): {what}{detail}"


def _locked(lock: Lock | None, ref: VersionRef) -> LockedVersion | None:
    if lock is None:
        return None
    by_hash = [v for v in lock.versions if ref.sha256 and v.sha256 == ref.sha256]
    by_name = [v for v in lock.versions if v.name == ref.name]
    found = by_hash or by_name
    return found[0] if found else None


def _version_rows(entry: Entry, lock: Lock | None) -> list[str]:
    rows = [
        "| side | QEMU | version line | Debian package | binary SHA-256 |",
        "| --- | --- | --- | --- | --- |",
    ]
    sides = [("source", entry.src), ("destination", entry.dst)]
    if entry.src.name == entry.dst.name:
        sides = [("source and destination", entry.src)]
    for side, ref in sides:
        locked = _locked(lock, ref)
        package = "not in the lock file"
        if locked is not None:
            exact = "" if locked.sha256 == ref.sha256 else " (the lock's binary differs)"
            package = (
                f"qemu-system-arm {locked.qemu_version} ({locked.suite}, {locked.arch}){exact}"
            )
        rows.append(
            f"| {side} | {_release(ref)} | {ref.version_line or 'not recorded'} | {package} "
            f"| `{ref.sha256[:16] or 'not recorded'}` |"
        )
    return rows


def _report_commands(case: Case) -> tuple[QemuCommand, QemuCommand]:
    """The source and the load as a maintainer types them: the engine's commands with
    the monitor on stdin (or none), no serial port, the image and the stream beside them
    (``guest.bin``, ``src.stream``)."""
    image = Path("guest.bin") if case.guest is not None else None
    src = qemu_command.source(case, image).with_channels(monitor=STDIO, serial=NONE)
    load = qemu_command.destination(case).with_channels(monitor=NONE, serial=NONE)
    return src, load.reading_stream(ShellText("src.stream"))


def _live_commands(entry: Entry) -> list[str]:
    """The plain QEMU steps of a live migration (as the entry's repro.sh runs them)."""
    case, live = entry.case, entry.case.live
    if live is None:
        raise ValueError("not a live case")
    src_cmd, dst_cmd = live_commands(case)
    src, dst = _release(entry.src), _release(entry.dst)
    setup = ", ".join(f"`{json.dumps(c.to_json())}`" for c in live.setup_commands())
    return [
        "QEMU_SRC and QEMU_DST are `qemu-system-aarch64` of the two versions above; each "
        "serves QMP on a unix socket and its first UART on a FIFO pair.",
        "",
        f"1. Start the destination (QEMU {dst}), waiting for an incoming migration:",
        "",
        "   ```sh",
        f"   $QEMU_DST {dst_cmd.shell()}",
        "   ```",
        "",
        f"2. Start the source (QEMU {src}), paused, with the guest image loaded:",
        "",
        "   ```sh",
        f"   $QEMU_SRC {src_cmd.shell()}",
        "   ```",
        "",
        f"3. On both QMP monitors: {setup}.",
        f"4. Migrate the running guest ({live.describe()}): `migrate-incoming` on the "
        "destination, `cont` on the source, and once the guest printed its checkpoint, "
        "`migrate`"
        + (" then `migrate-start-postcopy`" if live.postcopy is not None else "")
        + "; wait for `query-migrate` to say `completed` on both sides.",
        "5. Send the destination's guest its resume byte on its UART: it prints its read-back"
        " (and whether the memory pattern it kept writing came through intact).",
        "",
        *([] if entry.signature.same_version
          else [f"Control: the same migration from `$QEMU_SRC` to `$QEMU_SRC` (QEMU {src}) "
                "completes."]),
        "",
        "The attached `repro.sh` runs all of this with a small Python QMP client and exits 1 "
        "while the finding shows; `guest.bin` and its listing `guest.s` are attached.",
    ]  # fmt: skip


def _commands(entry: Entry) -> list[str]:
    """The plain QEMU steps: source, save, destination, load (as the entry's repro.sh)."""
    if entry.case.live is not None:
        return _live_commands(entry)
    case = entry.case
    guest = case.guest
    save, load = _report_commands(case)
    src, dst = _release(entry.src), _release(entry.dst)
    lines = [
        "QEMU_SRC and QEMU_DST are `qemu-system-aarch64` of the two versions above.",
        "",
        f"1. Start the source (QEMU {src}), paused"
        + (", with the guest image loaded" if guest else "")
        + ", monitor on stdin:",
        "",
        "   ```sh",
        f"   $QEMU_SRC {save.shell()}",
        "   ```",
        "",
        "2. Save: on its monitor"
        + (", let the guest run to its checkpoint, then" if guest else ","),
        "",
        "   ```",
        *(["   (qemu) cont", "   (wait 2 seconds)", "   (qemu) stop"] if guest else []),
        '   (qemu) migrate "exec:cat > src.stream"',
        "   (qemu) quit",
        "   ```",
        "",
        f"3. Start the destination (QEMU {dst}) with the same configuration and load the stream:",
        "",
        "   ```sh",
        f"   $QEMU_DST {load.shell()}",
        "   ```",
        "",
        *([] if entry.signature.same_version
          else [f"4. Control: the same load with `$QEMU_SRC` (QEMU {src}) succeeds."]),
        *_read_back_steps(entry),
    ]  # fmt: skip
    if guest is not None:
        digest = hashlib.sha256(guest.image).hexdigest()
        lines += [
            "",
            f"`guest.bin` ({len(guest.image)} bytes, SHA-256 `{digest[:16]}...`, loaded at "
            f"{guest.load_address:#x}) is attached with its GNU as listing `guest.s`.",
        ]
    if entry.stream is not None:
        lines += [
            "The source's recorded stream is attached too (`stream.lz4`, "
            "`lz4 -d stream.lz4 src.stream`): with it, steps 1-2 can be skipped.",
        ]
    lines += [
        "The attached `repro.sh` runs all of this (`./repro.sh`, or `./repro.sh --resave` to "
        "save the stream afresh)"
        + (" and compares the read-backs; it exits 1 while they differ."
           if read_back_differences(entry) else "."),
    ]  # fmt: skip
    return lines


def _read_back_steps(entry: Entry) -> list[str]:
    """How to see a read-back finding by hand: the guest's read-back after the restore."""
    differences = read_back_differences(entry)
    if not differences:
        return []
    assert entry.case.guest is not None
    resume = entry.case.guest.resume.decode("latin-1")
    names = "|".join(re.escape(d["name"]) for d in differences)
    same = entry.signature.same_version
    _, load = _report_commands(entry.case)
    read_back = load.with_channels(monitor=STDIO, serial=Channel.pipe("uart"))
    baseline = (
        "what it printed before the save (run step 1 with `-serial file:before.txt`)"
        if same else "what the same steps print with `$QEMU_SRC` as the destination"
    )  # fmt: skip
    step = 4 if same else 5
    return [
        "",
        f"{step}. The guest's read-back. Before its checkpoint, and again after it receives "
        f"`{resume}` on its UART, the guest prints one `name=0x...` line per item it wrote. "
        "Restore with the UART on a pipe, resume the guest, and send it the byte:",
        "",
        "   ```sh",
        "   mkfifo uart.in uart.out; cat uart.out > after.txt &",
        f"   $QEMU_DST {read_back.shell()}",
        "   (qemu) cont",
        f"   printf {resume} > uart.in    # from another shell",
        f"   grep -E '^({names})=' after.txt",
        "   ```",
        "",
        f"   Compare with {baseline}.",
    ]


def _step_lines(step: StepOutcome | None) -> list[str]:
    if step is None:
        return ["(not run)"]
    return list(step.messages) or [f"{step.stage} {step.verdict}, no message"]


def _outcome_block(outcome: TransferOutcome) -> list[str]:
    step = outcome.failing_step
    lines = [f"{outcome.src} -> {outcome.dst}: **{outcome.verdict}**"]
    if step is not None:
        lines += ["", "```", *_step_lines(step), "```"]
    return lines


def _reg_of(item: dict[str, Any]) -> CpReg | None:
    try:
        return from_kvm_id(int(str(item.get("kvm_id")), 16))
    except (InvalidInput, ValueError):
        return None


_ACTION_TEXT = {
    "drop": "only in the source's stream: the load succeeds once it is dropped",
    "insert": "only in the destination's own list: the load succeeds once it is inserted",
    "set": "both have it with different values: the load succeeds with the destination's value",
}


def _register_rows(localization: dict[str, Any]) -> list[str]:
    rows = [
        "| register | encoding | id in the stream | source value | destination value | finding |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for item in localization.get("registers", []):
        if not isinstance(item, dict):
            continue
        reg = _reg_of(item)
        encoding = str(item.get("name", "?"))
        name = "?"
        key = f"`{item.get('kvm_id')}`"
        if reg is not None:
            name = reg.architectural_name or "(no architectural name known)"
            encoding = reg.generic_name
            if reg.encoding_note:
                name += f" ({reg.encoding_note})"
        action = str(item.get("action", ""))
        rows.append(
            f"| {name} | `{encoding}` | {key} | {_value(item.get('src'))} "
            f"| {_value(item.get('dst'))} | {_ACTION_TEXT.get(action, action)} |"
        )
    return rows


def _value(value: object) -> str:
    return "absent" if value is None else f"`{value}`"


def _registers_section(findings: dict[str, Any]) -> list[str]:
    loc = findings.get("localization")
    past = findings.get("past_refusal")
    if not isinstance(loc, dict) and isinstance(past, dict) and past.get("patches"):
        # Recorded by the engine itself (fuzz.run.past_refusal), not by a localization.
        lead = (
            "Found by patching the source's cpreg list toward the destination's own until "
            "the destination accepted it: changing these registers makes it accept the stream."
        )
        return ["## Responsible registers", "", lead, "", *_register_rows(
            {"registers": past["patches"]}), ""]  # fmt: skip
    if not isinstance(loc, dict):
        return []
    lines = ["## Responsible registers", ""]
    regs = [r for r in loc.get("registers", []) if isinstance(r, dict)]
    if regs:
        lines += [
            "Found by delta debugging over the differences between the source's cpreg list "
            f"and the destination's own ({loc.get('tests', '?')} test loads): changing these "
            "registers, and only these, makes the destination accept the stream.",
            "",
            *_register_rows(loc),
        ]
        if any(r.get("name", "").endswith("_S") for r in regs):
            lines += [
                "",
                "`_S`: the register's id in the stream has QEMU's non-secure bit "
                "(`CP_REG_AA32_NS_MASK`, bit 29) clear, which QEMU names the secure-bank copy; "
                "QEMU's own messages print such ids with the bit set (`kvm_to_cpreg_id()`).",
            ]
    else:
        lines.append("No register set explains the refusal.")
    if loc.get("note"):
        lines += ["", f"Note: {loc['note']}."]
    return [*lines, ""]


def _state_section(findings: dict[str, Any]) -> list[str]:
    pair_state = findings.get("pair_state")
    changed = pair_state.get("changed", []) if isinstance(pair_state, dict) else []
    differences = findings.get("differences", [])
    if not changed and not differences:
        return []
    lines = ["## State that differs", ""]
    if changed:
        lines += [
            "Fields of the destination's re-save (saved right after the load, paused) that "
            "differ from the control's re-save:",
            "",
            "| field | after A -> A (expected) | after A -> B (actual) |",
            "| --- | --- | --- |",
        ]
        for item in changed[:MAX_STATE_ROWS]:
            lines.append(
                f"| `{item.get('path')}` | `{item.get('before')}` | `{item.get('after')}` |"
            )
        if len(changed) > MAX_STATE_ROWS:
            lines.append(f"| ... and {len(changed) - MAX_STATE_ROWS} more | | |")
    if differences:
        lines += [
            *([""] if changed else []),
            "What the guest reads back after the restore (values as the guest prints them; "
            "a `zN` item is a digest of the whole Z register):", "",
            "| item | expected | actual |", "| --- | --- | --- |",
        ]  # fmt: skip
        for d in differences[:MAX_STATE_ROWS]:
            if isinstance(d, dict):
                lines.append(f"| `{d.get('name')}` | {_value(d.get('expected'))} | "
                             f"{_value(d.get('actual'))} |")  # fmt: skip
    return [*lines, ""]


def _bisect_section(axes: Sequence[Axis]) -> list[str]:
    if not axes:
        return []
    lines = ["## Versions affected", ""]
    for axis in axes:
        held = "source" if axis.role == "destination" else "destination"
        lines += [
            f"{axis.role.capitalize()}s tried with the {held} held at {axis.fixed}: "
            f"**{axis.conclusion()}**.",
            "",
            f"| {axis.role} | result |",
            "| --- | --- |",
            *(f"| {p.label} | {p.status} |" for p in axis.points),
            "",
        ]
    return lines


def bug_report(entry: Entry, *, lock: Lock | None = None, axes: Sequence[Axis] = ()) -> str:
    """The markdown text of a QEMU bug report for ``entry``.

    :param lock: the lock file's entries, to name each version's Debian package.
    :param axes: bisect results (:func:`fuzz.triage.bisect.bisect_axis`) to include, if any.
    """
    config = entry.case.config
    same_version = entry.signature.same_version
    if same_version:
        expected_block = [
            f"A save/restore round trip on QEMU {_release(entry.src)} alone completes and "
            "restores the state that was saved"
            + (": the guest reads back after the restore what it read before the save."
               if read_back_differences(entry) else "."),
        ]  # fmt: skip
        actual = entry.control
    else:
        expected_block = [
            "The same stream loaded by the version that saved it (the control) completes:",
            "",
            *_outcome_block(entry.control),
        ]
        actual = entry.pair
    lines = [
        f"# {title(entry)}",
        "",
        "Found by migfuzz, a differential fuzzer of QEMU migration across versions "
        f"(entry `{entry.path.name if entry.path else entry.name}`).",
        "",
        entry.promise.line(),
        "",
        "## Versions",
        "",
        *_version_rows(entry, lock),
        "",
        f"Configuration: `{config.describe()}` under TCG, "
        + ("a small guest run to a checkpoint" if entry.case.guest else "paused at reset")
        + ".",
        "",
        "## How to reproduce",
        "",
        *_commands(entry),
        "",
        "## Expected",
        "",
        *expected_block,
        "",
        "## Actual",
        "",
        f"Signature: `{entry.signature}`",
        "",
        *_outcome_block(actual),
        "",
        *_registers_section(entry.findings),
        *_state_section(entry.findings),
        *_bisect_section(axes),
    ]
    while lines and lines[-1] == "":
        lines.pop()
    # One blank line between blocks, however the sections above end and begin.
    lines = [ln for i, ln in enumerate(lines) if ln or i == 0 or lines[i - 1]]
    return "\n".join(lines) + "\n"
