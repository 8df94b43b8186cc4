"""The stateful engine's processes, and the one-shot load it compares with.

A :class:`LiveProcess` is the stateful face of a :class:`~fuzz.run.long_lived.LongLivedQemu`
(the one long-lived wrapper, shared with the engine's pool): one QEMU of one version and
one configuration that stays up for a whole state-machine run and takes steps in any
order -- run its guest to the checkpoint, save snapshot ``sN``, load one (saved by itself,
by another process, or by another version), read back, reset. Every step leaves it paused.
It only maps the sequence's terms (snapshot numbers, private copies of the file a load
writes, a load's outcome) onto the wrapper.

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

from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.case import GuestProgram, MachineConfig
from fuzz.core.outcome import LoadOutcome
from fuzz.errors import MonitorError
from fuzz.run.long_lived import PROTOCOL, LongLivedQemu
from fuzz.stateful.model import snapshot_tag

CHECKPOINT, RESUME, DONE = PROTOCOL.checkpoint, PROTOCOL.resume, PROTOCOL.done
#: Seconds a snapshot step may take.
SNAPSHOT_TIMEOUT = 30.0


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
        self.guest = guest
        self.workdir = workdir
        self.timeout = timeout
        image = None
        if guest is not None:
            image = workdir / f"guest-{guest.digest()}.bin"
            image.write_bytes(guest.image)
        command = qemu_command.live_process(config, guest, image)
        self.qemu = LongLivedQemu(binary, command, workdir, console=True)
        self._loads = 0

    @property
    def alive(self) -> bool:
        """Whether QEMU is still running."""
        return self.qemu.alive

    async def wait_exit(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for QEMU to exit; its status, or None if it did not."""
        return await self.qemu.wait_exit(timeout)

    def stderr_tail(self, limit: int) -> str:
        """The last (about) ``limit`` bytes QEMU printed, whole lines."""
        return self.qemu.stderr_tail(limit)

    async def start(self) -> None:
        """Launch QEMU (paused).

        :raise LaunchError: it did not start.
        """
        await self.qemu.start()

    async def close(self) -> None:
        """End QEMU (QMP quit, then kill); safe to call twice."""
        await self.qemu.close()

    async def run_to_checkpoint(self) -> bool:
        """Let the guest run until it prints its checkpoint, then pause; whether it did."""
        return await self.qemu.run_to_checkpoint(self.timeout)

    async def save(self, snapshot: int, path: Path, template: Path) -> str | None:
        """Save the paused VM as snapshot ``snapshot`` into the new qcow2 ``path``.

        :return: QEMU's error, or None if it saved.
        """
        shutil.copyfile(template, path)
        return await self.qemu.save_snapshot(snapshot_tag(snapshot), path, SNAPSHOT_TIMEOUT)

    async def load(self, snapshot: int, path: Path, *, read_back: bool) -> LoadOutcome:
        """Load snapshot ``snapshot`` from (a copy of) ``path``; read back if asked."""
        self._loads += 1
        own = self.workdir / f"load-{id(self)}-{self._loads}.qcow2"
        shutil.copyfile(path, own)  # loading writes the qcow2
        try:
            try:
                error = await self.qemu.load_snapshot(snapshot_tag(snapshot), own, SNAPSHOT_TIMEOUT)
            except MonitorError:
                if await self.qemu.wait_exit(2.0) is not None:
                    return LoadOutcome("crashed", f"exit status {self.qemu.vm.returncode}")
                raise
            if error is not None:
                return LoadOutcome("refused", error)
            if not read_back:
                return LoadOutcome("completed")
            return LoadOutcome("completed", "", await self.read_back())
        finally:
            own.unlink(missing_ok=True)

    async def read_back(self) -> str:
        """Resume the guest, send it the resume byte, pause after its read-back (or a
        time-out); what it printed."""
        return await self.qemu.read_back(self.timeout)

    async def reset(self) -> bool:
        """``system_reset`` (still paused): its own guest, if any, is loaded again."""
        return await self.qemu.reset()


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
