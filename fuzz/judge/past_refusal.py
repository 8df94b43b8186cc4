"""Judging what a pair does once its first refusal is patched away.

Across release series every AArch64 pair is refused on the CPU's register list, and a
refusal ends the load: nothing behind it (devices, the GIC, RAM, the guest's read-back)
is ever compared. :mod:`fuzz.run.past_refusal` patches the source's cpreg list until the
destination accepts it, as the localization does (:mod:`fuzz.triage.localize`), and loads
it again; this module judges that second load like any case and joins both judgements:

* the first refusal is signed by its causes, the registers the patch had to change
  (:func:`refusal_causes`), where QEMU's message names none (5.2-10.0 say only "error
  while loading state for instance 0x0 of device 'cpu'", signed until now by the last
  field loaded, which is not a cause);
* every cause of the patched load is a finding of its own, signed as itself; the entry
  records which refusal it was found behind (:meth:`PastRefusal.to_json`);
* registers the patch *set* to the destination's value are left out of the comparison
  (the pair holds another value there by construction); dropped or inserted ones are in
  one list only, which the state oracle never compares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from fuzz.core.outcome import Stage, TransferOutcome, Verdict
from fuzz.errors import CorpusError, StreamError
from fuzz.judge.oracles import (
    Agree,
    Divergence,
    Evidence,
    Judgement,
    Signature,
    guest_transcript_oracle,
    judge,
    register_cause,
    state_round_trip_oracle,
)
from fuzz.stream.cpregs import CpReg, from_kvm_id, to_kvm_id
from fuzz.stream.patch import CpregPatch, PatchAction

#: How each kind of patch names the cause it stands for. A dropped register is one the
#: destination does not know: QEMU 11.1 says so itself, in these words.
CAUSE_OF = {
    PatchAction.DROP: "cpreg only in incoming stream",
    PatchAction.SET: "cpreg value not accepted",
    PatchAction.INSERT: "cpreg missing from incoming stream",
}


#: The kind of the refusal a cpreg list's patch stands for (as
#: :func:`~fuzz.judge.oracles.step_causes` spells it).
REFUSED_ON_LOAD = f"{Verdict.REFUSED}-on-{Stage.LOAD}"


#: How a refusal that names no register is signed (:func:`~fuzz.judge.oracles.step_causes`):
#: the ``cpu`` section's post-load check failed, on 5.2-10.0 with no reason given. Only
#: these are signed by the patch instead; a named cause (a register, the list's length)
#: is QEMU's own word.
UNNAMED = "error loading device 'cpu'"


def unnamed_refusal(first: Divergence) -> bool:
    """Whether ``first`` is a refusal QEMU names no register for (:data:`UNNAMED`): one the
    patch's edits are needed to sign. From 10.1 QEMU adds ``: post load hook failed for:
    cpu, ...``, which names nothing either; a refusal naming a subsection is its own."""
    own = first.signatures()
    if len(own) != 1 or not own[0].detail.startswith(UNNAMED):
        return False
    rest = own[0].detail[len(UNNAMED) :]
    return not rest.startswith(":") or rest.startswith(": post load hook failed")


#: CPU models whose ID registers follow the release ("the best this binary emulates"): QEMU
#: promises nothing of them across versions (:mod:`fuzz.judge.promise`).
UNFIXED_CPUS = frozenset({"max", "host"})
#: The one cause every refused ID register value of such a CPU stands for.
UNFIXED_ID_CAUSE = "ID registers of CPU model {cpu}"
#: The one cause every register the destination needed inserted stands for: it was missing
#: from the stream and the destination did not keep it at its reset value, which is one
#: QEMU bug (``cpreg_values`` never filled before a load under TCG, ``docs/qemu-bugs.md``);
#: which registers it hits depends on what the heap held, so naming them split one cause
#: into a dozen signatures that came and went.
NOT_KEPT_CAUSE = "not kept at its reset value"


def _id_space(reg: CpReg) -> bool:
    """Whether ``reg`` is an identification register (AArch64 ``op0=3, CRn=0``; AArch32
    ``p15, CRn=0`` and the debug ID register ``p14, 0, c0, c0``)."""
    if reg.state == "aa64":
        return reg.op0 == 3 and reg.crn == 0
    return reg.crn == 0 and (reg.cp == 15 or (reg.cp == 14 and reg.opc1 == 0 and reg.crm == 0))


def _aa64_view(reg: CpReg) -> int | None:
    """The KVM id of the AArch64 register that ``reg`` is the AArch32 view of, for the ID
    registers of ``p15, 0, c0, c1..c7`` (Arm ARM: the same CRm and op2 at ``S3_0_C0``)."""
    aa32_id = reg.state == "aa32" and reg.cp == 15 and reg.opc1 == 0 and reg.crn == 0
    if aa32_id and 1 <= reg.crm <= 7 and not reg.is64:
        return to_kvm_id(CpReg.aa64(3, 0, 0, reg.crm, reg.opc2))
    return None


def refusal_causes(
    kind: str, patches: tuple[CpregPatch, ...], cpu: str = ""
) -> tuple[Signature, ...]:
    """The causes of a refusal that ``patches`` got past, one per register (the AArch32
    registers a version dropped count once per family), sorted.

    Every register the destination needed inserted is one cause (:data:`NOT_KEPT_CAUSE`).
    A refused AArch32 ID register whose AArch64 view is refused too counts once, under the
    AArch64 name. Of ``max`` or ``host`` (``cpu``), every refused ID register value is one
    cause: such a CPU's ID registers change with every release, which QEMU does not promise
    to migrate, and one signature per register flooded a campaign (34 in 3 minutes).
    """
    set_ids = {p.kvm_id for p in patches if p.action is PatchAction.SET}
    causes = set()
    for p in patches:
        try:
            reg = from_kvm_id(p.kvm_id)
        except ValueError:
            reg = None
        name = NOT_KEPT_CAUSE if p.action is PatchAction.INSERT else _cause_name(p)
        if reg is not None and p.action is PatchAction.SET and _id_space(reg):
            if cpu in UNFIXED_CPUS:
                name = UNFIXED_ID_CAUSE.format(cpu=cpu)
            elif _aa64_view(reg) in set_ids:
                continue
        causes.add(Signature(kind, f"{CAUSE_OF[p.action]}: {name}"))
    return tuple(sorted(causes))


def _cause_name(patch: CpregPatch) -> str:
    """A dropped register by its family (:func:`~fuzz.judge.oracles.register_cause`), as
    QEMU's own "only in incoming stream" causes are; a refused value by its register."""
    return register_cause(patch.register) if patch.action is PatchAction.DROP else patch.register


def set_registers(patches: tuple[CpregPatch, ...]) -> frozenset[str]:
    """The registers ``patches`` set to the destination's value: left out of comparisons."""
    return frozenset(p.register for p in patches if p.action is PatchAction.SET)


def judge_patched(evidence: Evidence, patches: tuple[CpregPatch, ...]) -> Judgement:
    """The one judge on the patched load, with the set registers left out."""
    ignore = set_registers(patches)
    oracles = [
        partial(guest_transcript_oracle, ignore=ignore),
        partial(state_round_trip_oracle, ignore=ignore),
    ]
    return judge(evidence, oracles)


@dataclass(frozen=True)
class PastRefusal:
    """A refused pair's second load, with the source's cpreg list patched.

    ``first`` is the refusal's own judgement; ``patches`` what made the destination
    accept the stream; ``stream`` the patched stream it loaded; ``judgement`` the judge's
    verdict on that load (:func:`judge_patched`).
    """

    first: Divergence
    patches: tuple[CpregPatch, ...]
    evidence: Evidence | None
    """The patched load (None: not loaded, the refusal only signed)."""
    judgement: Judgement | None
    stream: bytes = field(repr=False)
    cpu: str = ""
    """The case's CPU model (how refused ID registers are named: :func:`refusal_causes`)."""
    signing: tuple[CpregPatch, ...] | None = None
    """The edits that stand for the refusal's causes (None: all of ``patches``)."""
    left_out: tuple[str, ...] = ()
    """``cpu`` subsections left out of the patched stream: the first stop was in one the
    destination does not send (11.1's ``cpu/wfxt-timer`` aborts 10.0; 10.2 refuses 11.1's
    ``cpu/fpmr`` by name); the cpreg list's refusal is then behind it, a cause of its own."""

    @property
    def _signing(self) -> tuple[CpregPatch, ...]:
        return self.patches if self.signing is None else self.signing

    @property
    def first_causes(self) -> tuple[Signature, ...]:
        """The first stop's causes: its own where QEMU named the registers or the stop was
        in a subsection left out, else the patch's."""
        own = self.first.signatures()
        if self.left_out or not unnamed_refusal(self.first) or not self._signing:
            return own
        return refusal_causes(own[0].kind, self._signing, self.cpu)

    @property
    def behind(self) -> tuple[Signature, ...]:
        """The causes found behind the first stop: the cpreg list's refusal where a
        subsection was left out, then what the patched load showed (none if it agreed)."""
        found: tuple[Signature, ...] = ()
        if self.left_out:
            found = refusal_causes(REFUSED_ON_LOAD, self._signing, self.cpu)
        if isinstance(self.judgement, Divergence):
            found += self.judgement.signatures()
        first = set(self.first_causes)
        return tuple(dict.fromkeys(c for c in found if c not in first))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: what was patched, how the patched load ended, what it showed."""
        judgement = self.judgement
        return {
            "first": [str(c) for c in self.first_causes],
            "cpu": self.cpu,
            "patches": [p.to_json() for p in self.patches],
            "signing": None if self.signing is None else [p.to_json() for p in self.signing],
            "left_out": list(self.left_out),
            "pair": None if self.evidence is None else self.evidence.pair.to_json(),
            "verdict": (
                "not loaded"
                if judgement is None
                else "agree"
                if isinstance(judgement, Agree)
                else type(judgement).__name__
            ),
            "causes": [str(c) for c in self.behind],
            "details": judgement.details if isinstance(judgement, Divergence) else {},
        }

    @classmethod
    def from_record(
        cls, first: Divergence, record: dict[str, Any], control: TransferOutcome
    ) -> PastRefusal:
        """The second load as an entry recorded it (``findings["past_refusal"]``, from
        :meth:`to_json`), judged again against ``control``: how an entry is re-judged
        without QEMU. Its patched stream is not part of the record (empty here).

        :raise CorpusError: the record is not such a dict.
        """
        try:
            patches = tuple(CpregPatch.from_json(p) for p in record["patches"])
            signed = record.get("signing")
            signing = None if signed is None else tuple(CpregPatch.from_json(p) for p in signed)
            loaded = record.get("pair")
            pair = None if loaded is None else TransferOutcome.from_json(loaded)
        except (KeyError, TypeError, StreamError) as err:
            raise CorpusError(f"past_refusal record unreadable: {err}") from None
        cpu = str(record.get("cpu", ""))
        left_out = tuple(str(name) for name in record.get("left_out", ()))
        if pair is None:
            return cls(first, patches, None, None, b"", cpu, signing, left_out)
        evidence = Evidence(control, pair)
        judgement = judge_patched(evidence, patches)
        return cls(first, patches, evidence, judgement, b"", cpu, signing, left_out)

    def joined(self) -> Divergence:
        """One divergence for the whole case: the refusal's causes first, then every cause
        found behind it; the details say what was patched and what the second load did."""
        causes = self.first_causes + self.behind
        details = {**self.first.details, "past_refusal": self.to_json()}
        return Divergence(causes[0], details, causes if len(causes) > 1 else ())
