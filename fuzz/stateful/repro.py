"""A stateful finding on disk: ``sequence.json``, guest images, snapshots and ``repro.sh``.

The entry folder (``<signature-slug>-<hash>/``) holds:

* ``sequence.json`` -- the :class:`~fuzz.stateful.model.StatefulSequence` (configuration,
  guest operations, steps, what differed);
* ``guests/gN.bin`` (and ``gN.s``, the listing) -- the guest images the steps start;
* ``empty.qcow2`` -- the empty qcow2 every snapshot is saved into;
* ``snapshots/sN.qcow2`` -- the snapshots as the engine saved them in the shrunk run
  (for a look with the recorded version; ``repro.sh`` saves its own);
* ``sanitizer.txt`` -- for a crash of a sanitizer build, the whole report (the signature
  names only its kind and first frames);
* ``repro.sh`` -- the steps with plain QEMU: each process's HMP monitor and UART go
  through FIFOs, so processes take their steps interleaved, as the engine's did. After the
  steps, every snapshot that a step loaded is loaded again on a fresh process (paused, no
  guest of its own); exit status 1 if any load or read-back differs.

:func:`repro_script` is pure (text out); :func:`fill_entry` writes an entry's files into a
folder, and :func:`write_entry` writes the entry through the corpus store, as every entry
is (:meth:`~fuzz.corpus.store.CorpusStore.save_folder`: claimed, a dot-folder fsynced and
renamed into place).
"""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from fuzz.core import command as qemu_command
from fuzz.core.case import GuestProgram, MachineConfig
from fuzz.core.command import Channel, QemuCommand, ShellText
from fuzz.corpus.store import CorpusStore
from fuzz.stateful.model import Action, StatefulSequence, load_commands, save_commands
from fuzz.stateful.procs import CHECKPOINT, DONE, RESUME

_PRELUDE = r"""set -u
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
cleanup() {
  for f in "$WORK"/*.pid; do [ -e "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 2' INT TERM
STATUS=0
fail() { echo "setup: $*"; exit 2; }

# after FILE OFFSET: what FILE holds past byte OFFSET.
after() { tail -c +$(($2 + 1)) "$1"; }
size() { wc -c < "$1" | tr -d ' '; }
# wait_text FILE OFFSET TEXT SECONDS: wait until TEXT appears in FILE past OFFSET.
wait_text() {
  i=0
  while ! after "$1" "$2" | grep -a -q -F -- "$3"; do
    i=$((i + 1)); [ "$i" -gt $(($4 * 20)) ] && return 1; sleep 0.05
  done
}
# start NAME QEMU ARGS...: a paused QEMU whose HMP monitor and UART are FIFO pairs.
start() {
  n=$1 q=$2; shift 2
  for f in mon ser; do mkfifo "$WORK/$n.$f.in" "$WORK/$n.$f.out" || fail mkfifo; done
  # shellcheck disable=SC2086
  $q $CONFIG @CHANNELS@ "$@" > "$WORK/$n.log" 2>&1 &
  echo $! > "$WORK/$n.pid"
  # The readers' pids too: one whose QEMU never opened its FIFO would block forever.
  cat "$WORK/$n.mon.out" > "$WORK/$n.monitor" & echo $! > "$WORK/$n.mon.pid"
  cat "$WORK/$n.ser.out" > "$WORK/$n.uart" & echo $! > "$WORK/$n.ser.pid"
  echo 1 > "$WORK/$n.prompts"
  wait_text "$WORK/$n.monitor" 0 '(qemu)' 20 || { cat "$WORK/$n.log"; fail "$n did not start"; }
}
# hmp NAME COMMAND: type COMMAND on NAME's monitor, wait for the next prompt; its answer
# (without the echo and prompt) is in $WORK/answer.
hmp() {
  n=$1; shift
  from=$(size "$WORK/$n.monitor")
  printf '%s\n' "$*" > "$WORK/$n.mon.in"
  i=0
  until [ "$(after "$WORK/$n.monitor" "$from" | grep -a -c -F '(qemu)')" -ge 1 ]; do
    i=$((i + 1)); [ "$i" -gt 600 ] && fail "$n: no answer to '$*'"; sleep 0.05
  done
  after "$WORK/$n.monitor" "$from" | tr -d '\r' | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' \
    | grep -a -v -F -e "$*" -e '(qemu)' > "$WORK/answer" || true
}
# snapshot_step NAME COMMANDS...: HMP lines of a save or load; the first error, if any.
snapshot_step() {
  n=$1; shift; err=""
  for c in "$@"; do
    hmp "$n" "$c"
    case $c in
      drive_add*) grep -q '^OK' "$WORK/answer" || err="$c: $(cat "$WORK/answer")" ;;
      drive_del*) ;;
      *) a=$(grep -a -v -i '^warning' "$WORK/answer" | tr '\n' ' ')
         [ -n "${a% }" ] && [ -z "$err" ] && err="$c: $a" ;;
    esac
  done
  echo "$err"
}
# run NAME: let the guest run to its checkpoint, then pause.
run() {
  off=$(size "$WORK/$1.uart"); hmp "$1" cont
  wait_text "$WORK/$1.uart" "$off" "$CHECKPOINT" 5 || echo "($1 did not reach its checkpoint)"
  hmp "$1" stop
}
# read_back NAME OUT: resume the guest, keep what it prints until its done marker in OUT.
read_back() {
  off=$(size "$WORK/$1.uart"); hmp "$1" cont; printf '%s' "$RESUME" > "$WORK/$1.ser.in"
  wait_text "$WORK/$1.uart" "$off" "$DONE" 3 || true
  hmp "$1" stop; after "$WORK/$1.uart" "$off" > "$2"
}
# compare WHAT EXPECTED-FILE ACTUAL-FILE
compare() {
  if cmp -s "$2" "$3"; then echo "same $1"; return; fi
  STATUS=1
  echo "DIFFERS: $1"
  echo "--- one-shot load (fresh process) gave:"; head -c 600 "$2"; echo
  echo "--- the process with a history gave:"; head -c 600 "$3"; echo
}
"""


def version_variable(version: str) -> str:
    """The shell variable naming the QEMU of ``version``: ``11.1`` -> ``QEMU_11_1``."""
    return "QEMU_" + re.sub(r"[^A-Za-z0-9]", "_", version)


def _quote_hmp(line: str) -> str:
    """An HMP line for the script, with the ``$WORK`` file names left to the shell."""
    return '"' + line.replace('"', '\\"') + '"'


def _compared_read_backs(sequence: StatefulSequence) -> dict[int, int]:
    """Load step index -> the step index whose read-back is that load's (itself, with
    ``read_back``, or a ``read_back`` step next on the same process)."""
    steps = sequence.steps
    out: dict[int, int] = {}
    for i, step in enumerate(steps):
        if step.action is not Action.LOAD:
            continue
        if step.read_back:
            out[i] = i
            continue
        for j in range(i + 1, len(steps)):
            if steps[j].process == step.process:
                if steps[j].action is Action.READ_BACK:
                    out[i] = j
                break
    return out


def repro_script(sequence: StatefulSequence, guests: Mapping[int, GuestProgram]) -> str:
    """The ``repro.sh`` of ``sequence``; ``guests`` maps a guest index to its program (for
    load and entry addresses)."""
    config = sequence.config
    versions = sorted({s.version for s in sequence.steps if s.version is not None})
    machine = qemu_command.machine_value(config)
    # A process's command, as the engine's (:func:`fuzz.core.command.live_process`), is
    # split up: $CONFIG holds the machine (its type from $MACHINE), the determinism and
    # display options; start() adds the rest (HMP monitor and UART on FIFO pairs instead
    # of the harness's sockets) and a start line the guest loader.
    process = _process_command(config, None)
    config_line = process.shell(sections=("machine", "determinism", "display"))
    channels = process.shell(
        sections=("paused", "monitor", "serial"), breaks=("serial",), indent="    "
    )
    lines = [
        "#!/bin/sh",
        f"# migfuzz stateful reproducer: {sequence.signature}",
        f"# Versions: {', '.join(versions)}; configuration: {config.describe()}",
        "# Steps (p: a QEMU process, s: a qcow2 internal snapshot, g: a guest in guests/):",
        *(f"#  {line}" for line in sequence.describe()),
        "# The steps run with plain QEMU; each process's HMP monitor and UART go through",
        "# FIFOs. Then every snapshot a step loaded is loaded again on a fresh process",
        "# (paused, no guest image of its own) and the outcomes and read-backs are compared.",
        "#",
        "#   QEMU=qemu-system-aarch64 MACHINE=virt ./repro.sh",
        "#",
        "# QEMU: the command words that start QEMU (default qemu-system-aarch64);",
        f"# {', '.join(version_variable(v) for v in versions)}: per version, default $QEMU.",
        f"# MACHINE: the machine type and its options (default {machine}).",
        "# Exit status: 0 every load acts as on a fresh process, 1 one does not, 2 setup error.",
        "QEMU=${QEMU:-qemu-system-aarch64}",
        *(f"{version_variable(v)}=${{{version_variable(v)}:-$QEMU}}" for v in versions),
        f"MACHINE=${{MACHINE:-{shlex.quote(machine)}}}",
        f'CONFIG="{config_line}"',
        f"CHECKPOINT={shlex.quote(CHECKPOINT.decode())}",
        f"DONE={shlex.quote(DONE.decode())}",
        f"RESUME={shlex.quote(RESUME.decode())}",
        _PRELUDE.replace("@CHANNELS@", channels),
    ]
    version_of: dict[int, str] = {}
    compared = _compared_read_backs(sequence)
    loads = 0
    checks: list[str] = []
    for i, step in enumerate(sequence.steps):
        p = f"p{step.process}"
        lines.append(f"echo {shlex.quote(f'== {i}. {step.describe()}')}")
        if step.action is Action.START:
            assert step.version is not None
            version_of[step.process] = step.version
            guest = None if step.guest is None else (step.guest, guests[step.guest])
            lines.append(_start_line(p, step.version, guest, config))
        elif step.action is Action.RUN:
            lines.append(f"run {p}")
        elif step.action is Action.SAVE:
            n = step.snapshot or 0
            lines.append(f'cp "$HERE/empty.qcow2" "$WORK/s{n}.qcow2" || fail cp')
            cmds = save_commands(n, f"$WORK/s{n}.qcow2")
            lines.append(f"err=$(snapshot_step {p} {' '.join(map(_quote_hmp, cmds))})")
            lines.append(f'[ -z "$err" ] || fail "save s{n}: $err"')
        elif step.action is Action.LOAD:
            n, loads = step.snapshot or 0, loads + 1
            lines.append(f'cp "$WORK/s{n}.qcow2" "$WORK/l{loads}.qcow2" || fail cp')
            cmds = load_commands(n, f"$WORK/l{loads}.qcow2", loads)
            lines.append(f"snapshot_step {p} {' '.join(map(_quote_hmp, cmds))} > $WORK/load{i}")
            lines.append(f'echo "load: $(cat "$WORK/load{i}" | sed "s/^$/completed/")"')
            if step.read_back:
                lines.append(f'read_back {p} "$WORK/read{i}"')
            checks += _one_shot(i, step.snapshot or 0, version_of[step.process], compared)
        elif step.action is Action.READ_BACK:
            lines.append(f'read_back {p} "$WORK/read{i}"')
        elif step.action is Action.RESET:
            lines.append(f"hmp {p} system_reset")
    lines.append("echo '== the same loads on fresh processes'")
    lines += checks
    lines.append('[ "$STATUS" = 0 ] && echo "OK: every load acts as on a fresh process"')
    lines.append('[ "$STATUS" = 1 ] && echo "BUG: a process with a history loads differently"')
    lines.append('exit "$STATUS"')
    return "\n".join(lines) + "\n"


def _process_command(config: MachineConfig, guest: tuple[int, GuestProgram] | None) -> QemuCommand:
    """The engine's command of a live process, with the script's machine, image and
    channels: ``$MACHINE``, ``$HERE/guests/gN.bin``, and the monitor (HMP) and UART on the
    FIFO pairs ``$WORK/NAME.mon`` and ``$WORK/NAME.ser``."""
    image = None if guest is None else ShellText(f"$HERE/guests/g{guest[0]}.bin", quoted=False)
    command = qemu_command.live_process(config, None if guest is None else guest[1], image)
    return replace(
        command,
        machine=ShellText("$MACHINE", quoted=False),
        monitor=Channel.pipe(ShellText("$WORK/$n.mon")),
        serial=Channel.fifo(ShellText("$WORK/$n.ser")),
    )


def _start_line(
    name: str, version: str, guest: tuple[int, GuestProgram] | None, config: MachineConfig
) -> str:
    """The script line that starts process ``name`` with its guest (if any) loaded."""
    loader = _process_command(config, guest).shell(sections=("loader",))
    return f'start {name} "${version_variable(version)}"' + (f" {loader}" if loader else "")


def _one_shot(step: int, snapshot: int, version: str, compared: Mapping[int, int]) -> list[str]:
    """Script lines: load ``snapshot`` on a fresh process of ``version``, compare it with
    load step ``step`` (its outcome and, if the sequence read back after it, its read-back)."""
    f = f"f{step}"
    cmds = load_commands(snapshot, f"$WORK/f{step}.qcow2", 1)
    lines = [
        f'cp "$WORK/s{snapshot}.qcow2" "$WORK/f{step}.qcow2" || fail cp',
        f'start {f} "${version_variable(version)}"',
        f"snapshot_step {f} {' '.join(map(_quote_hmp, cmds))} > $WORK/fload{step}",
        f'compare "load outcome of step {step}" "$WORK/fload{step}" "$WORK/load{step}"',
    ]
    if step in compared:
        lines.append(f'read_back {f} "$WORK/fread{step}"')
        lines.append(
            f'compare "read-back after step {step}" "$WORK/fread{step}" '
            f'"$WORK/read{compared[step]}"'
        )
    lines.append(f'printf "quit\\n" > "$WORK/{f}.mon.in"')
    return lines


def fill_entry(
    folder: Path, sequence: StatefulSequence, guests: Mapping[int, GuestProgram],
    template: Path, snapshots: Mapping[int, Path], *, report: str = "",
) -> None:  # fmt: skip
    """Write ``sequence``'s entry files into the empty ``folder``.

    :param template: the empty qcow2 the snapshots were saved into.
    :param snapshots: snapshot number -> the qcow2 the engine saved it into.
    :param report: the sanitizer report of the failing step's crash (``sanitizer.txt``), or "".
    :raise OSError: a file could not be written.
    """
    (folder / "sequence.json").write_text(sequence.dumps())
    if report:
        (folder / "sanitizer.txt").write_text(report + "\n")
    (folder / "guests").mkdir()
    for index, guest in guests.items():
        (folder / "guests" / f"g{index}.bin").write_bytes(guest.image)
        if listing := guest.source():
            (folder / "guests" / f"g{index}.s").write_text(listing)
    shutil.copyfile(template, folder / "empty.qcow2")
    (folder / "snapshots").mkdir()
    for number, path in snapshots.items():
        shutil.copyfile(path, folder / "snapshots" / f"s{number}.qcow2")
    script = folder / "repro.sh"
    script.write_text(repro_script(sequence, guests))
    script.chmod(0o755)


def write_entry(
    store: CorpusStore, sequence: StatefulSequence, guests: Mapping[int, GuestProgram],
    template: Path, snapshots: Mapping[int, Path], *, report: str = "",
) -> Path | None:  # fmt: skip
    """Write ``sequence``'s entry through ``store`` (replacing one of the same signature).

    :param template: the empty qcow2 the snapshots were saved into.
    :param snapshots: snapshot number -> the qcow2 the engine saved it into.
    :param report: the sanitizer report of the failing step's crash, or "".
    :return: the entry folder; None if another process holds the signature's claim.
    :raise StorageError: the folder could not be written.
    """
    return store.save_folder(
        sequence.signature,
        lambda folder: fill_entry(folder, sequence, guests, template, snapshots, report=report),
    )
