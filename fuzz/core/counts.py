"""Run counts kept per name under a prefix, beside their total.

The engine counts the runs of live cases per transport and feature (``live_multifd``
beside ``live``) and the runs with added devices per driver (``device_nvme`` beside
``devices``); the campaign's summary and report read them back per name. One way to add
and one to read, whatever the prefix.

Pure: nothing here starts a process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["count_each", "counts_under"]


def count_each(counts: dict[str, int], prefix: str, names: Iterable[str], runs: int) -> None:
    """Add ``runs`` to the count of each of ``names`` under ``prefix`` (``prefix + name``)."""
    for name in names:
        key = prefix + name
        counts[key] = counts.get(key, 0) + runs


def counts_under(counts: Mapping[str, int], prefix: str) -> list[tuple[str, int]]:
    """The counts under ``prefix``, by name without it, most first (ties as ``counts``
    orders them): ``[("tcp", 2), ("multifd", 2), ("unix", 1)]``."""
    found = [(key.removeprefix(prefix), n) for key, n in counts.items() if key.startswith(prefix)]
    return sorted(found, key=lambda kv: -kv[1])
