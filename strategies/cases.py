"""Whole cases for the fuzz loop: a configuration both versions start, and a guest.

The guest part shrinks toward "no guest operations" and the configuration part toward
"plain CPU, no options, one CPU": a minimal reproducer has only what the bug needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

from hypothesis import strategies as st

from fuzz.core.boards import board_of
from fuzz.core.capabilities import Capabilities
from fuzz.core.case import Case, GuestProgram, MachineConfig
from fuzz.core.live import LiveMigration
from strategies.configs import MEMORY_MIB, configurations
from strategies.guests import DeviceTargets, Operation, guest_operations, operations_from_json
from strategies.image import UART_BASE, build_guest, build_live_guest
from strategies.transports import live_migrations


def rebuild_guest(
    operations: Sequence[dict[str, Any]], smp: int, *, live: bool = False, machine: str = "virt"
) -> GuestProgram:
    """A guest from the JSON form of its operations (as stored in ``GuestProgram.operations``);
    with ``live``, the guest that keeps writing memory while it migrates; for a board's
    ``machine``, with the board's console (:mod:`fuzz.core.boards`)."""
    ops = operations_from_json(list(operations))
    if live:
        return build_live_guest(ops, smp=smp)
    return build_guest(ops, smp=smp, uart=_console(machine))


def _console(machine: str) -> int:
    """The address of the guest's console PL011 on ``machine``: a board's, else virt's."""
    board = board_of(machine)
    return UART_BASE if board is None else board.uart


def _runs_aarch64(config: MachineConfig) -> bool:
    """Whether an AArch64 guest can run: ``aarch64=off`` makes the CPU AArch32-only."""
    return ("aarch64", "off") not in config.cpu_properties


class CaseGroup(Sequence[Case]):
    """One configuration's cases, each guest built when its case is first asked for.

    Building a guest costs milliseconds, and a group stops at its first case where the
    pair refuses the configuration: most of a refusing pair's guests never run.
    """

    def __init__(
        self,
        config: MachineConfig,
        operations: Sequence[Sequence[Operation]],
        live: LiveMigration | None = None,
    ) -> None:
        self.config = config
        self.operations = tuple(tuple(ops) for ops in operations)
        self.live = live
        self._built: dict[int, Case] = {}

    def __len__(self) -> int:
        return len(self.operations)

    @overload
    def __getitem__(self, index: int) -> Case: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Case]: ...
    def __getitem__(self, index: int | slice) -> Case | Sequence[Case]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        index = range(len(self))[index]  # IndexError past the end, as a sequence must
        if index not in self._built:
            self._built[index] = _case(self.config, list(self.operations[index]), self.live)
        return self._built[index]

    def __repr__(self) -> str:
        live = "" if self.live is None else f", live={self.live!r}"
        return f"CaseGroup({self.config!r}, operations={list(self.operations)!r}{live})"


def _case(
    config: MachineConfig, operations: list[Operation] | None, live: LiveMigration | None = None
) -> Case:
    if operations is None:
        return Case(config=config)
    if live is not None:
        return Case(config=config, guest=build_live_guest(operations, smp=config.smp), live=live)
    guest = build_guest(operations, smp=config.smp, uart=_console(config.machine))
    return Case(config=config, guest=guest)


@dataclass(frozen=True)
class PairCases:
    """The loop's case strategy: ``(src caps, dst caps) -> cases`` for that pair.

    A frozen dataclass, not a closure, so that it pickles to worker processes.

    :param guests: run a generated guest to its checkpoint before saving; without, the
        machine is saved paused at reset.
    :param one_sided: also draw options only one side accepts (expected refusals).
    :param max_ops: the most guest operations a case has.
    :param guests_per_config: with guests, the most guests drawn for one configuration
        (from 1, largest first) with the smallest RAM size; proportionally fewer with more RAM.
        They run one after another on the same long-lived processes, which is where those
        pay. Shrinks toward the most guests (see ``group`` below).
    :param live_every: with guests, one configuration in about this many (0: none) migrates
        its guests live (``Case.live``), over a migration both versions offer
        (:func:`~strategies.transports.live_migrations`), where both versions' probes list
        their migration facts. Shrinks toward a paused case.
    :param live_guests: the most guests of a live configuration: each migrates twice
        (A -> A, A -> B) between fresh processes, some 20 paused cases' time.
    :param boards: also draw boards other than ``virt`` (:mod:`fuzz.core.boards`) both
        versions have, one configuration in :data:`strategies.configs.BOARD_ONE_IN`.
    """

    guests: bool = True
    one_sided: bool = False
    max_ops: int = 8
    guests_per_config: int = 16
    live_every: int = 0
    live_guests: int = 2
    boards: bool = True

    def __call__(self, src: Capabilities, dst: Capabilities) -> st.SearchStrategy[Sequence[Case]]:
        """The cases of one pair: a configuration and its guests, as a group."""
        configs = configurations(src, dst, one_sided=self.one_sided, boards=self.boards)
        if not self.guests:
            return st.builds(lambda config: (_case(config, None),), configs)
        plain = guest_operations(max_ops=self.max_ops)
        on_board = guest_operations(max_ops=self.max_ops, gic=False, devices=False, mmu=False)

        def guests_of(config: MachineConfig) -> st.SearchStrategy[list[Operation]]:
            # A configuration with devices also draws the operations that drive them; a
            # board's, none of virt's devices (nor the MMU: its page table maps virt).
            if board_of(config.machine) is not None:
                return on_board
            if not config.devices:
                return plain
            targets = DeviceTargets.of(config.devices)
            return guest_operations(max_ops=self.max_ops, targets=targets)

        def group(config: MachineConfig) -> st.SearchStrategy[Sequence[Case]]:
            # The size is drawn first (a list's own size distribution averages
            # about 4 whatever its bound, and each configuration costs process starts), up
            # to a bound that shrinks as RAM grows: every save and load walks all of it.
            # Largest first: Hypothesis draws a strategy's simplest value far more often
            # than its share (from 1..16, a third of ``integers`` and a quarter of
            # ``sampled_from`` draws were 1, measured), and a group of one guest runs on
            # fresh processes at about three times a reused case's cost. Shrinking toward
            # more guests costs little: a group stops at the case that shows the
            # signature, and the loop makes that one case minimal on its own.
            # The guests of a group are distinct: Hypothesis's first examples repeat the
            # simplest element (a run began with five groups of one empty guest 16 times
            # over), and a case run twice only measures noise. Drawing unique lists is
            # also cheaper here (100 groups of 16: 2.2 s instead of 4.7).
            most = max(1, self.guests_per_config * MEMORY_MIB[0] // config.memory_mib)
            sizes = st.sampled_from(range(most, 0, -1))
            guests = guests_of(config)
            ops = sizes.flatmap(lambda n: st.lists(guests, min_size=n, max_size=n, unique_by=tuple))
            return ops.map(lambda operations: CaseGroup(config, operations))

        def live_group(config: MachineConfig, live: LiveMigration) -> st.SearchStrategy[Any]:
            guests = guests_of(config)
            ops = st.lists(guests, min_size=1, max_size=self.live_guests, unique_by=tuple)
            return ops.map(lambda operations: CaseGroup(config, operations, live))

        def either(config: MachineConfig) -> st.SearchStrategy[Sequence[Case]]:
            # The last of ``live_every`` values is live: the draw shrinks toward paused.
            # A board migrates paused only (the live guest is built for virt's console).
            if board_of(config.machine) is not None:
                return group(config)
            last = self.live_every - 1
            return st.integers(0, last).flatmap(
                lambda k: live_group_of(config) if k == last else group(config)
            )

        def live_group_of(config: MachineConfig) -> st.SearchStrategy[Sequence[Case]]:
            return live_migrations(src, dst).flatmap(lambda live: live_group(config, live))

        lives = self.live_every > 0 and src.migration is not None and dst.migration is not None
        return configs.filter(_runs_aarch64).flatmap(either if lives else group)


def case_strategy(
    *, guests: bool = True, one_sided: bool = False, max_ops: int = 8, live_every: int = 0
) -> PairCases:
    """The loop's case strategy (see :class:`PairCases`)."""
    return PairCases(guests=guests, one_sided=one_sided, max_ops=max_ops, live_every=live_every)
