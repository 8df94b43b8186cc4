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


@dataclass(frozen=True)
class _Attempt:
    """One restore of a patched stream."""

    patches: tuple[CpregPatch, ...]
    stream: bytes
    result: LoadResult

    @property
    def loaded(self) -> bool:
        return self.result.outcome.verdict is Verdict.COMPLETED


class RefusalPatcher:
    """Gets refused pairs past their cpreg refusal and judges what follows (one per
    session: what it learns serves every later case)."""

    def __init__(self) -> None:
        self._needed: dict[tuple[str, str], set[_PatchKey]] = {}
        self._last: dict[tuple[str, str, MachineConfig], tuple[CpregPatch, ...] | None] = {}
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
            decoded = _decoded(stream)
            table = cpreg_table(decoded)
        except StreamError:
            return None
        self.stats["looked"] += 1

        async def restore(patches: tuple[CpregPatch, ...], *, guest: bool = True) -> _Attempt:
            data = rewrite_cpregs(stream, decoded, apply_patches(table, patches))
            target = case if guest else replace(case, guest=None)
            loading = await destination(dst)
            return _Attempt(
                patches, data, await loading.load(target, data, resave=resave and guest)
            )

        config_key = (src.name, dst.name, case.config)
        last = self._last.get(config_key, ())
        if last is None:  # no way past this configuration, found before
            self.stats["stuck"] += 1
            return None
        if last and _applies(last, table) and (attempt := await restore(last)).loaded:
            return self._judged(evidence, first, attempt)
        patches = await self._learn(src, dst, case, table, save=save, restore=restore)
        if isinstance(patches, _Attempt):  # the pair's known edits were enough
            self._last[config_key] = patches.patches
            return self._judged(evidence, first, patches)
        if patches is not None and (attempt := await restore(patches)).loaded:
            self._last[config_key] = patches
            return self._judged(evidence, first, attempt)
        self._last[config_key] = None
        self.stats["stuck"] += 1
        return None

    def _judged(self, evidence: Evidence, first: Divergence, attempt: _Attempt) -> PastRefusal:
        pair = evidence.pair
        patched = replace(
            evidence, pair=TransferOutcome(pair.src, pair.dst, pair.save, attempt.result.outcome),
            pair_resave=attempt.result.resave,
        )  # fmt: skip
        self.stats["past"] += 1
        judgement = judge_patched(patched, attempt.patches)
        return PastRefusal(first, attempt.patches, patched, judgement, attempt.stream)

    async def _learn(
        self,
        src: QemuBinary,
        dst: QemuBinary,
        case: Case,
        table: dict[int, int],
        *,
        save: Callable[[QemuBinary, Case], Awaitable[SaveResult]],
        restore: Callable[..., Awaitable[_Attempt]],
    ) -> _Attempt | tuple[CpregPatch, ...] | None:
        """The edits this case needs, from the destination's own save of it: the pair's
        known edits among the differences, tried first as the real restore (the attempt
        is returned if it loaded), else those and what a reduction finds among the rest
        (restored without the guest). None: even every edit is refused."""
        self.stats["saves"] += 1
        own = await save(dst, case)
        if own.stream is None:
            return None
        try:
            differences = cpreg_differences(table, cpreg_table(decode_stream(own.stream)))
        except StreamError:
            return None
        needed = self._needed.setdefault((src.name, dst.name), set())
        known = tuple(p for p in differences if (p.kvm_id, p.action) in needed)
        rest = [p for p in differences if (p.kvm_id, p.action) not in needed]
        if known and (attempt := await restore(known)).loaded:
            return attempt

        async def accepted(subset: list[CpregPatch]) -> bool:
            self.stats["tests"] += 1
            return (await restore(known + tuple(subset), guest=False)).loaded

        if not rest or not await accepted(rest):
            return None
        found = await reduce_needed(rest, accepted, MAX_TESTS)
        needed.update((p.kvm_id, p.action) for p in found)
        return tuple(sorted(known + tuple(found)))


@functools.lru_cache(maxsize=2)
def _decoded(stream: bytes) -> Stream:
    """``stream`` decoded, once for every destination of a fan-out that refused it."""
    return decode_stream(stream)


def _applies(patches: tuple[CpregPatch, ...], table: dict[int, int]) -> bool:
    """Whether ``patches``, learned on another case, are the same edits of this one: the
    source holds every register they set or drop with the value they were learned on."""
    return all(
        table.get(p.kvm_id) == p.src_value for p in patches if p.action is not PatchAction.INSERT
    ) and all(p.kvm_id not in table for p in patches if p.action is PatchAction.INSERT)
