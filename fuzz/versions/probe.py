"""What one QEMU binary can do, asked of the binary itself and cached by its content hash.

Strategies draw only what both versions of a pair accept, so they need facts, not lists
typed by hand: machine types, CPU models, each AArch64 model's settable properties, the
``virt`` options, the migration transports and whether tracing produces output.

One QEMU (machine type ``none``: :func:`fuzz.core.command.probe`) answers every question
over QMP in about a second; the answer is stored as JSON under
``<cache>/probe/<sha256>.json`` and reused while the binary is the same file content.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fuzz.core import command as qemu_command
from fuzz.core.binary import QemuBinary
from fuzz.core.capabilities import Capabilities, CpuProperty, MigrationFacts, settings_for
from fuzz.core.settings import RunSettings
from fuzz.errors import HarnessError, MonitorError
from fuzz.run.machine import QemuMachine, private_workdir

#: QOM properties of a CPU that are wiring or identity, not a user-facing CPU option.
_CPU_INTERNAL = {
    "type",
    "parent_bus",
    "hotplugged",
    "hotpluggable",
    "realized",
    "start-powered-off",
    "memory",
    "secure-memory",
    "tag-memory",
    "secure-tag-memory",
    "mp-affinity",
    "node-id",
    "socket-id",
    "cluster-id",
    "core-id",
    "thread-id",
    "rvbar",
    "reset-cbar",
    "midr",
    "revidr",
    "psci-conduit",
    "cntfrq",
    "dcz-blocksize",
    "reset-hivecs",
    "kvm-no-adjvtime",
    "kvm-steal-time",
    "cfgend",
    "has_el2",
    "has_el3",
    "has_pmu",
    "has_mpu",
    "vfp",
    "neon",
    "dsp",
    "pmsav7-dregion",
    "init-svtor",
    "init-nsvtor",
    "idau",
    "cpu-dtb-compatible",
    "backcompat-cntfrq",
    "backcompat-pauth-default-use-qarma5",
    "ctr",
    "clidr",
    "ccsidr",
    "id_aa64mmfr0",
    "id_aa64pfr0",
    "x-vfp",
    "x-neon",
}


def probe_cache_path(cache_dir: Path, binary: QemuBinary) -> Path:
    """Where the probe of ``binary`` is cached."""
    return cache_dir / "probe" / f"{binary.content_hash()}.json"


def capabilities(binary: QemuBinary, cache_dir: Path, *, refresh: bool = False) -> Capabilities:
    """The capabilities of ``binary``, from the cache or by probing it now.

    :raise HarnessError: the binary could not be probed (it did not start, or QMP failed).
    """
    path = probe_cache_path(cache_dir, binary)
    if not refresh and path.exists():
        try:
            cached = Capabilities.from_json(json.loads(path.read_text()))
        except (OSError, ValueError):
            cached = None
        if cached is not None and cached.complete:
            return cached
        # An older format's probe (no migration facts or device types): probe again, and
        # rewrite the cache.
    caps = asyncio.run(probe(binary))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(caps.to_json(), indent=1, sort_keys=True))
    tmp.replace(path)
    return caps


async def probe(binary: QemuBinary) -> Capabilities:
    """Ask a running QEMU with no machine everything :class:`Capabilities` holds."""
    with private_workdir("migfuzz-probe-") as tmp:
        async with QemuMachine(binary, qemu_command.probe(), Path(tmp)) as vm:
            return await _ask(vm, binary)


async def _ask(vm: QemuMachine, binary: QemuBinary) -> Capabilities:
    notes: list[str] = []
    version = _as_dict(await vm.execute("query-version"))
    q = _as_dict(version.get("qemu", {}))
    version_str = f"{q.get('major')}.{q.get('minor')}.{q.get('micro')}"
    package = str(version.get("package", "")).strip()
    machines = [_as_dict(m) for m in _as_list(await vm.execute("query-machines"))]
    machine_types = sorted(str(m["name"]) for m in machines)
    default_virt = next(
        (str(m["name"]) for m in machines if m.get("alias") == "virt"),
        "virt" if "virt" in machine_types else "",
    )
    cpu_defs = [_as_dict(c) for c in _as_list(await vm.execute("query-cpu-definitions"))]
    cpu_models = sorted(str(c["name"]) for c in cpu_defs)
    typenames = {str(c["name"]): str(c.get("typename") or f"{c['name']}-arm-cpu") for c in cpu_defs}

    cpu_properties: dict[str, tuple[CpuProperty, ...]] = {}
    aarch64_models: list[str] = []
    for model in cpu_models:
        try:
            props = await _qom_properties(vm, typenames[model])
        except MonitorError as err:
            notes.append(f"qom-list-properties {typenames[model]}: {err}")
            continue
        names = {p.name for p in props}
        if "aarch64" in names or model == "max":
            aarch64_models.append(model)
        cpu_properties[model] = tuple(p for p in props if _is_user_cpu_property(p))

    expansion: dict[str, dict[str, object]] = {}
    for model in aarch64_models:
        try:
            result = _as_dict(
                await vm.execute(
                    "query-cpu-model-expansion", {"type": "full", "model": {"name": model}}
                )
            )
            expansion[model] = _as_dict(_as_dict(result.get("model", {})).get("props", {}))
        except MonitorError as err:
            notes.append(f"query-cpu-model-expansion {model}: {err}")

    virt_type = qemu_command.machine_type_of_options(default_virt or "virt")
    try:
        virt_props = await _qom_properties(vm, virt_type)
    except MonitorError as err:
        notes.append(f"qom-list-properties {virt_type}: {err}")
        virt_props = ()

    schema = [_as_dict(e) for e in _as_list(await vm.execute("query-qmp-schema"))]
    commands = {str(e["name"]) for e in schema if e.get("meta-type") == "command"}
    transports = ["exec", "fd", "tcp", "unix"]
    for e in schema:
        if e.get("meta-type") == "enum" and "file" in _enum_values(e) and "exec" in _enum_values(e):
            transports.append("file")
            break
    trace_works = await _trace_works(vm)
    migration = await _migration_facts(vm, schema)
    devices = _as_list(
        await vm.execute("qom-list-types", {"implements": "device", "abstract": False})
    )
    return Capabilities(
        binary_hash=binary.content_hash(),
        version=version_str,
        version_line=f"QEMU emulator version {version_str}" + (f" {package}" if package else ""),
        machine_types=tuple(machine_types),
        default_virt=default_virt,
        cpu_models=tuple(cpu_models),
        aarch64_cpu_models=tuple(aarch64_models),
        cpu_properties=cpu_properties,
        cpu_expansion=expansion,
        virt_options=tuple(p for p in virt_props if not p.type.startswith(("child<", "link<"))),
        migration_transports=tuple(sorted(set(transports))),
        trace_works=trace_works,
        has_snapshot_load="snapshot-load" in commands,
        notes=tuple(notes),
        migration=migration,
        device_types=tuple(sorted(str(_as_dict(t)["name"]) for t in devices)),
    )


async def _migration_facts(vm: QemuMachine, schema: list[dict[str, Any]]) -> MigrationFacts:
    """Live migration's capabilities and parameter defaults, and the enums of the
    parameters a :class:`~fuzz.core.live.LiveMigration` sets, from the QAPI schema."""
    caps = [_as_dict(c) for c in _as_list(await vm.execute("query-migrate-capabilities"))]
    params = _as_dict(await vm.execute("query-migrate-parameters"))
    scalars: dict[str, object] = {
        k: v for k, v in params.items() if v is None or isinstance(v, bool | int | float | str)
    }
    return MigrationFacts(
        capabilities=tuple(str(c["capability"]) for c in caps),
        parameters=scalars,
        multifd_compressions=_member_enum(schema, "multifd-compression"),
        zero_page_detections=_member_enum(schema, "zero-page-detection"),
    )


def _member_enum(schema: list[dict[str, Any]], member: str) -> tuple[str, ...]:
    """The values of the enum that an object member named ``member`` has as its type
    (the schema hides type names, so the member is found by name); () if none."""
    by_name = {str(e.get("name")): e for e in schema}
    for entry in schema:
        if entry.get("meta-type") != "object":
            continue
        for m in entry.get("members", ()):
            if isinstance(m, dict) and m.get("name") == member:
                enum = by_name.get(str(m.get("type")))
                if enum is not None and enum.get("meta-type") == "enum":
                    return tuple(sorted(_enum_values(enum)))
    return ()


async def _qom_properties(vm: QemuMachine, typename: str) -> tuple[CpuProperty, ...]:
    raw = _as_list(await vm.execute("qom-list-properties", {"typename": typename}))
    props = []
    for item in raw:
        p = _as_dict(item)
        props.append(
            CpuProperty(
                name=str(p["name"]), type=str(p.get("type", "")), default=p.get("default-value")
            )
        )
    return tuple(sorted(props, key=lambda p: p.name))


def _is_user_cpu_property(p: CpuProperty) -> bool:
    if p.name in _CPU_INTERNAL or p.name.startswith(("x-", "kvm-")):
        return False
    return not p.type.startswith(("child<", "link<"))


async def _trace_works(vm: QemuMachine) -> bool:
    """True if this build's trace backend can print vmstate load events."""
    try:
        states = _as_list(await vm.execute("trace-event-get-state", {"name": "vmstate_load*"}))
    except (MonitorError, HarnessError):
        return False
    return any(_as_dict(s).get("state") in ("enabled", "disabled") for s in states)


def _enum_values(entry: dict[str, Any]) -> set[str]:
    values = entry.get("values") or [m.get("name") for m in entry.get("members", [])]
    return {str(v) for v in values}


def _as_dict(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MonitorError(f"QEMU answered {type(value).__name__} where an object was expected")
    return value


def _as_list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise MonitorError(f"QEMU answered {type(value).__name__} where a list was expected")
    return value


def probed_settings(binaries: Iterable[QemuBinary], cache_dir: Path, **kwargs: Any) -> RunSettings:
    """Run settings that use what each of ``binaries`` can do, from its probe: trace its
    load path, save and load snapshots over QMP, migrate to a ``file:`` URI.
    ``kwargs`` are the other settings.

    :raise HarnessError: a binary could not be probed.
    """
    return settings_for({b.name: capabilities(b, cache_dir) for b in binaries}, **kwargs)
