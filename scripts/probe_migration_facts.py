#!/usr/bin/env python3
"""Write ``tests/data/probes-migration.jsonl``: each installed version's migration facts.

One JSON object a line: ``name`` (the farm's version name), ``version``, the transports and
``migration`` (``fuzz.core.capabilities.MigrationFacts``), from the probe cache (probing a
binary whose cache has none). ``tests/unit/test_live_strategy.py`` draws from them.
"""

from __future__ import annotations

import json
from pathlib import Path

from fuzz.versions.farm import Farm
from fuzz.versions.probe import capabilities

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "probes-migration.jsonl"


def main() -> None:
    farm = Farm()
    lines = []
    for name, binary in sorted(farm.installed().items()):
        caps = capabilities(binary, farm.cache_dir)
        assert caps.migration is not None
        record = {
            "name": name,
            "version": caps.version,
            "migration_transports": list(caps.migration_transports),
            "migration": caps.migration.to_json(),
        }
        lines.append(json.dumps(record, sort_keys=True))
    OUT.write_text("\n".join(lines) + "\n")
    print(f"{OUT}: {len(lines)} versions")


if __name__ == "__main__":
    main()
