"""``migfuzz qemu build``'s logic and failure paths, with a fake archive and fake commands.

Nothing here downloads or compiles: the network is a dict of URLs, the commands (gpgv,
dpkg-query, apt-get, patch, configure, ninja) are a function that records them, and the
"built" QEMU is a shell script. Each failure must say why in one line and leave nothing
installed.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fuzz.errors import FarmError, UsageError
from fuzz.versions.build import (
    BUILD_PACKAGES,
    Builder,
    SourceFile,
    SourcePackage,
    build_name,
    choose_source,
    configure_args,
    inrelease_sha256,
    ninja_progress,
    parse_sanitizers,
    parse_sources_index,
    series_patches,
)
from fuzz.versions.farm import Farm
from fuzz.versions.lock import read_lock

MIRROR = "http://mirror.test/debian"
RELEASE = "11.1.3"
DEB_VERSION = f"1:{RELEASE}+ds-1"


def _tar_xz(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _source_files() -> dict[str, bytes]:
    top = f"qemu-{RELEASE}"
    return {
        f"qemu_{RELEASE}+ds-1.dsc": b"Format: 3.0 (quilt)\n",
        f"qemu_{RELEASE}+ds.orig.tar.xz": _tar_xz(
            {
                f"{top}/meson_options.txt": "option('asan', type: 'boolean', value: false)\n",
                f"{top}/python/wheels/meson-1.9.0-py3-none-any.whl": "",
                f"{top}/configure": "#!/bin/sh\n",
            }
        ),
        f"qemu_{RELEASE}+ds-1.debian.tar.xz": _tar_xz({"debian/patches/series": "# none\n"}),
    }


def _stanza(version: str, files: dict[str, bytes]) -> str:
    sums = "".join(f" {hashlib.sha256(d).hexdigest()} {len(d)} {n}\n" for n, d in files.items())
    return (f"Package: qemu\nVersion: {version}\nDirectory: pool/main/q/qemu\n"
            f"Checksums-Sha256:\n{sums}Homepage: https://www.qemu.org\n")  # fmt: skip


def _archive(served: dict[str, str]) -> dict[str, bytes]:
    """A mirror whose suites serve the given Sources texts, with matching InRelease files."""
    urls = {}
    for suite, text in served.items():
        packed = lzma.compress(text.encode())
        sha = hashlib.sha256(packed).hexdigest()
        urls[f"{MIRROR}/dists/{suite}/InRelease"] = (
            f"Suite: {suite}\nSHA256:\n {sha} {len(packed)} main/source/Sources.xz\n".encode()
        )
        urls[f"{MIRROR}/dists/{suite}/main/source/Sources.xz"] = packed
    return urls


@dataclass
class FakeWorld:
    """The network and the commands a build meets; records the commands it ran."""

    urls: dict[str, bytes]
    installed: tuple[str, ...] = BUILD_PACKAGES
    codes: dict[str, int] = field(default_factory=dict)
    ran: list[list[str]] = field(default_factory=list)

    def fetch(self, url: str, dest: Path) -> None:
        if url not in self.urls:
            raise OSError(f"HTTP 404 for {url}")
        dest.write_bytes(self.urls[url])

    def run(self, argv: Sequence[str], cwd: Path, log: Path, on_line: Callable[[str], None]) -> int:
        argv = list(argv)
        self.ran.append(argv)
        with open(log, "a") as out:
            out.write(f"$ {' '.join(argv)}\n")
        tool = argv[0].rsplit("/", 1)[-1]
        if tool == "dpkg-query":
            for package in self.installed:
                on_line(f"{package} install ok installed")
        if tool == "ninja" and self.codes.get("ninja", 0) == 0:
            on_line("[1/2] Compiling C object foo.o")
            on_line("[2/2] Linking target qemu-system-aarch64")
        if tool == "env" and "install" in argv:  # ninja install with DESTDIR
            root = Path(argv[1].removeprefix("DESTDIR="))
            binary = root / "usr/bin/qemu-system-aarch64"
            binary.parent.mkdir(parents=True)
            binary.write_text(f"#!/bin/sh\necho 'QEMU emulator version {RELEASE}'\n")
            binary.chmod(0o755)
        return self.codes.get(tool, 0)


def _builder(tmp_path: Path, world: FakeWorld, *, root: bool = True) -> Builder:
    farm = Farm(cache_dir=tmp_path / "cache", lock_file=tmp_path / "qemu.lock")
    return Builder(
        farm, fetch=world.fetch, run=world.run, is_root=lambda: root, mirror=MIRROR,
        keyring=tmp_path / "keyring.gpg",
    )  # fmt: skip


def _world(files: dict[str, bytes] | None = None, **kwargs: object) -> FakeWorld:
    files = files or _source_files()
    urls = _archive({"sid": _stanza(DEB_VERSION, files),
                     "trixie": _stanza("1:10.0.13+ds-0+deb13u1", {"x.dsc": b"x"})})  # fmt: skip
    urls.update({f"{MIRROR}/pool/main/q/qemu/{n}": d for n, d in files.items()})
    return FakeWorld(urls, **kwargs)  # type: ignore[arg-type]


def _nothing_installed(tmp_path: Path, name: str = f"{RELEASE}-asan") -> None:
    qemu_dir = tmp_path / "cache" / "qemu"
    assert not (qemu_dir / name).exists()
    assert not list(qemu_dir.glob(".*")) or list(qemu_dir.glob(".*")) == [
        qemu_dir / ".install.lock"
    ]
    assert not list((tmp_path / "cache" / "build").glob("*.work-*"))
    assert read_lock(tmp_path / "qemu.lock").builds == ()


# -- pure pieces ---------------------------------------------------------------------------


def test_sources_index_and_the_choice_of_a_suites_own_revision() -> None:
    files = {"a.dsc": b"a"}
    served = [
        *parse_sources_index(_stanza("1:11.1.3+ds-2~bpo13+1", files), "trixie-backports"),
        *parse_sources_index(
            _stanza(DEB_VERSION, files) + "\n" + _stanza("1:10.2.2+ds-1", files), "sid"
        ),
        *parse_sources_index(_stanza("1:11.1.2+ds-3", files), "forky"),
    ]
    assert [s.version for s in served][1:3] == [DEB_VERSION, "1:10.2.2+ds-1"]
    assert served[0].files == (SourceFile("a.dsc", 1, hashlib.sha256(b"a").hexdigest()),)
    assert choose_source(RELEASE, served).suite == "sid"
    assert choose_source("10.2.2", served).version == "1:10.2.2+ds-1"
    with pytest.raises(UsageError, match=r"Debian serves 11\.1\.3 \(trixie-backports") as info:
        choose_source("9.9.9", served)
    assert "\n" not in str(info.value)


def test_other_packages_in_the_index_are_not_qemu() -> None:
    text = _stanza(DEB_VERSION, {"a": b"a"}).replace("Package: qemu", "Package: qemu-web")
    assert parse_sources_index(text, "sid") == []


def test_names_sanitizers_and_small_parsers() -> None:
    assert build_name("11.1.3", ()) == "11.1.3"
    assert build_name("11.1.3", ("address",)) == "11.1.3-asan"
    assert build_name("11.1.3", parse_sanitizers("undefined,address")) == "11.1.3-asan-ubsan"
    assert build_name("11.1.3", ("address",), "mine") == "mine"
    assert parse_sanitizers(None) == ()
    with pytest.raises(UsageError, match="--sanitize 'thread'"):
        parse_sanitizers("thread")
    assert ninja_progress("[12/2750] Compiling C object x.o") == (12, 2750)
    assert ninja_progress("ninja: Entering directory `build'") is None
    assert series_patches("# c\na.patch\n\nb.diff -p1\n") == ["a.patch", "b.diff"]
    assert (
        inrelease_sha256("SHA256:\n abc 12 main/source/Sources.xz\n", "main/source/Sources.xz")
        == "abc"
    )


def test_configure_asks_for_one_aarch64_system_emulator(tmp_path: Path) -> None:
    (tmp_path / "meson_options.txt").write_text("option('asan', type: 'boolean')\n")
    args = configure_args(tmp_path, ("address",))
    assert "--target-list=aarch64-softmmu" in args and "--enable-asan" in args
    assert "--disable-tools" in args and "--enable-fdt=system" in args
    (tmp_path / "meson_options.txt").write_text("option('sanitizers', type: 'boolean')\n")
    assert "--enable-sanitizers" in configure_args(tmp_path, ("address",))


# -- the build with a fake world -------------------------------------------------------------


def test_a_build_installs_beside_the_farm_and_is_locked(tmp_path: Path) -> None:
    world = _world()
    shown: list[str] = []
    builder = _builder(tmp_path, world)
    builder.status = shown.append
    binary = builder.build(RELEASE, ("address",))
    assert binary.name == f"{RELEASE}-asan" and binary.sanitizers == ("address",)
    assert binary.loader is None and binary.origin == "build:sid+asan"
    assert builder.farm.get(f"{RELEASE}-asan").path == binary.path
    assert any("compiling [2/2] 100%" in s for s in shown)
    configure = next(a for a in world.ran if a[0] == "../configure")
    assert "--enable-asan" in configure
    entry = read_lock(tmp_path / "qemu.lock").get_build(f"{RELEASE}-asan", "amd64")
    assert entry is not None
    assert (entry.source_version, entry.sanitizers) == (DEB_VERSION, ("address",))
    assert {name for name, _ in entry.sources} == set(_source_files())
    marker = json.loads((binary.path.parents[3] / "installed.json").read_text())
    assert marker["sources"] == {n: hashlib.sha256(d).hexdigest()
                                 for n, d in _source_files().items()}  # fmt: skip
    assert builder.farm.lock_states()[f"{RELEASE}-asan"] == "locked"
    # Named, not drawn: a default campaign or bisect leaves the sanitizer build out.
    assert f"{RELEASE}-asan" in builder.farm.installed()
    assert f"{RELEASE}-asan" not in builder.farm.everyday()
    # Again: already built, nothing run.
    world.ran.clear()
    builder.build(RELEASE, ("address",))
    assert world.ran == []


def test_bad_checksum_is_one_line_and_installs_nothing(tmp_path: Path) -> None:
    world = _world()
    orig = f"{MIRROR}/pool/main/q/qemu/qemu_{RELEASE}+ds.orig.tar.xz"
    world.urls[orig] = b"tampered"
    with pytest.raises(FarmError, match=r"checksum mismatch for qemu_11\.1\.3\+ds\.orig") as info:
        _builder(tmp_path, world).build(RELEASE, ("address",))
    assert "\n" not in str(info.value)
    _nothing_installed(tmp_path)
    assert not (tmp_path / "cache/build/sources" / orig.rsplit("/", 1)[1]).exists()


def test_unknown_version_lists_what_debian_serves(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no Debian source of QEMU '9\.9\.9'") as info:
        _builder(tmp_path, _world()).build("9.9.9")
    assert "11.1.3 (sid: 1:11.1.3+ds-1)" in str(info.value)
    assert "10.0.13 (trixie: 1:10.0.13+ds-0+deb13u1)" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_download_the_mirror_does_not_serve_says_so(tmp_path: Path) -> None:
    world = _world()
    del world.urls[f"{MIRROR}/pool/main/q/qemu/qemu_{RELEASE}+ds-1.dsc"]
    with pytest.raises(FarmError, match=r"download of qemu_11\.1\.3\+ds-1\.dsc failed: HTTP 404"):
        _builder(tmp_path, world).build(RELEASE)
    _nothing_installed(tmp_path, RELEASE)


def test_compile_failure_names_the_log_and_installs_nothing(tmp_path: Path) -> None:
    world = _world(codes={"ninja": 1})
    with pytest.raises(FarmError, match=r"compile step failed for 11\.1\.3-asan; see ") as info:
        _builder(tmp_path, world).build(RELEASE, ("address",))
    message = str(info.value)
    assert "\n" not in message
    log = Path(message.rsplit("see ", 1)[1])
    assert log.exists() and "ninja -C build -j2" in log.read_text()
    _nothing_installed(tmp_path)


@pytest.mark.parametrize("step", ["patch", "../configure"])
def test_patch_and_configure_failures_name_the_log(tmp_path: Path, step: str) -> None:
    files = _source_files()
    files[f"qemu_{RELEASE}+ds-1.debian.tar.xz"] = _tar_xz({"debian/patches/series": "a.diff\n"})
    world = _world(files, codes={step.rsplit("/", 1)[-1]: 1})
    with pytest.raises(FarmError, match=r"(patch|configure) step failed.*; see .*11\.1\.3\.log"):
        _builder(tmp_path, world).build(RELEASE)
    _nothing_installed(tmp_path, RELEASE)


def test_missing_tools_when_not_root_name_the_packages(tmp_path: Path) -> None:
    have = tuple(p for p in BUILD_PACKAGES if p not in {"flex", "bison", "libfdt-dev"})
    world = _world(installed=have)
    with pytest.raises(
        FarmError, match="'apt-get install flex bison libfdt-dev' \\(as root\\)"
    ) as info:
        _builder(tmp_path, world, root=False).build(RELEASE)
    assert "\n" not in str(info.value)
    assert not any(a[0] == "apt-get" for a in world.ran)
    _nothing_installed(tmp_path, RELEASE)


def test_missing_tools_as_root_are_installed_with_apt_get(tmp_path: Path) -> None:
    world = _world(installed=tuple(p for p in BUILD_PACKAGES if p != "flex"))
    _builder(tmp_path, world).build(RELEASE)
    assert ["apt-get", "-q", "install", "-y", "--no-install-recommends", "flex"] in world.ran


def test_a_bad_signature_stops_before_any_download(tmp_path: Path) -> None:
    world = _world(codes={"gpgv": 1})
    with pytest.raises(FarmError, match="InRelease does not verify"):
        _builder(tmp_path, world).build(RELEASE)
    assert not (tmp_path / "cache/build/sources").exists()


def test_a_debian_install_of_the_name_is_not_replaced(tmp_path: Path) -> None:
    builder = _builder(tmp_path, _world())
    final = builder.farm.qemu_dir / RELEASE
    final.mkdir(parents=True)
    (final / "installed.json").write_text(json.dumps({"origin": "debian:sid"}))
    with pytest.raises(UsageError, match="--name"):
        builder.build(RELEASE)


def test_source_package_fields() -> None:
    pkg = SourcePackage("trixie-backports", "1:11.1.3+ds-2~bpo13+1", "pool", ())
    assert pkg.upstream == RELEASE and pkg.backport
