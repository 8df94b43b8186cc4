"""One class owns one QEMU process: launch, QMP, console, shutdown, cleanup.

This is the only module in migfuzz that starts a process. Every process it starts is
reaped on every path -- a normal return, an exception, a time-out, task cancellation
(Ctrl-C) -- and, as a backstop for a migfuzz that is itself killed with SIGKILL, the child
is started with ``PR_SET_PDEATHSIG(SIGKILL)`` so the kernel ends it with us.

The monitor and the serial console are ``socketpair()`` ends passed to QEMU by file
descriptor (``-chardev socket,fd=N``): no socket file to leak, no connect polling, and a
QEMU that dies during start-up shows up as an end-of-file at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from qemu.qmp import Message, QMPClient
from qemu.qmp.error import QMPError

from fuzz.core.binary import QemuBinary
from fuzz.core.command import QemuCommand, raw
from fuzz.errors import LaunchError, MonitorError

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

_PR_SET_PDEATHSIG = 1
_STDERR_TAIL = 32000


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel to SIGKILL us when migfuzz dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@functools.cache
def _pdeathsig_wrapper() -> tuple[str, ...]:
    """A command prefix that makes the kernel SIGKILL QEMU when migfuzz dies, if the
    system has one: util-linux's ``setpriv --pdeathsig`` (2.33+), which sets it and execs.

    Why not only :func:`_die_with_parent`: a ``preexec_fn`` makes Python fork its whole
    address space for every QEMU (measured: ~9 ms of CPU per start with a worker's 150 MB,
    against ~1.7 ms through ``setpriv``, which lets it use ``vfork``); a case starts up
    to three QEMUs.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return ()
    try:
        helptext = subprocess.run(
            [setpriv, "--help"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return (setpriv, "--pdeathsig", "KILL") if "--pdeathsig" in helptext else ()


class _QMPClient(QMPClient):
    """A QMP client that formats a message for its debug log only when that log is on.

    ``qemu.qmp`` logs every message it sends and receives at debug level, turning each into
    indented JSON first whether or not the log is enabled: a tenth of migfuzz's own CPU
    time per case went there. Its two message hooks are meant for subclasses.
    """

    def _cb_outbound(self, msg: Message) -> Message:
        return super()._cb_outbound(msg) if self.logger.isEnabledFor(logging.DEBUG) else msg

    def _cb_inbound(self, msg: Message) -> Message:
        return super()._cb_inbound(msg) if self.logger.isEnabledFor(logging.DEBUG) else msg


class QemuMachine:
    """One QEMU process, from launch to reaped exit.

    Use as an async context manager::

        async with QemuMachine(binary, qemu_command.probe(), workdir) as vm:
            await vm.execute("query-status")

    ``command`` is the :class:`~fuzz.core.command.QemuCommand` to start (machine, cpu, ...);
    the class fills in its harness channels: the QMP monitor and, with ``console=True``, a
    serial port whose output accumulates in :attr:`console_output`.

    :param binary: the QEMU version to run.
    :param command: what to start; a list of QEMU arguments is taken as it is (for
        callers outside ``fuzz/``).
    :param workdir: a private folder for this process's logs; it must exist.
    :param console: whether to attach the first serial port to a socket we read.
    :param qtest: whether to attach a qtest channel (alongside TCG), through which
        :meth:`qtest` writes guest memory: how a long-lived source gets each new guest.
    :param start_timeout: seconds QEMU may take to bring up its monitor.
    """

    def __init__(
        self,
        binary: QemuBinary,
        command: QemuCommand | Sequence[str],
        workdir: Path,
        *,
        console: bool = False,
        qtest: bool = False,
        start_timeout: float = 20.0,
    ) -> None:
        self.binary = binary
        self.command = command if isinstance(command, QemuCommand) else raw(command)
        self.workdir = workdir
        self.start_timeout = start_timeout
        self.want_console = console
        self.want_qtest = qtest
        self._qtest_sock: socket.socket | None = None
        self._qtest_listener: socket.socket | None = None
        self._qtest_buffer = b""
        self.qmp = _QMPClient(f"qemu-{binary.name}")
        self.console_output = bytearray()
        self.console_changed = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_path = workdir / f"qemu-{binary.name}-{os.getpid()}-{id(self)}.stderr"
        self._console_sock: socket.socket | None = None
        self._console_task: asyncio.Task[None] | None = None
        self.argv: list[str] = []

    # -- life cycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.launch()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    def _channels(self) -> tuple[socket.socket, list[socket.socket], QemuCommand]:
        """Socket pairs for monitor, console and qtest: (our monitor end, QEMU's ends, the
        command with them)."""
        mon_ours, mon_theirs = socket.socketpair()
        theirs = [mon_theirs]
        serial_fd = None
        if self.want_console:
            self._console_sock, con_theirs = socket.socketpair()
            theirs.append(con_theirs)
            serial_fd = con_theirs.fileno()
        qtest = None
        if self.want_qtest:
            # Not '-qtest chardev:ID' on a passed fd: QEMU 7.x aborts on that (its qtest
            # server looks the chardev up by the name "qtest", not by ID). A socket that
            # QEMU connects to works in every version; it is accepted after the handshake.
            path = self.workdir / f"qtest-{os.getpid()}-{id(self)}.sock"
            path.unlink(missing_ok=True)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(str(path))
            listener.listen(1)
            self._qtest_listener = listener
            qtest = path
        command = self.command.with_harness(
            monitor_fd=mon_theirs.fileno(), serial_fd=serial_fd, qtest=qtest
        )
        return mon_ours, theirs, command

    async def _accept_qtest(self) -> None:
        """Take QEMU's qtest connection (made while it started) off the listening socket."""
        listener = self._qtest_listener
        if listener is None:
            return
        try:
            listener.setblocking(False)
            loop = asyncio.get_running_loop()
            conn, _ = await asyncio.wait_for(loop.sock_accept(listener), self.start_timeout)
            self._qtest_sock = conn
        finally:
            self._drop_qtest_listener()

    def _drop_qtest_listener(self) -> None:
        listener, self._qtest_listener = self._qtest_listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                Path(listener.getsockname()).unlink(missing_ok=True)
            listener.close()

    async def launch(self) -> None:
        """Start QEMU and complete the QMP handshake.

        :raise LaunchError: QEMU exited or did not greet within ``start_timeout``; the
            error carries the command line, exit code and stderr tail.
        """
        mon_ours, theirs, command = self._channels()
        pass_fds = [sock.fileno() for sock in theirs]
        self.argv = [*self.binary.command(), *command.argv()]
        logger.debug("launching %s", " ".join(self.argv))
        try:
            wrapper = _pdeathsig_wrapper()
            with open(self._stderr_path, "wb") as stderr:
                spawn = asyncio.ensure_future(
                    asyncio.create_subprocess_exec(
                        *wrapper,
                        *self.argv,
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=stderr,
                        stderr=stderr,
                        pass_fds=pass_fds,
                        env=self.binary.environment(),
                        preexec_fn=None if wrapper else _die_with_parent,
                        start_new_session=True,
                    )
                )
                try:
                    self._proc = await asyncio.shield(spawn)
                except asyncio.CancelledError:
                    # The fork may already have happened: finish it so the child can be reaped.
                    with contextlib.suppress(OSError):
                        self._proc = await spawn
                    raise
        except OSError as err:
            mon_ours.close()
            await self._close_channels()
            raise LaunchError(
                f"cannot start QEMU {self.binary.name}: {err}",
                argv=self.argv, returncode=None, stderr_tail="",
            ) from err  # fmt: skip
        except BaseException:
            mon_ours.close()
            await self.kill()
            raise
        finally:
            for sock in theirs:
                sock.close()
        if self._console_sock is not None:
            self._console_task = asyncio.create_task(self._read_console(self._console_sock))
        try:
            await asyncio.wait_for(self.qmp.connect(mon_ours), self.start_timeout)
            await self._accept_qtest()
        except (QMPError, OSError, EOFError, TimeoutError) as err:
            mon_ours.close()
            returncode = await self._reap(grace=2.0)
            await self._close_channels()
            raise LaunchError(
                f"QEMU {self.binary.name} did not start: {self.stderr_tail().strip() or err!r}",
                argv=self.argv, returncode=returncode, stderr_tail=self.stderr_tail(),
            ) from err  # fmt: skip
        except BaseException:
            # Cancellation (Ctrl-C) mid-handshake: nothing may outlive us.
            mon_ours.close()
            await self.kill()
            raise

    async def shutdown(self, *, timeout: float = 3.0) -> int | None:
        """End the process: QMP ``quit``, then SIGKILL after ``timeout``; always clean up.

        Safe to call more than once and on a process that already exited. Cancellation
        during shutdown still kills and reaps the process before it propagates.

        :return: the exit status (negative for a signal), or None if it never started.
        """
        try:
            if self._proc is not None and self._proc.returncode is None and self.qmp_connected:
                with contextlib.suppress(QMPError, OSError, EOFError, TimeoutError):
                    await asyncio.wait_for(self.qmp.execute("quit"), timeout)
            return await self._reap(grace=timeout)
        finally:
            await self._close_channels()

    async def kill(self) -> int | None:
        """SIGKILL the process now and reap it; returns its exit status."""
        try:
            return await self._reap(grace=0.0)
        finally:
            await self._close_channels()

    async def _reap(self, *, grace: float) -> int | None:
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None and grace > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.shield(asyncio.wait_for(proc.wait(), grace))
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            # Shielded: a second Ctrl-C must not leave a zombie or a live QEMU behind.
            await asyncio.shield(proc.wait())
        return proc.returncode

    async def _close_channels(self) -> None:
        with contextlib.suppress(QMPError, OSError, EOFError):
            await self.qmp.disconnect()
        if self._console_task is not None:
            self._console_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._console_task
            self._console_task = None
        if self._console_sock is not None:
            self._console_sock.close()
            self._console_sock = None
        if self._qtest_sock is not None:
            self._qtest_sock.close()
            self._qtest_sock = None
        self._drop_qtest_listener()

    # -- state ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The QEMU process id, while it has one."""
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The exit status once QEMU has exited (negative: killed by that signal)."""
        return None if self._proc is None else self._proc.returncode

    @property
    def qmp_connected(self) -> bool:
        """Whether the monitor session is up."""
        return self.qmp.runstate.name == "RUNNING"

    def stderr_size(self) -> int:
        """How many bytes QEMU has written on stdout/stderr so far."""
        try:
            return self._stderr_path.stat().st_size
        except OSError:
            return 0

    def stderr_since(self, offset: int, limit: int = _STDERR_TAIL) -> str:
        """What QEMU wrote after byte ``offset``: at most about ``limit`` bytes, whole lines."""
        try:
            with open(self._stderr_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return ""
        if len(data) > limit:
            data = data[-limit:]
            data = data[data.find(b"\n") + 1 :]  # never start inside a line
        return data.decode("utf-8", "replace")

    def stderr_tail(self, limit: int = _STDERR_TAIL) -> str:
        """What QEMU wrote on stdout/stderr: at most about ``limit`` bytes, whole lines only."""
        return self.stderr_since(0, limit)

    async def wait_exit(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for QEMU to exit on its own; None if it did not."""
        if self._proc is None:
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._proc.wait()), timeout)
        return self._proc.returncode

    # -- monitor ----------------------------------------------------------------------

    async def execute(
        self, cmd: str, args: dict[str, object] | None = None, *, timeout: float = 10.0
    ) -> object:
        """Run one QMP command and return its result.

        :raise MonitorError: QEMU answered with an error, went away, or did not answer in time.
        """
        try:
            # ``timeout()``, not ``wait_for()``: no task per command (a case sends dozens).
            async with asyncio.timeout(timeout):
                return await self.qmp.execute(cmd, args)
        except TimeoutError as err:
            raise MonitorError(
                f"QEMU {self.binary.name}: '{cmd}' got no answer in {timeout} s"
            ) from err
        except (QMPError, OSError, EOFError) as err:
            raise MonitorError(f"QEMU {self.binary.name}: '{cmd}' failed: {err}") from err

    async def execute_until(
        self, cmd: str, args: dict[str, object] | None, *, event: str,
        done: Callable[[dict[str, Any]], bool], timeout: float,
    ) -> dict[str, Any] | None:  # fmt: skip
        """Run a QMP command, then wait for the ``event`` whose data ``done`` accepts.

        Event-driven, so a wait costs no polling round trips: the listener is in place
        before the command is sent, so no event can be missed.

        :return: that event's data, or None if QEMU exited first.
        :raise MonitorError: the command failed.
        :raise TimeoutError: no such event came in ``timeout`` seconds.
        """
        if self._proc is None:
            return None
        with self.qmp.listener(event) as listener:
            await self.execute(cmd, args, timeout=timeout)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            exited = asyncio.ensure_future(self._proc.wait())
            try:
                while True:
                    got = asyncio.ensure_future(listener.get())
                    finished, _ = await asyncio.wait(
                        (got, exited), timeout=max(0.0, deadline - loop.time()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )  # fmt: skip
                    if got not in finished:
                        got.cancel()
                        if exited in finished:
                            return None
                        raise TimeoutError(f"no {event} after '{cmd}' in {timeout} s")
                    data = got.result().get("data", {})
                    if isinstance(data, dict) and done(data):
                        return data
            finally:
                exited.cancel()

    async def human(self, command_line: str, *, timeout: float = 10.0) -> str:
        """Run an HMP command through QMP and return its text output."""
        out = await self.execute(
            "human-monitor-command", {"command-line": command_line}, timeout=timeout
        )
        return str(out)

    # -- qtest ------------------------------------------------------------------------

    async def qtest(self, line: str, *, timeout: float = 10.0) -> str:
        """Send one qtest command (e.g. ``b64write ADDR SIZE DATA``) and return its answer.

        :raise MonitorError: no qtest channel, QEMU went away, or it answered ``FAIL``.
        """
        sock = self._qtest_sock
        if sock is None:
            raise MonitorError("this machine was launched without a qtest channel")
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        try:
            async with asyncio.timeout(timeout):
                await loop.sock_sendall(sock, line.encode() + b"\n")
            while True:
                while b"\n" not in self._qtest_buffer:
                    async with asyncio.timeout(timeout):
                        data = await loop.sock_recv(sock, 65536)
                    if not data:
                        raise MonitorError(f"QEMU {self.binary.name}: qtest channel closed")
                    self._qtest_buffer += data
                answer, _, self._qtest_buffer = self._qtest_buffer.partition(b"\n")
                text = answer.decode("latin-1").strip()
                if not text.startswith("IRQ"):
                    break
        except (OSError, TimeoutError) as err:
            raise MonitorError(
                f"QEMU {self.binary.name}: qtest '{line[:40]}' failed: {err!r}"
            ) from err
        if not text.startswith("OK"):
            raise MonitorError(f"QEMU {self.binary.name}: qtest '{line[:40]}' answered {text!r}")
        return text

    # -- console ----------------------------------------------------------------------

    async def _read_console(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        while True:
            try:
                data = await loop.sock_recv(sock, 65536)
            except OSError:
                return
            if not data:
                return
            self.console_output += data
            self.console_changed.set()

    async def console_write(self, data: bytes) -> None:
        """Send bytes to the guest's first serial port."""
        if self._console_sock is None:
            raise MonitorError("this machine was launched without a console")
        await asyncio.get_running_loop().sock_sendall(self._console_sock, data)

    async def wait_console(
        self, marker: bytes, timeout: float, *, start: int = 0, give_up: bytes | None = None
    ) -> bool:
        """Wait until ``marker`` appears in the console output after byte ``start``.

        :param give_up: stop waiting early when this appears instead (e.g. the guest's
            "done" marker after it reported an exception).
        :return: True if ``marker`` appeared; False on time-out, on ``give_up``, or if QEMU
            exited first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while marker not in self.console_output[start:]:
            remaining = deadline - loop.time()
            exited = self._proc is not None and self._proc.returncode is not None
            gave_up = give_up is not None and give_up in self.console_output[start:]
            if remaining <= 0 or exited or gave_up:
                return marker in self.console_output[start:]
            self.console_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.5)):
                    await self.console_changed.wait()
        return True


def private_workdir(prefix: str = "migfuzz-") -> tempfile.TemporaryDirectory[str]:
    """A fresh 0700 temp folder for one case: sockets, streams and logs live there."""
    return tempfile.TemporaryDirectory(prefix=prefix)
