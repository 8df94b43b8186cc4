"""Long-lived QEMU processes: a source that saves guest after guest, destinations that load
state after state.

Starting a QEMU costs about 40 ms of CPU, more than a save or a load. A process is
therefore kept per (version, configuration) and reused:

* :class:`LongLivedSource` is reset (``system_reset``), gets the next guest image through a
  qtest channel (QEMU's test protocol works alongside TCG), runs it to its checkpoint and
  saves it as a qcow2 internal snapshot (HMP ``savevm``, :mod:`fuzz.run.long_lived`).
  QEMU 11.1 refuses a second ``migrate`` from one process, while snapshots repeat.
* :class:`LongLivedDestination` loads each snapshot (HMP ``loadvm``),
  which resets the machine and then restores it as an incoming migration would, re-saves
  it at once with ``migrate`` when asked, and runs the guest's epilogue.

QEMU promises nothing about a process after a load that did not complete (measured: the
next valid load then fails with -22, or QEMU aborts in ``cpu_pre_load``). So a process is
retired after any step that did not complete, after :data:`MAX_USES` steps, and on
anything unexpected; the :class:`ProcessPool` then starts a fresh one. Outcomes of these
processes are only a fast first look: :mod:`fuzz.run.engine` confirms every case they do not
pass cleanly on fresh processes, and samples clean ones too.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, GuestProgram, MachineConfig
from fuzz.core.command import QemuCommand
from fuzz.core.outcome import Stage, StepOutcome, Verdict
from fuzz.core.settings import DEFAULT_TIMEOUTS, RunSettings, Timeouts
from fuzz.errors import MonitorError
from fuzz.events import Event, StepFinished, StepStarted
from fuzz.run.long_lived import LongLivedQemu
from fuzz.run.machine import QemuMachine
from fuzz.run.runner import (
    LoadResult,
    SaveResult,
    Snapshot,
    StepRecorder,
    classify_exit,
    read_transcript,
    save_to,
)

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: Steps a process serves before it is replaced anyway (bounds what a leak could do).
MAX_USES = 200
#: A read-back takes milliseconds; a long-lived destination waits this long at most (a case
#: it does not finish is run again on fresh processes, with the full time-out).
LONG_LIVED_TRANSCRIPT_TIMEOUT = 2.0
_NODE = "migfuzz-state"
_TAG = "migfuzz"
_job_ids = itertools.count()


def _noop(_event: Event) -> None:
    return None


async def _job(vm: QemuMachine, command: str, args: dict[str, Any], timeout: float) -> str | None:
    """Run a QMP job to its end; its error text, or None if it succeeded.

    Waits for the job's ``concluded`` status event (no polling). A job that fails or is
    cancelled passes through ``aborting`` on its way (QEMU's job state machine); only
    then is its error read back (``query-jobs``), which saves a round trip per job.

    :raise MonitorError: QEMU went away or the job did not conclude in time.
    """
    job_id = f"migfuzz-{next(_job_ids)}"
    statuses: list[object] = []

    def concluded(data: dict[str, Any]) -> bool:
        if data.get("id") != job_id:
            return False
        statuses.append(data.get("status"))
        return data.get("status") == "concluded"

    try:
        ended = await vm.execute_until(
            command, {"job-id": job_id, **args}, event="JOB_STATUS_CHANGE", done=concluded,
            timeout=timeout,
        )  # fmt: skip
    except TimeoutError:
        raise MonitorError(
            f"QEMU {vm.binary.name}: {command} did not conclude in {timeout} s"
        ) from None
    if ended is None:
        raise MonitorError(f"QEMU {vm.binary.name} exited during {command}")
    error = None
    if "aborting" in statuses:
        jobs = await vm.execute("query-jobs")
        mine = [j for j in jobs if j.get("id") == job_id] if isinstance(jobs, list) else []
        error = mine[0].get("error") if mine else None
    await vm.execute("job-dismiss", {"id": job_id})
    return None if error is None else str(error)


async def make_empty_qcow2(vm: QemuMachine, path: Path, timeout: float = 10.0) -> None:
    """Create an empty qcow2 file at ``path`` with QEMU's own ``blockdev-create``.

    (``qemu-img`` is not part of ``qemu-system-arm``.) A snapshot's saved state lives past
    the virtual disk's end, so 1 MiB of disk is plenty.

    :raise MonitorError: QEMU could not create it.
    """
    path.write_bytes(b"")
    proto = f"{_NODE}-proto"
    for args in (
        {"options": {"driver": "file", "filename": str(path), "size": 0}},
        None,
        {"options": {"driver": "qcow2", "file": proto, "size": 1 << 20}},
    ):
        if args is None:
            await vm.execute(
                "blockdev-add", {"driver": "file", "node-name": proto, "filename": str(path)}
            )
            continue
        if (error := await _job(vm, "blockdev-create", args, timeout)) is not None:
            raise MonitorError(f"QEMU {vm.binary.name}: cannot create {path.name}: {error}")
    await vm.execute("blockdev-del", {"node-name": proto})


async def drop_stale_translations(vm: QemuMachine, guest: GuestProgram) -> None:
    """After a snapshot load, make TCG forget code it translated from the guest image.

    A snapshot load writes RAM behind TCG's back. QEMU 11.1 (not 5.2, 7.2 or 10.0) then
    goes on running the code it translated from the *previous* guest at those addresses:
    a destination that ran guest A and loads guest B's snapshot prints A's read-back
    with B's data, or garbage (found by this engine's fresh re-runs; see the README's
    findings). Writing the image's own bytes back through qtest is an ordinary guest-memory
    write, which invalidates those translations; the state is unchanged. Guest code only
    ever runs from the image, so that is the whole range that matters.
    """
    size = len(guest.image)
    answer = await vm.qtest(f"b64read {guest.load_address:#x} {size:#x}")
    data = answer.split()[-1]
    await vm.qtest(f"b64write {guest.load_address:#x} {size:#x} {data}")


class _LongLived:
    """The engine's policy over one :class:`~fuzz.run.long_lived.LongLivedQemu` at a time:
    count its uses, retire it after anything unexpected, start a new one on demand."""

    def __init__(
        self, binary: QemuBinary, command: QemuCommand, workdir: Path, *, console: bool,
        qtest: bool = False, timeouts: Timeouts = DEFAULT_TIMEOUTS, file_uri: bool = False,
        emit: Callable[[Event], None] = _noop,
    ) -> None:  # fmt: skip
        self.binary = binary
        self.command = command
        self.workdir = workdir
        self.console = console
        self.qtest = qtest
        self.timeouts = timeouts
        self.file_uri = file_uri
        self.emit = emit
        self.qemu: LongLivedQemu | None = None
        self.uses = 0

    @property
    def vm(self) -> QemuMachine | None:
        """The running process's machine, if one is up."""
        return None if self.qemu is None else self.qemu.vm

    @property
    def alive(self) -> bool:
        """Whether the process is up and may serve another step."""
        return self.qemu is not None and self.qemu.alive and self.uses < MAX_USES

    async def _up(self, stage: Stage) -> tuple[StepRecorder, LongLivedQemu, StepOutcome | None]:
        """A recorder on the running process (started if needed), and a launch failure."""
        if self.qemu is not None and not self.alive:
            await self.retire()
        if self.qemu is not None:
            return StepRecorder(self.qemu.vm, stage, self.binary.name), self.qemu, None
        qemu = LongLivedQemu(
            self.binary, self.command, self.workdir, console=self.console, qtest=self.qtest,
            start_timeout=self.timeouts.start,
        )  # fmt: skip
        step = StepRecorder(qemu.vm, stage, self.binary.name)
        if (failed := await step.launch()) is not None:
            return step, qemu, failed
        self.qemu = qemu
        return step, qemu, None

    async def retire(self) -> None:
        """End the process (QMP quit, then kill); the next step starts a new one."""
        qemu, self.qemu = self.qemu, None
        self.uses = 0
        if qemu is not None:
            await qemu.close()

    async def _ended(self, step: StepRecorder) -> StepOutcome | None:
        outcome = await step.ended()
        await self.retire()
        return outcome


class LongLivedSource(_LongLived):
    """Saves case after case of one configuration in one QEMU.

    The guest image is written into RAM through qtest after each reset; every CPU starts
    at the guest's entry (``-device loader``), as on a fresh source. RAM the previous guest
    touched is not cleared: both destinations load the same snapshot, so the differential
    judgement is unaffected, and any case that is not clean is re-run on fresh processes.
    """

    def __init__(
        self, binary: QemuBinary, case: Case, workdir: Path, template: Callable[[], Path], **kw: Any
    ) -> None:
        with_guest = case.guest is not None
        command = qemu_command.long_lived_source(case)
        super().__init__(binary, command, workdir, console=with_guest, qtest=with_guest, **kw)
        self.template = template

    async def save(self, case: Case, path: Path) -> SaveResult:
        """Reset, load the guest, run it to its checkpoint, save it into ``path`` (qcow2)."""
        self.emit(StepStarted(stage=Stage.SAVE, version=self.binary.name))
        logger.debug("save on long-lived %s (use %d)", self.binary.name, self.uses)
        outcome = await self._save(case, path)
        logger.debug("save: %s (%.3f s)", outcome.summary(), outcome.seconds)
        if outcome.verdict is Verdict.COMPLETED or outcome.details.get("guest_ended"):
            self.uses += 1  # a guest that reported its own end left QEMU as good as new
        else:
            await self.retire()
        self.emit(StepFinished(outcome=outcome))
        snapshot = Snapshot(path, _TAG) if outcome.verdict is Verdict.COMPLETED else None
        return SaveResult(outcome, None, snapshot)

    async def _save(self, case: Case, path: Path) -> StepOutcome:
        fresh = self.qemu is None
        step, qemu, failed = await self._up(Stage.SAVE)
        if failed is not None:
            return failed
        done = step.done
        try:
            if not fresh:
                await qemu.reset()
            details: dict[str, Any] = {}
            if (guest := case.guest) is not None:
                await qemu.write_guest(guest)
                reached = await qemu.run_to_checkpoint(self.timeouts.checkpoint, guest)
                console = qemu.console_since()
                if not reached:
                    if (code := qemu.vm.returncode) is not None:
                        return done(classify_exit(code), console=console)
                    why = f"guest did not reach its checkpoint: {console[-200:]!r}"
                    # An exception it reported: parked; the next reset clears it.
                    reported = guest.done.decode("latin-1") in console
                    return done(Verdict.SETUP_ERROR, [why], console=console, guest_ended=reported)
                details["console"] = console
            shutil.copyfile(self.template(), path)
            error = await qemu.save_snapshot(_TAG, path, self.timeouts.migrate)
            if error is not None:
                return done(Verdict.SETUP_ERROR, [f"save failed: {error}"])
            return done(Verdict.COMPLETED, **details)
        except MonitorError:
            if (ended := await self._ended(step)) is not None:
                return ended
            raise

    async def ensure_template(self, path: Path) -> None:
        """Create the empty qcow2 template at ``path`` in this process (started if needed).

        :raise MonitorError: it could not be created.
        """
        _step, qemu, failed = await self._up(Stage.SAVE)
        if failed is not None:
            raise MonitorError(f"QEMU {self.binary.name} did not start: {failed.summary()}")
        await make_empty_qcow2(qemu.vm, path)


class LongLivedDestination(_LongLived):
    """Loads snapshot after snapshot of one configuration in one QEMU."""

    def __init__(self, binary: QemuBinary, case: Case, workdir: Path, **kw: Any) -> None:
        command = qemu_command.long_lived_destination(case)
        with_guest = case.guest is not None
        super().__init__(binary, command, workdir, console=with_guest, qtest=with_guest, **kw)

    async def load(
        self, case: Case, state: bytes | Path | Snapshot, *, resave: bool = False
    ) -> LoadResult:
        """Load the snapshot ``state``, optionally re-save at once, run the epilogue."""
        if not isinstance(state, Snapshot):
            raise TypeError("a long-lived destination loads snapshots, not streams")
        self.emit(StepStarted(stage=Stage.LOAD, version=self.binary.name))
        logger.debug("load on long-lived %s (use %d)", self.binary.name, self.uses)
        resave_path = self.workdir / f"resave-{self.binary.name}.stream"
        try:
            outcome = await self._load(case, state, resave_path if resave else None)
            resaved = None
            if resave and outcome.details.get("resave") == "completed":
                with contextlib.suppress(OSError):
                    resaved = resave_path.read_bytes()
        finally:
            resave_path.unlink(missing_ok=True)
        logger.debug("load: %s (%.3f s) %s", outcome.summary(), outcome.seconds,
                     {k: v for k, v in outcome.details.items() if k != "argv"})  # fmt: skip
        if outcome.verdict is not Verdict.COMPLETED:
            await self.retire()
        else:
            self.uses += 1
        self.emit(StepFinished(outcome=outcome))
        return LoadResult(outcome, resaved)

    async def _load(self, case: Case, state: Snapshot, resave_to: Path | None) -> StepOutcome:
        step, qemu, failed = await self._up(Stage.LOAD)
        if failed is not None:
            return failed
        vm, done = qemu.vm, step.done
        own = self.workdir / f"load-{self.binary.name}.qcow2"
        try:
            shutil.copyfile(state.path, own)  # loading writes the qcow2 (snapshot goto)
            error = await qemu.load_snapshot(state.tag, own, self.timeouts.migrate)
            if vm.returncode is not None:
                return done(classify_exit(vm.returncode))
            if error is not None:
                return done(Verdict.REFUSED, [error])
            details = await self._after_load(vm, case, resave_to)
            if resave_to is not None or case.guest is not None:
                # Leave 'postmigrate'/'running' for 'paused': the next save may migrate again.
                if case.guest is None:
                    await vm.execute("cont")
                await vm.execute("stop")
            if vm.returncode is not None:
                return done(classify_exit(vm.returncode), **details)
            return done(Verdict.COMPLETED, **details)
        except MonitorError:
            if (ended := await self._ended(step)) is not None:
                return ended
            raise
        finally:
            own.unlink(missing_ok=True)

    async def _after_load(
        self, vm: QemuMachine, case: Case, resave_to: Path | None
    ) -> dict[str, Any]:
        """Re-save (if asked) and run the guest's epilogue; the step's details."""
        details: dict[str, Any] = {}
        if case.guest is not None:
            await drop_stale_translations(vm, case.guest)
        if resave_to is not None:
            status, _ = await save_to(vm, resave_to, self.timeouts.migrate, file_uri=self.file_uri)
            details["resave"] = status
        if case.guest is not None:
            timeout = min(self.timeouts.transcript, LONG_LIVED_TRANSCRIPT_TIMEOUT)
            transcript = await read_transcript(vm, case.guest, timeout)
            details["transcript"] = transcript
            complete = case.guest.done.decode("latin-1") in transcript
            details["transcript_complete"] = complete
            if not complete:
                self.uses = MAX_USES  # unexpected: retired after this step
        return details


Key = tuple[str, str, MachineConfig, bool]


class ProcessPool:
    """The long-lived processes of one session, at most ``capacity`` of them.

    Keyed by (role, version, configuration, with guest): a process serves only cases whose
    command line would be exactly its own. The least recently used process is retired
    when a new one is needed beyond ``capacity``. :meth:`close` ends them all.

    :param settings: the run's settings: its time-outs and which versions migrate to a
        ``file:`` URI (re-saves).
    """

    def __init__(
        self, workdir: Path, settings: RunSettings, *, capacity: int = 8,
        emit: Callable[[Event], None] = _noop,
    ) -> None:  # fmt: skip
        self.workdir = workdir
        self.settings = settings
        self.timeouts = settings.timeouts
        self.capacity = capacity
        self.emit = emit
        self._live: OrderedDict[Key, _LongLived] = OrderedDict()
        self._template: Path | None = None

    def _key(self, role: str, binary: QemuBinary, case: Case) -> Key:
        return (role, binary.name, case.config, case.guest is not None)

    async def _get(self, key: Key, make: Callable[[], _LongLived]) -> _LongLived:
        if key in self._live:
            self._live.move_to_end(key)
            return self._live[key]
        while len(self._live) >= self.capacity:
            _old_key, old = self._live.popitem(last=False)
            await old.retire()
        self._live[key] = process = make()
        return process

    def pids(self) -> list[int]:
        """The process ids of the QEMUs alive now (a benchmark reads their CPU time)."""
        return [p.vm.pid for p in self._live.values() if p.vm is not None and p.vm.pid]

    def has_source(self, binary: QemuBinary, case: Case) -> bool:
        """Whether a source for ``case``'s configuration on ``binary`` is up."""
        process = self._live.get(self._key("source", binary, case))
        return process is not None and process.alive

    async def source(self, binary: QemuBinary, case: Case) -> LongLivedSource:
        """The long-lived source of ``case``'s configuration on ``binary``."""
        process = await self._get(
            self._key("source", binary, case),
            lambda: LongLivedSource(
                binary, case, self.workdir, self.template, timeouts=self.timeouts,
                emit=self.emit,
            ),
        )  # fmt: skip
        assert isinstance(process, LongLivedSource)
        if self._template is None:
            path = self.workdir / "empty.qcow2"
            await process.ensure_template(path)
            self._template = path
        return process

    def template(self) -> Path:
        """The empty qcow2 every snapshot starts from."""
        if self._template is None:
            raise MonitorError("no qcow2 template yet: ask for a source first")
        return self._template

    async def destination(self, binary: QemuBinary, case: Case) -> LongLivedDestination:
        """The long-lived destination of ``case``'s configuration on ``binary``."""
        process = await self._get(
            self._key("destination", binary, case),
            lambda: LongLivedDestination(
                binary, case, self.workdir, timeouts=self.timeouts,
                file_uri=binary.name in self.settings.file_uri_versions, emit=self.emit,
            ),
        )  # fmt: skip
        assert isinstance(process, LongLivedDestination)
        return process

    async def close(self) -> None:
        """Retire every process (always reaped, also on cancellation)."""
        while self._live:
            _key, process = self._live.popitem()
            await process.retire()
