"""One owner for the event loop, the signal bridge and the QEMU processes of a command.

qemu.qmp is asynchronous; migfuzz's commands and Hypothesis's test bodies are not. A
:class:`Session` owns one event loop for its whole life (as qemu.qmp's own sync shim
does) and runs coroutines on it, so long-lived processes can outlive a single case while
never outliving the session. Ctrl-C and SIGTERM take one path: the running coroutine is
cancelled (every ``finally`` reaps its QEMU) and :class:`KeyboardInterrupt` reaches the
caller; a second signal raises it at once. Between coroutines, either raises it at once.

The session installs its handler once, for its whole life, rather than letting
:meth:`asyncio.Runner.run` install its own SIGINT handler around every coroutine: on
Python 3.11 that costs two ``repr`` calls of the finished task, result included (the
signal module tries to turn the handler into an enum), which was about 3 ms per case.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self, TypeVar

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case
from fuzz.core.settings import RunSettings
from fuzz.events import Event
from fuzz.run.engine import CaseRun, CaseRunner

T = TypeVar("T")


def _noop(_event: Event) -> None:
    return None


def _raises_interrupt(handler: object) -> bool:
    """Whether a SIGINT handler is Python's own or another session's (one that raises
    :class:`KeyboardInterrupt`), as opposed to one that ignores Ctrl-C."""
    if handler is signal.default_int_handler:
        return True
    return isinstance(getattr(handler, "__self__", None), Session)


class Session:
    """The event loop and processes of one command or one worker.

    Use as a context manager::

        with Session(settings) as session:
            result = session.run_case(src, dst, case)
    """

    def __init__(
        self, settings: RunSettings | None = None, *, emit: Callable[[Event], None] = _noop
    ) -> None:
        self.settings = settings or RunSettings()
        self.emit = emit
        self._runner: asyncio.Runner | None = None
        self._old_handlers: dict[signal.Signals, Any] = {}
        self._running = False
        self._task: asyncio.Task[Any] | None = None
        self._interrupted = False
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._cases: CaseRunner | None = None

    @property
    def cases(self) -> CaseRunner:
        """The session's case runner (and its long-lived processes), made on first use."""
        if self._cases is None or self._cases.settings is not self.settings:
            if self._cases is not None:
                self.run(self._cases.close)
            if self._workdir is None:
                self._workdir = tempfile.TemporaryDirectory(prefix="migfuzz-session-")
            self._cases = CaseRunner(self.settings, Path(self._workdir.name), emit=self.emit)
        return self._cases

    def __enter__(self) -> Self:
        self._runner = asyncio.Runner()
        if threading.current_thread() is threading.main_thread():
            bridged = [signal.SIGTERM]
            if _raises_interrupt(signal.getsignal(signal.SIGINT)):
                bridged.append(signal.SIGINT)  # not where it is ignored: a worker's driver decides
            self._old_handlers = {sig: signal.signal(sig, self._on_signal) for sig in bridged}
        return self

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        """Ctrl-C or SIGTERM: cancel the running coroutine, or raise at once (see module)."""
        if not self._running or self._interrupted:
            raise KeyboardInterrupt
        self._interrupted = True
        if self._task is not None:
            self._task.get_loop().call_soon_threadsafe(self._task.cancel)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """End the long-lived processes, close the loop, remove the session's folder."""
        try:
            if self._cases is not None and self._runner is not None:
                cases, self._cases = self._cases, None
                with contextlib.suppress(KeyboardInterrupt):
                    self.run(cases.close)
        finally:
            if self._runner is not None:
                self._runner.close()
                self._runner = None
            if self._workdir is not None:
                self._workdir.cleanup()
                self._workdir = None
        for sig, old in self._old_handlers.items():
            signal.signal(sig, old)
        self._old_handlers = {}

    def run(self, coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run one coroutine to its end on the session's loop.

        :raise KeyboardInterrupt: Ctrl-C or SIGTERM arrived; the coroutine was cancelled
            first, so its processes are gone.
        """
        if self._runner is None:
            raise RuntimeError("Session.run outside 'with Session()'")

        async def main() -> T:
            self._task = asyncio.current_task()
            if self._interrupted:  # the signal came before this task did
                raise asyncio.CancelledError
            return await coro_fn()

        self._running, self._interrupted = True, False
        try:
            result = self._runner.run(main())
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None
        finally:
            self._running, self._task = False, None
        if self._interrupted:  # the coroutine swallowed its cancellation
            raise KeyboardInterrupt
        return result

    def run_case(
        self, src: QemuBinary, dst: QemuBinary, case: Case, *, more_alike: bool = False
    ) -> CaseRun:
        """The one case path (:class:`~fuzz.run.engine.CaseRunner`) on this session's loop.

        :param more_alike: more cases of this configuration follow (see
            :meth:`~fuzz.run.engine.CaseRunner.run_cases`).
        """
        (run,) = self.run_cases(src, [dst], case, more_alike=more_alike)
        return run

    def run_cases(
        self,
        src: QemuBinary,
        dsts: Sequence[QemuBinary],
        case: Case,
        *,
        more_alike: bool = False,
    ) -> list[CaseRun]:
        """One save of ``case`` on ``src`` judged on every destination (see
        :meth:`~fuzz.run.engine.CaseRunner.run_cases`): one run per destination, in order."""
        cases = self.cases
        return self.run(lambda: cases.run_cases(src, dsts, case, more_alike=more_alike))
