"""What two QEMU versions write differently for one configuration: sections, fields, cpregs.

``migfuzz describe`` saves the same paused machine (no guest) on two versions and compares
the layouts the streams declare: which sections each sent and at which version, the fields
and subsections the stream's own description (``QEMU_VM_VMDESCRIPTION``) lists for each, and
the Arm CPU's cpreg list by register name. QEMU's static checker
(``scripts/vmstate-static-checker.py``) works from ``-dump-vmstate``, which lists every
registered VMState but never the Arm ``cpu`` (it is registered per CPU at realize time) and
cannot know which subsections a configuration sends or which registers its CPU migrates;
real streams can.

A description lists only what the stream *sent*: a subsection "only in B" may be one that B
knows and A does not, or one both know whose ``needed()`` test differs for this configuration.

The comparison is pure data (:class:`Layout` in, :class:`LayoutDiff` out); only
:func:`save_layout` runs QEMU.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fuzz.core.binary import QemuBinary
from fuzz.core.case import Case
from fuzz.core.outcome import Verdict
from fuzz.core.settings import DEFAULT_TIMEOUTS, Timeouts
from fuzz.errors import HarnessError, InvalidInput, StreamError
from fuzz.run.machine import private_workdir
from fuzz.run.runner import FreshSource
from fuzz.stream.cpregs import from_kvm_id
from fuzz.stream.decode import decode_stream
from fuzz.stream.description import Description, VmsdDesc
from fuzz.stream.model import SectionKind, Stream
from fuzz.stream.patch import cpreg_table

__all__ = [
    "CONFIGURATION",
    "CpregDiff",
    "CpuRegisters",
    "FieldChange",
    "FieldShape",
    "Layout",
    "LayoutDiff",
    "SectionDiff",
    "SectionLayout",
    "SectionRef",
    "SubsectionChange",
    "diff_layouts",
    "register_name",
    "save_layout",
]

Side = Literal["a", "b"]

#: The pseudo-section name under which the ``QEMU_VM_CONFIGURATION`` record is compared.
CONFIGURATION = "(configuration)"


# --- the input: what one stream declares ------------------------------------------------


@dataclass(frozen=True, slots=True)
class SectionLayout:
    """One section a stream sent: its idstr, instance, version and described layout.

    ``vmsd`` is None for a section the description does not cover (the iterative ``ram``).
    """

    name: str
    instance_id: int
    version: int | None
    vmsd: VmsdDesc | None = None

    @property
    def key(self) -> tuple[str, int]:
        """``(name, instance_id)``: how sections of two streams are matched."""
        return self.name, self.instance_id


@dataclass(frozen=True, slots=True)
class CpuRegisters:
    """The cpreg list of one Arm ``cpu`` section: its KVM ids in stream order."""

    instance_id: int
    kvm_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Layout:
    """What one stream declares: its sections, its configuration record, its CPUs' cpregs.

    ``configuration`` is the configuration record's description (QEMU 8.2 and later describe
    it; older ones write it without a description, and it is then None).
    """

    sections: tuple[SectionLayout, ...]
    cpregs: tuple[CpuRegisters, ...] = ()
    configuration: VmsdDesc | None = None

    @classmethod
    def from_description(
        cls, description: Description, cpregs: tuple[CpuRegisters, ...] = ()
    ) -> Layout:
        """The layout of a description alone: its device sections at their vmsd version."""
        sections = tuple(
            SectionLayout(d.name, d.instance_id, d.vmsd.version, d.vmsd)
            for d in description.devices
        )
        return cls(sections, cpregs, description.configuration)

    @classmethod
    def from_stream(cls, stream: Stream) -> Layout:
        """The layout of a decoded stream.

        Every section the stream started (device sections and iterative ones such as
        ``ram``) at the version its header gives, with the description's layout where it has
        one; the cpreg list of every ``cpu`` section that carries one.
        """
        described = {(d.name, d.instance_id): d.vmsd for d in stream.description.devices}
        sections = tuple(
            SectionLayout(
                s.name, s.instance_id, s.version_id, described.get((s.name, s.instance_id))
            )
            for s in stream.sections
            if s.kind in (SectionKind.FULL, SectionKind.START)
        )
        seen = {s.key for s in sections}
        sections += tuple(
            SectionLayout(d.name, d.instance_id, d.vmsd.version, d.vmsd)
            for d in stream.description.devices
            if (d.name, d.instance_id) not in seen
        )
        cpus = []
        for section in sections:
            if section.name != "cpu":
                continue
            try:
                table = cpreg_table(stream, section.instance_id)
            except StreamError:
                continue  # not an Arm CPU, or one without a cpreg list
            cpus.append(CpuRegisters(section.instance_id, tuple(table)))
        return cls(sections, tuple(cpus), stream.description.configuration)


# --- the output: what differs ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldShape:
    """How a field was written: its type, bytes per element, and element count if an array."""

    type: str
    size: int
    count: int | None = None

    def __str__(self) -> str:
        shape = f"{self.type} ({self.size} B)"
        return shape if self.count is None else f"{shape} x {self.count}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"type": self.type, "size": self.size, "count": self.count}


@dataclass(frozen=True, slots=True)
class FieldChange:
    """A field only one side wrote, or wrote with another name, type, size or element count.

    ``path`` is the field's place in its section: ``env.pc``; ``timers[1]`` for an array
    element described on its own; ``parent.member`` inside a struct; ``cpu/vfp:fpscr`` inside
    a subsection; ``unused#2`` for the second field of one name. ``renamed`` is set when B
    writes the same number of bytes at the same place under another name (``b_path``): the
    wire format is the same, what QEMU calls the bytes (or their type) is not.
    """

    path: str
    a: FieldShape | None
    b: FieldShape | None
    b_path: str | None = None

    @property
    def kind(self) -> Literal["only-a", "only-b", "renamed", "retyped", "resized"]:
        """``only-a``/``only-b`` (one side wrote it), ``renamed``, ``retyped``, or ``resized``."""
        if self.b is None:
            return "only-a"
        if self.a is None:
            return "only-b"
        if self.b_path is not None:
            return "renamed"
        return "retyped" if self.a.type != self.b.type else "resized"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "path": self.path,
            "b_path": self.b_path,
            "kind": self.kind,
            "a": None if self.a is None else self.a.to_json(),
            "b": None if self.b is None else self.b.to_json(),
        }


@dataclass(frozen=True, slots=True)
class SubsectionChange:
    """A subsection only one side sent (``only_in``), or both sent at different versions."""

    name: str
    a_version: int | None
    b_version: int | None
    only_in: Side | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "only_in": self.only_in,
            "a_version": self.a_version,
            "b_version": self.b_version,
        }


@dataclass(frozen=True, slots=True)
class SectionRef:
    """A section one side sent and the other did not."""

    name: str
    instance_id: int
    version: int | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "instance_id": self.instance_id, "version": self.version}


@dataclass(frozen=True, slots=True)
class SectionDiff:
    """What differs in a section both sides sent."""

    name: str
    instance_id: int
    a_version: int | None
    b_version: int | None
    fields: tuple[FieldChange, ...] = ()
    subsections: tuple[SubsectionChange, ...] = ()

    @property
    def version_changed(self) -> bool:
        """Whether the two sides sent the section at different versions."""
        return self.a_version != self.b_version

    @property
    def changed(self) -> bool:
        """Whether anything differs."""
        return self.version_changed or bool(self.fields or self.subsections)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "instance_id": self.instance_id,
            "a_version": self.a_version,
            "b_version": self.b_version,
            "fields": [f.to_json() for f in self.fields],
            "subsections": [s.to_json() for s in self.subsections],
        }


@dataclass(frozen=True, slots=True)
class CpregDiff:
    """The registers one CPU's cpreg list holds on one side only, by name, in stream order."""

    instance_id: int
    a_count: int
    b_count: int
    only_a: tuple[str, ...] = ()
    only_b: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether the two lists hold different registers."""
        return bool(self.only_a or self.only_b)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "instance_id": self.instance_id,
            "a_count": self.a_count,
            "b_count": self.b_count,
            "only_a": list(self.only_a),
            "only_b": list(self.only_b),
        }


@dataclass(frozen=True, slots=True)
class LayoutDiff:
    """Everything that differs between layout ``a`` and layout ``b``.

    ``sections`` and ``cpregs`` hold only what changed (a ``cpu`` section whose cpreg list
    changed is in ``sections`` too); ``common`` counts the sections both sides sent.
    ``notes`` say what could not be compared.
    """

    only_a: tuple[SectionRef, ...] = ()
    only_b: tuple[SectionRef, ...] = ()
    sections: tuple[SectionDiff, ...] = ()
    cpregs: tuple[CpregDiff, ...] = ()
    common: int = 0
    notes: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        """Whether the two layouts declare the same sections, fields and cpregs."""
        return not (self.only_a or self.only_b or self.sections or self.cpregs)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "identical": self.identical,
            "common_sections": self.common,
            "only_a": [s.to_json() for s in self.only_a],
            "only_b": [s.to_json() for s in self.only_b],
            "sections": [s.to_json() for s in self.sections],
            "cpregs": [c.to_json() for c in self.cpregs],
            "notes": list(self.notes),
        }

    def lines(self, a: str = "A", b: str = "B") -> list[str]:
        """The diff as text lines grouped by section, ``a`` and ``b`` naming the two sides."""
        out: list[str] = []
        if self.identical:
            out.append(f"no differences: {self.common} sections, same layout on {a} and {b}")
        for side, refs in ((a, self.only_a), (b, self.only_b)):
            for ref in refs:
                out.append(f"[{ref.name} {ref.instance_id}] only in {side} (version {ref.version})")
        cpregs = {c.instance_id: c for c in self.cpregs}
        for section in self.sections:
            out.append(f"[{section.name} {section.instance_id}]" + _version_text(section, a, b))
            out.extend(f"  {line}" for line in _section_lines(section, a, b))
            if section.name == "cpu" and section.instance_id in cpregs:
                cpu = cpregs[section.instance_id]
                out.extend(f"  {line}" for line in _cpreg_lines(cpu, a, b))
        if not self.identical:
            out.append(f"{self.common - len(self.sections)} of {self.common} sections both "
                       "sent are alike")  # fmt: skip
        out.extend(f"note: {note}" for note in self.notes)
        return out


def _version_text(section: SectionDiff, a: str, b: str) -> str:
    if section.a_version is None and section.b_version is None:
        return ""
    if section.version_changed:
        return f" version {section.a_version} on {a}, {section.b_version} on {b}"
    return f" version {section.a_version}"


def _section_lines(section: SectionDiff, a: str, b: str) -> Iterator[str]:
    for sub in section.subsections:
        if sub.only_in is not None:
            side, version = (a, sub.a_version) if sub.only_in == "a" else (b, sub.b_version)
            yield f"subsection {sub.name}: sent only by {side} (version {version})"
        else:
            yield f"subsection {sub.name}: version {sub.a_version} on {a}, {sub.b_version} on {b}"
    for change in section.fields:
        if change.kind == "only-a":
            yield f"field {change.path}: only in {a}: {change.a}"
        elif change.kind == "renamed":
            yield (f"field {change.path}: renamed {change.b_path} on {b}: {change.a} on {a}, "
                   f"{change.b} on {b}")  # fmt: skip
        elif change.kind == "only-b":
            yield f"field {change.path}: only in {b}: {change.b}"
        else:
            yield f"field {change.path}: {change.kind}: {change.a} on {a}, {change.b} on {b}"


def _cpreg_lines(cpregs: CpregDiff, a: str, b: str) -> Iterator[str]:
    yield f"cpregs: {cpregs.a_count} on {a}, {cpregs.b_count} on {b}"
    for side, names in ((a, cpregs.only_a), (b, cpregs.only_b)):
        if names:
            yield f"  only in {side} ({len(names)}): {' '.join(names)}"


# --- the comparison ----------------------------------------------------------------------


def register_name(kvm_id: int) -> str:
    """A cpreg list entry's name (:mod:`fuzz.stream.cpregs`), or its hex id if it has none.

    AArch64 registers get their architectural names; AArch32 ones their generic encoding
    name (``P15_0_C13_C0_2``), as :mod:`fuzz.stream.cpregs` has no AArch32 names.
    """
    try:
        return from_kvm_id(kvm_id).name
    except InvalidInput:
        return f"{kvm_id:#018x}"


@dataclass(slots=True)
class _Flat:
    """A description flattened: field shapes by path, subsection versions by name, the
    parent (struct field or subsection) of every path ("" at the top) and every parent's
    fields in order."""

    fields: dict[str, FieldShape]
    subs: dict[str, int | None]
    parent: dict[str, str]
    children: dict[str, list[str]]

    def under(self, path: str, parents: set[str]) -> bool:
        """Whether ``path`` lies, at any depth, inside one of ``parents``."""
        up = self.parent.get(path, "")
        while up:
            if up in parents:
                return True
            up = self.parent.get(up, "")
        return False


def _walk(vmsd: VmsdDesc, prefix: str, parent: str, flat: _Flat) -> None:
    """Flatten ``vmsd`` into ``flat`` (paths as :class:`FieldChange` spells them)."""
    for field in vmsd.fields:
        name = field.name if field.index is None else f"{field.name}[{field.index}]"
        path, n = prefix + name, 1
        while path in flat.fields:
            n += 1
            path = f"{prefix}{name}#{n}"
        flat.fields[path] = FieldShape(field.type, field.size, field.array_len)
        flat.parent[path] = parent
        flat.children.setdefault(parent, []).append(path)
        if field.struct is not None:
            _walk(field.struct, f"{path}.", path, flat)
    for sub in vmsd.subsections:
        # Subsection names are full names ("cpu/vfp"); inside a struct, keep the struct.
        key = sub.name if not prefix or prefix.endswith(":") else f"{prefix}{sub.name}"
        flat.subs[key] = sub.version
        flat.parent[key] = parent
        _walk(sub, f"{key}:", key, flat)


def _flat(vmsd: VmsdDesc | None) -> _Flat:
    flat = _Flat({}, {}, {}, {})
    if vmsd is not None:
        _walk(vmsd, "", "", flat)
    return flat


def _renames(fa: _Flat, fb: _Flat) -> dict[str, str]:
    """A's path -> B's path of every field renamed in place (see :func:`_diff_vmsd`)."""
    renamed: dict[str, str] = {}
    for parent, a_children in fa.children.items():
        for pa, pb in zip(a_children, fb.children.get(parent, ()), strict=False):
            if pa not in fb.fields and pb not in fa.fields:
                sa, sb = fa.fields[pa], fb.fields[pb]
                if sa.size * (sa.count or 1) == sb.size * (sb.count or 1):
                    renamed[pa] = pb
    return renamed


def _diff_vmsd(
    a: VmsdDesc | None, b: VmsdDesc | None
) -> tuple[tuple[FieldChange, ...], tuple[SubsectionChange, ...]]:
    """Field and subsection changes; what lies inside a one-sided parent is not repeated.

    A field only A has and one only B has, at the same place of the same parent and of the
    same byte length, are one renamed field (e.g. ``gt_timer[0]`` -> ``gt_timer[GTIMER_PHYS]``
    when QEMU's macro started spelling the index, or a dropped field that became ``unused``).
    """
    fa, fb = _flat(a), _flat(b)
    one_sided = (fa.subs.keys() ^ fb.subs.keys()) | (fa.fields.keys() ^ fb.fields.keys())
    renamed = _renames(fa, fb)

    def inside(path: str) -> bool:
        return fa.under(path, one_sided) or fb.under(path, one_sided)

    subs: list[SubsectionChange] = []
    for name in {**fa.subs, **fb.subs}:
        if inside(name):
            continue
        if name not in fb.subs:
            subs.append(SubsectionChange(name, fa.subs[name], None, "a"))
        elif name not in fa.subs:
            subs.append(SubsectionChange(name, None, fb.subs[name], "b"))
        elif fa.subs[name] != fb.subs[name]:
            subs.append(SubsectionChange(name, fa.subs[name], fb.subs[name]))
    fields: list[FieldChange] = []
    renamed_to = set(renamed.values())
    for path in {**fa.fields, **fb.fields}:
        if path in renamed_to or inside(path):
            continue
        if path in renamed:
            new = renamed[path]
            fields.append(FieldChange(path, fa.fields[path], fb.fields[new], new))
            continue
        before, after = fa.fields.get(path), fb.fields.get(path)
        if before != after:
            fields.append(FieldChange(path, before, after))
    return tuple(fields), tuple(subs)


def _diff_cpregs(a: CpuRegisters, b: CpuRegisters) -> CpregDiff:
    in_a, in_b = set(a.kvm_ids), set(b.kvm_ids)
    return CpregDiff(
        a.instance_id,
        len(a.kvm_ids),
        len(b.kvm_ids),
        tuple(register_name(i) for i in a.kvm_ids if i not in in_b),
        tuple(register_name(i) for i in b.kvm_ids if i not in in_a),
    )


def diff_layouts(a: Layout, b: Layout) -> LayoutDiff:
    """Compare the layout ``b`` declares with the one ``a`` declares.

    Sections are matched by name and instance; within a section fields by path (see
    :class:`FieldChange`) and subsections by name; cpreg lists by KVM id, reported by name.
    Sections appear in ``a``'s order, then those only ``b`` sent. The configuration record
    is compared as the section ``(configuration)`` when both sides describe it.
    """
    notes: list[str] = []
    a_sections = {s.key: s for s in a.sections}
    b_sections = {s.key: s for s in b.sections}
    if a.configuration is not None and b.configuration is not None:
        for sections, layout in ((a_sections, a), (b_sections, b)):
            config = layout.configuration
            assert config is not None
            sections[CONFIGURATION, 0] = SectionLayout(CONFIGURATION, 0, config.version, config)
    elif a.configuration is not None or b.configuration is not None:
        side = "A" if a.configuration is not None else "B"
        notes.append(f"configuration record not compared: only {side} describes it "
                     "(QEMU 8.2 and later do)")  # fmt: skip
    b_cpus = {c.instance_id: c for c in b.cpregs}
    cpregs = tuple(
        d
        for c in a.cpregs
        if c.instance_id in b_cpus and (d := _diff_cpregs(c, b_cpus[c.instance_id])).changed
    )
    cpreg_sections = {("cpu", c.instance_id) for c in cpregs}
    diffs: list[SectionDiff] = []
    for key, left in a_sections.items():
        right = b_sections.get(key)
        if right is None:
            continue
        if (left.vmsd is None) != (right.vmsd is None):
            notes.append(f"{key[0]} {key[1]}: described on one side only; fields not compared")
            fields: tuple[FieldChange, ...] = ()
            subs: tuple[SubsectionChange, ...] = ()
        else:
            fields, subs = _diff_vmsd(left.vmsd, right.vmsd)
        diff = SectionDiff(key[0], key[1], left.version, right.version, fields, subs)
        if diff.changed or key in cpreg_sections:
            diffs.append(diff)
    return LayoutDiff(
        only_a=tuple(
            SectionRef(s.name, s.instance_id, s.version)
            for k, s in a_sections.items()
            if k not in b_sections
        ),
        only_b=tuple(
            SectionRef(s.name, s.instance_id, s.version)
            for k, s in b_sections.items()
            if k not in a_sections
        ),
        sections=tuple(diffs),
        cpregs=cpregs,
        common=sum(1 for k in a_sections if k in b_sections),
        notes=tuple(notes),
    )


# --- the one part that runs QEMU ---------------------------------------------------------


async def save_layout(
    binary: QemuBinary, case: Case, *, timeouts: Timeouts = DEFAULT_TIMEOUTS
) -> Layout:
    """Save ``case`` paused at reset (its guest, if any, is not run) and decode its layout.

    :return: the layout of the stream ``binary`` wrote.
    :raise InvalidInput: the version refuses the configuration (it would not start or save),
        the message naming the version and QEMU's first error line.
    :raise HarnessError: QEMU crashed or hung, or its stream does not decode.
    """
    paused = Case(config=case.config)
    with private_workdir("migfuzz-describe-") as tmp:
        saved = await FreshSource(binary, Path(tmp), timeouts=timeouts).save(paused)
    outcome = saved.outcome
    if outcome.verdict in (Verdict.SETUP_ERROR, Verdict.REFUSED):
        why = outcome.headline or f"exit status {outcome.returncode}"
        raise InvalidInput(f"QEMU {binary.name} refuses {case.config.describe()}: {why}")
    if outcome.verdict is not Verdict.COMPLETED or saved.stream is None:
        raise HarnessError(f"QEMU {binary.name} did not save: {outcome.summary()}")
    try:
        return Layout.from_stream(decode_stream(saved.stream))
    except StreamError as err:
        raise HarnessError(f"QEMU {binary.name}'s stream does not decode: {err}") from err
