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
per signature, and a shrink that changes the signature has found a different bug.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fuzz.errors import CorpusError, InvalidInput
from fuzz.outcome import StepOutcome, TransferOutcome, Verdict
from fuzz.stream.cpregs import names_in_message


@dataclass(frozen=True, order=True)
class Signature:
    """What diverged: ``kind`` (the pair's verdict or ``state``) and a normalized detail."""

    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind

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


@dataclass(frozen=True)
class Agree:
    """The pair ended as the control did, and every oracle saw the same state."""


@dataclass(frozen=True)
class InvalidCase:
    """The case cannot run on one side (a setup error): not a divergence, not a failure."""

    reason: str


@dataclass(frozen=True)
class ControlFailed:
    """A -> A did not complete: a harness or QEMU problem, never reported as a finding."""

    reason: str


@dataclass(frozen=True)
class Divergence:
    """The pair's outcome or state differs from the control's."""

    signature: Signature
    details: dict[str, Any]


Judgement = Agree | InvalidCase | ControlFailed | Divergence

#: Oracles compare completed transfers (guest transcript, stream state) and return a
#: divergence or None. They run only when both control and pair completed.
StateOracle = Callable[[Evidence], Divergence | None]

# (pattern, replacement) applied in order to each QEMU error line. Register ids are
# replaced by names before these run.
_REWRITES: Sequence[tuple[re.Pattern[str], str]] = [
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
    (re.compile(r"/\S+"), "PATH"),
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


def step_signature(step: StepOutcome) -> Signature:
    """The signature of a step that did not complete."""
    kind = f"{step.verdict}-on-{step.stage}"
    if step.verdict is Verdict.HUNG:
        return Signature(kind, "")
    errors = [m for m in step.messages if not m.lower().startswith("warning:")]
    normalized = [normalize_message(m) for m in errors]
    # QEMU names one register per line; the signature names the whole set, sorted.
    for kind_prefix in ("cpreg only in incoming stream: ",):
        names = sorted({n[len(kind_prefix) :] for n in normalized if n.startswith(kind_prefix)})
        if names:
            return Signature(kind, kind_prefix + ", ".join(names))
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
        if path.get("failed"):
            detail = f"{detail} @ {path['failed']}"
        elif path.get("last_field"):
            detail = f"{detail} after {path['last_field']}"
    return Signature(kind, detail)


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
    if control.verdict is not Verdict.COMPLETED:
        return ControlFailed(control.summary())
    if control.load is not None and control.load.details.get("transcript_complete") is False:
        # A read-back the control never finished compares as equal to any other: without
        # this, two silent guests would agree.
        return ControlFailed(f"{control.src} -> {control.dst}: guest read-back incomplete")
    if pair.verdict is Verdict.SETUP_ERROR:
        return InvalidCase(pair.summary())
    step = pair.failing_step
    if step is not None:
        return Divergence(
            step_signature(step), {"summary": pair.summary(), "messages": list(step.messages)}
        )
    for oracle in default_oracles() if oracles is None else oracles:
        found = oracle(evidence)
        if found is not None:
            return found
    return Agree()


def guest_transcript_oracle(evidence: Evidence) -> Divergence | None:
    """The guest-visible oracle: what the guest reads back after A -> B vs after A -> A."""
    control, pair = evidence.control, evidence.pair
    if control.load is None or pair.load is None:
        return None
    expected = control.load.details.get("transcript")
    actual = pair.load.details.get("transcript")
    if not isinstance(expected, str) or not isinstance(actual, str):
        return None
    from fuzz.transcript import compare_transcripts, parse_transcript  # noqa: PLC0415

    differences = compare_transcripts(parse_transcript(expected), parse_transcript(actual))
    if not differences:
        return None
    names = sorted({d.name for d in differences})
    return Divergence(
        Signature("state", f"guest read-back differs: {', '.join(names)}"),
        {"differences": [vars(d) for d in differences]},
    )


def state_round_trip_oracle(evidence: Evidence) -> Divergence | None:
    """The state oracle: what B restored differently from what A restored.

    Compares the pair's re-save with the control's, field by field (by register for
    cpregs, by content digest for RAM); fields that legitimately differ between runs or
    versions are left out by rule (:data:`fuzz.stream.compare.VOLATILE_FIELDS`). Re-saves
    that are the same bytes (but for where RAM passes break) are not decoded at all. A
    re-save that does not decode tells nothing: no finding (a false finding costs more
    than a missed one).
    """
    a, b = evidence.control_resave, evidence.pair_resave
    if a is None or b is None:
        return None
    from fuzz.errors import StreamError  # noqa: PLC0415
    from fuzz.stream.compare import compare_resaves, same_saved_state  # noqa: PLC0415

    if same_saved_state(a, b):
        return None
    try:
        diff = compare_resaves(a, b)
    except StreamError:
        return None
    if diff.identical:
        return None
    fields = sorted({c.rule_path for c in diff.changed})
    shown = ", ".join(fields[:4]) + (f" (+{len(fields) - 4} more)" if len(fields) > 4 else "")
    return Divergence(
        Signature("state", f"restored state differs: {shown}"),
        {"state": diff.to_json(), "src": evidence.pair.src, "dst": evidence.pair.dst},
    )


def default_oracles() -> list[StateOracle]:
    """The state oracles of the one judge, in the order they are applied."""
    return [guest_transcript_oracle, state_round_trip_oracle]
