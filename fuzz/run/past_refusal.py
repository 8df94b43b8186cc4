"""Past the first refusal: patch a refused stream's cpreg list, load it again, judge that.

Every AArch64 pair across release series is refused on the CPU's register list, so without
this no difference of devices, GIC or RAM between those versions is ever seen. For a pair
whose restore was refused in the ``cpu`` section, :class:`RefusalPatcher`:

1. learns which cpreg edits make the destination accept the source's stream -- the
   destination saves the case itself and every difference of each CPU's two lists is a
   candidate edit (:func:`~fuzz.stream.patch.cpreg_differences`): registers only the
   stream has are dropped and the destination's own are inserted, always; which values to
   set is reduced to the ones the destination needs (:func:`reduce_needed`), as the
   localization does;
2. if asked to (``load``), loads the patched stream on the destination (re-saved, the
   guest read back, exactly as the pair's own restore) and judges it against the case's
   control (:func:`~fuzz.judge.past_refusal.judge_patched`): a load that stops in a later
   section got past the CPU, and what stopped it is a finding behind the refusal
   (:func:`past_cpu`); else the refusal is only signed by the edits.

A ``cpu`` subsection the destination does not send itself, which it refused by name or
crashed in (11.1's ``cpu/wfxt-timer`` aborts 10.0), is got past the same way, with that
subsection left out of the stream first (:func:`foreign_cpu_subsection`,
:func:`~fuzz.stream.patch.drop_subsections`).

What it learns is kept, so a campaign stays fast: per pair, the values found needed (a
version refuses the same registers in every case); per pair and cpreg configuration
(:func:`cpreg_config`), the last edits that worked, reused while the case's source holds
the same values where they set one (an edit of a register the guest wrote is never carried
to another guest). Signing from known edits costs no restore; a load past the refusal one;
a new configuration a save and a few restores of the stream alone (~60 ms each).
"""

from __future__ import annotations

import functools
import re
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
    drop_subsections,
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
    return step.last_field_loaded.startswith("cpu") or any(
        "device 'cpu'" in m or "cpreg" in m or "cpu:" in m for m in step.messages
    )


#: How QEMU (from 10.1) refuses a subsection it does not know.
_UNKNOWN_SUBSECTION = re.compile(r"VM subsection '(cpu/[^'/]+)' in 'cpu' does not exist")


def foreign_cpu_subsection(step: StepOutcome | None) -> str | None:
    """The ``cpu`` subsection a restore stopped on, else None: one QEMU refused by name
    (10.2 refuses 11.1's ``cpu/fpmr``: "VM subsection 'cpu/fpmr' in 'cpu' does not exist"),
    or one it crashed in (10.0 aborts in 11.1's ``cpu/wfxt-timer``). Such a subsection, if
    the destination does not send it itself, is left out of the patched stream
    (:meth:`RefusalPatcher.look_past`). A refusal's last field loaded is not enough: it may
    be in the subsection before a post-load check that failed, and says nothing of it."""
    if step is None or step.stage is not Stage.LOAD:
        return None
    if step.verdict is Verdict.REFUSED:
        named = (_UNKNOWN_SUBSECTION.search(m) for m in step.messages)
        return next((m.group(1) for m in named if m), None)
    if step.verdict is not Verdict.CRASHED:
        return None
    name, colon, _field = step.last_field_loaded.partition(":")
    return name if colon and name.startswith("cpu/") and name.count("/") == 1 else None


def past_cpu(step: StepOutcome) -> bool:
    """Whether a restore of a patched stream got past the ``cpu`` section: it loaded, or it
    was refused or crashed later in the stream, in another section (QEMU's load path names
    where). A refusal there is a finding behind the first one, not a patch that failed:
    7.2 -> 10.0 on ``xlnx-versal-virt`` is refused on the CPU's list and, once patched, on
    the ``usb-dwc3`` section; counting that as no way past hid it. A failure whose place is
    unknown counts as not past."""
    if step.verdict is Verdict.COMPLETED:
        return True
    if step.stage is not Stage.LOAD or step.verdict not in (Verdict.REFUSED, Verdict.CRASHED):
        return False
    last = step.last_field_loaded
    return bool(last) and not last.startswith("cpu") and not refused_on_cpu(step)


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
_Tables = tuple[dict[int, int], ...]


@dataclass(frozen=True)
class _Attempt:
    """One restore of a patched stream."""

    patches: _PerCpu
    stream: bytes
    result: LoadResult

    @property
    def past(self) -> bool:
        """Whether the destination got past the ``cpu`` section (:func:`past_cpu`)."""
        return past_cpu(self.result.outcome)


@dataclass(frozen=True)
class _Learned:
    """What gets a configuration past its refusal: which edits (by register and kind), and
    the destination's own lists they take their values from (one per CPU).

    ``src_values`` are the source's values of the registers it sets when it was learned:
    the same edits serve another case only where the source holds the same values there.
    """

    keys: frozenset[_PatchKey]
    dst_tables: tuple[dict[int, int], ...]
    src_values: tuple[dict[int, int | None], ...]
    causes: frozenset[_PatchKey]
    """The edits that stand for causes: every one but insertions the destination turned
    out not to need (it takes its own value for every register the stream lacks)."""

    @classmethod
    def of(
        cls,
        keys: frozenset[_PatchKey],
        src: Sequence[dict[int, int]],
        dst: Sequence[dict[int, int]],
        causes: frozenset[_PatchKey] | None = None,
    ) -> _Learned:
        # Only a set value depends on the source's: a drop or an insertion is the same
        # edit whatever the source held.
        registers = {kvm_id for kvm_id, action in keys if action is PatchAction.SET}
        values = tuple({r: table.get(r) for r in registers} for table in src)
        return cls(keys, tuple(dst), values, keys if causes is None else causes)

    def applies(self, src: Sequence[dict[int, int]]) -> bool:
        """Whether these edits are this case's too (same CPUs, same source values)."""
        return len(src) == len(self.dst_tables) and all(
            {r: table.get(r) for r in values} == values
            for table, values in zip(src, self.src_values, strict=True)
        )

    def patches(self, src: Sequence[dict[int, int]]) -> _PerCpu:
        """Each CPU's edits of its list ``src[i]`` toward the destination's."""
        return _edits(src, self.dst_tables, self.keys)

    def signing(self, src: Sequence[dict[int, int]]) -> tuple[CpregPatch, ...]:
        """The edits that stand for the refusal's causes, once each."""
        return _unique(_edits(src, self.dst_tables, self.causes))


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


#: The machine options that change a CPU's register list (its EL, the GIC's CPU interface,
#: MTE's tags); the others (memory, IOMMU, ITS, flash, ...) leave it as it is.
CPREG_OPTIONS = frozenset({"secure", "virtualization", "gic-version", "mte"})


def cpreg_config(config: MachineConfig) -> tuple[object, ...]:
    """What decides a configuration's cpreg lists: the CPU model and its properties, the
    options in :data:`CPREG_OPTIONS` and the number of CPUs (the machine type seldom: where
    it does, the reused edits are refused and learned again). Edits learned on one
    configuration serve every other with the same (a configuration met once costs a save
    and a few restores; over a 60-second default campaign nearly every refusal met a new
    configuration)."""
    options = tuple(sorted(o for o in config.machine_options if o[0] in CPREG_OPTIONS))
    return (config.cpu, config.cpu_properties, options, config.smp)


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
        self._last: dict[tuple[str, str, tuple[object, ...], tuple[str, ...]], _Learned | None] = {}
        self.stats = {"looked": 0, "past": 0, "signed": 0, "stuck": 0, "saves": 0, "tests": 0}

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
        load: bool = True,
    ) -> PastRefusal | None:
        """The pair's patched second load, judged; None where no patch gets past (the
        cause is outside the cpreg list) or there is nothing to patch.

        :param save: saves a case on a fresh source of a version (for its own list).
        :param destination: a fresh destination of a version.
        :param resave: re-save the patched load (the state oracle), as the pair's own.
        :param load: load the patched stream and judge it. Without, the refusal is only
            signed, from the edits learned for the configuration (no restore at all when
            they are known), and nothing behind it is judged.
        """
        stream, step = evidence.source_stream, evidence.pair.failing_step
        dropped = foreign_cpu_subsection(step)
        if stream is None or not (refused_on_cpu(step) or dropped):
            return None
        try:
            decoded = decoded_once(stream)
            if dropped is not None:
                stream = drop_subsections(stream, decoded, "cpu", {dropped})
                decoded = decode_stream(stream)
            tables = cpu_tables(decoded)
        except StreamError:
            return None
        left_out = () if dropped is None else (dropped,)
        self.stats["looked"] += 1

        async def restore(per_cpu: _PerCpu, *, guest: bool = True) -> _Attempt:
            patched = [apply_patches(t, p) for t, p in zip(tables, per_cpu, strict=True)]
            data = rewrite_every_cpu(stream, decoded, patched)
            target = case if guest else replace(case, guest=None)
            result = await (await destination(dst)).load(target, data, resave=resave and guest)
            return _Attempt(per_cpu, data, result)

        config_key = (src.name, dst.name, cpreg_config(case.config), left_out)
        if config_key in self._last and self._last[config_key] is None:
            self.stats["stuck"] += 1  # no way past this configuration, found before
            return None
        cpu = case.config.cpu
        last = self._last.get(config_key)
        if last is not None and last.applies(tables):
            if not load:
                return self._signed(first, last, tables, cpu, left_out)
            reused = await restore(last.patches(tables))
            if reused.past:
                signing = last.signing(tables)
                return self._judged(evidence, first, reused, signing, cpu=cpu, left_out=left_out)
        learned, tried = await self._learn(
            src, dst, case, tables, left_out, save=save, restore=restore, load=load
        )
        if learned is not None and tried is None and not load:
            self._last[config_key] = learned
            return self._signed(first, learned, tables, cpu, left_out)
        if learned is not None and tried is None:
            tried = await restore(learned.patches(tables))
        if learned is not None and tried is not None and tried.past:
            self._last[config_key] = learned
            signing = learned.signing(tables)
            return self._judged(evidence, first, tried, signing, cpu=cpu, left_out=left_out)
        self._last[config_key] = None
        self.stats["stuck"] += 1
        return None

    def _signed(
        self,
        first: Divergence,
        learned: _Learned,
        tables: _Tables,
        cpu: str,
        left_out: tuple[str, ...],
    ) -> PastRefusal:
        """The refusal signed by the edits learned for its configuration, not loaded."""
        self.stats["signed"] += 1
        signing = learned.signing(tables)
        patches = _unique(learned.patches(tables))
        return PastRefusal(first, patches, None, None, b"", cpu, signing, left_out)

    def _judged(
        self,
        evidence: Evidence,
        first: Divergence,
        attempt: _Attempt,
        signing: tuple[CpregPatch, ...],
        *,
        cpu: str,
        left_out: tuple[str, ...],
    ) -> PastRefusal:
        pair = evidence.pair
        patched = replace(
            evidence, pair=TransferOutcome(pair.src, pair.dst, pair.save, attempt.result.outcome),
            pair_resave=attempt.result.resave,
        )  # fmt: skip
        self.stats["past"] += 1
        patches = _unique(attempt.patches)
        judgement = judge_patched(patched, patches)
        stream = attempt.stream
        return PastRefusal(first, patches, patched, judgement, stream, cpu, signing, left_out)

    async def _learn(
        self,
        src: QemuBinary,
        dst: QemuBinary,
        case: Case,
        tables: tuple[dict[int, int], ...],
        left_out: tuple[str, ...],
        *,
        save: Callable[[QemuBinary, Case], Awaitable[SaveResult]],
        restore: Callable[..., Awaitable[_Attempt]],
        load: bool,
    ) -> tuple[_Learned | None, _Attempt | None]:
        """The edits this case needs, from the destination's own save of it: the pair's
        known edits among the differences, tried first as the real restore (returned with
        it if it loaded), else those and what a reduction finds among the rest (restored
        without the guest). None: even every edit is refused, or a subsection left out
        (``left_out``) is one the destination sends itself (its state would be lost, and
        found different behind: not a finding)."""
        self.stats["saves"] += 1
        own = await save(dst, case)
        if own.stream is None:
            return None, None
        try:
            own_stream = decode_stream(own.stream)
            dst_tables = cpu_tables(own_stream)
        except StreamError:
            return None, None
        sent = {
            sub.name for sec in own_stream.sections if sec.name == "cpu" for sub in sec.subsections
        }
        if sent & set(left_out):
            return None, None
        if len(dst_tables) != len(tables):
            return None, None
        candidates = _keys(tables, dst_tables)
        # Insertions are the destination's own values of registers the stream lacks: always
        # made (a missing register takes heap bytes, so which ones refuse depends on the
        # heap), and a cause only if the stream without them is refused (tested below).
        # A register only the stream has fails every version's cpu_post_load: always dropped.
        # What is left to find is which values to set (reduced below, learned per pair).
        inserts = frozenset(k for k in candidates if k[1] is PatchAction.INSERT)
        drops = frozenset(k for k in candidates if k[1] is PatchAction.DROP)
        needed = self._needed.setdefault((src.name, dst.name), set())
        known = inserts | drops | (candidates & needed)

        async def accepted(subset: Sequence[_PatchKey], *, inserted: bool = True) -> bool:
            self.stats["tests"] += 1
            keys = (known if inserted else known - inserts) | frozenset(subset)
            return (await restore(_edits(tables, dst_tables, keys), guest=False)).past

        async def learned(keys: frozenset[_PatchKey]) -> _Learned:
            causes = keys
            if inserts and await accepted(sorted(keys - inserts), inserted=False):
                causes = keys - inserts
            return _Learned.of(keys, tables, dst_tables, causes)

        if known and load:  # as the real restore: the attempt is the load past the refusal
            if (attempt := await restore(_edits(tables, dst_tables, known))).past:
                return await learned(known), attempt
        elif known and await accepted([]):
            return await learned(known), None
        rest = sorted(candidates - known)
        if not rest or not await accepted(rest):
            return None, None
        found = await reduce_needed(rest, accepted, MAX_TESTS)
        needed.update(found)
        return await learned(known | frozenset(found)), None


@functools.lru_cache(maxsize=2)
def decoded_once(stream: bytes) -> Stream:
    """``stream`` decoded, once for every destination of a fan-out that refused it (and
    for the tolerance check of the same case)."""
    return decode_stream(stream)
