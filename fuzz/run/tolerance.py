"""The tolerance oracle's edit: a version loads its own stream with one cpreg left out.

For a case whose control came back clean, :class:`ToleranceChecker` leaves one system
register out of every CPU's cpreg list of the source's stream -- one that held its reset
value there, so QEMU's promise ("retains its current (reset) value", ``cpu_post_load``)
means the edited load must come back as the control did -- loads it on the source's
version (re-saved, the guest read back, as the control) and judges it
(:func:`~fuzz.judge.tolerance.judge_tolerance`).

Which register: one of those holding their reset value, picked by the configuration (the
same one while a finding's guest is shrunk). The reset values come from a save of the
configuration with no guest, kept per version and configuration. A check costs one restore
per case, and one save per new configuration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import TransferOutcome, Verdict
from fuzz.errors import StreamError
from fuzz.judge.oracles import Evidence
from fuzz.judge.tolerance import ToleranceCheck, judge_tolerance
from fuzz.run.past_refusal import cpu_tables, decoded_once, rewrite_every_cpu
from fuzz.run.runner import Destination, SaveResult
from fuzz.stream.decode import decode_stream
from fuzz.stream.patch import CpregPatch, PatchAction

_Tables = tuple[dict[int, int], ...]


def pick(config: MachineConfig, count: int) -> int:
    """An index below ``count`` fixed by ``config`` (stable across runs and processes)."""
    digest = hashlib.sha256(json.dumps(config.to_json(), sort_keys=True).encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def at_reset(tables: _Tables, reset: _Tables) -> list[int]:
    """The registers every CPU holds at its reset value (sorted by id): the ones a check
    may leave out."""
    return sorted(
        kvm_id
        for kvm_id, value in tables[0].items()
        if reset[0].get(kvm_id) == value
        and all(t.get(kvm_id) == r.get(kvm_id) for t, r in zip(tables, reset, strict=True))
    )


class ToleranceChecker:
    """Checks, case by case, that a version loads its stream with one cpreg left out (one
    per session: the reset values it saves serve every later case)."""

    def __init__(self) -> None:
        self._reset: dict[tuple[str, MachineConfig], _Tables | None] = {}
        self.stats = {"checked": 0, "broken": 0, "saves": 0}

    async def check(
        self,
        src: QemuBinary,
        case: Case,
        evidence: Evidence,
        *,
        save: Callable[[QemuBinary, Case], Awaitable[SaveResult]],
        destination: Callable[[QemuBinary], Awaitable[Destination]],
        resave: bool,
    ) -> ToleranceCheck | None:
        """The edited load of ``case``'s stream on ``src``, judged; None where there is
        nothing to check (no stream, a control that did not complete, no register at its
        reset value, a stream that does not decode)."""
        stream = evidence.source_stream
        if stream is None or evidence.control.verdict is not Verdict.COMPLETED:
            return None
        try:
            decoded = decoded_once(stream)
            tables = cpu_tables(decoded)
        except StreamError:
            return None
        reset = await self._reset_tables(src, case.config, save)
        if reset is None or len(reset) != len(tables):
            return None
        candidates = at_reset(tables, reset)
        if not candidates:
            return None
        kvm_id = candidates[pick(case.config, len(candidates))]
        dropped = CpregPatch(kvm_id, PatchAction.DROP, tables[0][kvm_id], None)
        edited = rewrite_every_cpu(
            stream, decoded, [{k: v for k, v in t.items() if k != kvm_id} for t in tables]
        )
        result = await (await destination(src)).load(case, edited, resave=resave)
        came_back = None
        if result.resave is not None:
            try:
                came_back = cpu_tables(decode_stream(result.resave))[0].get(kvm_id)
            except StreamError:
                came_back = None
        control = evidence.control
        pair = TransferOutcome(control.src, control.src, control.save, result.outcome)
        edited_evidence = replace(evidence, pair=pair, pair_resave=result.resave)
        check = ToleranceCheck(
            dropped, edited_evidence, judge_tolerance(edited_evidence, dropped, came_back), edited
        )
        self.stats["checked"] += 1
        self.stats["broken"] += bool(check.causes)
        return check

    async def _reset_tables(
        self,
        src: QemuBinary,
        config: MachineConfig,
        save: Callable[[QemuBinary, Case], Awaitable[SaveResult]],
    ) -> _Tables | None:
        """Every CPU's cpreg list of ``config`` at reset on ``src`` (saved once)."""
        key = (src.name, config)
        if key not in self._reset:
            self.stats["saves"] += 1
            saved = await save(src, Case(config))
            try:
                self._reset[key] = (
                    None if saved.stream is None else cpu_tables(decode_stream(saved.stream))
                )
            except StreamError:
                self._reset[key] = None
        return self._reset[key]
