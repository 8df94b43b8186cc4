"""A case whose migration runs live: the evidence the one judge compares.

A paused case saves once and restores on the control and every destination. A live case
cannot share a save: its guest runs while it migrates, so each transfer is a migration of
its own (:func:`~fuzz.run.live.migrate_live`): A -> A first (the control), then A -> B for
every destination, over the same :class:`~fuzz.core.live.LiveMigration` and the same
guest. Each :class:`~fuzz.core.live.LiveOutcome` becomes a
:class:`~fuzz.core.outcome.TransferOutcome` (:func:`live_transfer`), so the judge applies
its outcome and read-back oracles as to any case. There is no stream to keep and no
re-save (the destination runs at once), so the state oracles have nothing to compare: a
live case is judged by its outcome, by the guest's read-back (its registers, and the
pattern it kept writing while it migrated) and by what the guest reports itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case
from fuzz.core.devices import pci_drivers
from fuzz.core.live import LiveOutcome
from fuzz.core.outcome import Stage, StepOutcome, TransferOutcome, Verdict
from fuzz.core.settings import RunSettings
from fuzz.errors import UsageError
from fuzz.judge.oracles import (
    Divergence,
    Evidence,
    Judgement,
    Signature,
    load_stop_suffixes,
)
from fuzz.run.live import migrate_live
from fuzz.run.machine import private_workdir

__all__ = [
    "LIVE_DETAIL",
    "execute_live",
    "live_load_failed",
    "live_signed",
    "live_transfer",
    "signed_as_paused",
]

#: What the signatures of a live migration's own causes start with (:func:`live_signed`).
LIVE_DETAIL = "live"


def live_transfer(outcome: LiveOutcome) -> TransferOutcome:
    """The live migration as a save (the source's side) and a load (the destination's).

    A negotiation failure is the refusing side's step, with QEMU's words; where the
    migration stopped before the destination's step began, the load is None (as for a
    save that failed). The source's step carries what the guest printed before its
    checkpoint (``console``) and the destination's what it printed after the resume
    (``transcript``), as the paused path records them, so the same oracles read them.
    """
    src, dst = outcome.src_version, outcome.dst_version
    stats = {"live": outcome.live.to_json(), "statuses": list(outcome.statuses),
             "postcopy_ran": outcome.postcopy_ran, "stage": outcome.stage}  # fmt: skip
    save = outcome.source or StepOutcome(Stage.SAVE, src, Verdict.NOT_RUN)
    load = outcome.destination
    words = tuple(n.describe() for n in outcome.negotiation) or outcome.messages
    source_crashed = outcome.source is not None and outcome.source.verdict is Verdict.CRASHED
    source_failed = source_crashed or any(n.side == "source" for n in outcome.negotiation)
    if outcome.verdict is Verdict.COMPLETED:
        save = replace(save, verdict=Verdict.COMPLETED)
    elif outcome.verdict is Verdict.SETUP_ERROR or source_failed or load is None:
        # A source that crashed is signed by its own words (or its signal): the words of
        # a destination left with half a stream differ with where the stream broke off.
        own = save.messages if source_crashed else words
        save = replace(save, verdict=outcome.verdict, messages=own)
        load = None
    else:
        save = replace(save, verdict=Verdict.COMPLETED)
        if load.verdict is not Verdict.COMPLETED or outcome.stage != "read-back":
            # A read-back that did not finish stays a completed load whose transcript is
            # incomplete, as on the paused path: the judge's to tell, not a hang of QEMU.
            load = replace(load, verdict=outcome.verdict, messages=words or load.messages)
    save = replace(save, details={**save.details, "console": outcome.pre_save, **stats})
    return TransferOutcome(src, dst, save, load)


#: What makes a cause the live migration's own: a side refused the setup, a migration
#: channel or postcopy failed, the guest's memory pattern broke. Any other cause (a device
#: state the destination refuses or restores differently) is what a paused load of the same
#: case meets too, and is signed as that one is, so a campaign counts it once.
_LIVE_OWN = re.compile(
    r"refused migrate|postcopy|multifd|xbzrle|Channel error|socket|"
    r"live\.|migration (failed|cancelled)|Unable to (read|write)|Sibling indicated"
)


def live_signed(judgement: Judgement, evidence: Evidence | None = None) -> Judgement:
    """``judgement`` with the causes that are the live migration's own marked live
    (``live: <detail>``): a hang (the migration did not end), a setup a side refused,
    a failed channel or postcopy, a broken memory pattern. Other causes keep the paused
    path's signature.

    Where a live cause's load stopped (the traced ``after <field>`` of ``evidence``'s
    destination) is left out of its signature: a channel that fails mid-load stops it
    wherever the stream had got to, a different field from one run to the next.
    """
    if not isinstance(judgement, Divergence):
        return judgement
    suffixes = _load_path_suffixes(evidence)
    stuck = _source_stuck_in(evidence)

    def mark(signature: Signature) -> Signature:
        detail = signature.detail
        if "hung" not in signature.kind and detail and not _LIVE_OWN.search(detail):
            return signature
        for suffix in suffixes:
            detail = detail.removesuffix(suffix)
        if "hung" in signature.kind and not detail and stuck:
            detail = f"source stuck in {stuck}"
        return Signature(signature.kind, f"{LIVE_DETAIL}: {detail}" if detail else LIVE_DETAIL)

    return Divergence(
        mark(judgement.signature),
        {**judgement.details, "live": True},
        tuple(mark(c) for c in judgement.causes),
    )


def _source_stuck_in(evidence: Evidence | None) -> str:
    """The source's last migration status of a live transfer (``postcopy-device``), where
    a hang stopped it: tells one hang from another (a destination that never answers a
    new state, a precopy that never converges)."""
    if evidence is None:
        return ""
    for transfer in (evidence.pair, evidence.control):
        statuses = transfer.save.details.get("statuses")
        if transfer.verdict is Verdict.HUNG and isinstance(statuses, list):
            source = [str(s).removeprefix("src:") for s in statuses if str(s).startswith("src:")]
            if source:
                return source[-1]
    return ""


def _load_path_suffixes(evidence: Evidence | None) -> tuple[str, ...]:
    """What the judge may have appended to a load's cause for where it stopped
    (:func:`~fuzz.judge.oracles.load_stop_suffixes`)."""
    load = None if evidence is None else evidence.pair.load
    path = None if load is None else load.details.get("load_path")
    if not isinstance(path, dict):
        return ()
    return tuple(s for s in load_stop_suffixes(path) if s)


async def execute_live(
    src: QemuBinary, dsts: Sequence[QemuBinary], case: Case, settings: RunSettings
) -> list[Evidence]:
    """Migrate ``case``'s running guest A -> A (the control), then A -> B for each
    destination whose control completed (all of them with
    ``settings.pair_after_failed_control``); one evidence per destination, in order.

    :raise UsageError: the case has no live migration or no guest.
    :raise HarnessError: the harness failed (never a verdict).
    """
    live, guest = case.live, case.guest
    if live is None or guest is None:
        raise UsageError("a live case needs a live migration and a guest")
    with private_workdir("migfuzz-live-") as tmp:
        workdir, timeouts = Path(tmp), settings.timeouts
        traced = settings.trace_versions
        migrated = await migrate_live(src, src, case, guest, live, workdir, timeouts,
                                      trace_load=src.name in traced)  # fmt: skip
        control = live_transfer(migrated)
        # Not the transfer's verdict: a read-back that did not finish is a completed load.
        control_done = migrated.verdict is Verdict.COMPLETED
        evidence = []
        for dst in dsts:
            if dst.name == src.name:
                pair = control
            elif control_done or settings.pair_after_failed_control:
                trace = dst.name in traced
                pair = live_transfer(
                    await migrate_live(
                        src, dst, case, guest, live, workdir, timeouts, trace_load=trace
                    )
                )
            else:
                pair = TransferOutcome(
                    src.name, dst.name, StepOutcome(Stage.SAVE, src.name, Verdict.NOT_RUN), None
                )
            devices = pci_drivers(case.config.devices)
            evidence.append(Evidence(control=control, pair=pair, pci_devices=devices))
    return evidence


def live_load_failed(judgement: Judgement, pair: TransferOutcome) -> bool:
    """Whether a live case's destination refused or crashed loading the migration (not a
    refused setup): the cause a paused load of the same case may name better."""
    load = pair.load
    if not isinstance(judgement, Divergence) or load is None:
        return False
    migrated = pair.save.details.get("stage") in ("migrate", "read-back")
    return migrated and load.verdict in (Verdict.REFUSED, Verdict.CRASHED)


def signed_as_paused(
    live: Judgement, paused: tuple[Signature, ...], paused_pair: TransferOutcome,
    paused_details: Mapping[str, Any] | None = None,
) -> Judgement:  # fmt: skip
    """A live load that failed (:func:`live_load_failed`), signed by ``paused``, the causes
    the paused load of the same case names (its first load's, not those looked past it),
    if that load failed too; else ``live`` as it was.

    Live, QEMU says less: ``error loading device 'cpu'``, or under postcopy ``loadvm
    failed during postcopy: ... Failed to load vmstate``, where the paused path, which has
    the stream, names the refused registers (``cpreg only in incoming stream: P15_4``).
    The same refusal met live and paused is then one signature, counted once. The live
    case's load causes are taken as the paused load's; its other causes (none yet: a
    failed load reads nothing back) stay beside. The details are the paused load's
    (``paused_details``; the live ones without), with what was met live (``met_live``):
    the engine reports the paused twin's run, stream and all, the better reproducer.
    """
    load = paused_pair.load
    failed = load is not None and load.verdict in (Verdict.REFUSED, Verdict.CRASHED)
    if not isinstance(live, Divergence) or not paused or not failed:
        return live
    loading = ("refused-on-load", "crashed-on-load")
    others = tuple(c for c in live.signatures() if c.kind not in loading)
    causes = (*paused, *others)
    base = live.details if paused_details is None else paused_details
    details = {**base, "met_live": [str(c) for c in live.signatures()]}
    return Divergence(causes[0], details, causes)
