"""The recorded migration facts of every installed version, as probes (for unit tests).

``tests/data/probes-migration.jsonl`` holds, per installed version, the migration facts
``fuzz.versions.probe`` asked of it (``query-migrate-capabilities``,
``query-migrate-parameters``, the QAPI enums) and its transports; regenerate it with
``scripts/probe_migration_facts.py`` after ``migfuzz qemu install`` if the format moves on.
Each is laid over one real base probe (``probes-debian.jsonl``'s first), so the versions
differ here only in what they offer to migrate.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from fuzz.core.capabilities import Capabilities, MigrationFacts

DATA = Path(__file__).parent / "data"
BASE_PROBE = DATA / "probes-debian.jsonl"
MIGRATION_PROBES = DATA / "probes-migration.jsonl"


def base_probe() -> Capabilities:
    """The real base probe every version's migration facts are laid over."""
    caps = Capabilities.from_json(json.loads(BASE_PROBE.read_text().splitlines()[0]))
    assert caps is not None
    return caps


def _probes() -> dict[str, Capabilities]:
    """Version name (``5.2``, ``10.0.2``...) -> a probe with its real migration facts."""
    base, found = base_probe(), {}
    for line in MIGRATION_PROBES.read_text().splitlines():
        data = json.loads(line)
        found[data["name"]] = replace(
            base,
            version=data["version"],
            migration_transports=tuple(data["migration_transports"]),
            migration=MigrationFacts.from_json(data["migration"]),
        )
    return found


#: Version name -> its probe with its real migration facts.
PROBES = _probes()
