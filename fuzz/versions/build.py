"""QEMU built from Debian's source package: sanitizer builds beside the farm's binaries.

``migfuzz qemu build 11.1.3 --sanitize address`` finds the ``qemu`` source package of that
release in the Debian archive's ``Sources`` indexes (signed: the ``InRelease`` file is
checked with ``gpgv`` against the system's Debian keyring, and each file's SHA-256 against
the index), unpacks it, applies ``debian/patches/series``, configures a TCG-only
``aarch64-softmmu`` QEMU with what a migfuzz case needs (the ``virt`` board, fdt, qcow2,
qtest, the ``loader`` device) and builds it with ninja, with the host's Debian tool chain.

The build happens in a work folder of the cache; only a binary that ran ``-version`` is
moved into the farm (``<cache>/qemu/<name>/``, with the ``installed.json`` marker the farm
reads), so a failed step leaves nothing half-installed. Each step that fails says why in
one line, with the build log's path.

Starts processes (dpkg-query, apt-get, patch, configure, ninja, the built QEMU) through
one :data:`Runner`, and reads the network through one :data:`Fetcher`: tests pass fakes.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fuzz.core.binary import SANITIZER_OPTIONS, QemuBinary, file_sha256
from fuzz.errors import FarmError, UsageError
from fuzz.versions.farm import (
    ARCHIVE_SUITES,
    DEBIAN_KEYRING,
    INDEX_MAX_AGE_SECONDS,
    INSTALL_MARKER,
    Farm,
    binary_from_marker,
    check_version_name,
    debian_mirror,
    file_lock,
    host_multiarch,
)
from fuzz.versions.lock import (
    BuiltVersion,
    debian_version_key,
    read_lock,
    upstream_version,
    write_lock,
)

#: The Debian source package QEMU is built from.
SOURCE_PACKAGE = "qemu"
#: ``--sanitize`` values, and the short name each adds to the version name.
SANITIZERS: dict[str, str] = {"address": "asan", "undefined": "ubsan"}
#: Debian packages a build needs (``dpkg-query`` names), beyond what every system has.
BUILD_PACKAGES: tuple[str, ...] = (
    "gcc", "libc6-dev", "ninja-build", "pkg-config", "flex", "bison", "patch", "xz-utils",
    "python3-venv", "python3-pip", "libglib2.0-dev", "libfdt-dev", "libpixman-1-dev",
    "zlib1g-dev",
)  # fmt: skip
#: configure options common to every build: one TCG AArch64 system emulator, with only
#: what a migfuzz case uses (``virt``, fdt, qcow2 and qtest are built in or asked for here).
CONFIGURE_OPTIONS: tuple[str, ...] = (
    "--target-list=aarch64-softmmu", "--without-default-features", "--enable-tcg",
    "--enable-fdt=system", "--enable-pixman", "--enable-debug-info", "--disable-werror",
    "--disable-docs", "--disable-tools", "--disable-guest-agent", "--disable-user",
    "--disable-install-blobs", "--disable-download", "--enable-trace-backends=log",
)  # fmt: skip

_NINJA_STEP = re.compile(r"^\[(\d+)/(\d+)\]")
_QEMU_BINARY = "usr/bin/qemu-system-aarch64"

#: ``fetch(url, dest)``: write the body at ``url`` to ``dest``; raise ``OSError`` on failure.
Fetcher = Callable[[str, Path], None]
#: ``run(argv, cwd, log, on_line)``: run a command, its output appended to ``log`` and each
#: line given to ``on_line``; returns the exit status.
Runner = Callable[[Sequence[str], Path, Path, Callable[[str], None]], int]


def _quiet(_message: str) -> None:
    """The default listener: nobody."""


@dataclass(frozen=True)
class SourceFile:
    """One file of a source package, as the ``Checksums-Sha256`` field lists it."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class SourcePackage:
    """One version of the ``qemu`` source package in one suite."""

    suite: str
    version: str
    directory: str
    files: tuple[SourceFile, ...]

    @property
    def upstream(self) -> str:
        """The QEMU release: ``1:11.1.3+ds-1`` -> ``11.1.3``."""
        return upstream_version(self.version)

    @property
    def backport(self) -> bool:
        """Whether this is a backport (``~bpo``) rather than the suite's own revision."""
        return "~bpo" in self.version or self.suite.endswith("-backports")


def parse_sources_index(
    text: str, suite: str, package: str = SOURCE_PACKAGE
) -> list[SourcePackage]:
    """Every version of ``package`` a Debian ``Sources`` index lists."""
    found = []
    for stanza in re.split(r"\n\s*\n", text):
        if not re.search(rf"^Package:\s*{re.escape(package)}\s*$", stanza, re.MULTILINE):
            continue
        version = re.search(r"^Version:\s*(\S+)", stanza, re.MULTILINE)
        directory = re.search(r"^Directory:\s*(\S+)", stanza, re.MULTILINE)
        sums = re.search(r"^Checksums-Sha256:\s*\n((?:[ \t]+\S.*\n?)+)", stanza, re.MULTILINE)
        if not (version and directory and sums):
            continue
        files = tuple(
            SourceFile(name=name, size=int(size), sha256=sha)
            for sha, size, name in (line.split() for line in sums.group(1).splitlines())
        )
        found.append(SourcePackage(suite, version.group(1), directory.group(1), files))
    return found


def choose_source(version: str, served: Iterable[SourcePackage]) -> SourcePackage:
    """The source package to build release ``version`` from: a suite's own revision before
    a backport, then the newest suite, then the highest Debian revision.

    :raise UsageError: no suite serves that release; the message lists what is served.
    """
    offers = list(served)
    matches = [s for s in offers if version in (s.upstream, s.version, s.version.partition(":")[2])]
    if not matches:
        listed = ", ".join(f"{s.upstream} ({s.suite}: {s.version})" for s in offers) or "nothing"
        raise UsageError(f"no Debian source of QEMU {version!r} to build: Debian serves {listed}")
    rank = {s: i for i, s in enumerate(ARCHIVE_SUITES)}
    return max(
        matches,
        key=lambda s: (not s.backport, rank.get(s.suite, -1), debian_version_key(s.version)),
    )


def parse_sanitizers(spec: str | None) -> tuple[str, ...]:
    """``"address,undefined"`` -> ``("address", "undefined")`` (sorted, no repeats).

    :raise UsageError: a name that is not one of :data:`SANITIZERS`.
    """
    if not spec:
        return ()
    names = sorted({s.strip() for s in spec.split(",") if s.strip()})
    bad = [s for s in names if s not in SANITIZERS]
    if bad or not names:
        raise UsageError(
            f"--sanitize {spec!r}: expected a comma-separated list of {', '.join(SANITIZERS)}"
        )
    return tuple(names)


def build_name(version: str, sanitizers: Sequence[str], name: str | None = None) -> str:
    """The version name a build installs as: ``NAME`` if given, else the release with
    one suffix per sanitizer in :data:`SANITIZERS` order (``11.1.3-asan-ubsan``)."""
    if name:
        return check_version_name(name)
    suffix = "".join(f"-{short}" for s, short in SANITIZERS.items() if s in sanitizers)
    return check_version_name(version + suffix)


def configure_args(source: Path, sanitizers: Sequence[str]) -> list[str]:
    """QEMU's ``configure`` options for this source tree and these sanitizers.

    Releases before 9.1 have one ``--enable-sanitizers`` switch (address and undefined
    together) instead of ``--enable-asan`` and ``--enable-ubsan``.
    """
    args = ["--prefix=/usr", f"--python={_python3()}", *CONFIGURE_OPTIONS]
    options = (source / "meson_options.txt").read_text(errors="replace")
    if sanitizers and "option('asan'" not in options:
        args.append("--enable-sanitizers")
    else:
        args += [f"--enable-{SANITIZERS[s]}" for s in sanitizers]
    return args


def ninja_progress(line: str) -> tuple[int, int] | None:
    """``[123/2750] Compiling C object ...`` -> ``(123, 2750)``; None for other lines."""
    m = _NINJA_STEP.match(line)
    return (int(m.group(1)), int(m.group(2))) if m else None


def series_patches(series_text: str) -> list[str]:
    """The patch file names of a quilt ``series`` file, in order (no comments, no options)."""
    names = []
    for raw in series_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            names.append(line.split()[0])
    return names


def verify_file(path: Path, expected: SourceFile) -> None:
    """Raise unless ``path`` has the size and SHA-256 the index gives.

    :raise FarmError: one line naming the file and both checksums.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() != expected.sha256:
        raise FarmError(
            f"checksum mismatch for {expected.name}: sha256 {digest.hexdigest()[:16]}..., "
            f"the signed Sources index says {expected.sha256[:16]}..."
        )


def inrelease_sha256(text: str, member: str) -> str | None:
    """The SHA-256 that a suite's ``InRelease`` gives for ``member`` (a path below the suite)."""
    m = re.search(r"^SHA256:\s*\n((?:[ \t]+\S.*\n?)+)", text, re.MULTILINE)
    if m is None:
        return None
    for line in m.group(1).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == member:
            return parts[0]
    return None


# -- processes and network -----------------------------------------------------------------


def http_fetch(url: str, dest: Path) -> None:
    """Download ``url`` into ``dest`` (through a temporary file).

    :raise OSError: the server said no or the connection failed.
    """
    tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        os.replace(tmp, dest)
    except urllib.error.HTTPError as err:
        raise OSError(f"HTTP {err.code} for {url}") from err
    except urllib.error.URLError as err:
        raise OSError(f"{url}: {err.reason}") from err
    finally:
        tmp.unlink(missing_ok=True)


def run_logged(argv: Sequence[str], cwd: Path, log: Path, on_line: Callable[[str], None]) -> int:
    """Run ``argv`` in ``cwd``; its output goes to ``log`` and, line by line, to ``on_line``."""
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        try:
            proc = subprocess.Popen(
                list(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, text=True, errors="replace",
            )  # fmt: skip
        except OSError as err:
            out.write(f"cannot run {argv[0]}: {err}\n")
            return 127
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            on_line(line.rstrip("\n"))
        return proc.wait()


def _python3() -> str:
    """Debian's Python, which QEMU's configure makes its build venv from."""
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


def missing_packages(run: Runner, log: Path) -> list[str]:
    """Which of :data:`BUILD_PACKAGES` ``dpkg-query`` does not find installed."""
    lines: list[str] = []
    run(["dpkg-query", "-W", "-f", "${Package} ${Status}\\n", *BUILD_PACKAGES],
        log.parent, log, lines.append)  # fmt: skip
    have = {ln.split()[0].split(":")[0] for ln in lines if ln.endswith(" installed")}
    return [p for p in BUILD_PACKAGES if p not in have]


# -- the build --------------------------------------------------------------------------------


@dataclass
class Builder:
    """Builds one QEMU from Debian's source into a farm.

    ``fetch``, ``run`` and ``is_root`` are the outside world: tests give fakes.
    """

    farm: Farm
    fetch: Fetcher = http_fetch
    run: Runner = run_logged
    is_root: Callable[[], bool] = field(default=lambda: os.geteuid() == 0)
    jobs: int = 2
    progress: Callable[[str], None] = _quiet
    status: Callable[[str], None] = _quiet
    mirror: str = ""
    keyring: Path = DEBIAN_KEYRING

    @property
    def build_dir(self) -> Path:
        """Where sources, work trees and logs live: ``<cache>/build``."""
        return self.farm.cache_dir / "build"

    def build(
        self, version: str, sanitizers: Sequence[str] = (), *, name: str | None = None,
        force: bool = False,
    ) -> QemuBinary:  # fmt: skip
        """Build release ``version`` with ``sanitizers`` and install it as a farm version.

        :raise UsageError: no Debian suite serves that release, or the name is taken by a
            Debian install.
        :raise FarmError: a step failed (download, checksum, tools, patch, configure,
            compile, the binary does not run); the message names the log.
        """
        target = build_name(version, sanitizers, name)
        final = self.farm.qemu_dir / target
        existing = _read_marker(final)
        if existing is not None and not force:
            if str(existing.get("origin", "")).startswith("build:"):
                self.progress(f"{target}: already built ('--force' builds it again)")
                return self._binary(final)
            raise UsageError(
                f"{target} is installed from Debian's binary package ({existing.get('origin')}): "
                "give the build another name with --name, or --force to replace it"
            )
        self.build_dir.mkdir(parents=True, exist_ok=True)
        source = self._source(version)
        log = self.build_dir / f"{target}.log"
        log.write_text(f"migfuzz qemu build {source.version} {','.join(sanitizers)} -> {target}\n")
        self.status(f"{target}: {SOURCE_PACKAGE} {source.version} from Debian {source.suite}")
        self._tools(log)
        files = self._download(source)
        _remove_stale_work(self.build_dir)
        work = self.build_dir / f"{target}.work-{os.getpid()}"
        work.mkdir()
        try:
            tree = self._unpack(source, files, work, log)
            self._patch(tree, log)
            self._wheels(tree, log)
            started = time.monotonic()
            self._compile(target, tree, sanitizers, log)
            minutes = (time.monotonic() - started) / 60
            root = work / "root"
            self._install(tree, root, log)
            version_line = _runs(root / _QEMU_BINARY, log)
            size = (root / _QEMU_BINARY).stat().st_size
            self._place(target, source, files=files, sanitizers=sanitizers, root=root,
                        version_line=version_line)  # fmt: skip
            self.progress(f"{target}: built {version_line} in {minutes:.1f} min "
                          f"({size / 2**20:.0f} MiB binary)")  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)
        binary = self._binary(final)
        self._record(final, source, files, sanitizers)
        return binary

    # -- steps ---------------------------------------------------------------------------

    def _source(self, version: str) -> SourcePackage:
        """The source package to build ``version`` from (signed indexes, cached a day)."""
        served: list[SourcePackage] = []
        indexes = {suite: self._index(suite) for suite in ARCHIVE_SUITES}
        if not any(indexes.values()):
            raise FarmError(f"no Debian source index could be read from "
                            f"{self.mirror or debian_mirror()}")  # fmt: skip
        for suite, text in indexes.items():
            served += parse_sources_index(text, suite)
        return choose_source(version, served)

    def _index(self, suite: str) -> str:
        """The ``qemu`` stanzas of a suite's ``Sources`` index; "" if the mirror lacks it."""
        cache = self.build_dir / "sources-index" / f"{suite}.txt"
        if cache.exists() and time.time() - cache.stat().st_mtime < INDEX_MAX_AGE_SECONDS:
            return cache.read_text()
        mirror = self.mirror or debian_mirror()
        cache.parent.mkdir(parents=True, exist_ok=True)
        release, packed = cache.with_suffix(".InRelease"), cache.with_suffix(".xz")
        self.status(f"reading the source index of Debian {suite}")
        try:
            self.fetch(f"{mirror}/dists/{suite}/InRelease", release)
        except OSError:
            return ""  # the mirror does not have this suite
        signed = self._verified(release, suite)
        member = "main/source/Sources.xz"
        try:
            self.fetch(f"{mirror}/dists/{suite}/{member}", packed)
        except OSError as err:
            raise FarmError(f"download of the Debian {suite} source index failed: {err}") from err
        if (sha := hashlib.sha256(packed.read_bytes()).hexdigest()) != inrelease_sha256(
            signed, member
        ):
            raise FarmError(
                f"checksum mismatch for {suite}/{member}: sha256 {sha[:16]}... is not what "
                f"its InRelease says"
            )
        try:
            text = lzma.decompress(packed.read_bytes()).decode("utf-8", "replace")
        except lzma.LZMAError as err:
            raise FarmError(f"the Debian {suite} source index is corrupt: {err}") from err
        finally:
            packed.unlink(missing_ok=True)
        stanzas = [s for s in re.split(r"\n\s*\n", text)
                   if re.search(rf"^Package:\s*{SOURCE_PACKAGE}\s*$", s, re.MULTILINE)]  # fmt: skip
        cache.write_text("\n\n".join(stanzas) + "\n")
        return cache.read_text()

    def _verified(self, release: Path, suite: str) -> str:
        """The text of a suite's ``InRelease`` once ``gpgv`` accepted its signature."""
        lines: list[str] = []
        code = self.run(["gpgv", "--keyring", str(self.keyring), str(release)], release.parent,
                        release.with_suffix(".gpgv.log"), lines.append)  # fmt: skip
        if code == 127:
            raise FarmError("checking Debian's signature needs gpgv and the Debian keyring: "
                            "'apt-get install gpgv debian-archive-keyring'")  # fmt: skip
        if code != 0:
            raise FarmError(f"the signature of Debian {suite}'s InRelease does not verify "
                            f"with {self.keyring}: {' / '.join(lines[-2:])}")  # fmt: skip
        return release.read_text(errors="replace")

    def _tools(self, log: Path) -> None:
        """Install missing build packages with apt-get as root; else say which in one line."""
        missing = missing_packages(self.run, log)
        if not missing:
            return
        if not self.is_root():
            raise FarmError(
                f"building QEMU needs Debian packages that are not installed: "
                f"'apt-get install {' '.join(missing)}' (as root)"
            )
        self.status(f"installing Debian packages {' '.join(missing)} (as root, apt-get)")
        install = ["apt-get", "-q", "install", "-y", "--no-install-recommends", *missing]
        for argv in (["apt-get", "-q", "update"], install):
            if self.run(argv, log.parent, log, _quiet) != 0:
                raise FarmError(f"apt-get could not install {' '.join(missing)}; see {log}")
        self.progress(f"installed Debian packages: {' '.join(missing)}")

    def _download(self, source: SourcePackage) -> list[Path]:
        """The source package's files in the cache, each checked against the index."""
        folder = self.build_dir / "sources"
        folder.mkdir(parents=True, exist_ok=True)
        mirror = self.mirror or debian_mirror()
        paths = []
        for item in source.files:
            path = folder / item.name
            if not (path.exists() and _sha256(path) == item.sha256):
                self.status(f"downloading {item.name} ({item.size >> 20} MiB)")
                try:
                    self.fetch(f"{mirror}/{source.directory}/{item.name}", path)
                except OSError as err:
                    raise FarmError(f"download of {item.name} failed: {err}") from err
                try:
                    verify_file(path, item)
                except FarmError:
                    path.unlink(missing_ok=True)
                    raise
            paths.append(path)
        return paths

    def _unpack(self, source: SourcePackage, files: list[Path], work: Path, log: Path) -> Path:
        """Unpack the orig and debian tarballs into ``work/src``; the tree's path."""
        orig = next((f for f in files if ".orig.tar." in f.name), None)
        debian = next((f for f in files if ".debian.tar." in f.name), None)
        if orig is None or debian is None:
            raise FarmError(f"{SOURCE_PACKAGE} {source.version}: no orig or debian tarball in "
                            f"{[f.name for f in files]}")  # fmt: skip
        self.status(f"unpacking {orig.name}")
        tree = work / "src"
        try:
            with tarfile.open(orig) as tar:
                tar.extractall(work, filter="tar")
            tops = [p for p in work.iterdir() if p.is_dir()]
            if len(tops) != 1:
                raise FarmError(f"{orig.name}: expected one top folder, found {len(tops)}")
            tops[0].rename(tree)
            with tarfile.open(debian) as tar:
                tar.extractall(tree, filter="tar")
        except (OSError, tarfile.TarError) as err:
            raise FarmError(f"unpacking {orig.name} failed: {err}; see {log}") from err
        return tree

    def _patch(self, tree: Path, log: Path) -> None:
        """Apply ``debian/patches/series`` in order with ``patch -p1``."""
        series = tree / "debian/patches/series"
        names = series_patches(series.read_text()) if series.exists() else []
        for i, patch in enumerate(names, 1):
            self.status(f"patching {i}/{len(names)}: {patch}")
            argv = ["patch", "-p1", "--batch", "--forward", "-i", f"debian/patches/{patch}"]
            if self.run(argv, tree, log, _quiet) != 0:
                raise FarmError(f"patch step failed: debian/patches/{patch} does not apply; "
                                f"see {log}")  # fmt: skip

    def _wheels(self, tree: Path, log: Path) -> None:
        """Put the Meson wheel that a ``+ds`` tarball strips back into ``python/wheels``.

        QEMU's configure installs Meson into its build venv from there; Debian's own Meson
        of an older host is too old. The version is the one ``pythondeps.toml`` names.
        """
        wheels = tree / "python/wheels"
        if list(wheels.glob("meson-*.whl")):
            return
        try:
            deps = tomllib.loads((tree / "pythondeps.toml").read_text())
            meson = str(deps["meson"]["meson"]["installed"])
        except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
            return  # an older QEMU without mkvenv: configure finds Meson itself
        wheels.mkdir(parents=True, exist_ok=True)
        self.status(f"fetching meson {meson} from PyPI (the +ds tarball strips QEMU's wheel)")
        argv = [sys.executable, "-mpip", "download", "--no-deps", "--only-binary", ":all:",
                "-d", str(wheels), f"meson=={meson}"]  # fmt: skip
        if self.run(argv, tree, log, _quiet) != 0:
            raise FarmError(f"download of meson {meson} (pip) failed; see {log}")

    def _compile(self, target: str, tree: Path, sanitizers: Sequence[str], log: Path) -> None:
        """configure, then ninja with a status line of its ``[n/m]`` steps."""
        build = tree / "build"
        build.mkdir()
        self.status(f"{target}: configuring")
        argv = ["../configure", *configure_args(tree, sanitizers)]
        if self.run(argv, build, log, _quiet) != 0:
            raise FarmError(f"configure step failed for {target}; see {log}")
        shown = [0.0]

        def on_line(line: str) -> None:
            step = ninja_progress(line)
            if step is not None and (time.monotonic() - shown[0] > 0.5 or step[0] == step[1]):
                shown[0] = time.monotonic()
                done, total = step
                self.status(f"{target}: compiling [{done}/{total}] {100 * done // total}%")

        if self.run(["ninja", "-C", "build", f"-j{self.jobs}"], tree, log, on_line) != 0:
            raise FarmError(f"compile step failed for {target}; see {log}")

    def _install(self, tree: Path, root: Path, log: Path) -> None:
        """``ninja install`` with ``DESTDIR=root``: the farm's layout, ``root/usr/...``."""
        self.status(f"installing into the staging folder {root}")
        argv = ["env", f"DESTDIR={root}", "ninja", "-C", "build", "install"]
        if self.run(argv, tree, log, _quiet) != 0:
            raise FarmError(f"install step (ninja install) failed; see {log}")

    def _place(
        self, target: str, source: SourcePackage, *, files: list[Path],
        sanitizers: Sequence[str], root: Path, version_line: str,
    ) -> None:  # fmt: skip
        """Write the marker and rename the staged root into the farm."""
        (root / "usr/share/qemu").mkdir(parents=True, exist_ok=True)
        marker = {
            "format": 1,
            "name": target,
            "origin": f"build:{source.suite}" + "".join(f"+{SANITIZERS[s]}" for s in sanitizers),
            "suite": source.suite,
            "qemu_version": version_line.split()[3] if len(version_line.split()) > 3 else "",
            "debian_version": source.version,
            "source_package": SOURCE_PACKAGE,
            "sources": {f.name: _sha256(f) for f in files},
            "sanitizers": list(sanitizers),
            "sha256": file_sha256(root / _QEMU_BINARY),
            "version_line": version_line,
            "loader": None,
            "packages": [],
        }
        stage = self.farm.qemu_dir / f".{target}.partial-{os.getpid()}"
        self.farm.qemu_dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.farm.qemu_dir / ".install.lock"):
            shutil.rmtree(stage, ignore_errors=True)
            stage.mkdir()
            root.rename(stage / "root")
            (stage / INSTALL_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            final = self.farm.qemu_dir / target
            old = final.parent / f".{target}.old-{os.getpid()}"
            if final.exists():
                final.rename(old)
            stage.rename(final)
            shutil.rmtree(old, ignore_errors=True)

    def _binary(self, final: Path) -> QemuBinary:
        binary = binary_from_marker(final / INSTALL_MARKER)
        if binary is None:
            raise FarmError(f"{final.name}: built, but {final / INSTALL_MARKER} is unreadable")
        return binary

    def _record(self, final: Path, source: SourcePackage, files: list[Path],
                sanitizers: Sequence[str]) -> None:  # fmt: skip
        """Add the build to the lock file, if the farm uses one."""
        if self.farm.lock_file is None:
            return
        _, _, arch = host_multiarch()
        entry = BuiltVersion(
            name=final.name, arch=arch, suite=source.suite, source_package=SOURCE_PACKAGE,
            source_version=source.version,
            sources=tuple(sorted((f.name, _sha256(f)) for f in files)),
            sanitizers=tuple(sanitizers), sha256=file_sha256(final / "root" / _QEMU_BINARY),
        )  # fmt: skip
        write_lock(self.farm.lock_file, read_lock(self.farm.lock_file).with_build(entry))
        self.progress(f"{final.name}: recorded in {self.farm.lock_file}")


def _sha256(path: Path) -> str:
    return file_sha256(path)


def _remove_stale_work(folder: Path) -> None:
    """Remove the work folders of builds whose process is gone (killed mid-build)."""
    for work in folder.glob("*.work-*"):
        pid = work.name.rpartition("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(work, ignore_errors=True)


def _read_marker(final: Path) -> dict[str, object] | None:
    try:
        data = json.loads((final / INSTALL_MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _runs(binary: Path, log: Path) -> str:
    """The version line of the staged binary; raise if it does not run ``-version``."""
    try:
        out = subprocess.run([str(binary), "-version"], capture_output=True, text=True,
                             errors="replace", timeout=60, check=False,
                             env={**os.environ, **SANITIZER_OPTIONS})  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise FarmError(f"the built QEMU does not run: {err}; see {log}") from err
    first = out.stdout.splitlines()[0] if out.stdout else ""
    if out.returncode != 0 or "QEMU emulator version" not in first:
        raise FarmError(f"the built QEMU does not run -version: {out.stderr.strip()[-200:]}; "
                        f"see {log}")  # fmt: skip
    return first


def build_qemu(
    farm: Farm, version: str, *, sanitizers: Sequence[str] = (), name: str | None = None,
    force: bool = False, jobs: int = 2, progress: Callable[[str], None] = _quiet,
    status: Callable[[str], None] = _quiet,
) -> QemuBinary:  # fmt: skip
    """Build ``version`` from Debian's source with ``sanitizers`` into ``farm``.

    See :meth:`Builder.build`.
    """
    builder = Builder(farm, jobs=jobs, progress=progress, status=status)
    return builder.build(version, sanitizers, name=name, force=force)
