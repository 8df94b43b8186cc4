"""A running guest migrated from one QEMU to another: the live counterpart of a save/load.

:func:`migrate_live` starts the source and the destination at once, sets the
:class:`~fuzz.core.live.LiveMigration`'s capabilities and parameters on both, runs the source's
guest to its checkpoint and lets it go on running (a live guest, ``GuestProgram.live``,
keeps writing memory there), migrates it over the drawn transport, switches to postcopy
when drawn, waits for both sides' end (``MIGRATION`` events), then sends the destination's
guest its resume byte and collects its read-back. Every QEMU it starts ends whatever
happens: a normal return, an error, a time-out or the task's cancellation.

A side that refuses a capability, a parameter or the URI is a *negotiation failure*: the
outcome says which side, which command and QEMU's own words, and nothing is migrated.
Harness failures (a QMP time-out, a QEMU gone while we talk to it outside a migration)
raise :class:`~fuzz.errors.HarnessError` as everywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qemu.qmp import ExecuteError

from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, GuestProgram, MachineConfig
from fuzz.core.live import (
    LiveMigration,
    LiveOutcome,
    LiveStage,
    NegotiationFailure,
    QmpCommand,
)
from fuzz.core.outcome import Stage, StepOutcome, Verdict
from fuzz.core.settings import DEFAULT_TIMEOUTS, Timeouts
from fuzz.errors import MonitorError, UsageError
from fuzz.run.machine import QemuMachine
from fuzz.run.runner import StepRecorder, classify_exit, load_path

__all__ = ["migrate_live"]

_ENDS = ("completed", "failed", "cancelled")
#: Where a source's postcopy stops when the destination fails (or the channel breaks) after
#: the switch: it waits there for a recovery (``migrate-recover``, QEMU 3.0 on) that never
#: comes, so the migration has failed. Waiting for the time-out instead cost 30 s per
#: refused postcopy, and signed a destination's refusal as a hang.
_POSTCOPY_PAUSED = "postcopy-paused"
Side = Literal["source", "destination"]


async def migrate_live(  # noqa: PLR0917 (the engine's call, as the issue spells it)
    src_binary: QemuBinary,
    dst_binary: QemuBinary,
    case: Case | MachineConfig,
    guest: GuestProgram | None,
    live: LiveMigration,
    workdir: Path,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    *,
    trace_load: bool = False,
) -> LiveOutcome:
    """Migrate ``guest`` running on ``src_binary`` to ``dst_binary`` as ``live`` says.

    :param case: the configuration (or a case, whose guest is used when ``guest`` is None).
    :param guest: the guest; a live one (``GuestProgram.live``) writes memory all along,
        a paused-style one only polls the UART while it migrates.
    :param workdir: a private folder (the guest image, sockets, a file stream).
    :param timeouts: ``start``, ``checkpoint``, ``migrate`` (the whole migration, both
        sides) and ``transcript`` (the read-back after the resume byte).
    :param trace_load: the destination traces its load path (``-trace vmstate_load*``, only
        where the probe says tracing works), and a load that did not complete records
        where it stopped in the destination step's ``details["load_path"]``: a crash
        met live is then signed as the paused load that meets it (``... after
        cpu/wfxt-timer:wfxt_timer``), not as a cause of its own.
    :return: how it ended (:class:`~fuzz.core.live.LiveOutcome`); never raises for what
        QEMU did.
    :raise UsageError: no guest (a live migration needs one running).
    :raise HarnessError: QMP failed outside a migration step (a harness fault).
    """
    config = case.config if isinstance(case, Case) else case
    if guest is None and isinstance(case, Case):
        guest = case.guest
    if guest is None:
        raise UsageError("a live migration needs a guest that runs")
    image = workdir / f"guest-{guest.digest()}.bin"
    image.write_bytes(guest.image)
    run = _LiveRun(src_binary, dst_binary, config, guest, live, workdir, timeouts, trace_load)
    try:
        try:
            return await run.go()
        except MonitorError:
            # A monitor that went away with its QEMU is QEMU's doing (an exit, a crash),
            # reported as such; one that failed while QEMU lives is the harness's.
            if await run.src.wait_exit(2.0) is None and await run.dst.wait_exit(0.5) is None:
                raise
            return await run._ended(run.stage, "a QEMU exited while the harness talked to it")
    finally:
        try:
            await run.src.shutdown()
        finally:
            await run.dst.shutdown()
            for path in (image, run.stream, run.trace):
                path.unlink(missing_ok=True)
            shutil.rmtree(run.socket.parent, ignore_errors=True)


@dataclass
class _LiveRun:
    """One live migration's processes and what was seen of them so far."""

    src_binary: QemuBinary
    dst_binary: QemuBinary
    config: MachineConfig
    guest: GuestProgram
    live: LiveMigration
    workdir: Path
    timeouts: Timeouts
    trace_load: bool = False
    statuses: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    stage: LiveStage = "start"
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        image = self.workdir / f"guest-{self.guest.digest()}.bin"
        self.src = QemuMachine(
            self.src_binary, qemu_command.live_source(self.config, self.guest, image),
            self.workdir, console=True, start_timeout=self.timeouts.start,
        )  # fmt: skip
        self.trace = self.workdir / f"live-load-trace-{id(self)}.log"
        destination = qemu_command.live_destination(self.config)
        if self.trace_load:
            destination = destination.traced(qemu_command.LOAD_TRACE_EVENTS, self.trace)
        self.dst = QemuMachine(
            self.dst_binary, destination, self.workdir,
            console=True, start_timeout=self.timeouts.start,
        )  # fmt: skip
        self.src_step = StepRecorder(self.src, Stage.SAVE, self.src_binary.name)
        self.dst_step = StepRecorder(self.dst, Stage.LOAD, self.dst_binary.name)
        self.stream = self.workdir / f"live-{id(self)}.stream"
        # A unix socket's path has at most 107 bytes: a short private folder, not workdir.
        self.socket = Path(tempfile.mkdtemp(prefix="migfuzz-live-")) / "migration.sock"

    # -- the outcome ----------------------------------------------------------------------

    def _outcome(
        self, verdict: Verdict, stage: LiveStage, messages: tuple[str, ...] = (), *,
        src: StepOutcome | None = None, dst: StepOutcome | None = None,
        negotiation: tuple[NegotiationFailure, ...] = (), transcript: str = "",
        postcopy_ran: bool = False, stats: dict[str, Any] | None = None,
    ) -> LiveOutcome:  # fmt: skip
        # A migration that failed in postcopy ran it too (its outcome is made where it
        # failed, before the caller knew).
        ran = postcopy_ran or "src:postcopy-active" in self.statuses
        return LiveOutcome(
            live=self.live, src_version=self.src_binary.name, dst_version=self.dst_binary.name,
            verdict=verdict, stage=stage, messages=messages, negotiation=negotiation,
            source=src, destination=dst, pre_save=self._pre_save(), transcript=transcript,
            postcopy_ran=ran, statuses=tuple(self.statuses),
            stats=stats or self.stats,
            seconds=time.monotonic() - self.started,
        )  # fmt: skip

    def _pre_save(self) -> str:
        text = bytes(self.src.console_output).decode("latin-1")
        marker = self.guest.checkpoint.decode("latin-1")
        return text[: text.index(marker) + len(marker)] if marker in text else text

    async def _ended(self, stage: LiveStage, message: str) -> LiveOutcome:
        """A side exited (or the migration failed): the verdict by how each side ended."""
        src_code = await self.src.wait_exit(1.0) if self.src.returncode is None else None
        dst_code = await self.dst.wait_exit(2.0) if self.dst.returncode is None else None
        src_code = self.src.returncode if src_code is None else src_code
        dst_code = self.dst.returncode if dst_code is None else dst_code
        verdicts = [classify_exit(c) for c in (src_code, dst_code) if c is not None]
        verdict = Verdict.CRASHED if Verdict.CRASHED in verdicts else Verdict.REFUSED
        src = self.src_step.done(
            classify_exit(src_code) if src_code is not None else Verdict.REFUSED
        )
        dst = self._traced(self.dst_step.done(
            classify_exit(dst_code) if dst_code is not None else Verdict.REFUSED
        ))  # fmt: skip
        # QEMU's own words first (the destination's: a refused stream is said there).
        headlines = tuple(dict.fromkeys(h for h in (dst.headline, src.headline) if h))
        return self._outcome(verdict, stage, (*headlines, message), src=src, dst=dst)

    def _traced(self, dst: StepOutcome) -> StepOutcome:
        """``dst`` with where its load stopped (``details["load_path"]``), if traced."""
        if self.trace_load and dst.verdict is not Verdict.COMPLETED and self.trace.exists():
            dst.details["load_path"] = load_path(self.trace.read_text(errors="replace"))
        return dst

    # -- the run --------------------------------------------------------------------------

    async def go(self) -> LiveOutcome:
        launched = await asyncio.gather(
            self.src_step.launch(), self.dst_step.launch(), return_exceptions=True
        )
        for result in launched:
            if isinstance(result, BaseException):
                raise result
        src_failed, dst_failed = launched
        if isinstance(src_failed, StepOutcome) or isinstance(dst_failed, StepOutcome):
            failed = [o for o in (src_failed, dst_failed) if isinstance(o, StepOutcome)]
            verdicts = [o.verdict for o in failed]
            verdict = Verdict.CRASHED if Verdict.CRASHED in verdicts else Verdict.SETUP_ERROR
            headlines = tuple(f"{o.version}: {o.headline}" for o in failed if o.headline)
            return self._outcome(
                verdict, "start", headlines,
                src=src_failed if isinstance(src_failed, StepOutcome) else None,
                dst=dst_failed if isinstance(dst_failed, StepOutcome) else None,
            )  # fmt: skip
        with (
            self.src.qmp.listener(("MIGRATION", "MIGRATION_PASS")) as src_events,
            self.dst.qmp.listener("MIGRATION") as dst_events,
        ):
            return await self._migrate(src_events, dst_events)

    async def _negotiate(self) -> tuple[NegotiationFailure, ...]:
        """Set the capabilities and parameters on both sides; each side's refusal."""
        refused = []
        sides: tuple[tuple[Side, QemuMachine], ...] = (
            ("source", self.src),
            ("destination", self.dst),
        )
        for side, vm in sides:
            for command in self.live.setup_commands():
                error = await _qemu_refusal(vm, command)
                if error is not None:
                    refused.append(NegotiationFailure(side, command.name, error))
                    break
        return tuple(refused)

    async def _migrate(self, src_events: Any, dst_events: Any) -> LiveOutcome:
        self.stage = "negotiate"
        if refused := await self._negotiate():
            src, dst = self.src_step.done(Verdict.REFUSED), self.dst_step.done(Verdict.REFUSED)
            return self._outcome(
                Verdict.REFUSED, "negotiate", tuple(n.describe() for n in refused),
                src=src, dst=dst, negotiation=refused,
            )  # fmt: skip
        uri = self.live.uri(path=str(self.stream if self.live.transport == "file" else self.socket))
        if not self.live.needs_source_first():
            uri, refusal = await self._incoming(uri)
            if refusal is not None:
                return refusal
        # The source's guest runs to its checkpoint, and on: the migration starts under it.
        self.stage = "checkpoint"
        await self.src.execute("cont")
        reached = await self.src.wait_console(
            self.guest.checkpoint, self.timeouts.checkpoint, give_up=self.guest.done
        )
        if not reached:
            if self.src.returncode is not None:
                return await self._ended("checkpoint", "the source exited before its checkpoint")
            console = bytes(self.src.console_output).decode("latin-1")
            message = f"guest did not reach its checkpoint: {console[-200:]!r}"
            return self._outcome(
                Verdict.SETUP_ERROR, "checkpoint", (message,), src=self.src_step.done(
                    Verdict.SETUP_ERROR, [message]
                ),
            )  # fmt: skip
        error = await _qemu_refusal(self.src, self.live.migrate_command(uri))
        if error is not None:
            failure = NegotiationFailure("source", "migrate", error)
            return self._outcome(
                Verdict.REFUSED, "negotiate", (failure.describe(),), negotiation=(failure,),
                src=self.src_step.done(Verdict.REFUSED, [error]),
            )  # fmt: skip
        self.stage = "migrate"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.migrate
        src_end, postcopy_ran = await self._source_end(src_events, deadline)
        if src_end == "timeout":
            return await self._hung("the source's migration did not end in time")
        if src_end != "completed":
            return await self._failed(src_end)
        self.stats = await self._stats()
        if self.live.needs_source_first():
            uri, refusal = await self._incoming(uri)
            if refusal is not None:
                return refusal
        dst_end = await _wait_status(self.dst, dst_events, deadline, self.statuses, "dst")
        if dst_end == "timeout":
            return await self._hung("the destination's migration did not end in time")
        if dst_end != "completed":
            return await self._failed(dst_end, side="destination")
        return await self._read_back(postcopy_ran, self.stats)

    async def _incoming(self, uri: str) -> tuple[str, LiveOutcome | None]:
        """``migrate-incoming`` on the destination; the URI the source must use (a TCP
        port the destination picked), or its refusal."""
        command = self.live.incoming_command(uri)
        error = await _qemu_refusal(self.dst, command)
        if error is not None:
            failure = NegotiationFailure("destination", command.name, error)
            return uri, self._outcome(
                Verdict.REFUSED, "negotiate", (failure.describe(),), negotiation=(failure,),
                dst=self.dst_step.done(Verdict.REFUSED, [error]),
            )  # fmt: skip
        if self.live.transport == "tcp":
            info = await self.dst.execute("query-migrate")
            addresses = info.get("socket-address", []) if isinstance(info, dict) else []
            ports = [a.get("port") for a in addresses if isinstance(a, dict) and a.get("port")]
            if not ports:
                raise MonitorError(f"QEMU {self.dst_binary.name}: no listening port: {info!r}")
            uri = self.live.uri(port=int(str(ports[0])))
        return uri, None

    async def _source_end(self, events: Any, deadline: float) -> tuple[str, bool]:
        """Wait for the source's migration to end, switching to postcopy when drawn.

        :return: (``completed`` | ``failed`` | ``cancelled`` | ``exited`` | ``timeout``,
            whether postcopy ran).
        """
        loop = asyncio.get_running_loop()
        postcopy = self.live.postcopy
        switch_at = None
        if postcopy is not None and not postcopy.after_first_pass:
            switch_at = loop.time() + postcopy.after_ms / 1000
        switched = postcopy is None
        postcopy_ran = False
        while True:
            wake = deadline if switched or switch_at is None else min(deadline, switch_at)
            event = await _next_event(self.src, events, wake)
            if event == "exited":
                return "exited", postcopy_ran
            if event is None:  # a time-out: the deadline, or the time to switch
                if loop.time() >= deadline:
                    return "timeout", postcopy_ran
                switched, switch_at = True, None
                await self._start_postcopy()
                continue
            data = event.get("data", {})
            if event.get("event") == "MIGRATION_PASS":
                first_pass_over = int(data.get("pass") or 0) >= 2
                wanted = postcopy is not None and postcopy.after_first_pass
                if wanted and first_pass_over and not switched:
                    switched = True
                    await self._start_postcopy()
                continue
            status = str(data.get("status"))
            self.statuses.append(f"src:{status}")
            postcopy_ran = postcopy_ran or status.startswith("postcopy")
            if status in _ENDS:
                return status, postcopy_ran
            if status == _POSTCOPY_PAUSED:
                return "failed", postcopy_ran

    async def _start_postcopy(self) -> None:
        """``migrate-start-postcopy``; a refusal (the migration already ended) is noted."""
        error = await _qemu_refusal(self.src, self.live.postcopy_command())
        if error is not None:
            self.statuses.append(f"src:postcopy-refused: {error}")

    async def _failed(self, end: str, *, side: str = "source") -> LiveOutcome:
        vm = self.src if side == "source" else self.dst
        if end == "exited" or vm.returncode is not None:
            return await self._ended("migrate", f"the {side} exited while migrating")
        info: object = {}
        with contextlib.suppress(MonitorError):
            info = await vm.execute("query-migrate")
        error = info.get("error-desc", f"migration {end}") if isinstance(info, dict) else end
        if self.dst.returncode is None:  # a refused stream ends the destination
            await self.dst.wait_exit(2.0)
        if self.dst.returncode is not None:
            return await self._ended("migrate", f"{side}: {error}")
        return self._outcome(
            Verdict.REFUSED, "migrate", (f"{side}: {error}",),
            src=self.src_step.done(Verdict.REFUSED),
            dst=self._traced(self.dst_step.done(Verdict.REFUSED)),
        )  # fmt: skip

    async def _hung(self, message: str) -> LiveOutcome:
        await self.src.kill()
        await self.dst.kill()
        return self._outcome(
            Verdict.HUNG, "migrate", (message,),
            src=self.src_step.done(Verdict.HUNG), dst=self.dst_step.done(Verdict.HUNG),
        )  # fmt: skip

    async def _stats(self) -> dict[str, Any]:
        """The source's ``query-migrate`` at the end (counters of RAM, xbzrle, multifd)."""
        try:
            info = await self.src.execute("query-migrate")
        except MonitorError:
            return {}
        return info if isinstance(info, dict) else {}

    async def _read_back(self, postcopy_ran: bool, stats: dict[str, Any]) -> LiveOutcome:
        """The destination runs the guest: resume it and collect what it prints."""
        self.stage = "read-back"
        status = await self.dst.execute("query-status")
        if isinstance(status, dict) and status.get("status") != "running":
            await self.dst.execute("cont")
        start = len(self.dst.console_output)
        await self.dst.console_write(self.guest.resume)
        await self.dst.wait_console(self.guest.done, self.timeouts.transcript, start=start)
        transcript = bytes(self.dst.console_output[start:]).decode("latin-1")
        complete = self.guest.done.decode("latin-1") in transcript
        src = self.src_step.done(Verdict.COMPLETED)
        if self.dst.returncode is not None:
            dst = self.dst_step.done(classify_exit(self.dst.returncode), transcript=transcript)
            return self._outcome(
                dst.verdict, "read-back", src=src, dst=dst, transcript=transcript,
                postcopy_ran=postcopy_ran, stats=stats,
            )  # fmt: skip
        dst = self.dst_step.done(
            Verdict.COMPLETED, transcript=transcript, transcript_complete=complete
        )
        if not complete:
            return self._outcome(
                Verdict.HUNG, "read-back", ("the guest's read-back did not finish",), src=src,
                dst=dst, transcript=transcript, postcopy_ran=postcopy_ran, stats=stats,
            )  # fmt: skip
        return self._outcome(
            Verdict.COMPLETED, "done", src=src, dst=dst, transcript=transcript,
            postcopy_ran=postcopy_ran, stats=stats,
        )  # fmt: skip


async def _qemu_refusal(vm: QemuMachine, command: QmpCommand) -> str | None:
    """Run ``command``; QEMU's error text if it refused it, None if it took it.

    :raise MonitorError: the exchange itself failed (no answer, QEMU gone): a harness
        fault, or for the caller to classify by QEMU's exit.
    """
    try:
        await vm.execute(command.name, command.arguments or None)
    except MonitorError as err:
        if isinstance(err.__cause__, ExecuteError):
            return str(err.__cause__.error.error.desc)
        raise
    return None


async def _next_event(vm: QemuMachine, events: Any, wake: float) -> dict[str, Any] | Literal[
    "exited"
] | None:  # fmt: skip
    """The next event of ``events``; "exited" if QEMU exited first; None at ``wake``."""
    loop = asyncio.get_running_loop()
    if vm.returncode is not None:
        return "exited"
    got = asyncio.ensure_future(events.get())
    exited = asyncio.ensure_future(vm.wait_exit(max(0.0, wake - loop.time()) + 1.0))
    try:
        done, _ = await asyncio.wait(
            (got, exited), timeout=max(0.0, wake - loop.time()),
            return_when=asyncio.FIRST_COMPLETED,
        )  # fmt: skip
        if got in done:
            message = got.result()
            return dict(message) if message is not None else None
        if exited in done and vm.returncode is not None:
            return "exited"
        return None
    finally:
        for task in (got, exited):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _wait_status(
    vm: QemuMachine, events: Any, deadline: float, seen: list[str], tag: str
) -> str:
    """Wait for the end of ``vm``'s migration: its status, ``exited`` or ``timeout``."""
    loop = asyncio.get_running_loop()
    while True:
        event = await _next_event(vm, events, deadline)
        if event == "exited":
            return "exited"
        if event is None:
            if loop.time() >= deadline:
                return "timeout"
            continue
        status = str(event.get("data", {}).get("status"))
        seen.append(f"{tag}:{status}")
        if status in _ENDS:
            return status
