"""Machine configurations that two QEMU versions both start: the fuzzer's ``MachineConfig`` input.

Everything drawn comes from the two versions' probed
:class:`~fuzz.core.capabilities.Capabilities`, never from a list of what exists: the
machine type, the CPU model, which ``-cpu`` properties that model has and their defaults,
which ``-machine`` options ``virt`` has. What this module declares
is only *what we fuzz* and *how options interact*:

* :data:`CPU_PROPERTIES` and :data:`MACHINE_OPTIONS` -- the families of settings the strategy
  may set, and how each picks a value that differs from the default (so every drawn option
  changes something).
* :data:`RULES` -- the interactions that make QEMU refuse to start (or crash while starting),
  each found by starting the four Debian versions (5.2, 7.2, 10.0, 11.1) and citing the
  message it avoids. The strategy never draws a configuration that breaks a rule.

:func:`configurations` shrinks toward the plainest case: the newest machine type both versions
have, ``cortex-a57``, no options, one CPU, 64 MiB. :func:`accepted_by` says whether one version
is expected to start a configuration (what it offers, and no rule refuses it there).

Pure data: nothing here starts a process.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal, TypeAlias

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from fuzz.core.boards import BOARDS, Board, board_of
from fuzz.core.capabilities import Capabilities
from fuzz.core.case import MachineConfig
from fuzz.core.devices import (
    PCI_SLOTS,
    VIRTIO_MMIO_BUSES,
    Device,
    DeviceKind,
    kinds_offered,
    starts_and_migrates,
)

__all__ = [
    "BOARD_ONE_IN",
    "CPU_PROPERTIES",
    "DEVICES_ONE_IN",
    "MACHINE_OPTIONS",
    "MAX_DEVICES",
    "MEMORY_MIB",
    "PREFERRED_CPU",
    "RULES",
    "Family",
    "MachineType",
    "Model",
    "MoreCpus",
    "MoreMemory",
    "Option",
    "Rule",
    "accepted_by",
    "configurations",
]

Part: TypeAlias = Literal["cpu", "machine"]

#: The CPU model configurations shrink toward when both versions have it.
PREFERRED_CPU: Final = "cortex-a57"

#: Guest RAM sizes, plainest first. 4096 puts RAM above 4 GiB (the high memory map).
MEMORY_MIB: Final = (64, 128, 256, 1024, 4096)
#: One draw in this many considers a size other than the first. Every save and restore
#: walks all of RAM, so a 1 GiB case costs about 2.5 times a 64 MiB one and a 4 GiB case
#: about 8 times (measured with 11.1, paused): drawn uniformly, the sizes took most of a
#: campaign's time for an axis that few bugs depend on. At one in four they still took
#: half of a default campaign's QEMU time for a quarter of its cases (a 4 GiB process
#: cost 6 times a 64 MiB one), so one in eight.
OTHER_MEMORY_ONE_IN: Final = 8
#: The most devices a configuration adds with ``-device`` (:data:`fuzz.core.devices.CATALOGUE`).
MAX_DEVICES: Final = 3
#: One configuration in this many adds devices, where a pair offers some. Drawn as a
#: plain list they were in two of three: each one's processes start slower, save and load
#: more, and their new findings (every cross-series pair has some) took the shrinker's
#: time, so the CPU and board state was reached less (the e2e campaigns took 3 times
#: longer).
DEVICES_ONE_IN: Final = 4
#: One configuration in this many is a board other than ``virt`` (:mod:`fuzz.core.boards`),
#: where a pair has one: a board has 1 or 2 GiB of RAM and many devices (a raspi4b case
#: costs some 5 s of QEMU and Python against 0.3 s for a fresh 64 MiB ``virt`` one) and a
#: fixed CPU, and its guests reach only the CPU. At one in 8 they doubled the e2e
#: campaigns' time.
BOARD_ONE_IN: Final = 32


# -- conditions and rules ------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """A ``-cpu`` property (``part="cpu"``) or ``-machine`` option whose name and value
    fully match the regular expressions ``name`` and ``value``."""

    part: Part
    name: str
    value: str = ".+"

    def keys(self, config: MachineConfig) -> list[tuple[str, str]]:
        """The (part, name) of every setting of ``config`` this matches."""
        settings = config.cpu_properties if self.part == "cpu" else config.machine_options
        return [
            (self.part, n)
            for n, v in settings
            if re.fullmatch(self.name, n) and re.fullmatch(self.value, v)
        ]


@dataclass(frozen=True)
class Model:
    """The CPU model, if it fully matches the regular expression ``pattern``."""

    pattern: str

    def keys(self, config: MachineConfig) -> list[tuple[str, str]]:
        """``[("model", cpu)]`` if the model matches, else ``[]``."""
        return [("model", config.cpu)] if re.fullmatch(self.pattern, config.cpu) else []


@dataclass(frozen=True)
class MachineType:
    """The machine type, if it fully matches the regular expression ``pattern``."""

    pattern: str

    def keys(self, config: MachineConfig) -> list[tuple[str, str]]:
        """``[("type", machine)]`` if the machine type matches, else ``[]``."""
        return [("type", config.machine)] if re.fullmatch(self.pattern, config.machine) else []


@dataclass(frozen=True)
class MoreCpus:
    """More than ``than`` CPUs (``-smp``)."""

    than: int

    def keys(self, config: MachineConfig) -> list[tuple[str, str]]:
        """``[("smp", n)]`` if ``config.smp > than``, else ``[]``."""
        return [("smp", str(config.smp))] if config.smp > self.than else []


@dataclass(frozen=True)
class MoreMemory:
    """More than ``than_mib`` MiB of guest RAM (``-m``)."""

    than_mib: int

    def keys(self, config: MachineConfig) -> list[tuple[str, str]]:
        """``[("memory", n)]`` if ``config.memory_mib > than_mib``, else ``[]``."""
        return [("memory", str(config.memory_mib))] if config.memory_mib > self.than_mib else []


Condition: TypeAlias = Option | Model | MachineType | MoreCpus | MoreMemory


@dataclass(frozen=True)
class Rule:
    """A configuration that has ``given`` must not also have ``forbids`` (another setting than
    the one ``given`` matched) and must have ``requires``; with neither, ``given`` alone is
    refused. ``before`` limits the rule to QEMU versions older than ``"X.Y"``. ``error`` is
    what QEMU says (or does) when the rule is broken.

    The strategy decides parts in this order: machine type, model, ``-cpu`` properties,
    ``-machine`` options, CPUs, memory. A ``requires`` must name an earlier part or an option
    of the same part (which the strategy then adds with ``given``).
    """

    given: Condition
    error: str
    forbids: Condition | None = None
    requires: Condition | None = None
    before: str | None = None

    def applies_to(self, version: str) -> bool:
        """Whether the rule holds for QEMU ``version`` (``"10.0.2"``)."""
        return self.before is None or _version_tuple(version) < _version_tuple(self.before)

    def broken_by(self, config: MachineConfig) -> bool:
        """True if ``config`` breaks this rule."""
        given = self.given.keys(config)
        if not given:
            return False
        if self.forbids is None and self.requires is None:
            return True
        if self.forbids is not None and any(
            f != g for f in self.forbids.keys(config) for g in given
        ):
            return True
        return self.requires is not None and not self.requires.keys(config)


_SVE_LENGTH = r"sve\d+"
_PAUTH_ALGORITHM = r"pauth-(impdef|qarma3|qarma5)"

#: What makes QEMU refuse to start a configuration, found by starting QEMU 5.2, 7.2, 10.0 and
#: 11.1 (``-S -nodefaults -display none -accel tcg``) on every fuzzed setting alone, on every
#: pair of them, and on every setting with every ``virt-X.Y`` type; ``error`` quotes QEMU.
RULES: Final[tuple[Rule, ...]] = (
    # 11.1 lists cortex-a78ae in query-cpu-definitions, but virt does not take it.
    Rule(Model("cortex-a78ae"), "Invalid CPU model: cortex-a78ae / The valid models are: ..."),
    Rule(
        Option("cpu", "aarch64", "off"),
        "'aarch64' feature cannot be disabled unless KVM is enabled and 32-bit EL1 is supported",
        before="11.1",
    ),
    Rule(
        Option("cpu", "aarch64", "off"),
        "'aarch64' feature cannot be disabled for this TCG CPU because it does not support"
        " 32-bit execution at its highest implemented exception level (11.1: a64fx,"
        " cortex-a76, cortex-a710, neoverse-n1/n2/v1)",
        requires=Model(r"cortex-a(35|53|55|57|72)|max"),
    ),
    Rule(
        Option("cpu", "sve", "off"),
        "cannot enable sve128 / SVE must be enabled to enable vector lengths."
        " Add sve=on to the CPU property list.",
        forbids=Option("cpu", rf"sve-max-vq|{_SVE_LENGTH}", r"on|\d+"),
    ),
    Rule(
        Option("cpu", "sve128", "off"),
        "cannot disable sve128 / Disabling sve128 results in all vector lengths being disabled.",
    ),
    # Lengths and sve-max-vq constrain each other arithmetically ("sve512 is larger than the
    # maximum vector length, sve-max-vq=3", "The maximum vector length must be enabled",
    # "sve256 is required as it is a power-of-two length smaller than the maximum"): we set
    # at most one of them, and one alone is always valid.
    Rule(
        Option("cpu", "sve-max-vq"),
        "cannot enable sve512 / sve512 is larger than the maximum vector length, sve-max-vq=3",
        forbids=Option("cpu", _SVE_LENGTH),
    ),
    Rule(
        Option("cpu", _SVE_LENGTH),
        "cannot disable sve256 / sve256 is required as it is a power-of-two length smaller"
        " than the maximum, sve512",
        forbids=Option("cpu", _SVE_LENGTH),
    ),
    Rule(
        Option("cpu", "pauth", "off"),
        "cannot enable pauth-impdef, pauth-qarma3 or pauth-qarma5 without pauth"
        " (7.2: cannot enable pauth-impdef without pauth)",
        forbids=Option("cpu", _PAUTH_ALGORITHM, "on"),
    ),
    Rule(
        Option("cpu", _PAUTH_ALGORITHM, "on"),
        "cannot enable pauth-impdef, pauth-qarma3 and pauth-qarma5 at the same time",
        forbids=Option("cpu", _PAUTH_ALGORITHM, "on"),
    ),
    Rule(
        Option("machine", "mte", "on"),
        "MTE requested, but not supported by the guest CPU",
        requires=Model(r"max|cortex-a710|neoverse-n2"),
    ),
    # Without firmware, ras=on with ACPI (the default, acpi=auto) does not start.
    Rule(
        Option("machine", "ras", "on"),
        "virt_acpi_setup: Assertion `vms->acpi_dev' failed (5.2, 7.2, 10.0: SIGABRT;"
        " 11.1: SIGSEGV)",
        requires=Option("machine", "acpi", "off"),
    ),
    Rule(
        Option("machine", "its"),
        "Property 'virt-2.6-machine.its' not found (5.2 virt-2.6 and virt-2.7)",
        forbids=MachineType(r"virt-2\.[67]"),
        before="7.2",
    ),
    Rule(
        MoreCpus(8),
        "Number of SMP CPUs requested (9) exceeds max CPUs supported by machine 'mach-virt' (8)"
        " (GICv2, the default; 11.1 switches to GICv3 by itself unless gic-version=2 is given)",
        requires=Option("machine", "gic-version", "3|max"),
    ),
    Rule(MoreCpus(123), "VGICv3 redist region number(2) not equal to 1", before="7.2"),
    Rule(
        Option("machine", "highmem|highmem-redists", "off"),
        "Number of SMP CPUs requested (124) exceeds max CPUs supported by machine 'mach-virt'"
        " (123) / Try 'highmem-redists=on' for more CPUs",
        forbids=MoreCpus(123),
    ),
    Rule(
        MoreCpus(512), "Invalid SMP CPUs 513. The max CPUs supported by machine 'virt-5.2' is 512"
    ),
    Rule(
        Option("machine", "highmem", "off"),
        "Addressing limited to 32 bits, but memory exceeds it by 1073741824 bytes"
        " (7.2 and later; 5.2 starts)",
        forbids=MoreMemory(3072),
    ),
)


# -- what is fuzzed ------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """Settings the strategy may draw: the probed names fully matching ``name``.

    ``kind`` says how a value is chosen:

    * ``"bool"`` -- the value that is not the model's default. The default comes from the
      probe (``query-cpu-model-expansion``, else the property's default value), else from
      ``assumed_default`` (checked with ``qom-get`` on the realized CPU); a property whose
      default is unknown is not drawn.
    * ``"values"`` -- one of ``values``, none of which is the default (``-machine`` options:
      the probe does not report their defaults; they were read with ``qom-get /machine``).
    * ``"max-vq"`` -- ``sve-max-vq`` below the model's default maximum vector length.
    * ``"vector-length"`` -- one ``sveN``: ``on`` (makes N the maximum) for a default-enabled
      N below the maximum, or ``off`` for a default-enabled N.
    """

    name: str
    kind: Literal["bool", "values", "max-vq", "vector-length"] = "bool"
    values: tuple[str, ...] = ()
    assumed_default: bool | None = None


#: ``-cpu`` properties fuzzed, in command-line order.
CPU_PROPERTIES: Final[tuple[Family, ...]] = (
    Family("pmu"),
    Family("aarch64"),
    Family("sve"),
    Family("sve-max-vq", "max-vq"),
    Family(_SVE_LENGTH, "vector-length"),
    Family("pauth"),
    Family("pauth-impdef"),
    Family("pauth-qarma3"),
    Family("pauth-qarma5"),
    # Not reported by the expansion; max has them on (qom-get on 7.2, 10.0, 11.1).
    Family("lpa2", assumed_default=True),
    Family("sme", assumed_default=True),
    Family("sme_fa64", assumed_default=True),
)

#: ``-machine virt`` options fuzzed, in command-line order (defaults: gic-version=2, its=on,
#: iommu=none, acpi=auto, highmem*=on, compact-highmem=on from virt-7.2, the rest off).
MACHINE_OPTIONS: Final[tuple[Family, ...]] = (
    Family("gic-version", "values", ("3", "max")),
    Family("virtualization", "values", ("on",)),
    Family("secure", "values", ("on",)),
    Family("mte", "values", ("on",)),
    Family("its", "values", ("off",)),
    Family("iommu", "values", ("smmuv3",)),
    Family("acpi", "values", ("off",)),
    Family("ras", "values", ("on",)),
    Family("highmem", "values", ("off",)),
    Family("highmem-ecam", "values", ("off",)),
    Family("highmem-mmio", "values", ("off",)),
    Family("highmem-redists", "values", ("off",)),
    Family("compact-highmem", "values", ("off",)),
)


# -- what one version offers -----------------------------------------------------------------

#: name -> values, in the order they are tried
_Choices: TypeAlias = dict[str, tuple[str, ...]]


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def _as_bool(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in ("on", "true", "yes"):
        return True
    if value in ("off", "false", "no"):
        return False
    return None


def _enabled_lengths(caps: Capabilities, model: str) -> list[int]:
    """SVE vector lengths (bits) the model has on by default, ascending."""
    expansion = caps.cpu_expansion.get(model, {})
    return sorted(
        int(name[3:])
        for name, on in expansion.items()
        if re.fullmatch(_SVE_LENGTH, name) and on is True
    )


def _family_choices(family: Family, caps: Capabilities, model: str) -> _Choices:
    """The settings of ``family`` that ``caps`` offers ``model``, each changing a default."""
    offered = {p.name: p for p in caps.cpu_properties.get(model, ())}
    names = sorted(
        (n for n in offered if re.fullmatch(family.name, n)),
        key=lambda n: (len(n), n),  # sve128 before sve1024
    )
    expansion = caps.cpu_expansion.get(model, {})
    lengths = _enabled_lengths(caps, model)
    out: _Choices = {}
    for name in names:
        if family.kind == "bool":
            default = _as_bool(expansion.get(name, offered[name].default))
            if default is None:
                default = family.assumed_default
            if default is not None:
                out[name] = ("off",) if default else ("on",)
        elif family.kind == "values":
            out[name] = family.values
        elif family.kind == "max-vq" and lengths:
            out[name] = tuple(str(n // 128) for n in lengths if n < lengths[-1])
        elif family.kind == "vector-length" and int(name[3:]) in lengths:
            out[name] = ("on", "off") if int(name[3:]) < lengths[-1] else ("off",)
    return {n: v for n, v in out.items() if v}


def _vq_within(value: str, lengths: list[int]) -> bool:
    """Whether ``sve-max-vq=value`` is within the default-enabled ``lengths`` (bits)."""
    return value.isdigit() and 1 <= int(value) <= lengths[-1] // 128


def _rules_for(caps: Capabilities) -> tuple[Rule, ...]:
    return tuple(r for r in RULES if r.applies_to(caps.version))


def _refused_alone(rules: Iterable[Rule], config: MachineConfig) -> bool:
    """Whether a rule with no partner (``given`` alone is refused) matches ``config``."""
    return any(r.forbids is None and r.requires is None and r.broken_by(config) for r in rules)


def accepted_by(caps: Capabilities, config: MachineConfig) -> bool:
    """Whether the version ``caps`` describes is expected to start ``config``.

    True if the machine type, CPU model, ``-cpu`` properties and ``-machine`` options are all
    ones that version has (an ``sveN=on`` or ``sve-max-vq`` only within the model's vector
    lengths), it has and migrates every added device, and no rule of :data:`RULES` that
    applies to that version is broken.
    """
    if config.machine not in caps.machine_types or config.cpu not in caps.aarch64_cpu_models:
        return False
    if (board := board_of(config.machine)) is not None:
        plain = not (config.machine_options or config.cpu_properties or config.devices)
        return plain and config.smp == board.smp(caps.release())
    props = set(caps.cpu_property_names(config.cpu))
    lengths = _enabled_lengths(caps, config.cpu)
    for name, value in config.cpu_properties:
        if name not in props:
            return False
        if re.fullmatch(_SVE_LENGTH, name) and value == "on" and int(name[3:]) not in lengths:
            return False
        if name == "sve-max-vq" and lengths and not _vq_within(value, lengths):
            return False
    options = {p.name for p in caps.virt_options}
    if any(name not in options for name, _ in config.machine_options):
        return False
    if not starts_and_migrates(caps.release(), caps.device_types, config.devices):
        return False
    return not any(r.broken_by(config) for r in _rules_for(caps))


# -- the plan for one pair, and the strategy ---------------------------------------------------


@dataclass(frozen=True)
class _Setting:
    """One drawn setting: index of its family in the pool, name, value."""

    family: int
    name: str
    value: str


def _merge(a: _Choices, b: _Choices, *, union: bool) -> _Choices:
    if union:
        names = sorted(set(a) | set(b), key=lambda n: (len(n), n))
        return {n: tuple(dict.fromkeys([*a.get(n, ()), *b.get(n, ())])) for n in names}
    return {n: tuple(v for v in a[n] if v in b[n]) for n in a if n in b and set(a[n]) & set(b[n])}


def _setting_config(part: Part, name: str, value: str, model: str) -> MachineConfig:
    if part == "cpu":
        return MachineConfig("", model, cpu_properties=((name, value),))
    return MachineConfig("", model, machine_options=((name, value),))


def _drop_refused(choices: _Choices, part: Part, model: str, rules: tuple[Rule, ...]) -> _Choices:
    """``choices`` without the settings a rule refuses on their own."""
    out: _Choices = {}
    for name, values in choices.items():
        kept = tuple(
            v for v in values if not _refused_alone(rules, _setting_config(part, name, v, model))
        )
        if kept:
            out[name] = kept
    return out


def _side_cpu(caps: Capabilities, model: str) -> list[_Choices]:
    rules = _rules_for(caps)
    return [
        _drop_refused(_family_choices(f, caps, model), "cpu", model, rules) for f in CPU_PROPERTIES
    ]


def _side_machine(caps: Capabilities) -> list[_Choices]:
    offered = {p.name for p in caps.virt_options}
    rules = _rules_for(caps)
    return [
        _drop_refused(
            {n: f.values for n in sorted(offered) if re.fullmatch(f.name, n)}, "machine", "", rules
        )
        for f in MACHINE_OPTIONS
    ]


def _side_models(caps: Capabilities) -> list[str]:
    rules = _rules_for(caps)
    return [m for m in caps.aarch64_cpu_models if not _refused_alone(rules, MachineConfig("", m))]


def _newest_first(types: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(types, key=_version_tuple, reverse=True))


@dataclass(frozen=True)
class _Pool:
    """The settings of one part that a pair offers, and the strategy drawing a list of them."""

    families: tuple[_Choices, ...]
    draws: st.SearchStrategy[list[_Setting]]


@st.composite
def _setting(
    draw: st.DrawFn,
    family: st.SearchStrategy[int],
    names: Mapping[int, st.SearchStrategy[str]],
    values: Mapping[tuple[int, str], st.SearchStrategy[str]],
) -> _Setting:
    """One setting: a family, a name in it, a value for that name (each shrinks to the first)."""
    index = draw(family)
    name = draw(names[index])
    return _Setting(index, name, draw(values[index, name]))


def _pool(families: tuple[_Choices, ...]) -> _Pool:
    """Settings drawn as a list with at most one per family; shrinks toward no settings."""
    indices = [i for i, c in enumerate(families) if c]
    if not indices:
        return _Pool(families, st.just([]))
    element = _setting(
        st.sampled_from(indices),
        {i: st.sampled_from(tuple(families[i])) for i in indices},
        {(i, n): st.sampled_from(v) for i in indices for n, v in families[i].items()},
    )
    return _Pool(families, st.lists(element, unique_by=lambda s: s.family, max_size=len(indices)))


def _common_first(common: tuple[str, ...], others: tuple[str, ...]) -> st.SearchStrategy[str]:
    """One of ``common`` (shrinking toward its first), or of ``others`` when there are any."""
    if not others:
        return st.sampled_from(common)
    return st.one_of(st.sampled_from(common), st.sampled_from(others))


@dataclass(frozen=True)
class _Plan:
    """Everything one pair may draw, worked out once from the two probes."""

    def __repr__(self) -> str:
        # Hypothesis prints the arguments of the composite strategy's call with every
        # example; the full plan is tens of kilobytes and says nothing to a reader.
        return f"_Plan(<{len(self.cpu)} models, {len(self.rules)} rules>)"

    machines: st.SearchStrategy[str]
    models: st.SearchStrategy[str]
    cpu: Mapping[str, _Pool]  # model -> one choice per CPU_PROPERTIES family
    machine: _Pool  # one choice per MACHINE_OPTIONS family
    rules: tuple[Rule, ...]
    smp_max: int
    devices: tuple[DeviceKind, ...] = ()
    boards: tuple[tuple[Board, int], ...] = ()  # each with the -smp both versions need


def _plan(
    src: Capabilities, dst: Capabilities, *, one_sided: bool, smp_max: int, boards: bool = False
) -> _Plan:
    src_types, dst_types = set(src.virt_machine_types()), set(dst.virt_machine_types())
    common_types = _newest_first(src_types & dst_types)
    if not common_types:
        raise InvalidArgument(
            f"no virt-X.Y machine type in both {src.version=} and {dst.version=}:"
            f" {src.virt_machine_types()} vs {dst.virt_machine_types()}"
        )
    src_models, dst_models = _side_models(src), _side_models(dst)
    common = [m for m in src_models if m in dst_models]
    if not common:
        raise InvalidArgument(
            f"no AArch64 CPU model that both {src.version=} and {dst.version=} accept:"
            f" {src.aarch64_cpu_models} vs {dst.aarch64_cpu_models}"
        )
    if PREFERRED_CPU in common:
        common = [PREFERRED_CPU, *(m for m in common if m != PREFERRED_CPU)]
    others: list[str] = []
    other_types: tuple[str, ...] = ()
    if one_sided:
        others = list(dict.fromkeys(m for m in [*src_models, *dst_models] if m not in common))
        other_types = _newest_first(src_types ^ dst_types)
    cpu = {
        model: _pool(
            tuple(
                _merge(a, b, union=one_sided)
                for a, b in zip(_side_cpu(src, model), _side_cpu(dst, model), strict=True)
            )
        )
        for model in [*common, *others]
    }
    machine = _pool(
        tuple(
            _merge(a, b, union=one_sided)
            for a, b in zip(_side_machine(src), _side_machine(dst), strict=True)
        )
    )
    # A configuration must start on both sides: every rule of either version holds. One-sided
    # configurations are meant to be refused by one side: only the rules of both versions hold.
    if one_sided:
        rules = tuple(r for r in RULES if r.applies_to(src.version) and r.applies_to(dst.version))
    else:
        rules = tuple(r for r in RULES if r.applies_to(src.version) or r.applies_to(dst.version))
    return _Plan(
        machines=_common_first(common_types, other_types),
        models=_common_first(tuple(common), tuple(others)),
        cpu=cpu,
        machine=machine,
        rules=rules,
        smp_max=smp_max,
        devices=kinds_offered((src.release(), dst.release()), (src.device_types, dst.device_types)),
        boards=_boards(src, dst) if boards else (),
    )


def _boards(src: Capabilities, dst: Capabilities) -> tuple[tuple[Board, int], ...]:
    """The boards both versions have, with their CPU model, at one CPU count."""
    out = []
    for board in BOARDS:
        has = all(
            board.machine in c.machine_types and board.cpu in c.aarch64_cpu_models
            for c in (src, dst)
        )
        smp = board.smp(src.release())
        if has and smp is not None and smp == board.smp(dst.release()):
            out.append((board, smp))
    return tuple(out)


def _with(config: MachineConfig, part: Part, name: str, value: str) -> MachineConfig:
    if part == "cpu":
        return replace(config, cpu_properties=(*config.cpu_properties, (name, value)))
    return replace(config, machine_options=(*config.machine_options, (name, value)))


def _names(config: MachineConfig, part: Part) -> set[str]:
    settings = config.cpu_properties if part == "cpu" else config.machine_options
    return {n for n, _ in settings}


def _add(
    config: MachineConfig, part: Part, setting: _Setting, pool: _Choices, rules: tuple[Rule, ...]
) -> MachineConfig:
    """``config`` with ``setting`` if that breaks no rule, else ``config`` unchanged.

    A rule the setting breaks only by lacking an option it ``requires`` is satisfied by adding
    that option too, when it is a plain ``name=value`` this pair offers.
    """
    if setting.name in _names(config, part):
        return config
    new = _with(config, part, setting.name, setting.value)
    for rule in rules:
        if not rule.broken_by(new):
            continue
        need = rule.requires
        if (
            rule.forbids is None
            and isinstance(need, Option)
            and need.part == part
            and re.fullmatch(r"[\w-]+", need.name)
            and need.value in pool.get(need.name, ())
            and need.name not in _names(new, part)
        ):
            new = _with(new, part, need.name, need.value)
    return config if any(r.broken_by(new) for r in rules) else new


def _canonical(
    settings: tuple[tuple[str, str], ...], families: tuple[_Choices, ...]
) -> tuple[tuple[str, str], ...]:
    """``settings`` in table order (family, then name), so equal configurations compare equal."""
    order = {name: (i, j) for i, c in enumerate(families) for j, name in enumerate(c)}
    return tuple(sorted(settings, key=lambda s: order.get(s[0], (len(families), 0))))


@st.composite
def _configurations(draw: st.DrawFn, plan: _Plan) -> MachineConfig:
    # The last of BOARD_ONE_IN values is a board: the draw shrinks toward virt. Drawn only
    # where there is a board, so a pair without one draws what it drew before boards.
    if plan.boards and draw(st.integers(0, BOARD_ONE_IN - 1)) == BOARD_ONE_IN - 1:
        board, smp = draw(st.sampled_from(plan.boards))
        return MachineConfig(board.machine, board.cpu, smp=smp, memory_mib=board.memory_mib)
    config = MachineConfig(draw(plan.machines), draw(plan.models))
    parts: tuple[tuple[Part, _Pool], ...] = (
        ("cpu", plan.cpu[config.cpu]),
        ("machine", plan.machine),
    )
    for part, pool in parts:
        offered = _flat(pool.families)
        for s in sorted(draw(pool.draws), key=lambda s: s.family):
            config = _add(config, part, s, offered, plan.rules)
    config = replace(
        config,
        cpu_properties=_canonical(config.cpu_properties, plan.cpu[config.cpu].families),
        machine_options=_canonical(config.machine_options, plan.machine.families),
    )
    smp = plan.smp_max
    while smp > 1 and any(r.broken_by(replace(config, smp=smp)) for r in plan.rules):
        smp -= 1
    config = replace(config, smp=draw(st.integers(min_value=1, max_value=smp)))
    sizes = [
        m
        for m in MEMORY_MIB
        if not any(r.broken_by(replace(config, memory_mib=m)) for r in plan.rules)
    ]
    if len(sizes) > 1 and draw(st.integers(0, OTHER_MEMORY_ONE_IN - 1)) == OTHER_MEMORY_ONE_IN - 1:
        config = replace(config, memory_mib=draw(st.sampled_from(sizes)))
    else:
        config = replace(config, memory_mib=sizes[0])
    if plan.devices and draw(st.integers(0, DEVICES_ONE_IN - 1)) == DEVICES_ONE_IN - 1:
        options = set(config.machine_options)
        kinds = tuple(k for k in plan.devices if not options & set(k.refused_with))
        if kinds:
            return replace(config, devices=draw(_devices(kinds)))
    return config


@st.composite
def _devices(draw: st.DrawFn, kinds: tuple[DeviceKind, ...]) -> tuple[Device, ...]:
    """1 to :data:`MAX_DEVICES` distinct kinds of ``kinds``, each at a slot or transport
    of its own; shrinks toward one, the catalogue's first kinds at the first places."""
    chosen = draw(
        st.lists(st.sampled_from(kinds), min_size=1, max_size=MAX_DEVICES, unique_by=_exclusive)
    )
    taken: set[tuple[str, int]] = set()
    placed = []
    for kind in chosen:
        span = PCI_SLOTS if kind.bus == "pci" else range(VIRTIO_MMIO_BUSES)
        where = draw(st.sampled_from([w for w in span if (kind.bus, w) not in taken]))
        taken.add((kind.bus, where))
        placed.append(kind.place(where))
    return tuple(placed)


def _exclusive(kind: DeviceKind) -> str:
    return kind.exclusive


def _flat(families: tuple[_Choices, ...]) -> _Choices:
    return {name: values for c in families for name, values in c.items()}


def configurations(
    src: Capabilities,
    dst: Capabilities,
    *,
    one_sided: bool = False,
    smp_max: int = 4,
    boards: bool = False,
) -> st.SearchStrategy[MachineConfig]:
    """Machine configurations that both ``src`` and ``dst`` start.

    Draws a ``virt-X.Y`` type both have (shrinking toward the newest), an AArch64 model both
    have (shrinking toward ``cortex-a57``), ``-cpu`` properties from :data:`CPU_PROPERTIES`
    and ``-machine`` options from :data:`MACHINE_OPTIONS` that both offer, each set to a value
    other than its default, 1 to ``smp_max`` CPUs, a size from :data:`MEMORY_MIB` and, in
    one configuration of :data:`DEVICES_ONE_IN`, up to :data:`MAX_DEVICES` devices of
    :data:`fuzz.core.devices.CATALOGUE` that both versions have and migrate (each at a slot
    of ``pcie.0`` or a virtio-mmio transport of its own). No
    drawn configuration breaks a rule of :data:`RULES` for either version. Shrinks toward the
    plainest case: no options, one CPU, 64 MiB, no devices.

    :param one_sided: also draw machine types, models, properties and options that only one
        of the two versions has. Such configurations are meant to be refused by the other
        (:func:`accepted_by` tells which); the rules of both versions still hold.
    :param smp_max: the most CPUs drawn (the rules may allow fewer, e.g. 8 with GICv2).
    :param boards: one configuration in :data:`BOARD_ONE_IN` is a board both versions have
        (:data:`fuzz.core.boards.BOARDS`: its CPU, CPU count and RAM, nothing else).
    :raise InvalidArgument: an argument is not of the right type, ``smp_max < 1``, or the
        two versions have no ``virt-X.Y`` type or no AArch64 CPU model in common.
    """
    for what, caps in (("src", src), ("dst", dst)):
        if not isinstance(caps, Capabilities):
            raise InvalidArgument(f"{what}={caps!r} must be a fuzz.core.capabilities.Capabilities")
    if not isinstance(one_sided, bool):
        raise InvalidArgument(f"{one_sided=} must be a bool")
    if isinstance(smp_max, bool) or not isinstance(smp_max, int) or smp_max < 1:
        raise InvalidArgument(f"{smp_max=} must be an integer >= 1")
    plan = _plan(src, dst, one_sided=one_sided, smp_max=smp_max, boards=boards)
    return _configurations(plan)
