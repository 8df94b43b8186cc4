"""A last, deterministic pass that makes a shrunk case 1-minimal.

Hypothesis's shrinker usually gets there, but it gives no guarantee and it may stop early
(a budget, a flaky step). This pass tries every one-step simplification of a case --
drop one machine option, one CPU property, one added device, one guest operation; one
CPU; the smallest memory (not on a board, whose CPUs and RAM are fixed) -- keeps any
that still shows the same signature, and repeats until none does. The result: removing
any single option, device or operation loses the signature.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol

from fuzz.core.boards import board_of
from fuzz.core.case import Case, GuestProgram


class GuestBuilder(Protocol):
    """Rebuilds a guest from (operations, smp), a live one with ``live``, for the machine
    type ``machine`` (a board's guest has its console elsewhere): ``strategies.rebuild_guest``."""

    def __call__(
        self,
        operations: Sequence[dict[str, Any]],
        smp: int,
        *,
        live: bool = False,
        machine: str = "virt",
    ) -> GuestProgram: ...


def simplifications(case: Case, build_guest: GuestBuilder | None) -> Iterator[Case]:
    """Every case one simplification step away from ``case``, simplest kinds first: a
    live case first tries the same guest saved paused."""
    cfg = case.config
    live = case.guest is not None and case.guest.live
    if case.live is not None and case.guest is not None and build_guest is not None:
        paused = build_guest(list(case.guest.operations), cfg.smp, machine=cfg.machine)
        yield replace(case, live=None, guest=paused)
    if case.guest is not None and case.guest.operations and build_guest is not None:
        ops = list(case.guest.operations)
        for i in range(len(ops)):
            fewer = ops[:i] + ops[i + 1 :]
            shorter = build_guest(fewer, cfg.smp, live=live, machine=cfg.machine)
            yield replace(case, guest=shorter)
    for i in range(len(cfg.machine_options)):
        opts = cfg.machine_options[:i] + cfg.machine_options[i + 1 :]
        yield replace(case, config=replace(cfg, machine_options=opts))
    for i in range(len(cfg.cpu_properties)):
        props = cfg.cpu_properties[:i] + cfg.cpu_properties[i + 1 :]
        yield replace(case, config=replace(cfg, cpu_properties=props))
    for i in range(len(cfg.devices)):
        devices = cfg.devices[:i] + cfg.devices[i + 1 :]
        yield replace(case, config=replace(cfg, devices=devices))
    if board_of(cfg.machine) is not None:
        return
    if cfg.smp != 1:
        guest = case.guest
        if guest is not None and build_guest is not None:
            guest = build_guest(list(guest.operations), 1, live=live)
        yield replace(case, config=replace(cfg, smp=1), guest=guest)
    if cfg.memory_mib != 64:
        yield replace(case, config=replace(cfg, memory_mib=64))


def make_one_minimal(
    case: Case,
    still_fails: Callable[[Case], bool],
    *,
    build_guest: GuestBuilder | None = None,
    max_tests: int = 200,
) -> tuple[Case, int]:
    """Simplify ``case`` while ``still_fails`` holds, until no single step keeps it.

    :return: the 1-minimal case and the number of ``still_fails`` calls made. If
        ``max_tests`` runs out first, the simplest case found so far.
    """
    tests = 0
    improved = True
    while improved and tests < max_tests:
        improved = False
        for candidate in simplifications(case, build_guest):
            if tests >= max_tests:
                break
            tests += 1
            if still_fails(candidate):
                case = candidate
                improved = True
                break
    return case, tests
