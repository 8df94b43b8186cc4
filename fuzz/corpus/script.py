"""Shell pieces every ``repro.sh`` writes, a paused case's (:mod:`.entry`) and a live
case's (:mod:`.live_repro`): the QEMU command a script starts, and the comparison of the
read-back items a finding recorded as differing. One place, so the two scripts say the
same thing the same way.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from fuzz.core.binary import QemuBinary

__all__ = ["item_comparisons", "portable_command"]


def portable_command(binary: QemuBinary) -> str:
    """``binary``'s command for sh; a Debian version's paths relative to ``$CACHE``.

    A farm binary lives at ``<cache>/qemu/<name>/root/usr/bin/qemu-system-aarch64``; the
    script sets ``CACHE`` the way migfuzz finds its cache, so a checked-in reproducer runs
    on any machine where ``migfuzz qemu install`` was run.
    """
    command = shlex.join(binary.command())
    if binary.origin.startswith("debian:") and len(binary.path.parents) > 5:
        cache = str(binary.path.parents[5])
        if shlex.quote(cache) == cache:
            command = command.replace(cache + "/", "$CACHE/")
    return command


def item_comparisons(
    items: Sequence[dict[str, Any]], src: str, dst: str, *, same_version: bool,
    before: str, after: str,
) -> list[str]:  # fmt: skip
    """Shell lines that compare each recorded read-back item and set ``STATUS=1`` while
    one still differs; they read items with the script's ``item LABEL NAME`` function.

    A same-version finding compares A -> A's item with what was expected (``before``, e.g.
    "before the save", then the value; ``after``, e.g. "after the restore"); a cross-version
    one compares A -> B's (label ``pair``) with A -> A's (label ``control``).
    """
    lines = []
    for d in items:
        name = shlex.quote(d["name"])
        if same_version:
            expected = d.get("expected")
            lines += [
                f'v=$(item control {name}); echo "{d["name"]}: {before} {expected}, {after} $v"',
                f'[ "$v" = {shlex.quote(str(expected))} ] || STATUS=1',
            ]
        else:
            lines += [
                f"c=$(item control {name}); p=$(item pair {name})",
                f'echo "{d["name"]}: after {src} -> {src} $c, after {src} -> {dst} $p"',
                '[ "$c" = "$p" ] || STATUS=1',
            ]
    return lines
