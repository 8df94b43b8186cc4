"""AArch64 boards besides ``virt`` that run migfuzz's bare-metal guest, and their facts.

The guest is linked at 0x40100000 (:data:`fuzz.core.case.GUEST_BASE`) and talks to a PL011
on QEMU's first serial port. A board runs it where its RAM covers that address at the size
given here and its first serial port is a PL011: the guest is then built with that UART's
address (:func:`strategies.image.build_guest`'s ``uart``). Of the boards Debian's 5.2 to 11.1
builds share, these two do; ``raspi3b`` (1 GiB of RAM from 0), ``xlnx-zcu102`` (a Cadence
UART; no audio backend on 10.0 and later), ``sbsa-ref`` (RAM from 0x10000000000; wants a VGA
ROM Debian does not ship) do not.

A board has no options, a fixed CPU model, CPU count and RAM size, and none of ``virt``'s
devices at ``virt``'s addresses: its cases draw no GIC, device or MMU operation (the guest's
page table maps ``virt``'s first gigabyte as its device memory). Every fact below was
checked by starting the board (``-S``, ``info qtree``, ``migrate exec:``) on the versions
named.

Pure data: nothing here starts a process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["BOARDS", "Board", "board_of"]


@dataclass(frozen=True)
class Board:
    """A board the guest runs on.

    :param machine: the ``-machine`` type.
    :param cpu: its CPU model (the only one it takes).
    :param uart: the address of its first serial port, a PL011.
    :param memory_mib: the RAM it is given (covering the guest at 0x40100000).
    :param cpus: (first release, CPU count) steps, oldest first: the CPU count it needs
        from that release on (QEMU checks the board's minimum and maximum).
    :param source: where the addresses come from.
    """

    machine: str
    cpu: str
    uart: int
    memory_mib: int
    cpus: tuple[tuple[tuple[int, int], int], ...]
    source: str

    def smp(self, release: tuple[int, int, int]) -> int | None:
        """The CPU count this board needs on ``release``; None before the board existed."""
        count = None
        for since, n in self.cpus:
            if release[:2] >= since:
                count = n
        return count


BOARDS: Final[tuple[Board, ...]] = (
    Board(
        "raspi4b",
        "cortex-a72",
        0xFE20_1000,
        2048,
        (((9, 0), 4),),
        "hw/arm/bcm2838.c and bcm2835_peripherals.c: peripherals at 0xfe000000 (BCM2711), "
        "UART0 (PL011) at +0x201000; 2 GiB of RAM from 0 (raspi4b's board RAM); 4 A72s. "
        "Started and migrated on 10.0, 10.2.2 and 11.1 (new in 9.0)",
    ),
    Board(
        "xlnx-versal-virt",
        "cortex-a72",
        0xFF00_0000,
        1088,
        (((5, 0), 2), ((7, 0), 4)),
        "hw/arm/xlnx-versal.c: UART0 (PL011) at MM_UART0 = 0xff000000; DDR low from 0 "
        "(128 MiB by default, so 1088 MiB here: past the guest's data at 0x40800000); "
        "2 APU A72s (and from 7.x the RPU's two R5Fs, powered off). Started and migrated "
        "on 5.2 (2 CPUs), 7.2, 10.0 and 11.1 (4 CPUs)",
    ),
)


def board_of(machine: str) -> Board | None:
    """The board whose machine type is ``machine``; None for ``virt`` (and anything else)."""
    return next((b for b in BOARDS if b.machine == machine), None)
