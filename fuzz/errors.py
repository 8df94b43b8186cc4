"""The one exception hierarchy of migfuzz.

Three branches under :class:`MigfuzzError`, never confused with each other:

* :class:`HarnessError` -- migfuzz or its environment failed (a QEMU that would not start,
  a QMP time-out, a broken install). A harness error is never reported as a finding.
* :class:`InvalidInput` -- something the user or a file gave us is wrong (an unknown version
  name, a corrupt corpus entry, a truncated migration stream). The CLI prints it as one line
  and exits with status 2.
* :class:`Finding` -- a divergence between QEMU versions: what migfuzz exists to report.
"""

from __future__ import annotations


class MigfuzzError(Exception):
    """Root of every error migfuzz raises on purpose."""


class HarnessError(MigfuzzError):
    """The harness or its environment failed; the case under test tells us nothing."""


class FarmError(HarnessError):
    """Installing or probing a QEMU version failed (apt, dpkg-deb, a missing tool)."""


class LaunchError(HarnessError):
    """A QEMU process could not be started or did not bring up its monitor.

    Carries what a maintainer needs to see why: the command line, the exit code if the
    process already ended, and the tail of what it wrote on stderr.
    """

    def __init__(
        self, message: str, *, argv: list[str], returncode: int | None, stderr_tail: str
    ) -> None:
        super().__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class MonitorError(HarnessError):
    """A QMP exchange with a running QEMU failed or timed out."""


class InvalidInput(MigfuzzError, ValueError):
    """Input from the user or from a file is wrong; the message names what and where."""


class UsageError(InvalidInput):
    """A command-line value is wrong: an unknown version, a non-QEMU path, a bad option."""


class StreamError(InvalidInput):
    """A migration stream is truncated or corrupt.

    ``offset`` is the byte offset where decoding stopped and ``expected`` says what the
    decoder was looking for there.
    """

    def __init__(self, message: str, *, offset: int, expected: str = "") -> None:
        super().__init__(
            f"{message} at offset {offset}" + (f" (expected {expected})" if expected else "")
        )
        self.offset = offset
        self.expected = expected


class CorpusError(InvalidInput):
    """A corpus entry is missing files, has a wrong format version, or does not parse."""


class Finding(MigfuzzError, AssertionError):
    """A divergence between a cross-version case and its same-version control."""


class CampaignError(InvalidInput):
    """A campaign folder cannot be used: not empty, not a campaign, or in use by another."""


class StorageError(MigfuzzError):
    """A corpus or campaign folder cannot be written (a full disk, no permission).

    The campaign stops at once: going on would find what it cannot keep. What was written
    before stays whole (entries are written atomically), and ``--resume`` goes on later.
    """
