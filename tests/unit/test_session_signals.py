"""The session's signal bridge: Ctrl-C and SIGTERM cancel the running coroutine (so its
``finally`` blocks reap QEMU) and end in KeyboardInterrupt; between coroutines they raise
at once; the handlers before the session come back after it. Pure asyncio, no QEMU."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from fuzz.run.session import Session


@pytest.fixture(autouse=True)
def _python_handlers() -> Iterator[None]:
    """Each test starts from Python's own SIGINT handler and a SIGTERM that raises."""

    def term(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, term)
    yield
    for sig, handler in old.items():
        signal.signal(sig, handler)


def _signalled_run(session: Session, sig: signal.Signals, cleaned: list[str]) -> None:
    async def work() -> None:
        try:
            asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), sig)
            await asyncio.sleep(30)
        finally:
            cleaned.append("reaped")

    session.run(work)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_run_cancels_the_coroutine_and_raises_keyboard_interrupt(
    sig: signal.Signals,
) -> None:
    cleaned: list[str] = []
    with Session() as session:
        with pytest.raises(KeyboardInterrupt):
            _signalled_run(session, sig, cleaned)
        assert cleaned == ["reaped"]
        # The session goes on serving after an interrupted run.
        assert session.run(_answer) == 42


async def _answer() -> int:
    return 42


def test_a_coroutine_that_swallows_its_cancellation_still_ends_in_keyboard_interrupt() -> None:
    async def stubborn() -> str:
        asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "swallowed"
        return "slept"

    with Session() as session, pytest.raises(KeyboardInterrupt):
        session.run(stubborn)


def _signal_myself(sig: signal.Signals) -> None:
    os.kill(os.getpid(), sig)
    for _ in range(1000):  # Python runs the handler between bytecodes
        pass


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_between_runs_raises_at_once(sig: signal.Signals) -> None:
    with Session(), pytest.raises(KeyboardInterrupt):
        _signal_myself(sig)


def test_the_runner_installs_no_sigint_handler_of_its_own_during_a_run() -> None:
    async def handler_now() -> object:
        return signal.getsignal(signal.SIGINT)

    with Session() as session:
        inside = session.run(handler_now)
    assert getattr(inside, "__self__", None) is session


def test_the_handlers_from_before_the_session_come_back_after_it() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with Session() as session:
        session.run(_answer)
        assert signal.getsignal(signal.SIGINT) is not before[signal.SIGINT]
    assert {s: signal.getsignal(s) for s in before} == before


def test_an_ignored_sigint_stays_ignored_as_in_a_campaign_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with Session() as session:
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert session.run(_answer) == 42
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_a_session_inside_another_bridges_sigint_and_gives_it_back() -> None:
    with Session() as outer:
        with Session() as inner:
            cleaned: list[str] = []
            with pytest.raises(KeyboardInterrupt):
                _signalled_run(inner, signal.SIGINT, cleaned)
            assert cleaned == ["reaped"]
        assert getattr(signal.getsignal(signal.SIGINT), "__self__", None) is outer
