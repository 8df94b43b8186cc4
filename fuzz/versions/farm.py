"""QEMU versions side by side: Debian package roots and users' own binaries.

Each Debian version is installed into its own root holding the whole dependency closure of
``qemu-system-arm``, glibc included, and runs through that root's own dynamic loader with
its own library path. So QEMU 10.0 and 11.1, built against a newer glibc than the host's,
run on a Debian 12 host, and no version's libraries leak into another's.

The install uses a private apt configuration (its own ``Dir``, an empty dpkg status, one
suite in its sources, the system's Debian archive keyring): ``apt-get update``,
``apt-get install --download-only``, then ``dpkg-deb -x`` of every package. It touches
nothing outside the cache folder, so it needs no root beyond what apt itself needs.

An install is built in a temporary folder next to its final place and renamed into place
only when the binary has run; a folder without its ``installed.json`` is never taken for an
installed version.

The lock file (:mod:`fuzz.versions.lock`, ``qemu.lock`` at the repository root) pins every package
of each version to the exact Debian version it had when the version was first installed;
``--update`` takes what Debian serves today. Beyond the four default names, any QEMU release
a Debian suite serves (backports included) installs under its own name (``10.0.2``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.core.binary import QemuBinary, file_sha256, version_sort_key
from fuzz.errors import FarmError, UsageError
from fuzz.versions.lock import (
    QEMU_PACKAGE,
    Lock,
    LockedVersion,
    check_served,
    debian_version_key,
    lock_status,
    parse_deb_filename,
    parse_packages_index,
    read_lock,
    upstream_version,
    version_series,
    write_lock,
)

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: The Debian releases migfuzz installs by default: version name -> Debian suite.
DEBIAN_SUITES: Mapping[str, str] = {
    "5.2": "bullseye",
    "7.2": "bookworm",
    "10.0": "trixie",
    "11.1": "sid",
}

#: Every suite ``migfuzz qemu available`` asks the archive about, oldest first.
ARCHIVE_SUITES: tuple[str, ...] = (
    "bullseye", "bullseye-backports", "bookworm", "bookworm-backports",
    "trixie", "trixie-backports", "forky", "sid",
)  # fmt: skip
#: How long ``migfuzz qemu available`` trusts its cached package indexes.
INDEX_MAX_AGE_SECONDS = 24 * 3600

_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
#: The file that marks a version's folder as completely installed (a Debian root or a build).
INSTALL_MARKER = "installed.json"
#: The keyring Debian's signed indexes are checked with.
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
_MULTIARCH = {
    "x86_64": ("x86_64-linux-gnu", "ld-linux-x86-64.so.2", "amd64"),
    "aarch64": ("aarch64-linux-gnu", "ld-linux-aarch64.so.1", "arm64"),
}


def _quiet(_message: str) -> None:
    """The default listener of a farm step's messages: nobody."""


def default_cache_dir() -> Path:
    """``$MIGFUZZ_CACHE``, else ``$XDG_CACHE_HOME/migfuzz``, else ``~/.cache/migfuzz``."""
    if env := os.environ.get("MIGFUZZ_CACHE"):
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "migfuzz"


def default_config_file() -> Path:
    """``$MIGFUZZ_CONFIG``, else ``$XDG_CONFIG_HOME/migfuzz/config.toml``."""
    if env := os.environ.get("MIGFUZZ_CONFIG"):
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "migfuzz" / "config.toml"


def default_lock_file() -> Path | None:
    """``$MIGFUZZ_LOCK``, else ``qemu.lock`` at the root of the checkout migfuzz runs from.

    ``None`` (no lock) when migfuzz runs from an installed package rather than a checkout.
    """
    if env := os.environ.get("MIGFUZZ_LOCK"):
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    return root / "qemu.lock" if (root / "pyproject.toml").exists() else None


def host_multiarch() -> tuple[str, str, str]:
    """This host's (multiarch triplet, dynamic loader name, Debian architecture).

    :raise FarmError: the host is neither x86_64 nor aarch64.
    """
    machine = platform.machine()
    if machine not in _MULTIARCH:
        raise FarmError(f"the QEMU farm supports x86_64 and aarch64 hosts, not {machine}")
    return _MULTIARCH[machine]


# -- user binaries ------------------------------------------------------------------------


def check_version_name(name: str) -> str:
    """Return ``name`` if it can name a version (it becomes a folder name), else raise."""
    if not _VERSION_NAME.match(name):
        raise UsageError(f"bad version name {name!r}: use letters, digits, '.', '_', '+', '-'")
    return name


def user_binary(name: str, path: str | Path) -> QemuBinary:
    """A user's own QEMU build as a version named ``name``.

    :raise UsageError: the path does not exist, is not executable, or is not a QEMU.
    """
    check_version_name(name)
    p = Path(path).expanduser().resolve()
    if not p.is_file() or not os.access(p, os.X_OK):
        raise UsageError(f"--qemu {name}={path}: no executable file there")
    try:
        out = subprocess.run(
            [str(p), "--version"], capture_output=True, timeout=20, check=False, text=True,
            errors="replace",
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise UsageError(f"--qemu {name}={path}: cannot run it: {err}") from err
    if "QEMU emulator version" not in out.stdout:
        raise UsageError(f"--qemu {name}={path}: not a QEMU binary ('--version' did not say so)")
    return QemuBinary(name=name, path=p, origin="user")


def parse_qemu_option(spec: str) -> QemuBinary:
    """Parse one ``--qemu NAME=/path/to/qemu-system-aarch64`` value."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise UsageError(f"--qemu {spec!r}: expected NAME=/path/to/qemu-system-aarch64")
    return user_binary(name, path)


def config_binaries(config_file: Path) -> list[QemuBinary]:
    """User binaries named in a TOML config file: ``[qemu.NAME] path = "..."``."""
    if not config_file.exists():
        return []
    try:
        data = tomllib.loads(config_file.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"config file {config_file}: {err}") from err
    table = data.get("qemu", {})
    if not isinstance(table, dict):
        raise UsageError(f"config file {config_file}: [qemu] must be a table of versions")
    binaries = []
    for name, entry in table.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise UsageError(f'config file {config_file}: [qemu.{name}] needs path = "..."')
        binary = user_binary(name, entry["path"])
        if isinstance(entry.get("data_dir"), str):
            binary = QemuBinary(
                name=binary.name, path=binary.path, origin="user",
                data_dir=Path(entry["data_dir"]).expanduser(),
            )  # fmt: skip
        binaries.append(binary)
    return binaries


# -- the farm -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """One ``qemu-system-arm`` a Debian suite serves today."""

    suite: str
    version: str

    @property
    def upstream(self) -> str:
        """The QEMU release: ``1:10.0.2+ds-2+deb13u1~bpo12+1`` -> ``10.0.2``."""
        return upstream_version(self.version)

    @property
    def name(self) -> str:
        """The version name it installs as: a default name for its suite, else its release."""
        series = version_series(self.upstream)
        return series if DEBIAN_SUITES.get(series) == self.suite else self.upstream

    def matches(self, spec: str) -> bool:
        """Whether ``spec`` (a release or a Debian version, epoch optional) names this."""
        return spec in (self.version, self.version.partition(":")[2], self.upstream)


@dataclass(frozen=True)
class ArchiveIndex:
    """What the Debian archive serves: every ``qemu-system-arm`` of every suite it has."""

    mirror: str
    arch: str
    offers: tuple[Offer, ...]
    absent: tuple[str, ...]
    fetched: float


@dataclass(frozen=True)
class _Plan:
    """How to install one version name: its suite, and what to pin."""

    name: str
    suite: str
    locked: LockedVersion | None
    qemu_version: str = ""

    def pins(self) -> list[str]:
        if self.locked is not None:
            return self.locked.pins()
        return [f"{QEMU_PACKAGE}={self.qemu_version}" if self.qemu_version else QEMU_PACKAGE]


@dataclass
class Farm:
    """The QEMU versions this user has: Debian roots in the cache, plus their own binaries.

    ``lock_file`` (default :func:`default_lock_file`) pins the Debian packages of each
    version; ``None`` installs whatever the archive serves and records nothing.
    """

    cache_dir: Path = field(default_factory=default_cache_dir)
    extra: dict[str, QemuBinary] = field(default_factory=dict)
    lock_file: Path | None = field(default_factory=default_lock_file)

    @property
    def qemu_dir(self) -> Path:
        """Where the Debian roots live: one folder per version name."""
        return self.cache_dir / "qemu"

    def add(self, binary: QemuBinary) -> None:
        """Register a user binary; it shadows an installed version of the same name."""
        self.extra[binary.name] = binary

    def lock(self) -> Lock:
        """The lock file's entries (none without a lock file).

        :raise InvalidInput: the lock file is not a valid lock.
        """
        return Lock() if self.lock_file is None else read_lock(self.lock_file)

    def installed(self) -> dict[str, QemuBinary]:
        """Every usable version by name: complete Debian installs, then user binaries."""
        found: dict[str, QemuBinary] = {}
        if self.qemu_dir.is_dir():
            for marker in sorted(self.qemu_dir.glob(f"*/{INSTALL_MARKER}")):
                binary = binary_from_marker(marker)
                if binary is not None:
                    found[binary.name] = binary
        found.update(self.extra)
        return dict(sorted(found.items(), key=lambda kv: version_sort_key(kv[0])))

    def everyday(self) -> dict[str, QemuBinary]:
        """The installed versions a campaign or bisect takes when none is named: all but
        sanitizer builds. Those run two to three times slower and exist to be named
        (``--pairs 10.2.2-asan:10.2.2-asan``); in the default pairs they would slow every
        other pair's share of the budget and double the 10.2 pairs."""
        return {name: b for name, b in self.installed().items() if not b.sanitizers}

    def lock_states(self) -> dict[str, str]:
        """Each installed Debian version or build from Debian's source against the lock:
        ``locked``, ``differs``, ``unlocked``.

        User binaries are not Debian's and have no entry.
        """
        lock, (_, _, arch) = self.lock(), host_multiarch()
        states = {}
        for name, binary in self.installed().items():
            if binary.origin.startswith("debian:"):
                states[name] = lock_status(lock.get(name, arch), binary.content_hash())
            elif binary.origin.startswith("build:"):
                states[name] = lock_status(lock.get_build(name, arch), binary.content_hash())
        return states

    def get(self, name: str) -> QemuBinary:
        """The version called ``name``.

        :raise UsageError: no such version is installed or configured.
        """
        versions = self.installed()
        if name in versions:
            return versions[name]
        have = ", ".join(versions) or "none"
        hint = (
            f"run 'migfuzz qemu install {name}'"
            if name in DEBIAN_SUITES or re.fullmatch(r"\d+\.\d+\.\d+", name)
            else (
                "install a Debian one with 'migfuzz qemu install' "
                "or add yours with --qemu NAME=PATH"
            )
        )
        raise UsageError(f"unknown QEMU version {name!r} (installed: {have}); {hint}")

    def available(
        self, *, refresh: bool = False, status: Callable[[str], None] = _quiet
    ) -> ArchiveIndex:
        """Every ``qemu-system-arm`` the Debian archive serves, in :data:`ARCHIVE_SUITES`.

        The package indexes are kept in the cache and fetched again when older than
        :data:`INDEX_MAX_AGE_SECONDS` or when ``refresh``; suites the mirror lacks are
        listed in ``absent``.

        :param status: told what a slow step is doing (transient: not a result).
        :raise FarmError: apt is missing, or no index could be fetched.
        """
        _require_apt()
        _, _, arch = host_multiarch()
        mirror = debian_mirror()
        index = self.cache_dir / "debian" / arch
        with file_lock(index / ".lock"):
            apt_dir = index / "apt"
            lists = apt_dir / "lists"
            sources = "".join(
                f"deb [signed-by={DEBIAN_KEYRING}] {mirror} {suite} main\n"
                for suite in ARCHIVE_SUITES
            )
            source_file = apt_dir / "etc/sources.list"
            fetched = [p.stat().st_mtime for p in lists.glob("*_Release")] + [
                p.stat().st_mtime for p in lists.glob("*_InRelease")
            ]
            stale = (
                refresh
                or not fetched
                or not source_file.exists()
                or source_file.read_text() != sources
                or time.time() - min(fetched) > INDEX_MAX_AGE_SECONDS
            )
            opts = _apt_options(apt_dir, arch, keep_cache=True)
            failure = ""
            if stale:
                for sub in ("lists/partial", "archives/partial", "etc"):
                    (apt_dir / sub).mkdir(parents=True, exist_ok=True)
                (apt_dir / "status").touch()
                source_file.write_text(sources)
                status(f"reading the package lists of {len(ARCHIVE_SUITES)} Debian suites")
                proc = _tool(["apt-get", *opts, "update"], "apt-get update")
                if proc.returncode != 0:  # a suite the mirror lacks fails the update
                    failure = " / ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            present = [s for s in ARCHIVE_SUITES if list(lists.glob(f"*_dists_{s}_*Release"))]
            if not present:
                raise FarmError(f"no Debian package list could be fetched from {mirror}: {failure}")
            proc = _tool(["apt-cache", *opts, "madison", QEMU_PACKAGE], "apt-cache madison")
            offers = []
            for line in proc.stdout.splitlines():
                cells = [c.strip() for c in line.split("|")]
                if len(cells) == 3 and cells[0] == QEMU_PACKAGE and len(cells[2].split()) > 1:
                    suite = cells[2].split()[1].split("/")[0]
                    offers.append(Offer(suite=suite, version=cells[1]))
            rank = {s: i for i, s in enumerate(ARCHIVE_SUITES)}
            offers.sort(key=lambda o: (rank.get(o.suite, len(rank)), debian_version_key(o.version)))
            when = min(p.stat().st_mtime for p in lists.glob("*Release"))
        return ArchiveIndex(
            mirror=mirror, arch=arch, offers=tuple(offers),
            absent=tuple(s for s in ARCHIVE_SUITES if s not in present), fetched=when,
        )  # fmt: skip

    def default_names(self) -> list[str]:
        """What ``qemu install`` installs when given no name: one version per Debian suite
        (:data:`DEBIAN_SUITES`), and every other version the lock pins for this machine
        (the point releases the committed corpus replays on), oldest first."""
        _, _, arch = host_multiarch()
        locked = [v.name for v in self.lock().versions if v.arch == arch]
        return sorted(dict.fromkeys([*DEBIAN_SUITES, *locked]), key=version_sort_key)

    def install(
        self,
        specs: Iterable[str],
        *,
        progress: Callable[[str], None] = _quiet,
        status: Callable[[str], None] = _quiet,
        force: bool = False,
        update: bool = False,
    ) -> list[QemuBinary]:
        """Install Debian's QEMU for each spec (the CLI's default: :meth:`default_names`).

        A spec is a version name of :data:`DEBIAN_SUITES` or of the lock, a QEMU release
        or Debian version some suite serves (``10.0.2``, ``1:10.0.2+ds-2+deb13u1~bpo12+1``,
        installed as ``10.0.2``), or ``NAME=VERSION``. A locked name installs exactly its
        locked packages; an unlocked one takes what its suite serves and is added to the lock;
        ``update`` takes what is served even for a locked name and rewrites its entry.
        Idempotent: an installed version is left alone unless ``force`` or ``update``.

        :param progress: told each result (installed, already installed, recorded in the
            lock): lines a log keeps.
        :param status: told what a slow step is doing (reading package lists, downloading,
            unpacking): transient, so a caller may show it and let it go.
        :raise UsageError: a spec names nothing migfuzz knows and no suite serves.
        :raise FarmError: the archive no longer serves a locked package version, apt or
            dpkg-deb is missing or failed, or the result does not run or differs from the lock.
        """
        specs = list(specs)
        _, _, arch = host_multiarch()
        result = []
        self.qemu_dir.mkdir(parents=True, exist_ok=True)
        # One installer at a time per cache; a second one waits, then finds the work done.
        with file_lock(self.qemu_dir / ".install.lock"):
            for stale in self.qemu_dir.glob(".*.partial-*"):
                shutil.rmtree(stale, ignore_errors=True)
            lock = self.lock()
            lock_name = self.lock_file.name if self.lock_file else "the lock"
            for spec in specs:
                plan = self._plan(spec, lock, arch, update=update, status=status)
                final = self.qemu_dir / plan.name
                if (final / INSTALL_MARKER).exists() and not force and not update:
                    progress(f"{plan.name}: already installed")
                    sha = file_sha256(final / "root/usr/bin/qemu-system-aarch64")
                    if plan.locked is not None and plan.locked.sha256 != sha:
                        progress(f"{plan.name}: the installed binary differs from {lock_name}; "
                                 f"'migfuzz qemu install --force {plan.name}' installs the "
                                 "locked one")  # fmt: skip
                else:
                    _install_debian(plan, final, lock_name, progress=progress, status=status)
                if plan.locked is None and self.lock_file is not None:
                    lock = lock.with_entry(_locked_from_marker(final, arch))
                    write_lock(self.lock_file, lock)
                    progress(f"{plan.name}: recorded in {self.lock_file}")
                binary = binary_from_marker(final / INSTALL_MARKER)
                if binary is None:
                    raise FarmError(
                        f"{plan.name}: install finished but {final / INSTALL_MARKER} is unreadable"
                    )
                result.append(binary)
        return result

    def _plan(
        self,
        spec: str,
        lock: Lock,
        arch: str,
        *,
        update: bool,
        status: Callable[[str], None] = _quiet,
    ) -> _Plan:
        """Resolve one install spec to a version name, a suite and what to pin."""
        name, sep, version = spec.partition("=")
        if not sep:
            if (locked := lock.get(spec, arch)) is not None and not update:
                return _Plan(check_version_name(spec), locked.suite, locked)
            if spec in DEBIAN_SUITES:
                return _Plan(spec, DEBIAN_SUITES[spec], None)
            name, version = "", spec
        if not version:
            raise UsageError(f"qemu install {spec!r}: expected NAME=VERSION, e.g. 10.0.2")
        if not re.fullmatch(r"(?:\d+:)?\d[A-Za-z0-9.+~-]*", version):
            raise UsageError(
                f"no Debian QEMU {version!r} to install: give one of {', '.join(DEBIAN_SUITES)} "
                "or a release a Debian suite serves ('migfuzz qemu available' lists them)"
            )
        offer = self._find_offer(version, status)
        name = check_version_name(name or offer.upstream)
        locked = lock.get(name, arch)
        if locked is not None and not update:
            if locked.qemu_version == offer.version:
                return _Plan(name, locked.suite, locked)
            raise UsageError(
                f"{name} is locked to {QEMU_PACKAGE} {locked.qemu_version}, not {offer.version}: "
                f"'--update' moves it, or name it: 'migfuzz qemu install NAME={version}'"
            )
        status(f"{name}: {QEMU_PACKAGE} {offer.version} from Debian {offer.suite}")
        return _Plan(name, offer.suite, None, qemu_version=offer.version)

    def _find_offer(self, version: str, status: Callable[[str], None]) -> Offer:
        """The suite's package serving ``version``: stable suites before backports, then
        the highest Debian revision.

        :raise UsageError: no suite serves it (the message lists what its series has).
        """
        index = self.available(status=status)
        matches = [o for o in index.offers if o.matches(version)]
        if not matches:
            series = version_series(upstream_version(version))
            same = [o for o in index.offers if version_series(o.upstream) == series]
            listed = ", ".join(
                f"{o.upstream} ({o.suite}: {o.version})" for o in same or index.offers
            )
            what = f"the {series} series has {listed}" if same else f"served: {listed}"
            raise UsageError(f"no Debian QEMU {version!r} to install: no suite serves it; {what}")
        rank = {s: i for i, s in enumerate(ARCHIVE_SUITES)}
        suite = min((o.suite for o in matches), key=lambda s: ("backports" in s, rank.get(s, 99)))
        return max(
            (o for o in matches if o.suite == suite), key=lambda o: debian_version_key(o.version)
        )


def binary_from_marker(marker: Path) -> QemuBinary | None:
    """The version an install marker describes; None (with a warning) if it does not read."""
    try:
        data = json.loads(marker.read_text())
        root = marker.parent / "root"
        triplet, _, _ = host_multiarch()
        # A build from source (fuzz.versions.build) runs on the host's libraries: no loader.
        own_loader = data["loader"] is not None
        libdirs = tuple(root / d for d in (f"lib/{triplet}", f"usr/lib/{triplet}"))
        return QemuBinary(
            name=str(data["name"]),
            path=root / "usr/bin/qemu-system-aarch64",
            origin=str(data["origin"]),
            loader=root / str(data["loader"]) if own_loader else None,
            library_path=libdirs if own_loader else (),
            data_dir=root / "usr/share/qemu",
            module_dir=root / f"usr/lib/{triplet}/qemu",
            sanitizers=tuple(str(s) for s in data.get("sanitizers", ())),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.warning("ignoring broken install marker %s: %s", marker, err)
        return None


def debian_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The Debian archive this host's apt already uses (``$MIGFUZZ_DEBIAN_MIRROR`` overrides).

    Reading the system's sources keeps migfuzz on whatever mirror or proxy the machine is
    set up for; nothing is written to them.
    """
    if env := os.environ.get("MIGFUZZ_DEBIAN_MIRROR"):
        return env.rstrip("/")
    sources = apt_dir
    candidates: list[str] = []
    for path in sorted(sources.glob("sources.list.d/*.sources")):
        text = path.read_text(errors="replace")
        for stanza in re.split(r"\n\s*\n", text):
            fields = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in stanza.splitlines())
                if not k.startswith("#") and v
            }
            suites = fields.get("suites", "").split()
            debian = "debian-archive-keyring" in fields.get("signed-by", "") or any(
                s.split("-")[0] in {*DEBIAN_SUITES.values(), "stable", "testing"} for s in suites
            )
            if debian and not any("security" in s for s in suites):
                candidates += fields.get("uris", "").split()
    legacy = sources / "sources.list"
    if legacy.exists():
        for line in legacy.read_text(errors="replace").splitlines():
            m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and "security" not in m.group(2) and "debian" in m.group(1):
                candidates.append(m.group(1))
    for uri in candidates:
        if uri.startswith(("http://", "https://", "file:/")) and "security" not in uri:
            return uri.rstrip("/")
    raise FarmError(
        f"no Debian archive found in {apt_dir} sources; set MIGFUZZ_DEBIAN_MIRROR to its URL"
    )


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created, with its folder) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _require_apt() -> None:
    for tool in ("apt-get", "apt-cache", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise FarmError(
                f"{tool} not found: installing Debian's QEMU needs apt-get and dpkg-deb "
                "(a Debian or Ubuntu host); or add your own binary with --qemu NAME=PATH"
            )
    if not DEBIAN_KEYRING.exists():
        raise FarmError(f"{DEBIAN_KEYRING} is missing: install the debian-archive-keyring package")


def _apt_options(apt_dir: Path, arch: str, *, keep_cache: bool = False) -> list[str]:
    """apt options for a private configuration in ``apt_dir``: its own lists, sources and
    an empty dpkg status; nothing of the system's apt state is read or written."""
    opts = [
        "-o", f"Dir::State={apt_dir}", "-o", f"Dir::State::status={apt_dir}/status",
        "-o", f"Dir::Cache={apt_dir}", "-o", f"Dir::Etc::SourceList={apt_dir}/etc/sources.list",
        "-o", "Dir::Etc::SourceParts=/nonexistent",
        "-o", f"Dir::Etc::Preferences={apt_dir}/etc/none",
        "-o", f"Dir::Etc::PreferencesParts={apt_dir}/etc/none.d",
        "-o", f"APT::Architecture={arch}", "-o", "APT::Architectures=", "-o", "Debug::NoLocking=1",
        "-o", "APT::Sandbox::User=root" if os.geteuid() == 0 else "APT::Sandbox::User=",
        "-q",
    ]  # fmt: skip
    if keep_cache:  # a binary cache of the lists: apt-cache answers in milliseconds
        opts += ["-o", f"Dir::Cache::pkgcache={apt_dir}/pkgcache.bin",
                 "-o", "Dir::Cache::srcpkgcache="]  # fmt: skip
    return opts


def _tool(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False)
    except OSError as err:
        raise FarmError(f"{what}: cannot run {argv[0]}: {err}") from err


def _run_tool(argv: list[str], what: str) -> str:
    proc = _tool(argv, what)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FarmError(f"{what} failed (exit {proc.returncode}): {' / '.join(tail)}")
    return proc.stdout


def _locked_from_marker(final: Path, arch: str) -> LockedVersion:
    """The lock entry of an installed version: its marker's packages, its binary's hash."""
    try:
        data = json.loads((final / INSTALL_MARKER).read_text())
        packages = [parse_deb_filename(str(d))[:2] for d in data["packages"]]
        return LockedVersion(
            name=str(data["name"]), arch=arch, suite=str(data["suite"]),
            packages=tuple(sorted(packages)),
            sha256=file_sha256(final / "root/usr/bin/qemu-system-aarch64"),
        )  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise FarmError(f"{final}: cannot read what was installed there: {err}") from err


def _unpack(name: str, debs: list[Path], root: Path) -> tuple[Path, str]:
    """Unpack ``debs`` into ``root`` and run the QEMU there: its loader and version line."""
    triplet, loader_name, _ = host_multiarch()
    root.mkdir()
    for deb in debs:
        _run_tool(["dpkg-deb", "-x", str(deb), str(root)], f"dpkg-deb -x {deb.name}")
    loader = next(
        (
            p
            for d in (f"lib/{triplet}", f"usr/lib/{triplet}")
            if (p := root / d / loader_name).exists()
        ),
        None,
    )
    if loader is None:
        raise FarmError(f"{name}: no {loader_name} in the unpacked packages")
    binary = root / "usr/bin/qemu-system-aarch64"
    libpath = ":".join(str(root / d) for d in (f"lib/{triplet}", f"usr/lib/{triplet}"))
    out = subprocess.run(
        [str(loader), "--library-path", libpath, str(binary), "--version"],
        capture_output=True, text=True, errors="replace", check=False, timeout=30,
    )  # fmt: skip
    m = re.search(r"QEMU emulator version (\S+)", out.stdout)
    if out.returncode != 0 or m is None:
        raise FarmError(f"{name}: the unpacked QEMU does not run: {out.stderr.strip()[-300:]}")
    return loader, out.stdout.splitlines()[0]


def _install_debian(
    plan: _Plan,
    final: Path,
    lock_name: str,
    *,
    progress: Callable[[str], None],
    status: Callable[[str], None],
) -> None:
    _require_apt()
    name, suite, locked = plan.name, plan.suite, plan.locked
    _, _, arch = host_multiarch()
    mirror = debian_mirror()
    final.parent.mkdir(parents=True, exist_ok=True)
    work = final.parent / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    apt_dir = work / "apt"
    for sub in ("lists/partial", "archives/partial", "etc"):
        (apt_dir / sub).mkdir(parents=True)
    (apt_dir / "status").touch()
    # A backports suite holds only what it backports: the rest comes from its base suite.
    suites = [suite.removesuffix("-backports"), suite] if suite.endswith("-backports") else [suite]
    (apt_dir / "etc/sources.list").write_text(
        "".join(f"deb [signed-by={DEBIAN_KEYRING}] {mirror} {s} main\n" for s in suites)
    )
    opts = _apt_options(apt_dir, arch)
    try:
        status(f"{name}: reading Debian {' + '.join(suites)} package lists")
        _run_tool(["apt-get", *opts, "update"], f"apt-get update for {suite}")
        if locked is not None:
            shown = _tool(["apt-cache", *opts, "show", *(p for p, _ in locked.packages)],
                          "apt-cache show").stdout  # fmt: skip
            check_served(locked, parse_packages_index(shown), lock_name)
        how = f"as pinned in {lock_name}" if locked else "as served"
        status(f"{name}: downloading qemu-system-arm and its dependencies from {suite} ({how})")
        _run_tool(
            ["apt-get", *opts, "install", "-y", "--download-only", "--no-install-recommends",
             *(["-t", suite] if len(suites) > 1 else []), *plan.pins()],
            f"apt-get download of qemu-system-arm from {suite}",
        )  # fmt: skip
        debs = sorted((apt_dir / "archives").glob("*.deb"))
        got = {parse_deb_filename(d.name)[:2] for d in debs}
        if locked is not None and got != set(locked.packages):
            extra = sorted(got - set(locked.packages))
            lacking = sorted(set(locked.packages) - got)
            raise FarmError(
                f"{name}: apt chose other packages than {lock_name} pins "
                f"(not pinned: {extra[:3]}, pinned but not chosen: {lacking[:3]})"
            )
        root = work / "root"
        status(f"{name}: unpacking {len(debs)} packages")
        loader, version_line = _unpack(name, debs, root)
        binary = root / "usr/bin/qemu-system-aarch64"
        sha256 = file_sha256(binary)
        if locked is not None and sha256 != locked.sha256:
            raise FarmError(
                f"{name}: the locked packages gave a binary with sha256 {sha256[:12]}, "
                f"{lock_name} says {locked.sha256[:12]}"
            )
        shutil.rmtree(apt_dir / "archives", ignore_errors=True)
        shutil.rmtree(apt_dir / "lists", ignore_errors=True)
        marker = {
            "format": 1,
            "name": name,
            "origin": f"debian:{suite}",
            "suite": suite,
            "qemu_version": version_line.split()[3],
            "debian_version": dict(got).get(QEMU_PACKAGE, ""),
            "sha256": sha256,
            "version_line": version_line,
            "loader": str(loader.relative_to(root)),
            "packages": [d.name for d in debs],
        }
        (work / INSTALL_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        old = final.parent / f".{name}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        work.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        progress(f"{name}: installed {marker['version_line']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
