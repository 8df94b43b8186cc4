"""The promise grade of a finding: whether QEMU promises the migration that broke.

Not every divergence is a QEMU bug. QEMU promises migration between versions only for some
configurations and directions, and a maintainer reading a campaign needs to tell a break of
that promise from a break of something QEMU never promised. :func:`grade` says which, from
the finding's signature, its pair of versions and its machine configuration, with a
one-line reason:

*promised*
    Both sides run the same *versioned* machine type (``virt-X.Y``) with a *named* CPU model
    and fixed options, and the direction is forward (older source, newer destination) or a
    backward step QEMU supports: one release back in QEMU's release sequence (``X.0``,
    ``X.1``, ``X.2`` a year since 3.0; ``2.0`` .. ``2.12`` before), or within one stable
    series (``10.0.2`` <-> ``10.0.13``). Always promised as well: a same-version failure
    (a version must load what it saved itself, and so must a pair of one version), and a
    crash or hang (QEMU must refuse what it cannot load, not abort), whatever the
    configuration or direction.
*not promised*
    The ``max`` or ``host`` CPU model, ``gic-version=max``/``host`` (or any option left to
    "the best there is"), an unversioned machine type (``virt``), a backward jump of more
    than one release, or versions whose place in the release sequence is unknown.

The policy is QEMU's own documentation:

* ``docs/devel/migration/compatibility.rst``
  (https://www.qemu.org/docs/master/devel/migration/compatibility.html): migration is only
  supposed to work with the same machine type and the same hardware configuration on both
  sides; between two consecutive releases it goes both ways with the older release's
  machine type ("older to newer" and "newer to older"); host CPU passthrough is not
  recommended for migration.
* ``docs/system/arm/virt.rst`` (https://www.qemu.org/docs/master/system/arm/virt.html):
  ``virt`` is a versioned board; ``virt-X.Y`` keeps release X.Y's behaviour so that
  migration works between QEMU versions, while migration "is not guaranteed" for the
  unversioned ``virt``; ``max`` is "best possible emulation with TCG" (the host's CPU
  under KVM), and ``gic-version=max`` is "currently same as 3 for TCG, but this may change
  in future".
* ``qemu-options.hx`` (the ``-machine`` option): new releases keep the machine types of
  many previous versions so that an upgrade may skip intermediate releases (forward, any
  distance).
* QEMU commit cd040808a77e ("tests/qtest/migration: Don't use -cpu max for aarch64",
  https://github.com/qemu/qemu/commit/cd040808a77eb4c649b758625593ce8438d8b4ac): the
  ``max`` CPU is not expected to keep its features across QEMU versions, so it is not
  expected to migrate; QEMU's own cross-version tests use a named model.

Where QEMU sits in its release sequence comes from the version's name (``5.2``,
``10.0.2``, ``11.1.3-asan``) or, for a name that is no version (a user's build), from the
version line its binary printed (``QEMU emulator version 10.0.13 ...``); a ``.50`` and
later micro version is a development tree between two releases. Pure: no process, no file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from fuzz.core.case import MachineConfig
from fuzz.judge.loads import AFTER_FAILED_LOAD
from fuzz.judge.oracles import Signature

__all__ = ["FIELDS", "Grade", "Promise", "Release", "grade", "grade_history", "release_of"]

#: The keys of a grade in ``outcome.json`` (:meth:`Grade.to_json`).
FIELDS = ("promise", "promise_reason")

#: CPU models and option values that mean "whatever this binary (or host) has best".
_UNFIXED = frozenset({"max", "host"})
#: The first micro version of a development tree (``10.0.50`` is on its way to 10.1).
_DEVELOPMENT_MICRO = 50
#: Releases per year since QEMU 3.0 (X.0, X.1, X.2); 2.x went from 2.0 to 2.12.
_PER_MAJOR = 3
_LAST_2X = 12

_NAME = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?(?![\d.])")
_LINE = re.compile(r"QEMU emulator version (\d+)\.(\d+)(?:\.(\d+))?")
_VERSIONED_MACHINE = re.compile(r".+-\d+\.\d+")

_COMPATIBILITY = "docs/devel/migration/compatibility.rst"
_VIRT = "docs/system/arm/virt.rst"


class Promise(StrEnum):
    """The two grades."""

    PROMISED = "promised"
    """QEMU promises this migration: a break is a QEMU bug."""
    NOT_PROMISED = "not promised"
    """QEMU does not promise it: a break is expected, at most a wish."""


@dataclass(frozen=True)
class Grade:
    """A finding's grade and the one-line reason for it (without the grade's name)."""

    promise: Promise
    reason: str

    @property
    def promised(self) -> bool:
        """Whether QEMU promises the migration that broke."""
        return self.promise is Promise.PROMISED

    def __str__(self) -> str:
        return f"{self.promise}: {self.reason}"

    def line(self) -> str:
        """The line ``repro``, ``bisect`` and ``bug`` print: ``Promise: <grade> — <reason>``."""
        return f"Promise: {self.promise} \u2014 {self.reason}"

    def to_json(self) -> dict[str, str]:
        """The ``outcome.json`` fields (:data:`FIELDS`)."""
        return {"promise": str(self.promise), "promise_reason": self.reason}


@dataclass(frozen=True)
class Release:
    """A QEMU version by its number: ``major.minor`` and, if known, ``micro``."""

    major: int
    minor: int
    micro: int | None = None

    def __str__(self) -> str:
        micro = "" if self.micro is None else f".{self.micro}"
        return f"{self.major}.{self.minor}{micro}"

    @property
    def series(self) -> tuple[int, int]:
        """The release series (``10.0`` for ``10.0.2`` and ``10.0.13``)."""
        return self.major, self.minor

    @property
    def development(self) -> bool:
        """A development tree (micro 50 and up): after ``series``, before the next release."""
        return self.micro is not None and self.micro >= _DEVELOPMENT_MICRO

    def position(self) -> int | None:
        """Twice its index in QEMU's release sequence (2.0 is 0, 3.0 is 26, 3.1 is 28; a
        development tree sits on the odd number after its series); None: not a release
        QEMU made (``3.5``, ``1.7``)."""
        if self.major > 2 and self.minor < _PER_MAJOR:
            index = _LAST_2X + 1 + _PER_MAJOR * (self.major - 3) + self.minor
        elif self.major == 2 and self.minor <= _LAST_2X:
            index = self.minor
        else:
            return None
        return 2 * index + self.development


def _parsed(match: re.Match[str] | None) -> Release | None:
    if match is None:
        return None
    major, minor, micro = match.groups()
    return Release(int(major), int(minor), None if micro is None else int(micro))


def release_of(name: str, version_line: str = "") -> Release | None:
    """The release a version is, from its name or else the version line its binary printed.

    A name that gives the series only (``10.0``) takes its micro version from the line when
    the line is of the same series; a name that is no version (``my-build``) is placed by
    its line alone; None when neither says.
    """
    named = _parsed(_NAME.match(name))
    printed = _parsed(_LINE.search(version_line))
    if named is None:
        return printed
    if named.micro is None and printed is not None and printed.series == named.series:
        return printed
    return named


def _unfixed_option(config: MachineConfig) -> tuple[str, str] | None:
    for name, value in (*config.machine_options, *config.cpu_properties):
        if value.lower() in _UNFIXED:
            return name, value
    return None


def _configuration(config: MachineConfig) -> Grade | None:
    """Not promised for this configuration, whatever the versions (None: it is fixed)."""
    if config.cpu in _UNFIXED:
        what = "the best this binary emulates" if config.cpu == "max" else "the host's CPU"
        return Grade(
            Promise.NOT_PROMISED,
            f"CPU model {config.cpu} is {what} and changes between releases "
            f"(QEMU docs: {_VIRT}; QEMU commit cd040808a77e)",
        )
    if not _VERSIONED_MACHINE.fullmatch(config.machine):
        return Grade(
            Promise.NOT_PROMISED,
            f"machine type {config.machine} is not versioned: migration is guaranteed "
            f"only for a versioned one such as {config.machine}-X.Y (QEMU docs: {_VIRT})",
        )
    unfixed = _unfixed_option(config)
    if unfixed is not None:
        name, value = unfixed
        return Grade(
            Promise.NOT_PROMISED,
            f"{name}={value} is not a fixed configuration: it takes the best there is, "
            f"which may change between releases (QEMU docs: {_VIRT})",
        )
    return None


def _direction(src: str, dst: str, old: Release, new: Release) -> Grade:
    """The grade of a fixed configuration migrated from ``old`` (``src``) to ``new``."""
    pair = f"{src} -> {dst}"
    old_at, new_at = old.position(), new.position()
    if old_at is None or new_at is None:
        unknown = old if old_at is None else new
        return Grade(Promise.NOT_PROMISED, f"unknown version order: {unknown} is no QEMU release")
    if old.series == new.series and not (old.development or new.development):
        return Grade(Promise.PROMISED, f"{pair} within the {old.major}.{old.minor} stable series")
    if old_at <= new_at:
        return Grade(
            Promise.PROMISED,
            f"{pair} is forward, older to newer, on a versioned machine type "
            f"(QEMU docs: {_COMPATIBILITY})",
        )
    back = (old_at - new_at + 1) // 2
    if back == 1:
        return Grade(
            Promise.PROMISED,
            f"{pair} is one release back, newer to older, which QEMU supports "
            f"(QEMU docs: {_COMPATIBILITY})",
        )
    return Grade(
        Promise.NOT_PROMISED,
        f"{pair} is a backward jump of {back} releases: QEMU supports one release back "
        f"(QEMU docs: {_COMPATIBILITY})",
    )


def grade(
    signature: Signature,
    src: str,
    dst: str,
    config: MachineConfig,
    *,
    src_line: str = "",
    dst_line: str = "",
) -> Grade:
    """Whether QEMU promises the migration a finding shows broken, and why.

    :param signature: the finding's signature (its kind decides same-version, crash, hang).
    :param src: the source version's name; ``dst`` the destination's.
    :param config: the machine configuration both sides ran.
    :param src_line: the version line the source binary printed (places a version whose
        name is no version number); ``dst_line`` the destination's.
    :return: *promised* or *not promised*, with a one-line reason.
    """
    kind = signature.kind
    if signature.same_version:
        return Grade(
            Promise.PROMISED,
            f"same-version failure: {src} must load what it saved itself "
            f"(QEMU docs: {_COMPATIBILITY})",
        )
    if "crashed" in kind or "hung" in kind:
        what = "crash" if "crashed" in kind else "hang"
        return Grade(
            Promise.PROMISED,
            f"a {what} where a clean refusal was due: QEMU must refuse what it cannot "
            "load, not abort",
        )
    if src == dst:
        return Grade(Promise.PROMISED, f"one version on both sides ({src})")
    unfixed = _configuration(config)
    if unfixed is not None:
        return unfixed
    old, new = release_of(src, src_line), release_of(dst, dst_line)
    if old is None or new is None:
        unknown = src if old is None else dst
        return Grade(
            Promise.NOT_PROMISED,
            f"unknown version order: neither the name nor the version line of {unknown} "
            "gives its release",
        )
    return _direction(src, dst, old, new)


def grade_history(signature: Signature) -> Grade:
    """The grade of a stateful finding (kind ``history``): a load into a process with a
    history that acted otherwise than the same load into a fresh process.

    A crash is always *promised* (QEMU must not die on a load). After a refused load, a
    load that a fresh process takes but this process refuses is *not promised*: QEMU's
    documentation says nothing of a process whose incoming load failed. Every other
    difference is *promised*: ``loadvm`` resets the machine before it loads
    (``load_snapshot`` -> ``qemu_system_reset``), so what ran before must not show.
    """
    if "crashed" in signature.detail:
        return Grade(
            Promise.PROMISED,
            "a crash where a load or a clean refusal was due: QEMU must not die on a load",
        )
    if signature.detail.startswith(AFTER_FAILED_LOAD):
        return Grade(
            Promise.NOT_PROMISED,
            "after a refused load: QEMU documents no state for a process whose load failed",
        )
    return Grade(
        Promise.PROMISED,
        "loadvm resets the machine before it loads: what ran before must not show",
    )
