"""Live QEMU processes for the stateful engine, and the one-shot load it compares with.

A :class:`LiveProcess` is one QEMU of one version and one configuration that stays up for
a whole state-machine run and takes steps in any order: run its guest to the checkpoint,
save a qcow2 internal snapshot, load one (saved by itself, by another process, or by
another version), read back, reset. Every step leaves it paused.

:func:`one_shot_load` is the reference: a new process started ``-S`` with no guest image
of its own that only loads the snapshot (and reads back). The stateful engine checks that
a process with a history loads a snapshot exactly as that one does.

Deliberately *no* :func:`fuzz.run.persistent.drop_stale_translations` here: a process that ran
other code before a load is what the engine is looking at.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from fuzz.core.binary import QemuBinary
from fuzz.core.case import GuestProgram, MachineConfig
from fuzz.core.command import QemuCommand, live_process
from fuzz.core.outcome import LoadOutcome
from fuzz.errors import MonitorError
from fuzz.run.machine import QemuMachine
from fuzz.stateful.model import hmp_error, load_commands, save_commands

#: What every guest prints, whichever guest it is (see :class:`~fuzz.core.case.GuestProgram`).
_PROTOCOL = GuestProgram(image=b"")
CHECKPOINT, RESUME, DONE = _PROTOCOL.checkpoint, _PROTOCOL.resume, _PROTOCOL.done


def process_command(
    config: MachineConfig, guest_image: Path | None, guest: GuestProgram | None
) -> QemuCommand:
    """A live process's QEMU command: paused, its guest loaded if any."""
    return live_process(config, guest, guest_image)


class LiveProcess:
    """One QEMU that takes the stateful engine's steps; always paused between them.

    :param binary: its version.
    :param config: the run's machine configuration.
    :param workdir: where its logs, guest image and snapshot copies go.
    :param guest: its own guest (loaded with ``-device loader``), or None.
    :param timeout: seconds a guest may take to reach its checkpoint or print its read-back.
    """

    def __init__(
        self, binary: QemuBinary, config: MachineConfig, workdir: Path,
        guest: GuestProgram | None, *, timeout: float = 3.0,
    ) -> None:  # fmt: skip
        self.binary = binary
        self.guest = guest
        self.workdir = workdir
        self.timeout = timeout
        image = None
        if guest is not None:
            image = workdir / f"guest-{guest.digest()}.bin"
            image.write_bytes(guest.image)
        self.vm = QemuMachine(binary, process_command(config, image, guest), workdir, console=True)
        self._loads = 0

    @property
    def alive(self) -> bool:
        """Whether QEMU is still running."""
        return self.vm.returncode is None

    async def wait_exit(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for QEMU to exit; its status, or None if it did not."""
        return await self.vm.wait_exit(timeout)

    def stderr_tail(self, limit: int) -> str:
        """The last (about) ``limit`` bytes QEMU printed, whole lines."""
        return self.vm.stderr_tail(limit)

    async def start(self) -> None:
        """Launch QEMU (paused).

        :raise LaunchError: it did not start.
        """
        await self.vm.launch()

    async def close(self) -> None:
        """End QEMU (QMP quit, then kill); safe to call twice."""
        await self.vm.shutdown(timeout=1.0)

    async def run_to_checkpoint(self) -> bool:
        """Let the guest run until it prints its checkpoint, then pause; whether it did."""
        start = len(self.vm.console_output)
        await self.vm.execute("cont")
        reached = await self.vm.wait_console(CHECKPOINT, self.timeout, start=start, give_up=DONE)
        await self.vm.execute("stop")
        return reached

    async def save(self, snapshot: int, path: Path, template: Path) -> str | None:
        """Save the paused VM as snapshot ``snapshot`` into the new qcow2 ``path``.

        :return: QEMU's error, or None if it saved.
        """
        shutil.copyfile(template, path)
        return await _hmp(self.vm, save_commands(snapshot, str(path)))

    async def load(self, snapshot: int, path: Path, *, read_back: bool) -> LoadOutcome:
        """Load snapshot ``snapshot`` from (a copy of) ``path``; read back if asked."""
        self._loads += 1
        own = self.workdir / f"load-{id(self)}-{self._loads}.qcow2"
        shutil.copyfile(path, own)  # loading writes the qcow2
        try:
            outcome = await _load(self.vm, snapshot, own, self._loads)
            if outcome.verdict == "completed" and read_back:
                transcript = await self.read_back()
                outcome = LoadOutcome(outcome.verdict, outcome.error, transcript)
            return outcome
        finally:
            own.unlink(missing_ok=True)

    async def read_back(self) -> str:
        """Resume the guest, send it the resume byte, pause after its read-back (or a
        time-out); what it printed."""
        start = len(self.vm.console_output)
        await self.vm.execute("cont")
        await self.vm.console_write(RESUME)
        await self.vm.wait_console(DONE, self.timeout, start=start)
        if self.alive:
            await self.vm.execute("stop")
        return bytes(self.vm.console_output[start:]).decode("latin-1")

    async def reset(self) -> bool:
        """``system_reset`` (still paused): its own guest, if any, is loaded again."""
        await self.vm.execute("system_reset")
        return True


async def _hmp(vm: QemuMachine, commands: list[str]) -> str | None:
    """Run a snapshot step's HMP lines; the first error, or None.

    After an error the last line (``drive_del``) still runs, so that no drive stays
    attached (a later ``loadvm`` would want the snapshot on it too).
    """
    for command in commands:
        answer = await vm.human(command, timeout=30.0)
        if (error := hmp_error(command, answer)) is not None:
            if command is not commands[-1] and not command.startswith("drive_add"):
                await vm.human(commands[-1])
            return f"{command.split()[0]}: {error}"
    return None


async def _load(vm: QemuMachine, snapshot: int, qcow2: Path, use: int) -> LoadOutcome:
    """The load steps on ``vm`` and how they ended (a QEMU that exits is ``crashed``)."""
    try:
        error = await _hmp(vm, load_commands(snapshot, str(qcow2), use))
    except MonitorError:
        if await vm.wait_exit(2.0) is not None:
            return LoadOutcome("crashed", f"exit status {vm.returncode}")
        raise
    return LoadOutcome("completed") if error is None else LoadOutcome("refused", error)


async def one_shot_load(
    binary: QemuBinary, config: MachineConfig, workdir: Path, snapshot: int, path: Path,
    *, read_back: bool, timeout: float = 3.0,
) -> LoadOutcome:  # fmt: skip
    """Load snapshot ``snapshot`` of ``path`` on a new ``-S`` process with no guest image
    of its own (and read back if asked): what a load gives without any history.

    :raise LaunchError: QEMU did not start.
    """
    process = LiveProcess(binary, config, workdir, None, timeout=timeout)
    try:
        await process.start()
        return await process.load(snapshot, path, read_back=read_back)
    finally:
        await asyncio.shield(process.close())
