"""State coverage: which vmstate sections and fields a campaign's saves carried away from reset.

A save *exercises* a field when the field is in both the save and the *reset reference* (a
save of the same version and machine configuration with no guest, paused at reset) and its
value differs there. Fields are counted by :func:`~fuzz.stream.compare.rule_path` (instance
numbers and array indices left out: ``cpu/env.xregs`` is one field, however many CPUs and
registers), and a field's *section* is the first component of that path (``cpu``,
``pl031``, ``arm_gicv3``).

:class:`Coverage` adds measured saves up per version: how many were measured, and per
section and field how many of them exercised it. The fields a version *has* (the "of how
many") are those its reset references held, over every configuration measured. Pure:
field maps come from :func:`field_map` of a stream's bytes, and nothing here runs QEMU
(the fuzz loop takes the saves, :mod:`fuzz.campaign.coverage`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fuzz.stream.compare import is_volatile, rule_path, state_map

__all__ = [
    "FORMAT",
    "LEFT_OUT_SECTIONS",
    "Coverage",
    "SectionCoverage",
    "Totals",
    "VersionCoverage",
    "exercised",
    "field_map",
    "fields_of",
    "section_of",
    "summary_lines",
]

#: ``coverage.json``'s format number.
FORMAT = 1

#: Sections left out of coverage, and why: they differ from reset whatever the guest did.
LEFT_OUT_SECTIONS: Mapping[str, str] = {
    "ram": "one digest per RAM block, which differs at every start (QEMU writes fresh "
    "random seeds into the device tree in RAM)",
}


def section_of(path: str) -> str:
    """The section of a field (a :func:`~fuzz.stream.compare.rule_path`): its first part."""
    return path.split("/", 1)[0]


def _counted(path: str) -> bool:
    """Whether a field counts for coverage: not a volatile one (host clock offsets, the
    run state, :data:`~fuzz.stream.compare.VOLATILE_FIELDS`) nor in a left-out section."""
    return section_of(path) not in LEFT_OUT_SECTIONS and not is_volatile(path)


def field_map(data: bytes) -> dict[str, str]:
    """A stream's comparable leaves, {path: shown value} (:func:`~fuzz.stream.compare.state_map`).

    :raise StreamError: ``data`` does not decode.
    """
    from fuzz.stream.decode import decode_stream  # noqa: PLC0415 (the decoder is heavy)

    return state_map(decode_stream(data))


def fields_of(reference: Mapping[str, str]) -> frozenset[str]:
    """The fields (rule paths) a reset reference holds: what a save could exercise."""
    return frozenset(p for p in map(rule_path, reference) if _counted(p))


def exercised(save: Mapping[str, str], reference: Mapping[str, str]) -> frozenset[str]:
    """The fields (rule paths) ``save`` carries with a value other than at reset.

    A field counts where it is in both maps (by its full path: one CPU's or one array
    slot's change exercises the field) and its values differ; a field in one map only
    does not count.
    """
    changed = {rule_path(p) for p, value in save.items() if reference.get(p, value) != value}
    return frozenset(p for p in changed if _counted(p))


@dataclass
class SectionCoverage:
    """One section of one version: per field, the measured saves that exercised it."""

    saves: int = 0
    """Measured saves that exercised at least one of its fields."""
    fields: dict[str, int] = field(default_factory=dict)
    """Field (its rule path) -> measured saves that exercised it; 0: known, never exercised."""

    @property
    def exercised(self) -> int:
        """How many of its fields some measured save exercised."""
        return sum(1 for n in self.fields.values() if n)


@dataclass(frozen=True)
class Totals:
    """One version's coverage in numbers: exercised of how many, and the saves measured."""

    sections_exercised: int
    sections: int
    fields_exercised: int
    fields: int
    saves: int

    def __str__(self) -> str:
        return (
            f"{self.sections_exercised:,} of {self.sections:,} sections, "
            f"{self.fields_exercised:,} of {self.fields:,} fields exercised "
            f"(in {self.saves:,} measured save{'s' if self.saves != 1 else ''})"
        )


@dataclass
class VersionCoverage:
    """One version: the saves measured and each section's fields."""

    saves: int = 0
    sections: dict[str, SectionCoverage] = field(default_factory=dict)

    def _section(self, name: str) -> SectionCoverage:
        if name not in self.sections:
            self.sections[name] = SectionCoverage()
        return self.sections[name]

    def know(self, fields: Iterable[str]) -> None:
        """Add fields a reset reference of this version holds (counted 0 if new)."""
        for path in fields:
            self._section(section_of(path)).fields.setdefault(path, 0)

    def add_save(self, fields: Iterable[str]) -> None:
        """Count one measured save that exercised ``fields`` (rule paths)."""
        self.saves += 1
        touched = set()
        for path in fields:
            section = self._section(section_of(path))
            section.fields[path] = section.fields.get(path, 0) + 1
            touched.add(section_of(path))
        for name in touched:
            self.sections[name].saves += 1

    def merge(self, other: VersionCoverage) -> None:
        """Add ``other``'s counts to these."""
        self.saves += other.saves
        for name, theirs in other.sections.items():
            mine = self._section(name)
            mine.saves += theirs.saves
            for path, count in theirs.fields.items():
                mine.fields[path] = mine.fields.get(path, 0) + count

    def totals(self) -> Totals:
        """Sections and fields exercised, of how many, and the saves measured."""
        sections = self.sections.values()
        return Totals(
            sections_exercised=sum(1 for s in sections if s.exercised),
            sections=len(self.sections),
            fields_exercised=sum(s.exercised for s in sections),
            fields=sum(len(s.fields) for s in sections),
            saves=self.saves,
        )


@dataclass
class Coverage:
    """A campaign's state coverage, per version (see the module)."""

    versions: dict[str, VersionCoverage] = field(default_factory=dict)

    def version(self, name: str) -> VersionCoverage:
        """The coverage of version ``name`` (made empty on first use)."""
        if name not in self.versions:
            self.versions[name] = VersionCoverage()
        return self.versions[name]

    def add(self, version: str, fields: Iterable[str], known: Iterable[str] = ()) -> None:
        """One measured save of ``version`` that exercised ``fields``; ``known``: fields
        its reset reference holds (the fields the version has, as far as measured)."""
        coverage = self.version(version)
        coverage.know(known)
        coverage.know(fields)  # exercised is a subset of the reference; kept whole anyway
        coverage.add_save(fields)

    def merge(self, other: Coverage) -> None:
        """Add ``other``'s counts to these (two sessions', two workers')."""
        for name, theirs in other.versions.items():
            self.version(name).merge(theirs)

    def fields_exercised(self) -> int:
        """Fields exercised, summed over the versions (a field of two versions counts twice)."""
        return sum(v.totals().fields_exercised for v in self.versions.values())

    def to_json(self) -> dict[str, Any]:
        """``coverage.json``: per version the measured saves and, per section, the saves
        that exercised it and each field's count (0: the version has it, never exercised),
        fields named within their section (``pl031`` -> ``lr``: the rule path ``pl031/lr``)."""
        return {
            "format": FORMAT,
            "about": (
                "per version, saves measured (a sample of the campaign's saves) and, per "
                "vmstate section, how many of them carried each field with a value other "
                "than at reset; fields are rule paths (instance and array index left out)"
            ),
            "versions": {
                name: {
                    "saves": v.saves,
                    "sections": {
                        section: {"saves": s.saves, "fields": _relative(section, s.fields)}
                        for section, s in sorted(v.sections.items())
                    },
                }
                for name, v in sorted(self.versions.items())
            },
        }

    @classmethod
    def from_json(cls, data: object) -> Coverage | None:
        """Parse :meth:`to_json` output; None if it is not that (one bad file never stops
        a campaign or a report: it is started again, or shown as unreadable)."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        versions = data.get("versions")
        if not isinstance(versions, dict):
            return None
        coverage = cls()
        try:
            for name, raw in versions.items():
                version = coverage.version(str(name))
                version.saves = _count(raw["saves"])
                for section, body in raw["sections"].items():
                    fields = {f"{section}/{p}": _count(n) for p, n in body["fields"].items()}
                    version.sections[str(section)] = SectionCoverage(_count(body["saves"]), fields)
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return coverage


def _relative(section: str, fields: Mapping[str, int]) -> dict[str, int]:
    """``fields`` by their names in ``section`` (the path without the section), sorted."""
    return {p.removeprefix(f"{section}/"): n for p, n in sorted(fields.items())}


def _version_key(name: str) -> tuple[tuple[int, str], ...]:
    return tuple((int(w), "") if w.isdigit() else (1 << 30, w) for w in name.split("."))


def summary_lines(coverage: Coverage) -> list[str]:
    """A campaign's coverage in its last lines: one per version, oldest first, e.g.
    ``coverage 11.1: 14 of 17 sections, 212 of 1,034 fields exercised (in 318 measured
    saves)``; one line saying so if no save was measured."""
    if not coverage.versions:
        return ["coverage: no save was measured"]
    return [
        f"coverage {name}: {coverage.versions[name].totals()}"
        for name in sorted(coverage.versions, key=_version_key)
    ]


def _count(value: object) -> int:
    """A non-negative int from JSON, or ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value
