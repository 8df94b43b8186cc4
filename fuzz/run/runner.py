"""A case in, outcomes out: save on version A, restore on version B (and on A, the control).

The source is saved once and the same stream file is restored on every destination, so the
control (A -> A) and the pair (A -> B) load byte-identical input. Each step's ending is
classified as one :class:`~fuzz.core.outcome.Verdict`; harness failures (our own bugs, a broken
install) raise :class:`~fuzz.errors.HarnessError` instead and are never a verdict.

What a step produces besides its outcome is typed (:class:`SaveResult`, :class:`LoadResult`):
the source's stream and a destination's re-save are bytes, not files named by convention.
A destination re-saves right after the load completes, while the VM is still paused and
before the guest runs its read-back epilogue: the re-save is the state the destination
restored, not what the guest did afterwards.

Each step here starts a fresh QEMU (about 40 ms of CPU); :mod:`fuzz.run.persistent` provides
the same steps on long-lived processes (a destination behind the same
:class:`Destination` protocol).
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, GuestProgram
from fuzz.core.outcome import Stage, StepOutcome, Verdict, qemu_error_lines
from fuzz.core.settings import DEFAULT_TIMEOUTS, Timeouts
from fuzz.errors import LaunchError, MonitorError
from fuzz.events import Event, StepFinished, StepStarted
from fuzz.judge.sanitizer import find_report, without_sanitizer_lines
from fuzz.run.machine import QemuMachine

_ABORT_STATUSES = {134, -6}  # SIGABRT as exit status through a shell, or as a signal


def _noop(_event: Event) -> None:
    return None


_TRACE_PREFIX = re.compile(r"^\d+@[\d.]+:")  # QEMU <= 6 prefixes "pid@time:"


def load_path(trace_text: str) -> dict[str, str]:
    """Where loading stopped, from a ``vmstate_load*`` trace.

    :return: ``failed`` (the last ``vmstate_load_state_fail`` as "device reason") and
        ``last_field`` (the last field QEMU started to load, "section/sub:field"); either
        may be missing.
    """
    found: dict[str, str] = {}
    for raw in trace_text.splitlines():
        line = _TRACE_PREFIX.sub("", raw.strip())
        event, _, rest = line.partition(" ")
        if event == "vmstate_load_state_fail":
            found["failed"] = rest.strip()
        elif event == "vmstate_load_state_field":
            found["last_field"] = rest.split(" exists=")[0].strip()
    return found


def classify_exit(returncode: int | None) -> Verdict:
    """How a QEMU that exited during a step ended it: a signal or abort is a crash."""
    if returncode is not None and (returncode < 0 or returncode in _ABORT_STATUSES):
        return Verdict.CRASHED
    return Verdict.REFUSED


_MIGRATION_ENDS = ("completed", "failed", "cancelled")
#: The run state a QEMU is in while it saves (``migrate``) or loads (``migrate-incoming``).
_MIGRATING_STATE = {"migrate": "finish-migrate", "migrate-incoming": "inmigrate"}
#: How long a destination whose load failed may take to exit on its own.
_EXIT_AFTER_FAILED_LOAD = 2.0

#: No bandwidth limit: a paused VM's whole RAM then goes out in one pass, so two saves of
#: one state are the same bytes (with the default 128 MiB/s limit, where QEMU splits the
#: RAM into iterations depends on timing), and equal re-saves need no decoding.
_UNLIMITED_BANDWIDTH = 1 << 40


async def migrate(
    vm: QemuMachine, command: str, uri: str, timeout: float
) -> tuple[str, dict[str, Any]]:
    """Run ``migrate`` or ``migrate-incoming`` to ``uri`` and wait for its end.

    Waits for QEMU's ``MIGRATION`` event (the ``events`` capability, every version we
    run has it) rather than polling ``query-migrate``: a case makes several migrations,
    and each poll is a monitor round trip in both processes.

    :return: ("completed" | "failed" | "cancelled", ``query-migrate``'s answer), or
        ("exited", {}) if QEMU went away, or ("timeout", {}).
    :raise MonitorError: QEMU refused the command itself.
    """
    await vm.execute(
        "migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]}
    )
    if command == "migrate":
        await vm.execute("migrate-set-parameters", {"max-bandwidth": _UNLIMITED_BANDWIDTH})
    try:
        ended = await vm.execute_until(
            command, {"uri": uri}, event="MIGRATION",
            done=lambda d: d.get("status") in _MIGRATION_ENDS, timeout=timeout,
        )  # fmt: skip
    except TimeoutError:
        return "timeout", {}
    if ended is None:
        return "exited", {}
    status = str(ended.get("status"))
    if status == "completed":
        # QEMU emits the event a moment before it leaves the migration's run state, and
        # until then refuses ``cont`` (and a destination ``migrate``).
        await _left_run_state(vm, _MIGRATING_STATE[command], timeout)
        return status, {}
    if command == "migrate-incoming" and await vm.wait_exit(_EXIT_AFTER_FAILED_LOAD) is not None:
        # A failed load ends QEMU (exit-on-error) a moment after its event: report it as
        # the exit it is, whatever the timing, so a refusal always reads the same.
        return "exited", {}
    try:
        info = await vm.execute("query-migrate")
    except MonitorError:
        await vm.wait_exit(2.0)
        return "exited", {}
    return status, info if isinstance(info, dict) else {}


async def _left_run_state(vm: QemuMachine, state: str, timeout: float) -> None:
    """Wait until QEMU's run state is no longer ``state`` (or QEMU is gone)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and vm.returncode is None:
        status = await vm.execute("query-status")
        if not isinstance(status, dict) or status.get("status") != state:
            return
        await asyncio.sleep(0.001)


async def save_to(
    vm: QemuMachine, path: Path, timeout: float, *, file_uri: bool = False
) -> tuple[str, dict[str, Any]]:
    """Migrate the (stopped) VM into the file ``path``; the end as :func:`migrate`.

    :param file_uri: QEMU takes a ``file:`` URI (see ``RunSettings.file_uri_versions``).
    """
    if file_uri and _plain_path(path):
        return await migrate(vm, "migrate", f"file:{path}", timeout)
    return await migrate(vm, "migrate", f"exec:cat > {shlex.quote(str(path))}", timeout)


def load_uri(path: Path, *, file_uri: bool = False) -> str:
    """The ``migrate-incoming`` URI that reads the stream in ``path`` (a file or a fifo)."""
    if file_uri and _plain_path(path) and path.is_file():
        return f"file:{path}"
    return f"exec:cat {shlex.quote(str(path))}"


def _plain_path(path: Path) -> bool:
    """Whether a ``file:`` URI can name ``path``: QEMU reads options after a comma."""
    return "," not in str(path)


class StepRecorder:
    """Builds the :class:`StepOutcome` of one step: QEMU's messages, exit status, timing.

    Only what QEMU wrote on stderr since the recorder was made counts: a long-lived process
    keeps one stderr for many steps.
    """

    def __init__(self, vm: QemuMachine, stage: Stage, version: str) -> None:
        self.vm = vm
        self.stage = stage
        self.version = version
        self.started = time.monotonic()
        self.stderr_from = vm.stderr_size()

    def done(self, verdict: Verdict, extra: Sequence[str] = (), **details: Any) -> StepOutcome:
        """The outcome, with ``extra`` messages before QEMU's own error lines.

        A sanitizer report in stderr (a ``--sanitize`` build) is kept whole in
        ``details["sanitizer_report"]``, read in ``details["sanitizer"]``, and stands in
        the messages as one line instead of its dozens.
        """
        stderr = self.vm.stderr_since(self.stderr_from)
        report = find_report(stderr)
        if report is not None or self.vm.binary.sanitizers:
            stderr = without_sanitizer_lines(stderr, report)
        if report is not None:
            extra = (*extra, f"{report.signature_detail()} (sanitizer report)")
            details = {**details, "sanitizer": report.to_json(), "sanitizer_report": report.text}
        return StepOutcome(
            stage=self.stage, version=self.version, verdict=verdict,
            messages=(*extra, *qemu_error_lines(stderr)),
            returncode=self.vm.returncode, seconds=time.monotonic() - self.started,
            details={"argv": self.vm.argv, **details},
        )  # fmt: skip

    async def launch(self) -> StepOutcome | None:
        """Start QEMU; None if it is up, else the outcome (a signal is a crash)."""
        try:
            await self.vm.launch()
        except LaunchError as err:
            return self.done(Verdict.CRASHED if (err.returncode or 0) < 0 else Verdict.SETUP_ERROR)
        return None

    async def ended(self) -> StepOutcome | None:
        """After a monitor error: the outcome if QEMU has exited, else None (a harness fault)."""
        code = await self.vm.wait_exit(2.0)
        return None if code is None else self.done(classify_exit(code))


@dataclass(frozen=True)
class Snapshot:
    """A saved state held as the internal snapshot ``tag`` of the qcow2 file ``path``."""

    path: Path
    tag: str


@dataclass(frozen=True)
class SaveResult:
    """A save: how it ended and, if it completed, the stream or snapshot it wrote."""

    outcome: StepOutcome
    stream: bytes | None
    snapshot: Snapshot | None = None

    @property
    def state(self) -> bytes | Snapshot | None:
        """What a destination loads: the stream, else the snapshot; None if the save failed."""
        return self.stream if self.stream is not None else self.snapshot


@dataclass(frozen=True)
class LoadResult:
    """A restore: how it ended and, if asked for and possible, the re-saved state."""

    outcome: StepOutcome
    resave: bytes | None = None


class Destination(Protocol):
    """Something that restores streams for one configuration.

    A fresh-process destination starts one QEMU per :meth:`load`; a persistent one may keep
    a QEMU and reload it. Callers must not care which.
    """

    async def load(
        self, case: Case, state: bytes | Path | Snapshot, *, resave: bool = False
    ) -> LoadResult:
        """Restore ``state`` (a stream's bytes, a file or fifo to read it from, or a
        snapshot), optionally re-save it at once, then run the guest's epilogue."""
        ...


def _read_stream(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


class FreshSource:
    """Saves each case on a newly started QEMU of one version.

    :param file_uri: the binary's ``migrate`` takes a ``file:`` URI (see :func:`save_to`).
    """

    def __init__(
        self, binary: QemuBinary, workdir: Path, *, timeouts: Timeouts = DEFAULT_TIMEOUTS,
        emit: Callable[[Event], None] = _noop, file_uri: bool = False,
    ) -> None:  # fmt: skip
        self.binary = binary
        self.workdir = workdir
        self.timeouts = timeouts
        self.emit = emit
        self.file_uri = file_uri

    async def save(self, case: Case) -> SaveResult:
        """Start, run the guest to its checkpoint, stop, migrate to a stream, quit."""
        self.emit(StepStarted(stage=Stage.SAVE, version=self.binary.name))
        stream = self.workdir / f"save-{self.binary.name}.stream"
        image = None
        if case.guest is not None:
            image = self.workdir / f"guest-{case.guest.digest()}.bin"
            image.write_bytes(case.guest.image)
        vm = QemuMachine(
            self.binary, qemu_command.source(case, image), self.workdir,
            console=case.guest is not None, start_timeout=self.timeouts.start,
        )  # fmt: skip
        outcome = await self._save(vm, case, stream)
        self.emit(StepFinished(outcome=outcome))
        data = _read_stream(stream) if outcome.verdict is Verdict.COMPLETED else None
        stream.unlink(missing_ok=True)
        return SaveResult(outcome, data)

    async def _save(self, vm: QemuMachine, case: Case, stream: Path) -> StepOutcome:
        step = StepRecorder(vm, Stage.SAVE, self.binary.name)
        done = step.done
        if (failed := await step.launch()) is not None:
            return failed
        try:
            if case.guest is not None:
                await vm.execute("cont")
                reached = await vm.wait_console(
                    case.guest.checkpoint, self.timeouts.checkpoint, give_up=case.guest.done
                )
                console = bytes(vm.console_output).decode("latin-1")
                if not reached:
                    if vm.returncode is not None:
                        return done(classify_exit(vm.returncode), console=console)
                    return done(
                        Verdict.SETUP_ERROR,
                        [f"guest did not reach its checkpoint: {console[-200:]!r}"],
                        console=console,
                    )
                await vm.execute("stop")
            status, info = await save_to(vm, stream, self.timeouts.migrate, file_uri=self.file_uri)
            if status == "completed":
                console = bytes(vm.console_output).decode("latin-1")
                return done(Verdict.COMPLETED, **({"console": console} if case.guest else {}))
            if status == "timeout":
                await vm.kill()
                return done(Verdict.HUNG, ["save did not finish in time"])
            if status == "exited":
                return done(classify_exit(await vm.wait_exit(2.0)))
            error = str(info.get("error-desc", status))
            return done(Verdict.SETUP_ERROR, [f"save failed: {error}"])
        except MonitorError:
            if (ended := await step.ended()) is not None:
                return ended
            raise
        finally:
            await vm.shutdown()


class FreshDestination:
    """Restores each stream on a newly started QEMU of one version.

    With ``trace_load`` the destination traces its load path (``-trace vmstate_load*``);
    a load that does not complete then records where it stopped in ``details["load_path"]``.
    Only for binaries whose probe says tracing works: a build without a trace backend would
    refuse the option. ``file_uri``: the binary's migrations take a ``file:`` URI.
    """

    def __init__(
        self, binary: QemuBinary, workdir: Path, *, timeouts: Timeouts = DEFAULT_TIMEOUTS,
        emit: Callable[[Event], None] = _noop, trace_load: bool = False,
        file_uri: bool = False,
    ) -> None:  # fmt: skip
        self.binary = binary
        self.workdir = workdir
        self.timeouts = timeouts
        self.emit = emit
        self.trace_load = trace_load
        self.file_uri = file_uri

    async def load(
        self, case: Case, stream: bytes | Path | Snapshot, *, resave: bool = False
    ) -> LoadResult:
        """Start with ``-incoming defer``, ``migrate-incoming`` the stream, classify the end.

        :param stream: the stream's bytes, or a file (or fifo) QEMU reads it from.
        :param resave: save a completed load again at once, still paused, into
            :attr:`LoadResult.resave`.
        """
        if isinstance(stream, Snapshot):
            raise TypeError("a fresh destination restores streams, not snapshots")
        self.emit(StepStarted(stage=Stage.LOAD, version=self.binary.name))
        if isinstance(stream, Path):
            stream_path, ours = stream, False
        else:
            stream_path, ours = self.workdir / f"load-{self.binary.name}.stream", True
            stream_path.write_bytes(stream)
        resave_path = self.workdir / f"resave-{self.binary.name}.stream"
        command = qemu_command.destination(case)
        trace_file = self.workdir / f"load-trace-{self.binary.name}.log"
        if self.trace_load:
            command = command.traced(qemu_command.LOAD_TRACE_EVENTS, trace_file)
        vm = QemuMachine(
            self.binary, command, self.workdir,
            console=case.guest is not None, start_timeout=self.timeouts.start,
        )  # fmt: skip
        try:
            outcome = await self._load(vm, case, stream_path, resave_path if resave else None)
            if self.trace_load and outcome.verdict is not Verdict.COMPLETED and trace_file.exists():
                outcome.details["load_path"] = load_path(trace_file.read_text(errors="replace"))
            resaved = None
            if resave and outcome.details.get("resave") == "completed":
                resaved = _read_stream(resave_path)
        finally:
            for path in (stream_path if ours else None, resave_path, trace_file):
                if path is not None:
                    path.unlink(missing_ok=True)
        self.emit(StepFinished(outcome=outcome))
        return LoadResult(outcome, resaved)

    async def _load(
        self, vm: QemuMachine, case: Case, stream: Path, resave_to: Path | None
    ) -> StepOutcome:
        step = StepRecorder(vm, Stage.LOAD, self.binary.name)
        done = step.done
        if (failed := await step.launch()) is not None:
            return failed
        try:
            uri = load_uri(stream, file_uri=self.file_uri)
            status, info = await migrate(vm, "migrate-incoming", uri, self.timeouts.migrate)
            if status == "timeout":
                await vm.kill()
                return done(Verdict.HUNG, ["restore did not finish in time"])
            if status == "exited":
                return done(classify_exit(await vm.wait_exit(2.0)))
            if status != "completed":
                # QEMU may stay up after a failed load (exit-on-error=off); still a refusal.
                return done(Verdict.REFUSED, [str(info.get("error-desc", f"migration {status}"))])
            details: dict[str, Any] = {}
            if resave_to is not None:
                # Still paused (-S): the re-save is exactly the state that was restored.
                resaved, _ = await save_to(
                    vm, resave_to, self.timeouts.migrate, file_uri=self.file_uri
                )
                details["resave"] = resaved
            if case.guest is not None and vm.returncode is None:
                transcript = await self._transcript(vm, case.guest)
                details["transcript"] = transcript
                details["transcript_complete"] = case.guest.done.decode("latin-1") in transcript
            if vm.returncode is not None:
                return done(classify_exit(vm.returncode), **details)
            return done(Verdict.COMPLETED, **details)
        except MonitorError:
            if (ended := await step.ended()) is not None:
                return ended
            raise
        finally:
            await vm.shutdown()

    async def _transcript(self, vm: QemuMachine, guest: GuestProgram) -> str:
        return await read_transcript(vm, guest, self.timeouts.transcript)


async def read_transcript(vm: QemuMachine, guest: GuestProgram, timeout: float) -> str:
    """Resume the guest after a restore and collect what its epilogue prints."""
    start = len(vm.console_output)
    await vm.execute("cont")
    await vm.console_write(guest.resume)
    await vm.wait_console(guest.done, timeout, start=start)
    return bytes(vm.console_output[start:]).decode("latin-1")
