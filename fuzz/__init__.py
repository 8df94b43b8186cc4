"""migfuzz: a property-based differential fuzzer for QEMU cross-version AArch64 migration.

The engine lives here; :mod:`strategies` holds the pure data generators. Data flows one way:
strategies -> runner -> oracles -> corpus -> cli. See README.md, "Architecture".
"""

__version__ = "0.1.0"
