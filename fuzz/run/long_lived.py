"""One QEMU kept up across steps, paused between them, and the one snapshot mechanism.

Both long-lived modes stand on this: the engine's pool (:mod:`fuzz.run.persistent`: a
source that saves guest after guest, destinations that load state after state) and the
stateful mode (:mod:`fuzz.stateful.steps`: processes that take steps in any order). A
:class:`LongLivedQemu` is one process's lifetime; what to do with it after a failure (retire
it, start another, judge it) is the caller's policy.

Snapshots are qcow2 internal snapshots saved and loaded with the HMP lines of
:func:`fuzz.core.command.snapshot_save_lines` and :func:`~fuzz.core.command.snapshot_load_lines`
(``drive_add``, ``savevm``/``loadvm``, ``drive_del``), sent through QMP's
``human-monitor-command``. They work the same in every version from 5.2 to 11.1, and a
stateful ``repro.sh`` types the same lines on a plain monitor, so what a reproducer runs is
what the engine ran.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.case import GuestProgram
from fuzz.core.command import QemuCommand
from fuzz.run.machine import QemuMachine

#: What every guest prints, whichever guest it is (see :class:`~fuzz.core.case.GuestProgram`).
PROTOCOL = GuestProgram(image=b"")
_QTEST_CHUNK = 32 * 1024


def hmp_error(command: str, answer: str) -> str | None:
    """The error in an HMP answer to ``command``, or None if it succeeded.

    ``drive_add`` answers ``OK``; ``savevm``, ``loadvm`` and ``drive_del`` answer nothing
    but warnings on success. QEMU 5.2 prints some errors without an ``Error:`` prefix, so
    any other non-blank line of a snapshot command is taken as its error.
    """
    lines = [ln.strip() for ln in answer.splitlines() if ln.strip()]
    if command.startswith("drive_add"):
        return None if lines == ["OK"] else (" ".join(lines) or "no answer")
    bad = [ln for ln in lines if not ln.lower().startswith("warning")]
    return " ".join(bad) or None


async def run_hmp_lines(vm: QemuMachine, lines: list[str], timeout: float) -> str | None:
    """Run a snapshot step's HMP lines; the first error (``savevm: ...``), or None.

    After an error the last line (``drive_del``) still runs, so that no drive stays
    attached (a later ``loadvm`` would want the snapshot on it too).

    :raise MonitorError: QEMU went away or did not answer in time.
    """
    for line in lines:
        answer = await vm.human(line, timeout=timeout)
        if (error := hmp_error(line, answer)) is not None:
            if line is not lines[-1] and not line.startswith("drive_add"):
                await vm.human(lines[-1], timeout=timeout)
            return f"{line.split()[0]}: {error}"
    return None


class LongLivedQemu:
    """One QEMU process that takes step after step; paused between them.

    :param binary: its version.
    :param command: its command line (:mod:`fuzz.core.command`'s builders).
    :param workdir: where its logs go.
    :param console: whether its UART is read (a guest prints there).
    :param qtest: whether it has a qtest channel (to write guest images into its RAM).
    :param start_timeout: seconds QEMU may take to start, or None for the default.
    """

    def __init__(
        self, binary: QemuBinary, command: QemuCommand, workdir: Path, *, console: bool,
        qtest: bool = False, start_timeout: float | None = None,
    ) -> None:  # fmt: skip
        self.binary = binary
        extra: dict[str, Any] = {} if start_timeout is None else {"start_timeout": start_timeout}
        self.vm = QemuMachine(binary, command, workdir, console=console, qtest=qtest, **extra)
        #: Where in the console output the last run or read-back began.
        self.mark = 0
        self._loads = 0

    @property
    def alive(self) -> bool:
        """Whether QEMU is running."""
        return self.vm.returncode is None

    async def start(self) -> None:
        """Launch QEMU (paused).

        :raise LaunchError: it did not start.
        """
        await self.vm.launch()

    async def close(self) -> None:
        """End QEMU (QMP quit, then kill); safe to call twice."""
        await self.vm.shutdown(timeout=1.0)

    async def wait_exit(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for QEMU to exit; its status, or None if it did not."""
        return await self.vm.wait_exit(timeout)

    def stderr_tail(self, limit: int) -> str:
        """The last (about) ``limit`` bytes QEMU printed, whole lines."""
        return self.vm.stderr_tail(limit)

    async def reset(self) -> bool:
        """``system_reset`` (still paused): a guest given with ``-device loader`` starts again."""
        await self.vm.execute("system_reset")
        return True

    async def write_guest(self, guest: GuestProgram) -> None:
        """Write ``guest``'s image into RAM at its load address, through qtest."""
        image = guest.image
        for at in range(0, len(image), _QTEST_CHUNK):
            chunk = image[at : at + _QTEST_CHUNK]
            encoded = base64.b64encode(chunk).decode()
            await self.vm.qtest(f"b64write {guest.load_address + at:#x} {len(chunk):#x} {encoded}")

    async def run_to_checkpoint(self, timeout: float, guest: GuestProgram = PROTOCOL) -> bool:
        """Let the guest run until it prints its checkpoint (or its end), then pause if QEMU
        is still up; whether it reached the checkpoint. What it printed:
        :meth:`console_since`."""
        self.mark = len(self.vm.console_output)
        await self.vm.execute("cont")
        reached = await self.vm.wait_console(
            guest.checkpoint, timeout, start=self.mark, give_up=guest.done
        )
        if self.alive:
            await self.vm.execute("stop")
        return reached

    async def read_back(self, timeout: float, guest: GuestProgram = PROTOCOL) -> str:
        """Resume the guest, send it the resume byte, pause after its read-back (or a
        time-out); what it printed."""
        self.mark = len(self.vm.console_output)
        await self.vm.execute("cont")
        await self.vm.console_write(guest.resume)
        await self.vm.wait_console(guest.done, timeout, start=self.mark)
        if self.alive:
            await self.vm.execute("stop")
        return self.console_since()

    def console_since(self) -> str:
        """What the guest printed since the last run or read-back began."""
        return bytes(self.vm.console_output[self.mark :]).decode("latin-1")

    async def save_snapshot(self, tag: str, path: Path, timeout: float) -> str | None:
        """Save the paused VM as internal snapshot ``tag`` of the qcow2 file ``path``.

        :return: QEMU's error, or None if it saved.
        :raise MonitorError: QEMU went away or did not answer in time.
        """
        lines = qemu_command.snapshot_save_lines(tag, str(path), f"d{tag}")
        return await run_hmp_lines(self.vm, lines, timeout)

    async def load_snapshot(self, tag: str, path: Path, timeout: float) -> str | None:
        """Load internal snapshot ``tag`` of ``path`` (which the load writes: give a copy).

        :return: QEMU's error, or None if it loaded.
        :raise MonitorError: QEMU went away or did not answer in time.
        """
        self._loads += 1  # drive names never repeat in one process
        lines = qemu_command.snapshot_load_lines(tag, str(path), f"l{self._loads}")
        return await run_hmp_lines(self.vm, lines, timeout)
