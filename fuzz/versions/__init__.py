"""QEMU versions: the Debian farm that installs them side by side, the lock that pins
them, and the probe that asks each binary what it can do.

Starts processes (apt, dpkg-deb, QEMU for the probe). May import: :mod:`fuzz.core`,
:mod:`fuzz.errors`, and :mod:`fuzz.run.machine` (the probe starts a QEMU).
"""
