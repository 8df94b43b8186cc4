"""Past the first refusal: patch a refused stream's cpreg list, load it again, judge that.

Every AArch64 pair across release series is refused on the CPU's register list, so without
this no difference of devices, GIC or RAM between those versions is ever seen. For a pair
whose restore was refused in the ``cpu`` section, :class:`RefusalPatcher`:

1. learns which cpreg edits make the destination accept the source's stream -- the
   destination saves the case itself, every difference of the two lists is a candidate
   edit (:func:`~fuzz.stream.patch.cpreg_differences`), and the candidates are reduced to
   the ones the destination needs (:func:`reduce_needed`), as the localization does;
2. loads the patched stream on the destination (re-saved, the guest read back, exactly as
   the pair's own restore) and judges it against the case's control
   (:func:`~fuzz.judge.past_refusal.judge_patched`).

What it learns is kept, so a campaign stays fast: per pair, the edits found needed (a
version's refused registers are the same in every case); per pair and configuration, the
last edits that worked, reused while the case's source values are the same (an edit of a
register the guest wrote is never carried to another guest). A cached patch then costs
one restore, a new configuration one save more, and a new cause a few restores of the
stream alone (without the guest, ~60 ms each).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.errors import StreamError
from fuzz.judge.oracles import Divergence, Evidence
from fuzz.judge.past_refusal import PastRefusal, judge_patched
from fuzz.run.runner import Destination, LoadResult, SaveResult
from fuzz.stream.decode import decode_stream
from fuzz.stream.model import Stream
from fuzz.stream.patch import (
    CpregPatch,
    PatchAction,
    apply_patches,
    cpreg_differences,
    cpreg_table,
    rewrite_cpregs,
)

T = TypeVar("T")

#: At most this many restores to find what a new refusal needs (one per candidate set).
MAX_TESTS = 24

_PatchKey = tuple[int, PatchAction]


def refused_on_cpu(step: StepOutcome | None) -> bool:
    """Whether a restore was refused in the ``cpu`` section (its cpreg list): the refusal
    a patch can get past. Crashes and other sections' refusals are left as they are."""
    if step is None or step.stage is not Stage.LOAD or step.verdict is not Verdict.REFUSED:
        return False
    path = step.details.get("load_path")
    last = str(path.get("last_field", "")) if isinstance(path, dict) else ""
    return last.startswith("cpu") or any(
        "device 'cpu'" in m or "cpreg" in m or "cpu:" in m for m in step.messages
    )


async def reduce_needed(
    items: Sequence[T], accepted: Callable[[list[T]], Awaitable[bool]], max_tests: int
) -> list[T]:
    """A subset of ``items`` that ``accepted`` still takes, found by removing chunks
    (halves, then quarters, down to single items) while it takes the rest.

    ``accepted(items)`` must be true. Not the localization's ``ddmin``
    (:mod:`fuzz.triage.ddmin`): its test is synchronous, ours is a restore on this event
    loop; removing chunks is the half of ddmin that matters here (few items are needed
    among many). With the budget spent, what is left still passes.
    """
    needed = list(items)
    chunk = max(1, len(needed) // 2)
    tests = 0
    while tests < max_tests:
        at = 0
        while at < len(needed) and tests < max_tests:
            trial = needed[:at] + needed[at + chunk :]
            tests += 1
            if await accepted(trial):
                needed = trial
            else:
                at += chunk
        if chunk == 1:
            break
        chunk = max(1, chunk // 2)
    return needed


#: One stream's edits: the edits of each CPU's cpreg list, in instance order.
_PerCpu = tuple[tuple[CpregPatch, ...], ...]


@dataclass(frozen=True)
class _Attempt:
    """One restore of a patched stream."""

    patches: _PerCpu
    stream: bytes
    result: LoadResult

    @property
    def loaded(self) -> bool:
        return self.result.outcome.verdict is Verdict.COMPLETED


@dataclass(frozen=True)
class _Learned:
    """What gets a configuration past its refusal: which edits (by register and kind), and
    the destination's own lists they take their values from (one per CPU).

    ``src_values`` are the source's values of those registers when it was learned: the
    same edits serve another case only where the source holds the same values there.
    """

    keys: frozenset[_PatchKey]
    dst_tables: tuple[dict[int, int], ...]
    src_values: tuple[dict[int, int | None], ...]

    @classmethod
    def of(
        cls,
        keys: frozenset[_PatchKey],
        src: Sequence[dict[int, int]],
        dst: Sequence[dict[int, int]],
    ) -> _Learned:
        registers = {kvm_id for kvm_id, _action in keys}
        values = tuple({r: table.get(r) for r in registers} for table in src)
        return cls(keys, tuple(dst), values)

    def applies(self, src: Sequence[dict[int, int]]) -> bool:
        """Whether these edits are this case's too (same CPUs, same source values)."""
        return len(src) == len(self.dst_tables) and all(
            {r: table.get(r) for r in values} == values
            for table, values in zip(src, self.src_values, strict=True)
        )

    def patches(self, src: Sequence[dict[int, int]]) -> _PerCpu:
        """Each CPU's edits of its list ``src[i]`` toward the destination's."""
        return _edits(src, self.dst_tables, self.keys)


def _edits(
    src: Sequence[dict[int, int]], dst: Sequence[dict[int, int]], keys: frozenset[_PatchKey]
) -> _PerCpu:
    """Each CPU's differences from ``src[i]`` to ``dst[i]`` whose kind and register are in
    ``keys``."""
    return tuple(
        tuple(p for p in cpreg_differences(s, d, zeros=True) if (p.kvm_id, p.action) in keys)
        for s, d in zip(src, dst, strict=True)
    )


def _keys(src: Sequence[dict[int, int]], dst: Sequence[dict[int, int]]) -> set[_PatchKey]:
    """Every edit (register and kind) that some CPU's list needs toward the destination's."""
    return {
        (p.kvm_id, p.action)
        for s, d in zip(src, dst, strict=True)
        for p in cpreg_differences(s, d, zeros=True)
    }


def cpu_tables(stream: Stream) -> tuple[dict[int, int], ...]:
    """Each CPU's cpreg list, in instance order (instance 0 first).

    :raise StreamError: the stream has no cpu section, or one's arrays are malformed.
    """
    tables: list[dict[int, int]] = []
    while True:
        try:
            stream.section("cpu", len(tables))
        except KeyError:
            break
        tables.append(cpreg_table(stream, len(tables)))
    if not tables:
        raise StreamError("no cpu section in the stream", offset=0)
    return tuple(tables)


def rewrite_every_cpu(data: bytes, stream: Stream, tables: Sequence[dict[int, int]]) -> bytes:
    """``data`` with CPU ``i``'s cpreg list replaced by ``tables[i]``: the last in the stream
    first, so the offsets of the ones before stay valid."""
    order = sorted(
        range(len(tables)),
        key=lambda i: stream.section("cpu", i).field("cpreg_vmstate_array_len").offset,
        reverse=True,
    )
    for i in order:
        data = rewrite_cpregs(data, stream, tables[i], i)
    return data


def _unique(per_cpu: _PerCpu) -> tuple[CpregPatch, ...]:
    """Every CPU's edits, one per register and kind (CPU 0's where CPUs differ): what a
    finding records and is signed by."""
    seen: dict[_PatchKey, CpregPatch] = {}
    for patches in per_cpu:
        for p in patches:
            seen.setdefault((p.kvm_id, p.action), p)
    return tuple(sorted(seen.values()))


class RefusalPatcher:
    """Gets refused pairs past their cpreg refusal and judges what follows (one per
    session: what it learns serves every later case)."""

    def __init__(self) -> None:
        self._needed: dict[tuple[str, str], set[_PatchKey]] = {}
        self._last: dict[tuple[str, str, MachineConfig], _Learned | None] = {}
        self.stats = {"looked": 0, "past": 0, "stuck": 0, "saves": 0, "tests": 0}

    async def look_past(
        self,
        src: QemuBinary,
        dst: QemuBinary,
        case: Case,
        evidence: Evidence,
        first: Divergence,
        *,
        save: Callable[[QemuBinary, Case], Awaitable[SaveResult]],
        destination: Callable[[QemuBinary], Awaitable[Destination]],
        resave: bool,
    ) -> PastRefusal | None:
        """The pair's patched second load, judged; None where no patch gets past (the
        cause is outside the cpreg list) or there is nothing to patch.

        :param save: saves a case on a fresh source of a version (for its own list).
        :param destination: a fresh destination of a version.
        :param resave: re-save the patched load (the state oracle), as the pair's own.
        """
        stream = evidence.source_stream
        if stream is None or not refused_on_cpu(evidence.pair.failing_step):
            return None
        try:
            decoded = decoded_once(stream)
            tables = cpu_tables(decoded)
        except StreamError:
            return None
        self.stats["looked"] += 1

        async def restore(per_cpu: _PerCpu, *, guest: bool = True) -> _Attempt:
            patched = [apply_patches(t, p) for t, p in zip(tables, per_cpu, strict=True)]
            data = rewrite_every_cpu(stream, decoded, patched)
            target = case if guest else replace(case, guest=None)
            result = await (await destination(dst)).load(target, data, resave=resave and guest)
            return _Attempt(per_cpu, data, result)

        config_key = (src.name, dst.name, case.config)
        if config_key in self._last and self._last[config_key] is None:
            self.stats["stuck"] += 1  # no way past this configuration, found before
            return None
        last = self._last.get(config_key)
        if last is not None and last.applies(tables):
            reused = await restore(last.patches(tables))
            if reused.loaded:
                return self._judged(evidence, first, reused, case.config.cpu)
        learned, tried = await self._learn(src, dst, case, tables, save=save, restore=restore)
        if learned is not None and tried is None:
            tried = await restore(learned.patches(tables))
        if learned is not None and tried is not None and tried.loaded:
            self._last[config_key] = learned
            return self._judged(evidence, first, tried, case.config.cpu)
        self._last[config_key] = None
        self.stats["stuck"] += 1
        return None

    def _judged(
        self, evidence: Evidence, first: Divergence, attempt: _Attempt, cpu: str
    ) -> PastRefusal:
        pair = evidence.pair
        patched = replace(
            evidence, pair=TransferOutcome(pair.src, pair.dst, pair.save, attempt.result.outcome),
            pair_resave=attempt.result.resave,
        )  # fmt: skip
        self.stats["past"] += 1
        patches = _unique(attempt.patches)
        judgement = judge_patched(patched, patches)
        return PastRefusal(first, patches, patched, judgement, attempt.stream, cpu)

    async def _learn(
        self,
        src: QemuBinary,
        dst: QemuBinary,
        case: Case,
        tables: tuple[dict[int, int], ...],
        *,
        save: Callable[[QemuBinary, Case], Awaitable[SaveResult]],
        restore: Callable[..., Awaitable[_Attempt]],
    ) -> tuple[_Learned | None, _Attempt | None]:
        """The edits this case needs, from the destination's own save of it: the pair's
        known edits among the differences, tried first as the real restore (returned with
        it if it loaded), else those and what a reduction finds among the rest (restored
        without the guest). None: even every edit is refused."""
        self.stats["saves"] += 1
        own = await save(dst, case)
        if own.stream is None:
            return None, None
        try:
            dst_tables = cpu_tables(decode_stream(own.stream))
        except StreamError:
            return None, None
        if len(dst_tables) != len(tables):
            return None, None
        candidates = _keys(tables, dst_tables)
        needed = self._needed.setdefault((src.name, dst.name), set())
        known = frozenset(candidates & needed)
        if known:
            plan = _Learned.of(known, tables, dst_tables)
            if (attempt := await restore(plan.patches(tables))).loaded:
                return plan, attempt
        rest = sorted(candidates - known)

        async def accepted(subset: list[_PatchKey]) -> bool:
            self.stats["tests"] += 1
            keys = known | frozenset(subset)
            return (await restore(_edits(tables, dst_tables, keys), guest=False)).loaded

        if not rest or not await accepted(rest):
            return None, None
        found = await reduce_needed(rest, accepted, MAX_TESTS)
        needed.update(found)
        return _Learned.of(known | frozenset(found), tables, dst_tables), None


@functools.lru_cache(maxsize=2)
def decoded_once(stream: bytes) -> Stream:
    """``stream`` decoded, once for every destination of a fan-out that refused it (and
    for the tolerance check of the same case)."""
    return decode_stream(stream)
