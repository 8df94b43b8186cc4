"""The fuzz loop's state coverage: a sample of its saves, measured against reset.

Measuring one save decodes it and builds its field map (some 40-75 ms), and the first save
of a (version, configuration) also needs its *reset reference*: the same configuration
saved with no guest on a fresh process, decoded once and kept (some 200-250 ms). A case
costs a worker 150-250 ms, so measuring every save would cost a third of the campaign's
rate. A worker therefore gives coverage a time share: it measures a case's save only while
the seconds it spent on coverage are below :data:`TIME_SHARE` of the seconds it has run,
and counts the saves it measured. Coverage is thus over a sample of the saves, chosen
mostly by when they came -- but a 10-minute campaign measured only 5 to 28 saves per
version that way, and a device that one operation kind in twenty reaches (the GICv3 ITS)
was never among them. So a save whose case does something this worker has not measured
on that version yet (an operation kind, an added device: :func:`novelties`) is measured
out of turn, once per (version, novelty); its time counts toward the share like any, so
later saves wait for it and the share holds over the campaign.

The save measured is the source's stream (a case on fresh processes), else the control's
re-save (long-lived processes: the same state, when the control is clean). Cases with
neither, invalid cases and failed controls are skipped. Each measured save is one
:class:`~fuzz.events.CoverageMeasured` event; the counting is :mod:`fuzz.judge.coverage`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case, MachineConfig
from fuzz.errors import HarnessError, StreamError
from fuzz.events import CoverageMeasured
from fuzz.judge.coverage import exercised, field_map, fields_of
from fuzz.judge.oracles import ControlFailed, InvalidCase
from fuzz.run.engine import CaseRun
from fuzz.run.machine import private_workdir
from fuzz.run.runner import FreshSource
from fuzz.run.session import Session

#: The share of a worker's time coverage may take: it measures a save only while the
#: seconds spent measuring (reset references included) are below this share of the seconds
#: it has run. 5% keeps the campaign's rate within a few percent of a campaign without it.
TIME_SHARE = 0.05

#: Reset references kept per worker (one field map each, ~0.5 MB), most recent first.
REFERENCES_KEPT = 32


#: Operation kinds whose device the board has only with some GIC: the GICv3 ITS, the
#: GICv2m. Their novelty is per GIC (:func:`novelties`): the first such operation met on a
#: GICv2 would otherwise use it up, and its device would still never be measured.
GIC_BOUND_KINDS = frozenset({"its", "gicv2m"})


def novelties(case: Case) -> frozenset[str]:
    """What ``case`` does that a measurement may be the first to see: its guest's operation
    kinds (``op: pflash``; ``op: its (gic 3, its on)`` for :data:`GIC_BOUND_KINDS`) and its added
    devices (``device: nvme``)."""
    ops = () if case.guest is None else case.guest.operations
    options = dict(case.config.machine_options)
    gic = f"gic {options.get('gic-version', '2')}, its {options.get('its', 'on')}"
    kinds = {
        f"op: {kind} ({gic})" if kind in GIC_BOUND_KINDS else f"op: {kind}"
        for kind in (str(op.get("op")) for op in ops)
    }
    return frozenset(kinds | {f"device: {d.driver}" for d in case.config.devices})


def measured_save(runs: Sequence[CaseRun | None]) -> bytes | None:
    """The save a case's runs carried, to measure: the source's stream, else the control's
    re-save; None if no run is valid with a completed control, or it kept neither."""
    for run in runs:
        if run is None or isinstance(run.judgement, InvalidCase | ControlFailed):
            continue
        data = run.source_stream or run.evidence.control_resave
        if data is not None:
            return data
    return None


class CoverageSampler:
    """Measures a sample of one worker's saves against their reset references.

    :param session: runs the reset references' saves.
    :param emit: receives one :class:`CoverageMeasured` per measured save.
    :param clock: seconds, monotonic (a test's fake).
    """

    def __init__(
        self,
        session: Session,
        binaries: Mapping[str, QemuBinary],
        emit: Callable[[CoverageMeasured], None],
        *,
        worker: int = -1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.binaries = binaries
        self.emit = emit
        self.worker = worker
        self.clock = clock
        self.started = clock()
        self.spent = 0.0
        self.measured = 0
        self._references: dict[tuple[str, MachineConfig], dict[str, str] | None] = {}
        self._reported: dict[str, set[str]] = {}
        self._seen: dict[str, set[str]] = {}  # version -> novelties measured on it

    def due(self) -> bool:
        """Whether coverage is within its time share, so the next save may be measured."""
        return self.spent < TIME_SHARE * (self.clock() - self.started)

    def measure(self, version: str, case: Case, runs: Sequence[CaseRun | None]) -> frozenset[str]:
        """Measure the save of ``case`` on ``version`` if coverage is due, or the case does
        something not measured on ``version`` yet (:func:`novelties`), and the runs
        carried a save (see :func:`measured_save`).

        :return: the fields it exercised (empty if it was not measured).
        :raise KeyboardInterrupt: a stop while the reset reference was being saved.
        """
        new = novelties(case) - self._seen.get(version, set())
        if not new and not self.due():
            return frozenset()
        data = measured_save(runs)
        if data is None:
            return frozenset()
        self._seen.setdefault(version, set()).update(new)
        begun = self.clock()
        try:
            reference = self._reference(version, case.config)
            if reference is None:
                return frozenset()
            try:
                fields = exercised(field_map(data), reference)
            except StreamError:
                return frozenset()
            reported = self._reported.setdefault(version, set())
            known = fields_of(reference) - reported
            reported |= known
        finally:
            self.spent += self.clock() - begun
        self.measured += 1
        self.emit(CoverageMeasured(
            version, tuple(sorted(fields)), tuple(sorted(known)), self.worker,
            round(self.clock() - begun, 4),
        ))  # fmt: skip
        return fields

    def _reference(self, version: str, config: MachineConfig) -> dict[str, str] | None:
        """The field map of ``config`` saved at reset on ``version`` (made once, kept);
        None if it cannot be made (the save fails there, or does not decode)."""
        key = (version, config)
        if key in self._references:
            reference = self._references.pop(key)  # put back last: the most recent
        else:
            reference = self._save_at_reset(version, config)
            while len(self._references) >= REFERENCES_KEPT:
                del self._references[next(iter(self._references))]
        self._references[key] = reference
        return reference

    def _save_at_reset(self, version: str, config: MachineConfig) -> dict[str, str] | None:
        binary = self.binaries[version]
        settings = self.session.settings
        file_uri = version in settings.file_uri_versions
        with private_workdir("migfuzz-reset-") as tmp:
            source = FreshSource(binary, Path(tmp), timeouts=settings.timeouts, file_uri=file_uri)
            try:
                saved = self.session.run(lambda: source.save(Case(config)))
            except HarnessError:
                return None
        if saved.stream is None:
            return None
        try:
            return field_map(saved.stream)
        except StreamError:
            return None
