"""The QEMU command model (fuzz.core.command): a reproducer runs what the engine ran.

The engine's argv is taken where the engine makes it: a fresh source, a fresh destination
and a stateful live process launch through :class:`fuzz.run.machine.QemuMachine`, whose
process start is replaced by one that records the argv and refuses (no QEMU runs here).
The reproducer's words are parsed out of the generated ``repro.sh`` (and bug report) with
:mod:`shlex`. They must be the same words apart from the channels the model swaps, which
are exactly these:

* the monitor: the engine's QMP on an inherited socket (``-chardev socket,id=mon0,fd=N
  -qmp chardev:mon0``) is ``-monitor stdio`` (a source a reproducer saves on, and the
  read-back restore), ``-monitor none`` (a plain restore), or a ``pipe`` chardev with an
  HMP monitor (the stateful ``repro.sh``);
* the serial port: the engine's socket (``-chardev socket,id=ser0,fd=N -serial
  chardev:ser0``, only with a guest) is ``-serial none``, or a FIFO pair for a read-back;
* the incoming stream: ``-incoming defer`` (then QMP ``migrate-incoming``) is ``-incoming
  "exec:cat FILE"``.

The shell variables a reproducer uses are replaced by what the engine used: ``$QEMU*`` by
the binary's words, ``$HERE/guest.bin`` by the engine's image file, ``$MACHINE`` by its
default.
"""

from __future__ import annotations

import ast
import asyncio
import re
import shlex
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import fuzz.run.machine
from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, GuestProgram, MachineConfig
from fuzz.core.command import NONE, STDIO, Channel, QemuCommand, ShellText
from fuzz.corpus.entry import Entry, load_entry, repro_script
from fuzz.errors import LaunchError
from fuzz.run.runner import FreshDestination, FreshSource
from fuzz.stateful.procs import LiveProcess
from fuzz.stateful.replay import load_sequence_entry
from fuzz.stateful.repro import repro_script as stateful_repro_script
from fuzz.triage.bugreport import bug_report

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "corpus/refused-on-load-cpreg-only-in-incoming-stream-cnthp-tval-el2-c51e8249"
READ_BACK = ROOT / "corpus/same-version-state-guest-read-back-differs-z-6988d6cb"
SEQUENCE = ROOT / "corpus/history-read-back-after-the-load-b70bac23"
BINARY = QemuBinary(name="x", path=Path("/opt/qemu x/bin/qemu-system-aarch64"), origin="user")

GUEST = GuestProgram(image=bytes(range(64)))
CASES = {
    "no guest": Case(MachineConfig("virt-10.0", "cortex-a57")),
    "guest, smp 1": Case(MachineConfig("virt", "max"), GUEST),
    "guest, smp 4": Case(MachineConfig("virt-9.2", "max", smp=4, memory_mib=128), GUEST),
    "options": Case(
        MachineConfig(
            "virt-7.2", "max", machine_options=(("secure", "on"), ("gic-version", "3")),
            cpu_properties=(("sve", "off"), ("pauth", "on")), smp=2,
        ),
        GUEST,
    ),
}  # fmt: skip


class _NotStarted(OSError):
    """What the recording process start raises: nothing runs in a unit test."""


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every argv a QemuMachine would have started (after any wrapper)."""
    seen: list[list[str]] = []

    async def record(*argv: str, **_kw: Any) -> None:
        seen.append(list(argv))
        raise _NotStarted("not started in a unit test")

    monkeypatch.setattr(fuzz.run.machine, "_pdeathsig_wrapper", lambda: ())
    monkeypatch.setattr(fuzz.run.machine.asyncio, "create_subprocess_exec", record)
    return seen


def _engine_argv(outcome_details: dict[str, Any], started: list[list[str]]) -> list[str]:
    argv = outcome_details["argv"]
    assert started and started[-1] == argv
    return list(argv[len(BINARY.command()) :])


def _source_argv(case: Case, workdir: Path, started: list[list[str]]) -> list[str]:
    result = asyncio.run(FreshSource(BINARY, workdir).save(case))
    return _engine_argv(result.outcome.details, started)


def _destination_argv(case: Case, workdir: Path, started: list[list[str]]) -> list[str]:
    result = asyncio.run(FreshDestination(BINARY, workdir).load(case, b"stream"))
    return _engine_argv(result.outcome.details, started)


def _swap(
    argv: list[str], *, monitor: list[str], serial: list[str], incoming: list[str]
) -> list[str]:
    """The engine's argv with its harness channels swapped for a reproducer's: exactly
    the monitor, the serial port and the incoming stream."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        value = argv[i + 1] if i + 1 < len(argv) else ""
        if word == "-chardev" and re.fullmatch(r"socket,id=mon0,fd=\d+", value):
            assert argv[i + 2 : i + 4] == ["-qmp", "chardev:mon0"]
            out += monitor
            if not any(w.startswith("socket,id=ser0,") for w in argv):
                out += serial  # the engine has no serial port without a guest
            i += 4
        elif word == "-chardev" and re.fullmatch(r"socket,id=ser0,fd=\d+", value):
            assert argv[i + 2 : i + 4] == ["-serial", "chardev:ser0"]
            out += serial
            i += 4
        elif word == "-incoming":
            assert value == "defer"
            out += incoming
            i += 2
        else:
            out.append(word)
            i += 1
    return out


def _shell_commands(script: str, start: str) -> Iterator[list[str]]:
    """The words of each command in ``script`` that starts with the word ``start``
    (continued lines joined), up to the first operator (``|``, ``<``, ``>``, ``&``, ...)."""
    for line in script.replace("\\\n", " ").splitlines():
        if start not in line:
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        words = list(lexer)
        if start not in words:
            continue
        words = words[words.index(start) + 1 :]
        end = next((i for i, w in enumerate(words) if set(w) <= set("();<>|&")), len(words))
        yield words[:end]


def _substituted(words: list[str], image: Path | None) -> list[str]:
    return [w.replace("$HERE/guest.bin", str(image)) if image else w for w in words]


def _entry(case: Case) -> Entry:
    return replace(load_entry(ENTRY), case=case)


@pytest.mark.parametrize("name", list(CASES))
def test_repro_sh_runs_the_engines_argv(
    name: str, tmp_path: Path, started: list[list[str]]
) -> None:
    case = CASES[name]
    image = tmp_path / f"guest-{case.guest.digest()}.bin" if case.guest else None
    source = _source_argv(case, tmp_path, started)
    destination = _destination_argv(case, tmp_path, started)
    script = repro_script(_entry(case), BINARY, BINARY)

    (resave,) = _shell_commands(script, "$QEMU_SRC")
    restores = list(_shell_commands(script, "$QEMU"))
    assert len(restores) == 2 and restores[0] == restores[1]  # the control and the pair
    stream = ["-incoming", "exec:cat $WORK/src.stream"]
    assert _substituted(resave, image) == _swap(
        source, monitor=["-monitor", "stdio"], serial=["-serial", "none"], incoming=[]
    )
    assert restores[0] == _swap(
        destination, monitor=["-monitor", "none"], serial=["-serial", "none"], incoming=stream
    )
    # The same words in the bug report (the files beside it, not in $HERE/$WORK).
    report = bug_report(_entry(case))
    (src_words,) = _shell_commands(report.replace("   $QEMU", "$QEMU"), "$QEMU_SRC")
    (dst_words,) = _shell_commands(report.replace("   $QEMU", "$QEMU"), "$QEMU_DST")
    assert [w.replace("file=guest.bin", f"file={image}") for w in src_words] == _substituted(
        resave, image
    )
    assert dst_words == [w.replace("$WORK/", "") for w in restores[0]]


def test_the_read_back_restore_runs_the_engines_argv(
    tmp_path: Path, started: list[list[str]]
) -> None:
    entry = load_entry(READ_BACK)
    destination = _destination_argv(entry.case, tmp_path, started)
    script = repro_script(entry, BINARY, BINARY)
    read_back = [w for w in _shell_commands(script, "$QEMU") if "-monitor" in w and "stdio" in w]
    assert read_back and read_back[0] == _swap(
        destination,
        monitor=["-monitor", "stdio"],
        serial=["-chardev", "pipe,id=ser,path=$WORK/$1", "-serial", "chardev:ser"],
        incoming=["-incoming", "exec:cat $WORK/src.stream"],
    )


def _options(words: list[str]) -> Counter[tuple[str, ...]]:
    """Each option with its value: a stateful script puts the parts in another order."""
    groups: list[list[str]] = []
    for word in words:
        if word.startswith("-") or not groups:
            groups.append([word])
        else:
            groups[-1].append(word)
    return Counter(tuple(g) for g in groups)


def test_the_stateful_repro_sh_starts_the_engines_processes(
    tmp_path: Path, started: list[list[str]]
) -> None:
    entry = load_sequence_entry(SEQUENCE)
    config = entry.sequence.config
    script = stateful_repro_script(entry.sequence, entry.guests).replace("\\\n", " ")
    (config_line,) = (line for line in script.splitlines() if line.startswith("CONFIG="))
    machine = qemu_command.machine_value(config)
    # $CONFIG is expanded unquoted: the shell splits its value at blanks.
    (assignment,) = shlex.split(config_line.replace("$MACHINE", machine))
    config_words = assignment.removeprefix("CONFIG=").split()
    (start_line,) = (line for line in script.splitlines() if line.startswith("  $q $CONFIG"))
    channels = shlex.split(start_line.split("$CONFIG", 1)[1].split('"$@"')[0])
    starts = {  # process name -> what its start line adds: the guest loader
        words[1]: words[3:]
        for words in map(shlex.split, (ln for ln in script.splitlines() if ln.startswith("start ")))
        if len(words) > 3
    }  # fmt: skip
    assert starts, "no start line with a guest"
    for step in entry.sequence.steps:
        if step.guest is None or f"p{step.process}" not in starts:
            continue
        guest = entry.guests[step.guest]
        process = LiveProcess(BINARY, config, tmp_path, guest)
        with pytest.raises(LaunchError, match="not started in a unit test"):
            asyncio.run(process.start())
        engine = started[-1][len(BINARY.command()) :]
        image = str(tmp_path / f"guest-{guest.digest()}.bin")
        words = [*config_words, *channels, *starts[f"p{step.process}"]]
        words = [w.replace(f"$HERE/guests/g{step.guest}.bin", image) for w in words]
        expected = _swap(
            engine,
            monitor=[
                "-chardev", "pipe,id=mon,path=$WORK/$n.mon", "-mon", "chardev=mon,mode=readline",
            ],
            serial=["-serial", "pipe:$WORK/$n.ser"],
            incoming=[],
        )  # fmt: skip
        assert _options(words) == _options(expected)


def test_argv_and_shell_words_are_the_same_words() -> None:
    case = CASES["options"]
    command = (
        qemu_command.source(case, ShellText("$HERE/guest.bin"))
        .with_channels(monitor=Channel.pipe(ShellText("$WORK/mon")), serial=NONE)
        .reading_stream(ShellText("$WORK/src.stream"))
        .traced(qemu_command.LOAD_TRACE_EVENTS, Path("/tmp/a b/trace.log"))
    )
    assert shlex.split(command.shell()) == command.argv()
    broken = command.shell(breaks=("serial",), indent="  ")
    assert "\\\n  -serial none" in broken
    assert shlex.split(broken.replace("\\\n", "")) == command.argv()
    assert "'vmstate_load*'" in command.shell()  # a glob is quoted for sh
    assert (
        command.shell(sections=("paused", "incoming")) == '-S -incoming "exec:cat $WORK/src.stream"'
    )
    with pytest.raises(ValueError, match="not sections"):
        command.shell(sections=("serail",))


def test_commands_of_each_process() -> None:
    case = CASES["guest, smp 4"]
    argv = qemu_command.base(case.config).argv()
    assert argv == [
        "-accel", "tcg", "-machine", "virt-9.2", "-cpu", "max", "-smp", "4", "-m", "128M",
        "-rtc", qemu_command.DETERMINISM_RTC, "-S", "-nodefaults", "-display", "none",
    ]  # fmt: skip
    assert qemu_command.destination(case).argv()[-2:] == ["-incoming", "defer"]
    long_lived = qemu_command.long_lived_source(case).argv()
    assert long_lived.count("-device") == 4 and not any("file=" in w for w in long_lived)
    source = qemu_command.source(case, Path("/g.bin")).argv()
    assert (
        source.count("-device") == 5 and "loader,file=/g.bin,addr=0x40100000,force-raw=on" in source
    )
    assert qemu_command.source(case, None).argv() == argv
    assert qemu_command.probe().argv() == [
        "-machine",
        "none",
        "-S",
        "-nodefaults",
        "-display",
        "none",
    ]
    harness = qemu_command.probe().with_harness(monitor_fd=7, serial_fd=8, qtest=Path("/q.sock"))
    assert harness.argv()[6:] == [
        "-chardev", "socket,id=mon0,fd=7", "-qmp", "chardev:mon0",
        "-chardev", "socket,id=ser0,fd=8", "-serial", "chardev:ser0",
        "-qtest", "unix:/q.sock", "-qtest-log", "/dev/null",
    ]  # fmt: skip
    assert QemuCommand(monitor=STDIO, headless=False).argv() == ["-monitor", "stdio"]


# -- the rule: a QEMU option is spelled in the command model and nowhere else ------------

#: Every QEMU option migfuzz uses (and the ones a next capability would): single dash.
QEMU_OPTIONS = qemu_command.OPTIONS | {
    "-netdev", "-nic", "-object", "-global", "-kernel", "-bios", "-icount", "-overcommit",
    "-name", "-uuid", "-boot", "-no-reboot", "-no-shutdown", "-action", "-vga", "-usb",
}  # fmt: skip
#: The module allowed to spell QEMU options: the model, and nothing else.
MODEL = ROOT / "fuzz/core/command.py"
#: Strings that name an option in prose (a help text) without passing it to QEMU.
NOT_OPTIONS = {
    ("cli.py", "-cpu properties"), ("cli.py", "-machine options"),
    ("cli.py", "  max -cpu properties: "),
}  # fmt: skip


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring constants of a module, its classes and functions (prose)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _spelled_options(path: Path) -> Iterator[tuple[int, str]]:
    """(line, option) for each QEMU option in a string constant of ``path`` (docstrings
    are prose and left out): any word of the constant, or of a constant part of an
    f-string, that is an option once quotes and brackets are stripped (``"-machine"``,
    ``" -nodefaults -display none"``, ``"a fresh process (-S,"``)."""
    tree = ast.parse(path.read_text(), str(path))
    prose = _docstrings(tree)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in prose or (path.name, node.value) in NOT_OPTIONS:
            continue
        for word in node.value.split():
            option = re.split(r"[=,]", word.strip("\"'()[].;:"), maxsplit=1)[0]
            if option in QEMU_OPTIONS:
                yield node.lineno, option


def test_no_qemu_option_is_spelled_outside_the_command_model() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {option}"
        for path in sorted((ROOT / "fuzz").rglob("*.py"))
        if path != MODEL
        for line, option in _spelled_options(path)
    ]
    assert not found, (
        "QEMU option spelled outside the command model (fuzz/core/command.py):\n" + "\n".join(found)
    )


def test_the_spelling_check_finds_an_option(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        '"""A docstring may say -machine."""\n'
        'A = ["-incoming", "defer"]\nB = "$QEMU -S -nodefaults"\nC = f" -m {A} -cpu"\n'
        'D = "run pytest"\nE = "--machine"\nF = f"{A}-machine"\nG = "process (-S,"\n'
        'H = "the -machine value"\n'
    )
    assert sorted(_spelled_options(module)) == [
        (2, "-incoming"), (3, "-S"), (3, "-nodefaults"), (4, "-cpu"), (4, "-m"),
        (7, "-machine"), (8, "-S"), (9, "-machine"),
    ]  # fmt: skip
