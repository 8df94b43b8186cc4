"""Evidence in, a judgement out: agree, invalid case, failed control, or a divergence.

The one judge of migfuzz. :func:`judge` takes the :class:`Evidence` of one case -- the
control's and the pair's outcomes and, where they completed, their re-saved states -- and
applies the oracles in a fixed order: the step verdicts, the guest's read-back, then the
state round trip. Every oracle compares the pair *with the control*, never with the
source's stream alone: what both sides do the same (the epilogue's own effects, a field
that changes on every save) is not a divergence.

A divergence carries a :class:`Signature`: a normalized, stable description of *what* went
wrong, with no addresses, pids, temp paths or timings, and register names instead of raw
ids. Two cases with the same signature are the same bug; the fuzz loop keeps one reproducer
per signature, and a shrink that loses the signature has found a different bug.

A signature names one root cause, not a symptom's whole text. Where QEMU's refusal lists
several independent causes -- one "cpreg only in incoming stream" line per register the
destination does not know -- the divergence carries each cause (:attr:`Divergence.causes`):
the set of registers changes with the configuration (EL2 or not, AArch32 or not), the
reason each one is refused does not. An AArch64 register is a cause by itself; AArch32
coprocessor registers go by family (coprocessor and opc1: ``P15_4_*`` are the Hyp
registers, which come and go together with EL2), since a family is what a version adds
or drops, one register at a time being an artefact of the configuration.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fuzz.core.outcome import StepOutcome, TransferOutcome, Verdict
from fuzz.errors import CorpusError, InvalidInput
from fuzz.judge.sanitizer import SanitizerReport
from fuzz.stream.cpregs import names_in_message

if TYPE_CHECKING:
    from fuzz.judge.transcript import TranscriptDifference


@dataclass(frozen=True, order=True)
class Signature:
    """What diverged: ``kind`` (the pair's verdict or ``state``) and a normalized detail."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind

    @property
    def same_version(self) -> bool:
        """Whether A -> A itself diverged (its kind starts with :data:`SAME_VERSION`)."""
        return self.kind.startswith(SAME_VERSION)

    def slug(self) -> str:
        """A folder-name form: lower-case words joined by '-', at most 60 characters."""
        words = re.sub(r"[^a-z0-9]+", "-", str(self).lower()).strip("-")
        return words[:60].rstrip("-") or "divergence"

    def short_hash(self) -> str:
        """Eight hex digits of the signature's hash: tells apart slugs cut short alike."""
        return hashlib.sha256(str(self).encode()).hexdigest()[:8]

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {"kind": self.kind, "detail": self.detail}

    @classmethod
    def from_json(cls, data: Any) -> Signature:
        """Parse :meth:`to_json` output."""
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise CorpusError(f"signature must be an object with a 'kind', not {data!r}")
        return cls(kind=data["kind"], detail=str(data.get("detail", "")))


#: The recorded "signature" of an entry whose bug is fixed: control and pair agree.
AGREE = Signature("agree", "")


@dataclass(frozen=True)
class Evidence:
    """What the judge looks at for one case.

    ``control_resave`` and ``pair_resave`` are the destinations' re-saves, taken right
    after a completed restore while the VM was still paused; None when not taken.
    """

    control: TransferOutcome
    pair: TransferOutcome
    control_resave: bytes | None = field(default=None, repr=False)
    pair_resave: bytes | None = field(default=None, repr=False)
    source_stream: bytes | None = field(default=None, repr=False)
    """The source's own stream (fresh processes), for the same-version state oracle."""
    pci_devices: tuple[tuple[int, str], ...] = ()
    """(slot, driver) of the configuration's added PCI devices: a read-back difference of
    ``pci<slot>.*`` is signed by the device there, not by where it was put."""


@dataclass(frozen=True)
class Agree:
    """The pair ended as the control did, and every oracle saw the same state."""


@dataclass(frozen=True)
class InvalidCase:
    """The case cannot run on one side (a setup error): not a divergence, not a failure."""

    reason: str


@dataclass(frozen=True)
class ControlFailed:
    """A -> A gave nothing to compare with, for a reason that may be the harness's (its
    read-back never finished): never reported as a finding. A control that QEMU refused,
    crashed or restored differently is a finding instead (:data:`SAME_VERSION`)."""

    reason: str


#: How a step ends when QEMU itself failed it (not the harness, not the case).
QEMU_FAILURES = frozenset({Verdict.REFUSED, Verdict.CRASHED, Verdict.HUNG})

#: The kind prefix of a same-version divergence: A -> A refused, crashed, hung, or came
#: back different from what A saved. A QEMU bug like any other, judged before the pair.
SAME_VERSION = "same-version-"


@dataclass(frozen=True)
class Divergence:
    """The pair's outcome or state differs from the control's.

    ``signature`` is the headline (the first cause); ``causes`` every root cause the case
    shows, in order (empty: the headline is the only one; use :meth:`signatures`).
    """

    signature: Signature
    details: dict[str, Any]
    causes: tuple[Signature, ...] = ()

    def signatures(self) -> tuple[Signature, ...]:
        """Every root cause of this divergence, the headline first."""
        return self.causes or (self.signature,)


Judgement = Agree | InvalidCase | ControlFailed | Divergence

#: Oracles compare completed transfers (guest transcript, stream state) and return a
#: divergence or None. They run only when both control and pair completed.
StateOracle = Callable[[Evidence], Divergence | None]

# (pattern, replacement) applied in order to each QEMU error line. Register ids are
# replaced by names before these run.
_REWRITES: Sequence[tuple[re.Pattern[str], str]] = [
    # A device's section is named after where it sits (``0000:00:0f.0/virtio-net``,
    # ``virtio-mmio@000000000a003c00/virtio-rng``): one cause wherever it was put.
    (
        re.compile(r"\b(?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]/|\bvirtio-mmio@[0-9a-f]+/"),
        "",
    ),
    # From 10.1 QEMU puts the errno's text before the error ("Operation not permitted:
    # error while loading state ..."): the same cause as 5.2-10.0's words without it.
    (
        re.compile(
            r"^(load of migration failed: )?[A-Z][a-z]+(?: [a-z]+)*: (?=error while loading)"
        ),
        r"\1",
    ),
    (
        re.compile(r"^.*?(?:\S+\.c:\d+: )?(\w+): Assertion `(.*)' failed\.?$"),
        r"assertion in \1: \2",
    ),
    (re.compile(r"^handle_cpreg_only_in_incoming_stream: .*"), "cpreg only in incoming stream"),
    (
        re.compile(r"^handle_cpreg_missing_in_incoming_stream: .*"),
        "cpreg missing from incoming stream",
    ),
    (
        re.compile(r"error while loading state for instance 0x[0-9a-f]+ of device '([^']+)'"),
        r"error loading device '\1'",
    ),
    (
        re.compile(r"error while loading state section id \d+\(([^)]*)\)"),
        r"error loading section '\1'",
    ),
    (re.compile(r"0x[0-9a-fA-F]+"), "N"),
    (re.compile(r"(?<![\w.])\d+(?![\w.])"), "N"),
    # A file's path, not a section's name (``'cpu/fpmr'``): a slash after a word character
    # is a name's.
    (re.compile(r"(?<!\w)/\S+"), "PATH"),
]
_NOISE = re.compile(r"^(load of migration failed: |qemu: )|(terminating on signal.*)$", re.I)
#: Normalized lines that say most, best first; else the first error line is used.
_SPECIFIC = (
    "assertion in",
    "cpreg ",
    "Failed to load ",
    "Unknown savevm section",
    "Missing section",
)


def normalize_message(line: str) -> str:
    """One QEMU error line in a stable form: register names kept, numbers and paths gone."""
    names = names_in_message(line)
    text = line.strip()
    for pattern, repl in _REWRITES:
        text = pattern.sub(repl, text)
    text = _NOISE.sub("", text).strip()
    if names:
        text = f"{text}: {', '.join(sorted(set(names)))}"
    return text


#: Refusal lines that QEMU prints once per register, each register a cause. ("missing from
#: incoming stream" lines are not: QEMU 11.1 prints them and loads anyway.)
PER_REGISTER_CAUSES = ("cpreg only in incoming stream: ",)
_AARCH32_FAMILY = re.compile(r"^(P1[45]_\d+)_")


def register_cause(name: str) -> str:
    """The root cause a refused register stands for: its own name (AArch64), or its
    AArch32 family ``P15_4_*`` (coprocessor and opc1)."""
    family = _AARCH32_FAMILY.match(name)
    return f"{family.group(1)}_*" if family else name


def step_signature(step: StepOutcome) -> Signature:
    """The signature of a step that did not complete: its first root cause."""
    return step_causes(step)[0]


def step_causes(step: StepOutcome) -> tuple[Signature, ...]:
    """The root causes of a step that did not complete (at least one), sorted."""
    kind = f"{step.verdict}-on-{step.stage}"
    if step.verdict is Verdict.HUNG:
        return (Signature(kind, ""),)
    report = SanitizerReport.from_details(step.details)
    if report is not None and step.verdict is Verdict.CRASHED:
        # A sanitizer build's report names the error and where: it says more than a signal.
        return (Signature(kind, report.signature_detail()),)
    errors = [m for m in step.messages if not m.lower().startswith("warning:")]
    normalized = [normalize_message(m) for m in errors]
    # QEMU names one register per line; each register is a cause.
    causes = sorted({
        Signature(kind, prefix + register_cause(name.strip()))
        for n in normalized for prefix in PER_REGISTER_CAUSES if n.startswith(prefix)
        for name in n[len(prefix):].split(",")
    })  # fmt: skip
    if causes:
        return tuple(causes)
    return (_single_step_signature(step, kind, normalized),)


def _single_step_signature(step: StepOutcome, kind: str, normalized: list[str]) -> Signature:
    # The most specific line: a named register or an assertion beats the generic wrapper.
    detail = next(
        (n for prefix in _SPECIFIC for n in normalized if n.startswith(prefix)),
        normalized[0] if normalized else "",
    )
    if not detail and step.returncode is not None and step.returncode < 0:
        detail = f"signal {-step.returncode}"
    # Where loading stopped tells apart one assertion hit by different fields.
    path = step.details.get("load_path")
    if isinstance(path, dict) and not detail.startswith(("cpreg ", "Failed to load ")):
        failed, after = load_stop_suffixes(path)
        if failed:
            detail += failed
        elif after and _in_named_section(detail, str(path["last_field"])):
            detail += after
    return Signature(kind, detail)


def load_stop_suffixes(path: Mapping[str, Any]) -> tuple[str, str]:
    """What a load's cause may end with for where the load stopped (a ``load_path``):
    `` @ <failed>`` and `` after <last field>`` ("" where the trace has neither)."""
    failed = f" @ {path['failed']}" if path.get("failed") else ""
    after = f" after {path['last_field']}" if path.get("last_field") else ""
    return failed, after


def _in_named_section(detail: str, last_field: str) -> bool:
    """Whether the last field loaded belongs to the section QEMU's words name, if they name
    one (``... for 'virtio-iommu' v1``, ``error loading device 'cpu'``): a section refused
    before its first field is loaded leaves the previous section's last field, which
    depends on what else the configuration has (one cause was two signatures, ``after
    arm_gicv3/...`` and ``after configuration/...``)."""
    named = re.findall(r"'([^']+)'", detail)
    section = re.split(r"[/:]", last_field, maxsplit=1)[0]
    return not named or section in named


def judge(evidence: Evidence, oracles: Sequence[StateOracle] | None = None) -> Judgement:
    """Compare a cross-version transfer with its same-version control.

    :param oracles: the state oracles, in order; by default :func:`default_oracles`.
    :raise InvalidInput: the two transfers do not share a source.
    """
    control, pair = evidence.control, evidence.pair
    if control.src != pair.src or control.src != control.dst:
        raise InvalidInput(
            f"control {control.src}->{control.dst} does not match pair {pair.src}->{pair.dst}"
        )
    if control.verdict is Verdict.SETUP_ERROR:
        return InvalidCase(control.summary())
    failed = control.failing_step
    if failed is not None and failed.verdict in QEMU_FAILURES:
        causes = tuple(Signature(SAME_VERSION + c.kind, c.detail) for c in step_causes(failed))
        details = {"summary": control.summary(), "messages": list(failed.messages)}
        return Divergence(causes[0], details, causes if len(causes) > 1 else ())
    if control.verdict is not Verdict.COMPLETED:
        return ControlFailed(control.summary())
    if control.load is not None and control.load.details.get("transcript_complete") is False:
        # A read-back the control never finished compares as equal to any other: without
        # this, two silent guests would agree.
        return ControlFailed(f"{control.src} -> {control.dst}: guest read-back incomplete")
    for oracle in SAME_VERSION_ORACLES:
        if (found := oracle(evidence)) is not None:
            return found
    if pair.verdict is Verdict.SETUP_ERROR:
        return InvalidCase(pair.summary())
    step = pair.failing_step
    if step is not None:
        causes = step_causes(step)
        details = {"summary": pair.summary(), "messages": list(step.messages)}
        return Divergence(causes[0], details, causes if len(causes) > 1 else ())
    for oracle in default_oracles() if oracles is None else oracles:
        found = oracle(evidence)
        if found is not None:
            return found
    return Agree()


def guest_transcript_oracle(
    evidence: Evidence, ignore: frozenset[str] = frozenset()
) -> Divergence | None:
    """The guest-visible oracle: what the guest reads back after A -> B vs after A -> A.

    :param ignore: read-back items (register names) left out: ones the pair's stream was
        patched to hold another value of (:mod:`fuzz.judge.past_refusal`).
    """
    control, pair = evidence.control, evidence.pair
    if control.load is None or pair.load is None:
        return None
    expected = control.load.details.get("transcript")
    actual = pair.load.details.get("transcript")
    if not isinstance(expected, str) or not isinstance(actual, str):
        return None
    from fuzz.judge.transcript import compare_transcripts, parse_transcript  # noqa: PLC0415

    differences = [
        d for d in compare_transcripts(parse_transcript(expected), parse_transcript(actual))
        if d.name not in ignore
    ]  # fmt: skip
    if not differences:
        return None
    return _readback_divergence("state", differences, {}, dict(evidence.pci_devices))


def state_round_trip_oracle(
    evidence: Evidence, ignore: frozenset[str] = frozenset()
) -> Divergence | None:
    """The state oracle: what B restored differently from what A restored.

    Compares the pair's re-save with the control's, field by field (by register for
    cpregs, by content digest for RAM); fields that legitimately differ between runs or
    versions are left out by rule (:data:`fuzz.stream.compare.VOLATILE_FIELDS`). Re-saves
    that are the same bytes (but for where RAM passes break) are not decoded at all. A
    re-save that does not decode tells nothing: no finding (a false finding costs more
    than a missed one).

    :param ignore: cpreg names left out (registers the pair's stream was patched to hold
        another value of).
    """
    details = {"src": evidence.pair.src, "dst": evidence.pair.dst}
    return _state_divergence(
        evidence.control_resave, evidence.pair_resave, "state", details, ignore,
        formats_differ=evidence.pair.src != evidence.pair.dst,
    )  # fmt: skip


def _state_divergence(
    a: bytes | None, b: bytes | None, kind: str, details: dict[str, Any],
    ignore: frozenset[str] = frozenset(), *, formats_differ: bool = False,
) -> Divergence | None:  # fmt: skip
    """A ``kind`` divergence naming the fields where the states ``a`` and ``b`` differ
    (volatile ones and ``ignore``'s cpregs aside; with ``formats_differ``, two versions
    wrote them, bytes whose length differs too), or None: one missing, alike, or one that
    does not decode."""
    if a is None or b is None:
        return None
    from fuzz.errors import StreamError  # noqa: PLC0415
    from fuzz.stream.compare import compare_resaves, same_saved_state  # noqa: PLC0415

    if same_saved_state(a, b):
        return None
    try:
        diff = compare_resaves(a, b, formats_differ=formats_differ)
    except StreamError:
        return None
    changed = [c for c in diff.changed if c.rule_path.rpartition("/cpreg/")[2] not in ignore]
    if not changed:
        return None
    diff = replace(diff, changed=tuple(changed))
    fields = sorted({c.rule_path for c in changed})
    shown = ", ".join(fields[:4]) + (f" (+{len(fields) - 4} more)" if len(fields) > 4 else "")
    return Divergence(
        Signature(kind, f"restored state differs: {shown}"), {"state": diff.to_json(), **details}
    )


#: Guest read-back items that change on their own between the save and the read-back
#: after a restore, as the VM clock runs on: a timer's TVAL counts down, its CTL.ISTATUS
#: rises once CVAL is passed, the counters count. Left out of the same-version comparison
#: (the pair is compared with the control, read back just as late).
TIME_VARYING_ITEMS = re.compile(r"^CNT\w*_(CTL|TVAL)_EL\d$|^CNT\w*CT(SS)?_EL0$")


def control_readback_oracle(evidence: Evidence) -> Divergence | None:
    """Same version: what the guest reads back after A -> A vs what it read before the
    save, item by item (time-varying items aside), and what it reports wrong itself."""
    save, load = evidence.control.save, evidence.control.load
    if load is None:
        return None
    console, transcript = save.details.get("console"), load.details.get("transcript")
    if not isinstance(console, str) or not isinstance(transcript, str):
        return None
    from fuzz.judge.transcript import compare_transcripts, parse_transcript  # noqa: PLC0415

    before, after = parse_transcript(console), parse_transcript(transcript)
    differences = [
        d for d in compare_transcripts(before, after)
        if d.name in before and d.name in after and not TIME_VARYING_ITEMS.match(d.name)
    ]  # fmt: skip
    from fuzz.judge.transcript import guest_reported_differences  # noqa: PLC0415

    differences += guest_reported_differences(after)  # e.g. a timer due but not fired
    if not differences:
        return None
    details = {"version": evidence.control.src}
    devices = dict(evidence.pci_devices)
    return _readback_divergence(SAME_VERSION + "state", differences, details, devices)


def _readback_divergence(
    kind: str,
    differences: Sequence[TranscriptDifference],
    details: dict[str, Any],
    pci_devices: Mapping[int, str] | None = None,
) -> Divergence:
    """A ``kind`` divergence with one signature per read-back cause
    (:func:`~fuzz.judge.transcript.readback_causes`, added PCI devices by driver) and
    every difference in its details."""
    from fuzz.judge.transcript import readback_causes  # noqa: PLC0415

    causes = tuple(
        Signature(kind, f"guest read-back differs: {cause}")
        for cause in readback_causes(differences, pci_devices or {})
    )  # fmt: skip
    return Divergence(
        causes[0], {"differences": [vars(d) for d in differences], **details},
        causes if len(causes) > 1 else (),
    )  # fmt: skip


def control_state_oracle(evidence: Evidence) -> Divergence | None:
    """Same version: what A -> A restored (its re-save) vs what A saved (the source's
    stream), field by field, volatile fields aside. No stream (a long-lived source) or
    one that does not decode: no finding."""
    return _state_divergence(
        evidence.source_stream, evidence.control_resave, SAME_VERSION + "state",
        {"version": evidence.control.src},
    )  # fmt: skip


#: The same-version oracles, applied (in order) before anything is judged of the pair.
SAME_VERSION_ORACLES: Sequence[StateOracle] = (control_readback_oracle, control_state_oracle)


def default_oracles() -> list[StateOracle]:
    """The state oracles of the one judge, in the order they are applied."""
    return [guest_transcript_oracle, state_round_trip_oracle]
