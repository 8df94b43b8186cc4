#!/usr/bin/env python3
"""How this reproducer's guest was made (with migfuzz; repro.sh itself needs only QEMU).

``guest.bin`` is a migfuzz guest (``guest.s`` its GNU-as listing) built from four
``"deadline"`` operations (:class:`strategies.guests.ArmDeadline`): a deadline 200 ms
of counter time ahead on the EL1 physical timer (CNTP, the control), the EL2 physical
timer (CNTHP), the EL2 virtual timer (CNTHV, FEAT_VHE) and the EL3 secure physical timer
(CNTPS). Campaigns draw at most ``MAX_TIMER_MICROS`` (20 ms); 200 ms, as in
``tests/qemu/test_timer_ops.py``, keeps each deadline pending at the save whenever it
comes: while the guest waits at its checkpoint it arms each timer that fired 200 ms ahead
again (TVAL), and never one that has not.

What the guest does at run time depends on its exception level and CPU, so one image
serves both configurations of repro.sh: at EL2 (``virtualization=on``) it sets CNTP,
CNTHP and CNTHV and reads ``timer.secure_physical.fired=0x2`` (absent); at EL3
(``secure=on,virtualization=on``) it sets all four. It prints its read-back and
``@@MIGFUZZ-CHECKPOINT@@``, then polls the UART for ``g``; after it, it waits for each
timer and prints ``timer.<timer>.fired=0x...`` (1 fired; 0 missed: its counter 1/8 s past
the deadline and CTL.ISTATUS still 0; 2 absent; 3 the counter stopped), then its
read-back again and ``@@MIGFUZZ-DONE@@``.

    .venv/bin/python scripts/qemu-bugs/el2-el3-timer-deadline-lost/make.py

It also prints the QEMU arguments migfuzz starts such a guest with (repro.sh uses them).
"""

from __future__ import annotations

from pathlib import Path

from fuzz.core import command as qemu_command
from fuzz.core.case import Case, MachineConfig
from strategies import guests
from strategies.cases import rebuild_guest
from strategies.image import after_restore_items

HERE = Path(__file__).resolve().parent
#: 200 ms of counter time: no save comes after it (see the module docstring).
FAR_MICROS = 200_000
TIMERS = ("physical", "hyp_physical", "hyp_virtual", "secure_physical")
CONFIGS = {
    "el2": (("virtualization", "on"),),
    "el3": (("secure", "on"), ("virtualization", "on")),
}


def make() -> None:
    guests.MAX_TIMER_MICROS = FAR_MICROS  # type: ignore[misc]  # the pin test does the same
    operations = [{"op": "deadline", "timer": timer, "micros": FAR_MICROS} for timer in TIMERS]
    guest = rebuild_guest(operations, 1)
    (HERE / "guest.bin").write_bytes(guest.image)
    (HERE / "guest.s").write_text(guest.source())
    print(f"guest.bin: {len(guest.image)} bytes, digest {guest.digest()}")
    items = after_restore_items(guests.operations_from_json(operations))
    print("after the resume:", ", ".join(items))
    for name, options in CONFIGS.items():
        case = Case(MachineConfig("virt-5.2", "max", machine_options=options), guest)
        save = qemu_command.source(case, qemu_command.ShellText("$HERE/guest.bin"))
        print(f"{name}: {save.with_channels(monitor=None, serial=None).shell()}")


if __name__ == "__main__":
    make()
