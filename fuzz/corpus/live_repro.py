"""``repro.sh`` for a live case: the running guest migrated again with plain QEMU commands.

A paused case's reproducer restores a recorded stream; a live case has none to record (the
guest ran while it migrated), so its reproducer migrates it again, as the engine did
(:mod:`fuzz.run.live`): A -> A (the control), then A -> B, each a source and a destination
started at once with the engine's command lines (:func:`fuzz.core.command.live_source`,
:func:`~fuzz.core.command.live_destination`; only the channels differ: QMP on a unix socket,
the UART on a FIFO pair), and the very QMP commands the engine sends
(:meth:`fuzz.core.live.LiveMigration.setup_commands` and the rest), in its order.

QMP needs a client: the script carries a short one in Python 3 (which every QEMU build
needs anyway), so it runs without migfuzz, ``socat`` or ``qemu.qmp``. It waits the way the
engine does: for the guest's checkpoint on the UART before ``migrate``; for the first pass
over RAM (``dirty-sync-count`` 2) before a postcopy switch drawn "after the first pass";
for the end of each side's migration (``query-migrate``); then it sends the resume byte
and keeps the guest's read-back. It exits 1 when the finding shows again (a migration did
not complete, or the items that differed still differ), 0 when it does not, 2 on a setup
error. Timing-dependent findings (a postcopy switch racing a converging precopy) show in
some runs only: run it a few times.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any, Protocol

from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case
from fuzz.core.command import Channel, QemuCommand, ShellText
from fuzz.core.live import LiveMigration, QmpCommand
from fuzz.core.outcome import TransferOutcome
from fuzz.corpus.script import item_comparisons, portable_command
from fuzz.judge.oracles import Signature


class _Version(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version_line(self) -> str: ...


class RecordedCase(Protocol):
    """What the script needs of a corpus entry (:class:`fuzz.corpus.entry.Entry` has it)."""

    @property
    def signature(self) -> Signature: ...
    @property
    def src(self) -> _Version: ...
    @property
    def dst(self) -> _Version: ...
    @property
    def case(self) -> Case: ...
    @property
    def pair(self) -> TransferOutcome: ...


__all__ = ["RecordedCase", "live_commands", "live_repro_script", "live_steps"]

#: The guest image beside the script.
_IMAGE = ShellText("$HERE/guest.bin")
#: Where each side's files go: ``$WORK/LABEL-src.*`` and ``$WORK/LABEL-dst.*``.
_SRC, _DST = "$WORK/$LABEL-src", "$WORK/$LABEL-dst"
#: How long the script waits for a checkpoint, a migration's end, a read-back (seconds).
_WAIT = 30


def live_commands(case: Case) -> tuple[QemuCommand, QemuCommand]:
    """The source and destination commands of a live case's ``repro.sh``: the engine's
    :func:`~fuzz.core.command.live_source` and :func:`~fuzz.core.command.live_destination`,
    with QMP on ``$WORK/$LABEL-{src,dst}.qmp`` and the UART on the FIFO pair
    ``$WORK/$LABEL-{src,dst}.in``/``.out``."""
    if case.guest is None:
        raise ValueError("a live case has a guest")
    src = qemu_command.live_source(case.config, case.guest, _IMAGE)
    dst = qemu_command.live_destination(case.config)
    return (
        src.with_channels(
            monitor=Channel.qmp_socket(ShellText(f"{_SRC}.qmp")),
            serial=Channel.pipe(ShellText(_SRC)),
        ),
        dst.with_channels(
            monitor=Channel.qmp_socket(ShellText(f"{_DST}.qmp")),
            serial=Channel.pipe(ShellText(_DST)),
        ),
    )


def _qmp(side: str, *commands: QmpCommand, until: str = "") -> str:
    words = " ".join(c.shell() for c in commands)
    prefix = f"QMP_UNTIL={shlex.quote(until)} " if until else ""
    return f'{prefix}qmp "{side}.qmp" {words}'


#: Answers are kept only where they say something: a refusal (an ``error`` answer) shows.
_QUIET = " | grep -v '^{\"return\": {}}$'"

_ENDED = '"status": "(completed|failed|cancelled)"'


def live_steps(live: LiveMigration, checkpoint: str) -> list[str]:
    """The body of the script's ``migrate`` function after both QEMUs started: the QMP
    the engine sends, in its order, and the waits it makes (see the module's docstring).

    :param checkpoint: the marker the source's guest prints when its state is set.
    """
    uri = (
        live.uri(path="$WORK/$LABEL.migration")
        if live.transport != "tcp"
        else "tcp:127.0.0.1:$PORT"
    )
    incoming = live.incoming_command(uri)
    setup = live.setup_commands()
    query = QmpCommand("query-migrate")
    lines = [
        (_qmp(_DST, *setup) if live.needs_source_first() else _qmp(_DST, *setup, incoming))
        + _QUIET,
        _qmp(_SRC, *setup, QmpCommand("cont")) + _QUIET,
        f'until_in "{_SRC}.uart" {shlex.quote(checkpoint)} || '
        '{ echo "$LABEL: the guest did not reach its checkpoint"; kill $src $dst; return 2; }',
        _qmp(_SRC, live.migrate_command(uri)) + _QUIET,
    ]
    postcopy = live.postcopy
    if postcopy is not None:
        if postcopy.after_first_pass:
            first_pass = '"dirty-sync-count": ([2-9]|[1-9][0-9])|' + _ENDED
            lines.append(_qmp(_SRC, query, until=first_pass) + " >/dev/null")
        else:
            lines.append(f"sleep {postcopy.after_ms / 1000:g}")
        lines.append(_qmp(_SRC, live.postcopy_command()) + " >/dev/null")
    lines.append(_qmp(_SRC, query, until=_ENDED) + f' > "{_SRC}.status"')
    if live.needs_source_first():
        lines.append(_qmp(_DST, incoming) + _QUIET)
    lines += [
        _qmp(_DST, query, until=_ENDED) + f' > "{_DST}.status" 2>/dev/null',
        # A refused stream ends the destination; one that runs gets 'cont' if postcopy or
        # the migration left it paused, as the engine does, then its resume byte.
        _qmp(_DST, QmpCommand("cont")) + " >/dev/null 2>&1",
    ]
    return lines


_SCRIPT_HELPERS = """\
# qmp SOCKET JSON...: send each QMP command (after the handshake; $WORK, $LABEL and $PORT
# are expanded) and print each answer on a line. With QMP_UNTIL=REGEX, the last command is
# repeated (for up to {wait} s) until its answer matches.
qmp() {{
  python3 - "$@" <<'PY'
import json, os, re, socket, sys, time
sock = socket.socket(socket.AF_UNIX)
sock.connect(os.path.expandvars(sys.argv[1]))
stream = sock.makefile("rw")
def ask(text):
    stream.write(os.path.expandvars(text) + "\\n")
    stream.flush()
    while True:
        line = stream.readline()
        if not line:
            sys.exit("QEMU closed its monitor")
        reply = json.loads(line)
        if "return" in reply or "error" in reply:
            return json.dumps(reply)
stream.readline()
ask('{{"execute": "qmp_capabilities"}}')
until, deadline = os.environ.get("QMP_UNTIL"), time.time() + {wait}
commands = sys.argv[2:]
for i, text in enumerate(commands):
    answer = ask(text)
    while until and i == len(commands) - 1 and not re.search(until, answer):
        if time.time() > deadline:
            break
        time.sleep(0.05)
        answer = ask(text)
    print(answer)
PY
}}
# until_in FILE TEXT: wait (up to {wait} s) until FILE holds TEXT.
until_in() {{
  i=0
  until grep -qaF "$2" "$1" 2>/dev/null; do
    i=$((i + 1)); [ "$i" -gt {tenths} ] && return 1; sleep 0.1
  done
}}
# status_of FILE: the migration status in a query-migrate answer.
status_of() {{
  grep -o '"status": "[a-z-]*"' "$1" 2>/dev/null | head -n 1
}}
# errors: the first lines the QEMUs of this migration printed on stderr, on one line.
errors() {{
  cat "$WORK/$LABEL-dst.err" "$WORK/$LABEL-src.err" 2>/dev/null | grep -v '^$' | head -n 3 |
    tr '\\n' ' '
}}
# item LABEL NAME: the value NAME in LABEL's read-back.
item() {{
  awk -F= -v k="$2" '{{ sub(/\\r$/, "") }} $1 == k {{ print $2; exit }}' "$WORK/$1-dst.uart"
}}"""


def _migrate_function(entry: RecordedCase) -> list[str]:
    case = entry.case
    live, guest = case.live, case.guest
    if live is None or guest is None:
        raise ValueError("a live reproducer needs a live case")
    src, dst = live_commands(case)
    checkpoint = guest.checkpoint.decode("latin-1")
    done = guest.done.decode("latin-1")
    resume = guest.resume.decode("latin-1")
    body = [
        "LABEL=$1; QEMU=$2; PORT=$((20000 + ($$ + ${#1}) % 20000)); export LABEL PORT",
        f'mkfifo "{_SRC}.in" "{_SRC}.out" "{_DST}.in" "{_DST}.out" || exit 2',
        f'cat "{_SRC}.out" > "{_SRC}.uart" & cat "{_DST}.out" > "{_DST}.uart" &',
        # Held open both ways: the resume byte never blocks, whether QEMU still runs or not.
        f'exec 3<>"{_DST}.in"',
        f"$QEMU {dst.shell(breaks=('serial',), indent='    ')} \\",
        f'    2> "{_DST}.err" & dst=$!',
        f"$QEMU_SRC {src.shell(breaks=('serial',), indent='    ')} \\",
        f'    2> "{_SRC}.err" & src=$!',
        f'i=0; until [ -e "{_SRC}.qmp" ] && [ -e "{_DST}.qmp" ]; do',
        "  i=$((i + 1))",
        '  [ "$i" -gt 100 ] && { echo "$LABEL: QEMU did not start"; kill $src $dst; return 2; }',
        "  sleep 0.1",
        "done",
        *live_steps(live, checkpoint),
        # A destination that ended (a refused or crashed load) prints no read-back.
        f"if kill -0 $dst 2>/dev/null; then printf {shlex.quote(resume)} >&3; "
        f'until_in "{_DST}.uart" {shlex.quote(done)}; fi',
        f'qmp "{_SRC}.qmp" \'{{"execute": "quit"}}\' >/dev/null 2>&1',
        f'qmp "{_DST}.qmp" \'{{"execute": "quit"}}\' >/dev/null 2>&1',
        "sleep 0.5; kill $src $dst 2>/dev/null; exec 3>&-; wait",
        f'if grep -qaF {shlex.quote(done)} "{_DST}.uart"; then echo completed > "$WORK/$LABEL.end"',
        f'else echo "failed: source $(status_of "{_SRC}.status"); stderr: $(errors)"'
        ' > "$WORK/$LABEL.end"; fi',
        'echo "$LABEL: $(cat "$WORK/$LABEL.end")"',
    ]
    return [
        "# migrate LABEL QEMU: start QEMU waiting and $QEMU_SRC with the guest, migrate the",
        "# running guest, resume it on QEMU: its read-back in $WORK/LABEL-dst.uart, how it",
        "# ended in $WORK/LABEL.end.",
        "migrate() {",
        *(f"  {line}" for line in body),
        "}",
    ]


def _verdict_lines(entry: RecordedCase, items: Sequence[dict[str, Any]]) -> list[str]:
    """Whether the finding showed again: the recorded read-back items, else the outcome."""
    same_version = entry.signature.same_version
    lines = [
        "STATUS=0",
        *item_comparisons(
            items, entry.src.name, entry.dst.name, same_version=same_version,
            before="expected", after="after the migration",
        ),
    ]  # fmt: skip
    if not items:
        ended = ["control"] if same_version else ["control", "pair"]
        lines += [f'grep -q "^completed" "$WORK/{label}.end" || STATUS=1' for label in ended]
    return [
        *lines,
        '[ "$STATUS" = 1 ] && echo "BUG: the finding shows again"',
        '[ "$STATUS" = 0 ] && echo "OK: it did not show (a timing-dependent one may: run again)"',
        'exit "$STATUS"',
    ]


def live_repro_script(
    entry: RecordedCase, src: QemuBinary, dst: QemuBinary, differences: Sequence[dict[str, Any]]
) -> str:
    """A shell script that migrates ``entry``'s running guest again with plain QEMU.

    :param src: the source's QEMU, ``dst`` the destination's (as the script starts them).
    :param differences: the read-back items the finding recorded as differing (``name``,
        ``expected``): the script compares those; none, it compares how each ended.
    """
    case = entry.case
    if case.live is None:
        raise ValueError("not a live case")
    same_version = entry.signature.same_version
    return "\n".join(
        [
            "#!/bin/sh",
            f"# migfuzz reproducer (live migration): {entry.signature}",
            f"# {entry.src.name} ({entry.src.version_line})",
            f"#   -> {entry.dst.name} ({entry.dst.version_line})",
            f"# case: {case.config.describe()}, guest {case.guest.digest() if case.guest else '-'}",
            f"# migration: {case.live.describe()}",
            f"# recorded: {entry.pair.summary()}",
            "#",
            "# Usage: ./repro.sh    binaries: QEMU_SRC=... QEMU_DST=... (command words)",
            "# Needs python3 (the QMP client below). Exit status: 1 the finding shows, 0 it does",
            "# not, 2 a setup error.",
            "set -u",
            'HERE=$(cd "$(dirname "$0")" && pwd)',
            # No QEMU outlives the script, whatever ends it.
            "WORK=$(mktemp -d); trap 'pkill -P $$ 2>/dev/null; rm -rf \"$WORK\"' EXIT",
            "trap 'exit 130' INT TERM",
            "export WORK",
            "CACHE=${MIGFUZZ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/migfuzz}",
            f"QEMU_SRC=${{QEMU_SRC:-{portable_command(src)}}}",
            f"QEMU_DST=${{QEMU_DST:-{portable_command(dst)}}}",
            _SCRIPT_HELPERS.format(wait=_WAIT, tenths=_WAIT * 10),
            *_migrate_function(entry),
            f"echo '== control: {entry.src.name} -> {entry.src.name}'",
            'migrate control "$QEMU_SRC" || exit 2',
            *(
                []
                if same_version
                else [
                    f"echo '== pair: {entry.src.name} -> {entry.dst.name}'",
                    'migrate pair "$QEMU_DST" || exit 2',
                ]
            ),
            *_verdict_lines(entry, differences),
            "",
        ]
    )
