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
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.errors import FarmError, UsageError

logger = logging.getLogger(__name__)
logger.addHandler(logging.NullHandler())

#: The Debian releases migfuzz installs by default: version name -> Debian suite.
DEBIAN_SUITES: Mapping[str, str] = {
    "5.2": "bullseye",
    "7.2": "bookworm",
    "10.0": "trixie",
    "11.1": "sid",
}

_VERSION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_MARKER = "installed.json"
_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
_MULTIARCH = {
    "x86_64": ("x86_64-linux-gnu", "ld-linux-x86-64.so.2", "amd64"),
    "aarch64": ("aarch64-linux-gnu", "ld-linux-aarch64.so.1", "arm64"),
}


@dataclass(frozen=True)
class QemuBinary:
    """How to run one QEMU version.

    ``loader`` and ``library_path`` are set for a Debian root (the root's own ``ld.so``
    runs the binary); a user's own build runs as it is.
    """

    name: str
    path: Path
    origin: str
    loader: Path | None = None
    library_path: tuple[Path, ...] = ()
    data_dir: Path | None = None
    module_dir: Path | None = None

    def command(self) -> list[str]:
        """The argv prefix that starts this QEMU (before any QEMU option)."""
        argv: list[str] = []
        if self.loader is not None:
            argv += [str(self.loader), "--library-path", ":".join(map(str, self.library_path))]
        argv.append(str(self.path))
        if self.data_dir is not None:
            argv += ["-L", str(self.data_dir)]
        return argv

    def environment(self) -> dict[str, str]:
        """The environment QEMU runs with: ours, plus this root's module folder."""
        env = dict(os.environ)
        if self.module_dir is not None:
            env["QEMU_MODULE_DIR"] = str(self.module_dir)
        return env

    def content_hash(self) -> str:
        """SHA-256 of the binary: the key of its capability probe and of reproducers."""
        return _file_sha256(self.path)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready description (paths as strings)."""
        return {
            "name": self.name,
            "path": str(self.path),
            "origin": self.origin,
            "loader": None if self.loader is None else str(self.loader),
            "library_path": [str(p) for p in self.library_path],
            "data_dir": None if self.data_dir is None else str(self.data_dir),
            "module_dir": None if self.module_dir is None else str(self.module_dir),
        }


_hash_cache: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


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


def _host_multiarch() -> tuple[str, str, str]:
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


@dataclass
class Farm:
    """The QEMU versions this user has: Debian roots in the cache, plus their own binaries."""

    cache_dir: Path = field(default_factory=default_cache_dir)
    extra: dict[str, QemuBinary] = field(default_factory=dict)

    @property
    def qemu_dir(self) -> Path:
        """Where the Debian roots live: one folder per version name."""
        return self.cache_dir / "qemu"

    def add(self, binary: QemuBinary) -> None:
        """Register a user binary; it shadows an installed version of the same name."""
        self.extra[binary.name] = binary

    def installed(self) -> dict[str, QemuBinary]:
        """Every usable version by name: complete Debian installs, then user binaries."""
        found: dict[str, QemuBinary] = {}
        if self.qemu_dir.is_dir():
            for marker in sorted(self.qemu_dir.glob(f"*/{_MARKER}")):
                binary = _binary_from_marker(marker)
                if binary is not None:
                    found[binary.name] = binary
        found.update(self.extra)
        return dict(sorted(found.items(), key=lambda kv: version_sort_key(kv[0])))

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
            if name in DEBIAN_SUITES
            else (
                "install a Debian one with 'migfuzz qemu install' "
                "or add yours with --qemu NAME=PATH"
            )
        )
        raise UsageError(f"unknown QEMU version {name!r} (installed: {have}); {hint}")

    def install(
        self,
        names: Iterable[str],
        *,
        progress: Callable[[str], None] = lambda _msg: None,
        force: bool = False,
    ) -> list[QemuBinary]:
        """Install Debian's QEMU of each version name (default set: :data:`DEBIAN_SUITES`).

        Idempotent: an installed version is left alone unless ``force``.

        :raise UsageError: a name is not one of the Debian versions migfuzz knows.
        :raise FarmError: apt or dpkg-deb is missing or failed, or the result does not run.
        """
        names = list(names)
        for name in names:
            if name not in DEBIAN_SUITES:
                known = ", ".join(DEBIAN_SUITES)
                raise UsageError(f"no Debian QEMU {name!r} to install (known: {known})")
        result = []
        self.qemu_dir.mkdir(parents=True, exist_ok=True)
        with open(self.qemu_dir / ".install.lock", "w") as lock:
            # One installer at a time per cache; a second one waits, then finds the work done.
            fcntl.flock(lock, fcntl.LOCK_EX)
            for stale in self.qemu_dir.glob(".*.partial-*"):
                shutil.rmtree(stale, ignore_errors=True)
            for name in names:
                final = self.qemu_dir / name
                if (final / _MARKER).exists() and not force:
                    progress(f"{name}: already installed")
                else:
                    _install_debian(name, DEBIAN_SUITES[name], final, progress)
        for name in names:
            final = self.qemu_dir / name
            binary = _binary_from_marker(final / _MARKER)
            if binary is None:
                raise FarmError(f"{name}: install finished but {final / _MARKER} is unreadable")
            result.append(binary)
        return result


def version_sort_key(name: str) -> tuple[tuple[int, object], ...]:
    """Sort '5.2' < '7.2' < '10.0' < '11.1' < 'dev' (numbers numerically, words after)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-_+]", name))


def _binary_from_marker(marker: Path) -> QemuBinary | None:
    try:
        data = json.loads(marker.read_text())
        root = marker.parent / "root"
        triplet, _, _ = _host_multiarch()
        libdirs = tuple(root / d for d in (f"lib/{triplet}", f"usr/lib/{triplet}"))
        return QemuBinary(
            name=str(data["name"]),
            path=root / "usr/bin/qemu-system-aarch64",
            origin=str(data["origin"]),
            loader=root / str(data["loader"]),
            library_path=libdirs,
            data_dir=root / "usr/share/qemu",
            module_dir=root / f"usr/lib/{triplet}/qemu",
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


def _run_tool(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", check=False)
    except OSError as err:
        raise FarmError(f"{what}: cannot run {argv[0]}: {err}") from err
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FarmError(f"{what} failed (exit {proc.returncode}): {' / '.join(tail)}")


def _install_debian(name: str, suite: str, final: Path, progress: Callable[[str], None]) -> None:
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise FarmError(
                f"{tool} not found: installing Debian's QEMU needs apt-get and dpkg-deb "
                "(a Debian or Ubuntu host); or add your own binary with --qemu NAME=PATH"
            )
    if not _KEYRING.exists():
        raise FarmError(f"{_KEYRING} is missing: install the debian-archive-keyring package")
    triplet, loader_name, arch = _host_multiarch()
    mirror = debian_mirror()
    final.parent.mkdir(parents=True, exist_ok=True)
    work = final.parent / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    apt_dir = work / "apt"
    for sub in ("lists/partial", "archives/partial", "etc"):
        (apt_dir / sub).mkdir(parents=True)
    status = apt_dir / "status"
    status.touch()
    (apt_dir / "etc/sources.list").write_text(f"deb [signed-by={_KEYRING}] {mirror} {suite} main\n")
    opts = [
        "-o", f"Dir::State={apt_dir}", "-o", f"Dir::State::status={status}",
        "-o", f"Dir::Cache={apt_dir}", "-o", f"Dir::Etc::SourceList={apt_dir}/etc/sources.list",
        "-o", "Dir::Etc::SourceParts=/nonexistent",
        "-o", f"Dir::Etc::Preferences={apt_dir}/etc/none",
        "-o", f"Dir::Etc::PreferencesParts={apt_dir}/etc/none.d",
        "-o", f"APT::Architecture={arch}", "-o", "APT::Architectures=", "-o", "Debug::NoLocking=1",
        "-o", "APT::Sandbox::User=root" if os.geteuid() == 0 else "APT::Sandbox::User=",
        "-q",
    ]  # fmt: skip
    try:
        progress(f"{name}: reading Debian {suite} package lists")
        _run_tool(["apt-get", *opts, "update"], f"apt-get update for {suite}")
        progress(f"{name}: downloading qemu-system-arm and its dependencies from {suite}")
        _run_tool(
            ["apt-get", *opts, "install", "-y", "--download-only", "--no-install-recommends",
             "qemu-system-arm"],
            f"apt-get download of qemu-system-arm from {suite}",
        )  # fmt: skip
        root = work / "root"
        root.mkdir()
        debs = sorted((apt_dir / "archives").glob("*.deb"))
        progress(f"{name}: unpacking {len(debs)} packages")
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
        shutil.rmtree(apt_dir / "archives", ignore_errors=True)
        shutil.rmtree(apt_dir / "lists", ignore_errors=True)
        marker = {
            "format": 1,
            "name": name,
            "origin": f"debian:{suite}",
            "suite": suite,
            "qemu_version": m.group(1),
            "version_line": out.stdout.splitlines()[0],
            "loader": str(loader.relative_to(root)),
            "packages": [d.name for d in debs],
        }
        (work / _MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        old = final.parent / f".{name}.old-{os.getpid()}"
        if final.exists():
            final.rename(old)
        work.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        progress(f"{name}: installed {marker['version_line']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
