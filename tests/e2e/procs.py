"""Finding the QEMU processes a command started, through /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all threads)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def is_qemu(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) qemu-system-aarch64."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return b"qemu-system-aarch64" in cmdline and state != "Z"


def tagged_qemus(tag: str) -> list[int]:
    """Live QEMU processes whose environment carries ``MIGFUZZ_TEST_TAG=tag``."""
    return [pid for pid in tagged(tag) if is_qemu(pid)]


def tagged(tag: str) -> list[int]:
    """Live processes of any kind (workers, QEMUs) whose environment carries the tag."""
    needle = f"MIGFUZZ_TEST_TAG={tag}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != "Z":
            pids.append(int(entry))
    return pids
