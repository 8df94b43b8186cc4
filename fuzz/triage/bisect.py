"""Bisecting a corpus entry over versions: where its cause first appears, and where it goes.

``migfuzz bisect ENTRY`` replays the entry's case (the one case path, through
:func:`fuzz.triage.replay.replay`) with one side varied over every installed version and user
build, and says for each version whether the entry's root cause is there.

The axis: an entry ``A -> B`` is a property of the pair, so one side is held and the other
varied. The **destination axis** (the main one) keeps the recorded source ``A`` and varies
the destination over every version on the recorded side of ``A`` (``>= A`` for a forward
migration, ``<= A`` for a backward one), ``A`` itself included as the baseline; it answers
"which destinations refuse what ``A`` sends". The **source axis** keeps the recorded
destination ``B`` and varies the source the same way (``<= B`` forward, ``>= B`` backward);
it answers "which sources send what ``B`` refuses". Both are cheap (a replay is a few
seconds), so both run unless asked otherwise.

Versions are ordered by the QEMU release their binary reports (``10.0.2`` before
``10.0.13``, whatever the version *names*), falling back on the name
(:func:`fuzz.core.binary.version_sort_key`) for a binary whose version line says nothing.

A version that cannot even start the configuration (no such machine type or CPU model,
a control that fails) is *unusable*: it says nothing, and it is neither bad nor fixed.

Verdicts and conclusions are pure functions of the per-version results
(:func:`conclusion`), so they are tested without QEMU; :func:`bisect_axis` runs the cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from fuzz.core.binary import QemuBinary, version_sort_key
from fuzz.core.capabilities import Capabilities
from fuzz.corpus.entry import Entry
from fuzz.errors import HarnessError, UsageError
from fuzz.run.session import Session
from fuzz.triage.replay import ReplayVerdict, replay
from fuzz.versions.probe import capabilities

__all__ = [
    "Axis",
    "Point",
    "Role",
    "Status",
    "axis_versions",
    "bisect_axis",
    "conclusion",
    "order_versions",
    "qemu_release",
    "status_of",
    "unusable_reason",
]

Role = Literal["destination", "source"]


class Status(StrEnum):
    """What one version shows for the entry's cause."""

    SAME = "same cause"
    """The entry's root cause is among the case's causes on this version."""
    OTHER = "other divergence"
    """The pair diverges, but not (or no longer) by the entry's cause."""
    AGREE = "agree"
    """Control and pair agree: no divergence at all."""
    UNUSABLE = "unusable"
    """The version cannot run the configuration, or the control failed: it says nothing."""


def status_of(verdict: ReplayVerdict) -> Status:
    """The bisect status of a replay verdict (*fixed* means the pair agrees)."""
    return {
        ReplayVerdict.SAME: Status.SAME,
        ReplayVerdict.DIFFERENT: Status.OTHER,
        ReplayVerdict.FIXED: Status.AGREE,
        ReplayVerdict.UNUSABLE: Status.UNUSABLE,
    }[verdict]


@dataclass(frozen=True)
class Point:
    """One version on an axis: its name, the QEMU release it reports, what it showed."""

    name: str
    release: str
    """``10.0.13`` from the binary's version line; ``""`` when it says nothing."""
    status: Status
    detail: str = ""
    """The replay's verdict line (signatures, or why the version is unusable)."""

    @property
    def label(self) -> str:
        """The name, with the release when the name does not say it: ``10.0 (10.0.13)``."""
        if not self.release or self.release == self.name:
            return self.name
        return f"{self.name} ({self.release})"

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "release": self.release,
            "status": str(self.status),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Axis:
    """One side varied over versions, the other held at ``fixed``; points in version order."""

    role: Role
    """Which side varies: ``"destination"`` or ``"source"``."""
    fixed: str
    """The version name held on the other side."""
    points: tuple[Point, ...]

    def conclusion(self) -> str:
        """The one-line conclusion (see :func:`conclusion`)."""
        return conclusion(self.role, self.points)

    def first_bad(self) -> Point | None:
        """The first version (in version order) that shows the entry's cause."""
        return next((p for p in self.points if p.status is Status.SAME), None)

    def first_fixed(self) -> Point | None:
        """The first usable version after :meth:`first_bad` that does not show the cause."""
        return _first_fixed(self.points)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, conclusion included."""
        bad, fixed = self.first_bad(), self.first_fixed()
        return {
            "role": self.role,
            "fixed": self.fixed,
            "points": [p.to_json() for p in self.points],
            "first_bad": None if bad is None else bad.name,
            "first_fixed": None if fixed is None else fixed.name,
            "conclusion": self.conclusion(),
        }


_RELEASE = re.compile(r"QEMU emulator version (\d+(?:\.\d+)+)")


def qemu_release(version_line: str) -> str:
    """``10.0.13`` from ``QEMU emulator version 10.0.13 Debian 1:10.0.13+ds-0+deb13u1``.

    :return: the dotted release, or ``""`` when the line names none.
    """
    match = _RELEASE.search(version_line)
    return match.group(1) if match else ""


def _order_key(name: str, release: str) -> tuple[Any, ...]:
    by_release = tuple((0, int(n)) for n in release.split(".")) if release else None
    return (by_release or version_sort_key(name), version_sort_key(name))


def order_versions(releases: Mapping[str, str]) -> list[str]:
    """Version names in QEMU release order (``name -> release``, ``""`` for unknown).

    A known release orders a version (``10.0.2`` before ``10.0.13``); a version whose
    release is unknown is placed by its name; ties go by name.
    """
    return sorted(releases, key=lambda name: _order_key(name, releases[name]))


def axis_versions(releases: Mapping[str, str], fixed: str, varied: str, role: Role) -> list[str]:
    """The versions an axis varies over, in version order.

    ``fixed`` is the held version, ``varied`` the one the entry recorded on the other
    side. The destination axis of a forward entry (``varied`` after ``fixed``) takes every
    version from ``fixed`` on; of a backward one, every version up to ``fixed``. The source
    axis mirrors it (``fixed`` is then the destination). ``fixed`` itself is included (the
    same-version baseline); ``fixed`` and ``varied`` must be among ``releases``.

    :raise UsageError: ``fixed`` or ``varied`` is not among ``releases``.
    """
    for name in (fixed, varied):
        if name not in releases:
            raise UsageError(
                f"version {name!r} of the entry is not among the versions to bisect over "
                f"({', '.join(releases) or 'none'})"
            )
    ordered = order_versions(releases)
    at, other = ordered.index(fixed), ordered.index(varied)
    if role == "destination":  # forward: the destination is the newer side
        return ordered[at:] if other >= at else ordered[: at + 1]
    return ordered[: at + 1] if other <= at else ordered[at:]


def _first_fixed(points: Sequence[Point]) -> Point | None:
    bad = next((i for i, p in enumerate(points) if p.status is Status.SAME), None)
    if bad is None:
        return None
    return next((p for p in points[bad + 1 :] if p.status in (Status.AGREE, Status.OTHER)), None)


def conclusion(role: Role, points: Sequence[Point]) -> str:
    """One line: where the entry's cause first appears and the first version that fixes it.

    E.g. ``appears in 11.1 (11.1.3) (first bad destination), absent in 10.0 (10.0.13) and
    earlier; not fixed in any installed version``. Unusable versions are skipped (they
    are neither bad nor fixed); "earlier" and "fixed" count usable versions only. On the
    source axis a later source without the cause is "no longer with source X", not a fix:
    it may just be the destination's own version.
    """
    usable = [p for p in points if p.status is not Status.UNUSABLE]
    if not usable:
        return f"no {role} tried can run this configuration: nothing to conclude"
    bad_at = next((i for i, p in enumerate(usable) if p.status is Status.SAME), None)
    if bad_at is None:
        shown = ", ".join(p.label for p in usable)
        return f"the entry's cause appears with no {role} tried ({shown})"
    first = usable[bad_at]
    line = f"appears in {first.label} (first bad {role})"
    if bad_at > 0:
        line += f", absent in {usable[bad_at - 1].label} and earlier"
    else:
        line += f", already in the oldest usable {role} tried"
    skipped = [p.label for p in points[: points.index(first)] if p.status is Status.UNUSABLE]
    if skipped:
        line += f" ({', '.join(skipped)} cannot run it)"
    fixed = _first_fixed(usable)
    if fixed is None and role == "source":
        return line + "; every later source tried shows it"
    if fixed is None:
        return line + "; not fixed in any installed version"
    if fixed.status is Status.OTHER:  # the cause is gone, but the pair still diverges
        line += f"; replaced by another divergence in {fixed.label} (not clearly a fix)"
    elif role == "destination":
        line += f"; fixed in {fixed.label} (agree)"
    else:
        line += f"; no longer with source {fixed.label} (agree)"
    back = next((p for p in usable[usable.index(fixed) + 1 :] if p.status is Status.SAME), None)
    if back is not None:
        line += f", but back in {back.label}"
    return line


def unusable_reason(caps: Capabilities, entry: Entry) -> str | None:
    """Why a version cannot run ``entry``'s configuration at all, or None if it might.

    Checked from the probe, before anything runs: the machine type, the CPU model and
    its ``-cpu`` properties. (Machine options are left to QEMU: a refusal to start is
    a setup error, which the replay reports as unusable too.)
    """
    config = entry.case.config
    if config.machine not in caps.machine_types:
        return f"no machine type {config.machine!r}"
    if config.cpu not in caps.cpu_models:
        return f"no CPU model {config.cpu!r}"
    known = set(caps.cpu_property_names(config.cpu))
    missing = [name for name, _ in config.cpu_properties if known and name not in known]
    if missing:
        return f"CPU {config.cpu!r} has no propert{'y' if len(missing) == 1 else 'ies'} " + (
            ", ".join(missing)
        )
    return None


def bisect_axis(
    session: Session,
    entry: Entry,
    binaries: Mapping[str, QemuBinary],
    role: Role,
    *,
    cache_dir: Path,
    progress: Callable[[Point], None] = lambda _point: None,
) -> Axis:
    """Replay ``entry`` along one axis over ``binaries`` (name -> binary).

    ``role="destination"`` holds the entry's source and varies the destination;
    ``role="source"`` holds its destination and varies the source (see the module
    docstring for which versions each takes). ``progress`` sees each point as it is
    judged. A version that cannot start the configuration, or that fails to start at
    all (a broken user build), is an unusable point, not an error.

    :raise UsageError: the entry's own versions are not among ``binaries``.
    :raise HarnessError: the held version cannot be probed.
    """
    releases: dict[str, str] = {}
    caps: dict[str, Capabilities | str] = {}
    for name, binary in binaries.items():
        try:
            found = capabilities(binary, cache_dir)
        except HarnessError as err:
            releases[name], caps[name] = "", f"cannot be probed: {err}"
            continue
        releases[name], caps[name] = qemu_release(found.version_line), found
    fixed, varied = (
        (entry.src.name, entry.dst.name)
        if role == "destination"
        else (entry.dst.name, entry.src.name)
    )
    points = []
    for name in axis_versions(releases, fixed, varied, role):
        point = _one_point(
            session,
            entry,
            binaries,
            fixed=fixed,
            name=name,
            role=role,
            caps=caps,
            cache_dir=cache_dir,
        )
        point = Point(name, releases[name], point.status, point.detail)
        progress(point)
        points.append(point)
    return Axis(role, fixed, tuple(points))


def _one_point(
    session: Session,
    entry: Entry,
    binaries: Mapping[str, QemuBinary],
    *,
    fixed: str,
    name: str,
    role: Role,
    caps: Mapping[str, Capabilities | str],
    cache_dir: Path,
) -> Point:
    for side in dict.fromkeys((fixed, name)):
        found = caps[side]
        why = found if isinstance(found, str) else unusable_reason(found, entry)
        if why is not None:
            return Point(name, "", Status.UNUSABLE, f"{side}: {why}")
    src, dst = (
        (binaries[fixed], binaries[name])
        if role == "destination"
        else (binaries[name], binaries[fixed])
    )
    try:
        result = replay(session, entry, src, dst, cache_dir=cache_dir)
    except HarnessError as err:
        return Point(name, "", Status.UNUSABLE, f"harness error: {err}")
    status = status_of(result.verdict)
    detail = {
        Status.SAME: str(entry.signature),
        Status.OTHER: f"now {result.now}",
        Status.AGREE: "control and pair agree",
    }.get(status, result.verdict_line())
    return Point(name, "", status, detail)
