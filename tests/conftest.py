"""Fixtures shared by every test folder: the real QEMU version farm.

The farm lives in the user's cache (``$MIGFUZZ_CACHE`` or the XDG default). The ``farm``
fixture installs whatever Debian version is missing (idempotent, about 6 s a version), so
a test run on a fresh machine needs no step before it.
"""

from __future__ import annotations

import signal

import pytest
from hypothesis import settings

from fuzz.core.binary import QemuBinary
from fuzz.versions.farm import DEBIAN_SUITES, Farm

# The same Hypothesis behaviour on a laptop and in CI: Hypothesis loads a derandomized "ci"
# profile by itself when $CI is set, so a test that passed locally on random draws could
# fail in CI on the fixed ones. Every run here is derandomized; no example database.
settings.register_profile("migfuzz", derandomize=True, database=None, deadline=None)
settings.load_profile("migfuzz")

# Tests Ctrl-C the commands they start. A shell starts a background job (`scripts/test &`)
# with SIGINT ignored, which children inherit across exec, and Python then installs no
# KeyboardInterrupt handler: a Ctrl-C would do nothing. A handler here (not an ignore) is
# reset to the default in every child.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: The four Debian versions every QEMU test runs on.
VERSIONS = tuple(DEBIAN_SUITES)


@pytest.fixture(scope="session")
def farm() -> Farm:
    """The version farm with all four Debian versions installed."""
    f = Farm()
    missing = [v for v in VERSIONS if v not in f.installed()]
    if missing:
        f.install(missing)
    return f


@pytest.fixture(scope="session")
def binaries(farm: Farm) -> dict[str, QemuBinary]:
    """Version name -> binary, for the four Debian versions."""
    return {v: farm.get(v) for v in VERSIONS}
