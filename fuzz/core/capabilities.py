"""What one QEMU binary can do, as probed: a plain value, JSON round-trip exact.

:mod:`fuzz.versions.probe` asks a QEMU (QMP, once per binary, cached); the strategies, the
campaign and the run settings read the answer from here without importing anything that
starts a process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fuzz.core.settings import RunSettings

#: The probe's JSON format. 3 added :class:`MigrationFacts`, 4 the device types; an older
#: probe still reads (with ``migration=None`` or ``device_types=None``), and
#: :func:`fuzz.versions.probe.capabilities` probes its binary again to fill them in.
PROBE_FORMAT = 4
_READABLE_FORMATS = (2, 3, 4)


@dataclass(frozen=True)
class CpuProperty:
    """One ``-cpu model,NAME=VALUE`` option: its QOM type and the model's default."""

    name: str
    type: str
    default: object = None


@dataclass(frozen=True)
class MigrationFacts:
    """What one binary's live migration offers, as its monitor says.

    :param capabilities: every ``query-migrate-capabilities`` name, in QEMU's order.
    :param parameters: the defaults ``query-migrate-parameters`` answers (scalars only:
        an object-valued parameter such as ``block-bitmap-mapping`` is left out).
    :param multifd_compressions: the QAPI ``MultiFDCompression`` values this build has
        (``none``, ``zlib``, ``zstd``...: a member is there only if compiled in).
    :param zero_page_detections: the QAPI ``ZeroPageDetection`` values (QEMU >= 9.0).
    """

    capabilities: tuple[str, ...]
    parameters: dict[str, object]
    multifd_compressions: tuple[str, ...] = ()
    zero_page_detections: tuple[str, ...] = ()

    def offers(self, capability: str) -> bool:
        """Whether ``migrate-set-capabilities`` knows ``capability``."""
        return capability in self.capabilities

    def has_parameter(self, name: str) -> bool:
        """Whether ``migrate-set-parameters`` knows ``name``."""
        return name in self.parameters

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "capabilities": list(self.capabilities),
            "parameters": dict(self.parameters),
            "multifd_compressions": list(self.multifd_compressions),
            "zero_page_detections": list(self.zero_page_detections),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MigrationFacts:
        """Parse :meth:`to_json` output (errors as ``KeyError``/``TypeError``)."""
        return cls(
            capabilities=tuple(str(c) for c in data["capabilities"]),
            parameters=dict(data["parameters"]),
            multifd_compressions=tuple(str(c) for c in data.get("multifd_compressions", ())),
            zero_page_detections=tuple(str(c) for c in data.get("zero_page_detections", ())),
        )


@dataclass(frozen=True)
class Capabilities:
    """The probed facts of one binary. Plain data; JSON round-trips exactly."""

    binary_hash: str
    version: str
    version_line: str
    machine_types: tuple[str, ...]
    default_virt: str
    cpu_models: tuple[str, ...]
    aarch64_cpu_models: tuple[str, ...]
    cpu_properties: dict[str, tuple[CpuProperty, ...]]
    cpu_expansion: dict[str, dict[str, object]]
    virt_options: tuple[CpuProperty, ...]
    migration_transports: tuple[str, ...]
    trace_works: bool
    has_snapshot_load: bool
    notes: tuple[str, ...] = field(default=())
    #: Live migration's capabilities and parameters; None in a format-2 probe (not asked).
    migration: MigrationFacts | None = None
    #: Every concrete device type (``qom-list-types``, implements ``device``), sorted:
    #: what ``-device`` may name; None in a probe before format 4 (not asked).
    device_types: tuple[str, ...] | None = None

    @property
    def complete(self) -> bool:
        """Whether the probe answered everything this format asks (an older cache did not)."""
        return self.migration is not None and self.device_types is not None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, with ``format`` so old caches are recognised."""
        return {
            "format": PROBE_FORMAT,
            "binary_hash": self.binary_hash,
            "version": self.version,
            "version_line": self.version_line,
            "machine_types": list(self.machine_types),
            "default_virt": self.default_virt,
            "cpu_models": list(self.cpu_models),
            "aarch64_cpu_models": list(self.aarch64_cpu_models),
            "cpu_properties": {
                model: [vars(p) for p in props] for model, props in self.cpu_properties.items()
            },
            "cpu_expansion": self.cpu_expansion,
            "virt_options": [vars(p) for p in self.virt_options],
            "migration_transports": list(self.migration_transports),
            "trace_works": self.trace_works,
            "has_snapshot_load": self.has_snapshot_load,
            "notes": list(self.notes),
            "migration": None if self.migration is None else self.migration.to_json(),
            "device_types": None if self.device_types is None else list(self.device_types),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Capabilities | None:
        """Parse a cached probe; None if it is from another format or malformed."""
        try:
            if data.get("format") not in _READABLE_FORMATS:
                return None
            migration = data.get("migration")
            device_types = data.get("device_types")
            return cls(
                binary_hash=str(data["binary_hash"]),
                version=str(data["version"]),
                version_line=str(data["version_line"]),
                machine_types=tuple(data["machine_types"]),
                default_virt=str(data["default_virt"]),
                cpu_models=tuple(data["cpu_models"]),
                aarch64_cpu_models=tuple(data["aarch64_cpu_models"]),
                cpu_properties={
                    m: tuple(CpuProperty(**p) for p in props)
                    for m, props in data["cpu_properties"].items()
                },
                cpu_expansion=dict(data["cpu_expansion"]),
                virt_options=tuple(CpuProperty(**p) for p in data["virt_options"]),
                migration_transports=tuple(data["migration_transports"]),
                trace_works=bool(data["trace_works"]),
                has_snapshot_load=bool(data["has_snapshot_load"]),
                notes=tuple(data.get("notes", ())),
                migration=None if migration is None else MigrationFacts.from_json(migration),
                device_types=None if device_types is None else tuple(map(str, device_types)),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None

    def release(self) -> tuple[int, int, int]:
        """The version as numbers (``10.0.13`` -> ``(10, 0, 13)``); zeros where unparsable."""
        parts = [int(p) if p.isdigit() else 0 for p in self.version.split(".")[:3]] + [0, 0, 0]
        return (parts[0], parts[1], parts[2])

    def virt_machine_types(self) -> tuple[str, ...]:
        """The versioned ``virt-X.Y`` machine types, oldest first."""
        versioned = [m for m in self.machine_types if re.fullmatch(r"virt-\d+\.\d+", m)]
        return tuple(sorted(versioned, key=lambda m: tuple(int(x) for x in m[5:].split("."))))

    def cpu_property_names(self, model: str) -> tuple[str, ...]:
        """Names of the user-settable ``-cpu`` properties of ``model``."""
        return tuple(p.name for p in self.cpu_properties.get(model, ()))


def settings_for(caps: Mapping[str, Capabilities], **kwargs: Any) -> RunSettings:
    """:func:`probed_settings` from probes already at hand (version name -> capabilities)."""
    return RunSettings(
        trace_versions=frozenset(name for name, c in caps.items() if c.trace_works),
        file_uri_versions=frozenset(
            name for name, c in caps.items() if "file" in c.migration_transports
        ),
        **kwargs,
    )
