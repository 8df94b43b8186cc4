"""The one snapshot mechanism (fuzz.run.long_lived): what a long-lived process sends is what
a stateful ``repro.sh`` types, and a step's error is read from the answers as QEMU gives them.

The process's monitor is replaced by a recorder of its HMP lines (no QEMU runs here).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.case import MachineConfig
from fuzz.run.long_lived import LongLivedQemu, hmp_error
from fuzz.stateful.model import load_commands, save_commands

BINARY = QemuBinary("11.1", Path("/usr/bin/false"), "test")


class Monitor:
    """Answers HMP lines from a script (line prefix -> answer), recording what it was sent."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.sent: list[str] = []

    async def human(self, line: str, *, timeout: float = 10.0) -> str:
        self.sent.append(line)
        return next((a for prefix, a in self.answers.items() if line.startswith(prefix)), "")


def _process(tmp_path: Path, answers: dict[str, str]) -> tuple[LongLivedQemu, Monitor]:
    command = qemu_command.base(MachineConfig("virt", "cortex-a57"))
    qemu = LongLivedQemu(BINARY, command, tmp_path, console=False)
    monitor = Monitor({"drive_add": "OK\r\n", **answers})
    qemu.vm.human = monitor.human  # type: ignore[method-assign]
    return qemu, monitor


def test_a_save_sends_the_stateful_reproducers_lines(tmp_path: Path) -> None:
    qemu, monitor = _process(tmp_path, {})
    path = tmp_path / "s3.qcow2"
    assert asyncio.run(qemu.save_snapshot("s3", path, 5.0)) is None
    assert monitor.sent == save_commands(3, str(path))


def test_loads_send_the_reproducers_lines_with_drive_names_that_never_repeat(
    tmp_path: Path,
) -> None:
    qemu, monitor = _process(tmp_path, {})
    path = tmp_path / "copy.qcow2"
    for _ in range(2):
        assert asyncio.run(qemu.load_snapshot("s0", path, 5.0)) is None
    assert monitor.sent == [*load_commands(0, str(path), 1), *load_commands(0, str(path), 2)]


def test_a_refused_load_is_named_and_its_drive_still_removed(tmp_path: Path) -> None:
    error = "Error: Missing section footer for cpu"
    qemu, monitor = _process(tmp_path, {"loadvm": error})
    path = tmp_path / "copy.qcow2"
    assert asyncio.run(qemu.load_snapshot("s1", path, 5.0)) == f"loadvm: {error}"
    assert monitor.sent[-1] == "drive_del l1"


def test_a_drive_that_cannot_be_added_stops_the_step_at_once(tmp_path: Path) -> None:
    qemu, monitor = _process(tmp_path, {"drive_add": "Could not open 'x.qcow2'"})
    path = tmp_path / "x.qcow2"
    assert asyncio.run(qemu.save_snapshot("s0", path, 5.0)) == "drive_add: Could not open 'x.qcow2'"
    assert len(monitor.sent) == 1


@pytest.mark.parametrize(
    ("line", "answer", "error"),
    [
        ("drive_add 0 if=none,id=x,file=f", "OK\r\n", None),
        ("drive_add 0 if=none,id=x,file=f", "Could not open", "Could not open"),
        ("loadvm s0", "", None),
        ("loadvm s0", "warning: something\r\n", None),
        ("loadvm s0", "Error: Device has no snapshot", "Error: Device has no snapshot"),
        ("savevm s0", "Device 'd' is writable but does not support snapshots", "Device 'd' is"),
    ],
)
def test_hmp_answers_read_as_qemu_gives_them(line: str, answer: str, error: str | None) -> None:
    found = hmp_error(line, answer)
    assert (found is None) if error is None else (found is not None and found.startswith(error))
