"""The configuration strategy on hand-built probes: what it draws, how it shrinks, the rules."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from fuzz.core.capabilities import Capabilities, CpuProperty
from fuzz.core.case import MachineConfig
from fuzz.versions.farm import DEBIAN_SUITES
from strategies.configs import (
    CPU_PROPERTIES,
    MACHINE_OPTIONS,
    MEMORY_MIB,
    RULES,
    MachineType,
    Model,
    MoreCpus,
    MoreMemory,
    Option,
    Rule,
    accepted_by,
    configurations,
)

QUIET = settings(database=None, suppress_health_check=[HealthCheck.too_slow])

_LENGTHS = (128, 256, 384, 512)


def _bool(name: str, default: object = None) -> CpuProperty:
    return CpuProperty(name, "bool", default)


def _caps(
    version: str,
    types: list[str],
    models: dict[str, tuple[list[CpuProperty], dict[str, object]]],
    virt: list[str],
) -> Capabilities:
    """A small probe: models map to (properties, expansion)."""
    return Capabilities(
        binary_hash=f"hash-{version}",
        version=version,
        version_line=f"QEMU emulator version {version}",
        machine_types=("none", "virt", *types),
        default_virt=types[-1],
        cpu_models=tuple(models),
        aarch64_cpu_models=tuple(models),
        cpu_properties={m: tuple(props) for m, (props, _) in models.items()},
        cpu_expansion={m: exp for m, (_, exp) in models.items()},
        virt_options=tuple(CpuProperty(n, "bool") for n in virt),
        migration_transports=("exec", "fd", "file", "tcp", "unix"),
        trace_works=True,
        has_snapshot_load=True,
    )


def _plain_cpu() -> tuple[list[CpuProperty], dict[str, object]]:
    return [_bool("aarch64"), _bool("pmu")], {"aarch64": True, "pmu": True}


def _max(
    *, qarma: bool, lengths: tuple[int, ...] = _LENGTHS
) -> tuple[list[CpuProperty], dict[str, object]]:
    props = [_bool("aarch64"), _bool("pmu"), _bool("sve"), CpuProperty("sve-max-vq", "uint32")]
    props += [_bool(f"sve{n}") for n in _LENGTHS]
    props += [_bool("pauth", True), _bool("pauth-impdef", False), _bool("lpa2")]
    props += [_bool("sme"), _bool("sme_fa64")]
    expansion: dict[str, object] = {"aarch64": True, "pmu": True, "sve": True, "pauth": True}
    expansion |= {f"sve{n}": n in lengths for n in _LENGTHS}
    expansion["pauth-impdef"] = False
    if qarma:
        props += [_bool("pauth-qarma3", False), _bool("pauth-qarma5", False)]
        expansion |= {"pauth-qarma3": False, "pauth-qarma5": False}
    return props, expansion


_VIRT = ["gic-version", "virtualization", "secure", "mte", "its", "iommu", "acpi", "ras", "highmem"]

OLD = _caps(
    "7.2.0",
    ["virt-2.6", "virt-7.0", "virt-7.1", "virt-7.2"],
    {"cortex-a53": _plain_cpu(), "cortex-a57": _plain_cpu(), "max": _max(qarma=False)},
    [*_VIRT, "append", "dtb"],
)
NEW = _caps(
    "10.0.0",
    ["virt-7.1", "virt-7.2", "virt-8.0", "virt-10.0"],
    {
        "a64fx": ([_bool("pmu"), _bool("sve"), *(_bool(f"sve{n}") for n in _LENGTHS)],
                  {"pmu": True, "sve": True, "sve128": True, "sve256": True, "sve384": False,
                   "sve512": True}),
        "cortex-a57": _plain_cpu(),
        "cortex-a710": ([_bool("pmu"), _bool("pauth", True)], {"pmu": True, "pauth": True}),
        "max": _max(qarma=True),
    },
    [*_VIRT, "highmem-ecam", "compact-highmem"],
)  # fmt: skip
NEWEST = _caps(
    "11.1.0",
    ["virt-7.2", "virt-10.0", "virt-11.1"],
    {
        "cortex-a57": _plain_cpu(),
        "cortex-a76": _plain_cpu(),
        "cortex-a78ae": _plain_cpu(),
        "max": _max(qarma=True),
    },
    [*_VIRT, "highmem-ecam", "compact-highmem", "msi"],
)
PAIRS = [(OLD, NEW), (NEW, OLD), (NEW, NEWEST), (OLD, NEWEST), (NEWEST, NEWEST)]


def _options(config: MachineConfig) -> list[tuple[str, str]]:
    return [*config.cpu_properties, *config.machine_options]


def _broken(config: MachineConfig, *versions: str) -> list[str]:
    return [
        r.error for r in RULES if any(r.applies_to(v) for v in versions) and r.broken_by(config)
    ]


def _find(
    strategy: st.SearchStrategy[MachineConfig], condition: Callable[[MachineConfig], bool]
) -> MachineConfig:
    return find(strategy, condition, settings=settings(QUIET, max_examples=2000))


# -- what is drawn ----------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=lambda c: c.version)
@QUIET
@given(data=st.data())
def test_draws_only_what_both_versions_have_and_start(
    src: Capabilities, dst: Capabilities, data: st.DataObject
) -> None:
    config = data.draw(configurations(src, dst, smp_max=12))
    for caps in (src, dst):
        assert config.machine in caps.virt_machine_types()
        assert config.cpu in caps.aarch64_cpu_models
        assert {n for n, _ in config.cpu_properties} <= set(caps.cpu_property_names(config.cpu))
        assert {n for n, _ in config.machine_options} <= {p.name for p in caps.virt_options}
        assert accepted_by(caps, config), config.describe()
    assert not _broken(config, src.version, dst.version), config.describe()
    assert 1 <= config.smp <= 12 and config.memory_mib in MEMORY_MIB


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=lambda c: c.version)
@QUIET
@given(data=st.data())
def test_every_option_changes_a_default(
    src: Capabilities, dst: Capabilities, data: st.DataObject
) -> None:
    config = data.draw(configurations(src, dst))
    fuzzed = [f.name for f in (*CPU_PROPERTIES, *MACHINE_OPTIONS)]
    for name, value in _options(config):
        assert any(re.fullmatch(f, name) for f in fuzzed), name
        for caps in (src, dst):
            default = caps.cpu_expansion[config.cpu].get(name)
            if isinstance(default, bool) and not re.fullmatch(r"sve\d+", name):
                assert value == ("off" if default else "on"), (name, value)
    names = [n for n, _ in _options(config)]
    assert len(names) == len(set(names))
    assert "gic-version=2" not in config.describe()


def test_options_are_in_table_order() -> None:
    order = [f.name for f in CPU_PROPERTIES]
    config = _find(configurations(OLD, NEW), lambda c: len(c.cpu_properties) >= 3)
    ranks = [
        next(i for i, f in enumerate(order) if re.fullmatch(f, n)) for n, _ in config.cpu_properties
    ]
    assert ranks == sorted(ranks)


def test_vector_lengths_come_from_the_expansion() -> None:
    # a64fx has 128, 256 and 512 on by default, not 384: only those are set, and only below
    # the maximum may be switched on.
    def uses(c: MachineConfig) -> bool:
        return c.cpu == "a64fx" and any(re.fullmatch(r"sve\d+", n) for n, _ in c.cpu_properties)

    seen = set()

    @QUIET
    @given(configurations(NEW, NEW))
    def check(config: MachineConfig) -> None:
        if uses(config):
            [(name, value)] = [p for p in config.cpu_properties if re.fullmatch(r"sve\d+", p[0])]
            seen.add((name, value))

    check()
    assert seen <= {("sve128", "on"), ("sve256", "on"), ("sve256", "off"), ("sve512", "off")}
    assert _find(configurations(NEW, NEW), uses).cpu_properties == (("sve128", "on"),)


def test_sve_max_vq_stays_below_the_default_maximum() -> None:
    def vq(c: MachineConfig) -> bool:
        return any(n == "sve-max-vq" for n, _ in c.cpu_properties)

    small = _caps("10.0.0", ["virt-10.0"], {"max": _max(qarma=True, lengths=(128, 256))}, [])
    config = _find(configurations(small, small), vq)
    assert config.cpu_properties == (("sve-max-vq", "1"),)


# -- shrinking ------------------------------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=lambda c: c.version)
def test_shrinks_to_the_plainest_configuration(src: Capabilities, dst: Capabilities) -> None:
    newest = max(
        set(src.virt_machine_types()) & set(dst.virt_machine_types()),
        key=lambda m: tuple(int(x) for x in m[5:].split(".")),
    )
    assert _find(configurations(src, dst), lambda c: True) == MachineConfig(newest, "cortex-a57")


def test_without_cortex_a57_shrinks_to_the_first_common_model() -> None:
    a = _caps("10.0.0", ["virt-10.0"], {"cortex-a53": _plain_cpu(), "max": _max(qarma=True)}, [])
    b = _caps("11.1.0", ["virt-10.0"], {"max": _max(qarma=True), "cortex-a53": _plain_cpu()}, [])
    assert _find(configurations(a, b), lambda c: True).cpu == "cortex-a53"


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=lambda c: c.version)
def test_any_option_shrinks_to_exactly_one(src: Capabilities, dst: Capabilities) -> None:
    config = _find(configurations(src, dst), lambda c: bool(_options(c)))
    assert len(_options(config)) == 1
    assert (config.smp, config.memory_mib) == (1, 64)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pauth-impdef", ("max", [("pauth-impdef", "on")])),
        ("mte", ("max", [("mte", "on")])),  # mte=on needs a CPU with MTE
        ("gic-version", ("cortex-a57", [("gic-version", "3")])),
        ("pmu", ("cortex-a57", [("pmu", "off")])),
        # ras=on does not start with ACPI and no firmware: acpi=off comes with it
        ("ras", ("cortex-a57", [("acpi", "off"), ("ras", "on")])),
    ],
)
def test_one_named_option_shrinks_to_just_it(
    name: str, expected: tuple[str, list[tuple[str, str]]]
) -> None:
    config = _find(configurations(OLD, NEW), lambda c: any(n == name for n, _ in _options(c)))
    assert (config.cpu, _options(config)) == expected
    assert config.machine == "virt-7.2"


def test_more_than_8_cpus_comes_with_gicv3() -> None:
    config = _find(configurations(OLD, NEW, smp_max=16), lambda c: c.smp > 8)
    assert config.machine_options == (("gic-version", "3"),) and config.smp == 9


def test_highmem_off_keeps_memory_below_4g() -> None:
    @QUIET
    @given(configurations(OLD, NEW))
    def check(config: MachineConfig) -> None:
        if ("highmem", "off") in config.machine_options:
            assert config.memory_mib <= 3072

    check()
    assert _find(configurations(OLD, NEW), lambda c: c.memory_mib > 3072).memory_mib == 4096


# -- version-bound rules ---------------------------------------------------------------------


def _aarch32(c: MachineConfig) -> bool:
    return ("aarch64", "off") in c.cpu_properties


def test_aarch64_off_only_where_both_versions_take_it() -> None:
    # TCG refuses aarch64=off before 11.1, and on 11.1 for CPUs without AArch32 at their top EL.
    assert _find(configurations(NEWEST, NEWEST), _aarch32).cpu == "cortex-a57"
    config = _find(configurations(NEWEST, NEWEST), lambda c: _aarch32(c) and c.cpu != "cortex-a57")
    assert config.cpu == "max"

    @QUIET
    @given(configurations(NEWEST, NEWEST), configurations(NEW, NEWEST))
    def check(newest: MachineConfig, mixed: MachineConfig) -> None:
        assert not (_aarch32(newest) and newest.cpu == "cortex-a76")
        assert not _aarch32(mixed)

    check()


@QUIET
@given(configurations(NEWEST, NEWEST, one_sided=True))
def test_a_model_virt_refuses_is_never_drawn(config: MachineConfig) -> None:
    assert config.cpu != "cortex-a78ae"  # listed by 11.1's probe, refused by virt


# -- one-sided configurations ----------------------------------------------------------------


def test_one_sided_draws_what_only_one_side_takes() -> None:
    strategy = configurations(NEW, NEWEST, one_sided=True)
    # a machine type only one side has
    config = _find(strategy, lambda c: not accepted_by(NEW, c))
    assert config == MachineConfig("virt-11.1", "cortex-a57") and accepted_by(NEWEST, config)
    config = _find(strategy, lambda c: c.machine not in NEWEST.machine_types)
    assert config == MachineConfig("virt-8.0", "cortex-a57") and accepted_by(NEW, config)
    # a model only one side has
    config = _find(
        strategy,
        lambda c: (c.machine, _options(c)) == ("virt-10.0", []) and not accepted_by(NEWEST, c),
    )
    assert config.cpu in ("a64fx", "cortex-a710") and accepted_by(NEW, config)
    # aarch64=off: both sides have the property, only 11.1 takes the value
    config = _find(
        strategy,
        lambda c: (c.machine, c.cpu) == ("virt-10.0", "cortex-a57") and not accepted_by(NEW, c),
    )
    assert config.cpu_properties == (("aarch64", "off"),) and not config.machine_options
    assert accepted_by(NEWEST, config)
    # an option only one side has, on a machine type and model both have
    config = _find(
        configurations(OLD, NEW, one_sided=True),
        lambda c: (c.machine, c.cpu) == ("virt-7.2", "max") and not accepted_by(OLD, c),
    )
    assert len(_options(config)) == 1 and accepted_by(NEW, config)


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=lambda c: c.version)
@QUIET
@given(data=st.data())
def test_one_sided_configurations_use_only_what_some_side_has(
    src: Capabilities, dst: Capabilities, data: st.DataObject
) -> None:
    config = data.draw(configurations(src, dst, one_sided=True))
    sides = (src, dst)
    assert any(config.machine in c.machine_types for c in sides)
    assert any(config.cpu in c.aarch64_cpu_models for c in sides)
    for name, _ in config.cpu_properties:
        assert any(name in c.cpu_property_names(config.cpu) for c in sides)
    for name, _ in config.machine_options:
        assert any(name in {p.name for p in c.virt_options} for c in sides)
    # the rules that hold for both versions hold
    both = [r for r in RULES if r.applies_to(src.version) and r.applies_to(dst.version)]
    assert not [r.error for r in both if r.broken_by(config)]


# -- arguments -------------------------------------------------------------------------------


def test_invalid_arguments() -> None:
    lonely = _caps("9.0.0", ["virt-9.0"], {"cortex-a57": _plain_cpu()}, [])
    no_model = _caps("10.0.0", ["virt-7.2"], {"cortex-a53": _plain_cpu()}, [])
    with pytest.raises(InvalidArgument, match="machine type"):
        configurations(OLD, lonely)
    with pytest.raises(InvalidArgument, match="CPU model"):
        configurations(OLD, _caps("7.2.0", ["virt-7.2"], {"cortex-a78ae": _plain_cpu()}, []))
    configurations(OLD, no_model)  # cortex-a53 in common: fine
    with pytest.raises(InvalidArgument, match="smp_max=0"):
        configurations(OLD, NEW, smp_max=0)
    with pytest.raises(InvalidArgument, match="smp_max"):
        configurations(OLD, NEW, smp_max="4")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="src"):
        configurations("7.2", NEW)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="one_sided"):
        configurations(OLD, NEW, one_sided=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        configurations(OLD, NEW, False)  # type: ignore[call-arg]


# -- the rule table ----------------------------------------------------------------------------

_PART_ORDER = {MachineType: 0, Model: 1, MoreCpus: 4, MoreMemory: 5}


def _part(condition: object) -> int:
    if isinstance(condition, Option):
        return 2 if condition.part == "cpu" else 3
    return _PART_ORDER[type(condition)]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.error[:40])
def test_rules_are_well_formed(rule: Rule) -> None:
    assert rule.error
    # the strategy can satisfy `requires` only for an earlier part or the same part's option
    if rule.requires is not None:
        assert _part(rule.requires) <= _part(rule.given)
        if _part(rule.requires) == _part(rule.given):
            assert isinstance(rule.requires, Option) and re.fullmatch(r"[\w-]+", rule.requires.name)
    for c in (rule.given, rule.forbids, rule.requires):
        for pattern in (getattr(c, "name", ""), getattr(c, "value", ""), getattr(c, "pattern", "")):
            re.compile(pattern)


def test_rule_semantics() -> None:
    both = next(r for r in RULES if r.given == Option("cpu", r"pauth-(impdef|qarma3|qarma5)", "on"))
    one = MachineConfig("virt-10.0", "max", cpu_properties=(("pauth-qarma3", "on"),))
    two = MachineConfig(
        "virt-10.0", "max", cpu_properties=(("pauth-qarma3", "on"), ("pauth-impdef", "on"))
    )
    assert not both.broken_by(one) and both.broken_by(two)
    aarch32 = [r for r in RULES if r.given == Option("cpu", "aarch64", "off")]
    assert [r.applies_to("10.0.2") for r in aarch32] == [True, True]
    assert [r.applies_to("11.1.0") for r in aarch32] == [False, True]
    assert [r.applies_to("11.1.50") for r in aarch32] == [False, True]


# -- real probes, committed ----------------------------------------------------------------------

#: The probes of the four Debian versions (5.2, 7.2, 10.0, 11.1), one JSON object a line, as
#: ``fuzz.versions.probe`` caches them; regenerate from ``$MIGFUZZ_CACHE/probe/*.json`` after
#: ``migfuzz qemu install`` if the probe format moves on.
REAL_PROBES = Path(__file__).parents[1] / "data" / "probes-debian.jsonl"


def _real_probes() -> list[Capabilities]:
    found = []
    for line in REAL_PROBES.read_text().splitlines():
        caps = Capabilities.from_json(json.loads(line))
        assert caps is not None, f"{REAL_PROBES}: a probe does not parse: {line[:80]}"
        found.append(caps)
    return found


def test_the_committed_real_probes_are_the_four_debian_versions() -> None:
    assert [p.version.rsplit(".", 1)[0] for p in _real_probes()] == list(DEBIAN_SUITES)


@pytest.mark.parametrize("one_sided", [False, True])
def test_on_real_probes(one_sided: bool) -> None:
    # every pair of the four versions has configurations to draw (else InvalidArgument)
    for src, dst in itertools.combinations(_real_probes(), 2):
        strategy = configurations(src, dst, one_sided=one_sided)
        _check_real_pair(strategy, src, dst, one_sided=one_sided)


def _check_real_pair(
    strategy: st.SearchStrategy[MachineConfig],
    src: Capabilities,
    dst: Capabilities,
    *,
    one_sided: bool,
) -> None:
    @settings(QUIET, max_examples=30)
    @given(strategy)
    def check(config: MachineConfig) -> None:
        if one_sided:
            assert not [r for r in RULES if r.before is None and r.broken_by(config)]
        else:
            assert accepted_by(src, config) and accepted_by(dst, config), config.describe()

    check()
