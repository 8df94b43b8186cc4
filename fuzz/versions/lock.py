"""The QEMU lock file: the exact Debian packages behind each QEMU version of the farm.

Debian moves its suites: a point release replaces bookworm's QEMU, sid moves every week. The
lock (``qemu.lock`` at the repository root, TOML) records, for each version name and host
architecture, the suite it came from, the exact version of ``qemu-system-arm`` and of every
package of its library closure, and the SHA-256 of the resulting binary. ``migfuzz qemu
install`` pins those versions in apt, so a checkout installs the same binaries every time,
and says in one line when the archive no longer serves one of them.

This module is pure data: it reads and writes the lock, reads a Debian ``Packages`` index
and compares Debian version strings. It starts no process; :mod:`fuzz.versions.farm` runs apt.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tomllib
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz.errors import FarmError, InvalidInput

#: Version of the lock file layout, written as its ``format`` field.
LOCK_FORMAT = 1
#: The package whose binary migfuzz runs (``qemu-system-aarch64`` is in it).
QEMU_PACKAGE = "qemu-system-arm"

_HEADER = """\
# The exact Debian packages behind each QEMU version migfuzz installs (see README, 'Versions').
# Written by 'migfuzz qemu install'; 'migfuzz qemu install --update NAME' takes what Debian
# serves today and rewrites the entry. Commit it: every checkout then installs these binaries.
# [[build]] tables record what 'migfuzz qemu build' built from Debian's source (not pinned).
"""
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
_VERSION = re.compile(r"^(?:\d+:)?[0-9][A-Za-z0-9.+~:-]*$")


@dataclass(frozen=True)
class LockedVersion:
    """One version name as locked: where it came from, which packages, which binary.

    ``packages`` holds ``(package, Debian version)`` pairs sorted by package name, the
    whole closure apt downloaded, ``qemu-system-arm`` included.
    """

    name: str
    arch: str
    suite: str
    packages: tuple[tuple[str, str], ...]
    sha256: str

    @property
    def qemu_version(self) -> str:
        """The Debian version of ``qemu-system-arm`` (``""`` if the lock lacks it)."""
        return dict(self.packages).get(QEMU_PACKAGE, "")

    def pins(self) -> list[str]:
        """The packages as apt arguments: ``package=version``."""
        return [f"{p}={v}" for p, v in self.packages]

    def to_toml(self) -> str:
        """This entry as one ``[[qemu]]`` table of the lock file."""
        lines = [
            f"# {QEMU_PACKAGE} {self.qemu_version} from Debian {self.suite}",
            "[[qemu]]",
            f"name = {_quote(self.name)}",
            f"arch = {_quote(self.arch)}",
            f"suite = {_quote(self.suite)}",
            f"sha256 = {_quote(self.sha256)}",
            "packages = [",
            *(f"  {_quote(pin)}," for pin in self.pins()),
            "]",
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BuiltVersion:
    """One version built from Debian's source package (``migfuzz qemu build``).

    ``sources`` holds ``(file name, sha256)`` of each file of the source package (the
    ``.dsc``, the orig and the debian tarball), ``sanitizers`` the ``--sanitize`` names,
    ``sha256`` the built binary's. A ``[[build]]`` table of the lock file: a reader that
    knows only ``[[qemu]]`` tables skips it.
    """

    name: str
    arch: str
    suite: str
    source_package: str
    source_version: str
    sources: tuple[tuple[str, str], ...]
    sanitizers: tuple[str, ...]
    sha256: str

    def to_toml(self) -> str:
        """This entry as one ``[[build]]`` table of the lock file."""
        shown = "+".join(self.sanitizers) or "no sanitizer"
        lines = [
            f"# built from source {self.source_package} {self.source_version} "
            f"(Debian {self.suite}), {shown}",
            "[[build]]",
            f"name = {_quote(self.name)}",
            f"arch = {_quote(self.arch)}",
            f"suite = {_quote(self.suite)}",
            f"source_package = {_quote(self.source_package)}",
            f"source_version = {_quote(self.source_version)}",
            f"sanitizers = [{', '.join(_quote(s) for s in self.sanitizers)}]",
            f"sha256 = {_quote(self.sha256)}",
            "sources = [",
            *(f"  {_quote(f'{name}={sha}')}," for name, sha in self.sources),
            "]",
        ]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Lock:
    """Every locked version, in file order (sorted by name, then architecture)."""

    versions: tuple[LockedVersion, ...] = ()
    builds: tuple[BuiltVersion, ...] = ()

    def get(self, name: str, arch: str) -> LockedVersion | None:
        """The entry of version ``name`` for architecture ``arch``, if locked."""
        return next((v for v in self.versions if v.name == name and v.arch == arch), None)

    def with_entry(self, entry: LockedVersion) -> Lock:
        """A lock where ``entry`` replaces the entry of the same name and architecture."""
        others = [v for v in self.versions if (v.name, v.arch) != (entry.name, entry.arch)]
        versions = tuple(sorted([*others, entry], key=lambda v: (_name_key(v.name), v.arch)))
        return Lock(versions, self.builds)

    def get_build(self, name: str, arch: str) -> BuiltVersion | None:
        """The entry of the built version ``name`` for architecture ``arch``, if recorded."""
        return next((b for b in self.builds if b.name == name and b.arch == arch), None)

    def with_build(self, entry: BuiltVersion) -> Lock:
        """A lock where ``entry`` replaces the build of the same name and architecture."""
        others = [b for b in self.builds if (b.name, b.arch) != (entry.name, entry.arch)]
        builds = tuple(sorted([*others, entry], key=lambda b: (_name_key(b.name), b.arch)))
        return Lock(self.versions, builds)

    def to_toml(self) -> str:
        """The whole lock file's text."""
        return (
            _HEADER
            + f"format = {LOCK_FORMAT}\n"
            + "".join("\n" + v.to_toml() for v in self.versions)
            + "".join("\n" + b.to_toml() for b in self.builds)
        )

    @classmethod
    def from_toml(cls, text: str, source: str = "qemu.lock") -> Lock:
        """Parse a lock file's text.

        :raise InvalidInput: it is not TOML, has another ``format``, or an entry lacks a
            field or has a malformed one; the message names the file and the entry.
        """
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise InvalidInput(f"{source}: not a lock file: {err}") from err
        if data.get("format") != LOCK_FORMAT:
            raise InvalidInput(
                f"{source}: lock format {data.get('format')!r}, this migfuzz reads {LOCK_FORMAT}"
            )
        entries = data.get("qemu", [])
        if not isinstance(entries, list):
            raise InvalidInput(f"{source}: 'qemu' must be an array of tables ([[qemu]])")
        lock = cls()
        for i, item in enumerate(entries):
            lock = lock.with_entry(_entry_from_toml(item, f"{source}: entry {i + 1}"))
        builds = data.get("build", [])
        if not isinstance(builds, list):
            raise InvalidInput(f"{source}: 'build' must be an array of tables ([[build]])")
        for i, item in enumerate(builds):
            lock = lock.with_build(_build_from_toml(item, f"{source}: build {i + 1}"))
        return lock


def _table_fields(
    item: object, where: str, keys: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, str], str]:
    """A lock table's required string fields (``name`` and a 64-hex-digit ``sha256`` among
    them): (the table, the fields, ``where`` with the entry's name).

    :raise InvalidInput: not a table, a field missing or empty, or a bad ``sha256``.
    """
    if not isinstance(item, dict):
        raise InvalidInput(f"{where}: not a table")
    fields = {}
    for key in keys:
        value = item.get(key)
        if not isinstance(value, str) or not value:
            raise InvalidInput(f'{where}: needs {key} = "..."')
        fields[key] = value
    where = f"{where} ({fields['name']})"
    if not _SHA256.match(fields["sha256"]):
        raise InvalidInput(f"{where}: sha256 {fields['sha256']!r} is not 64 hex digits")
    return item, fields, where


def _entry_from_toml(table: object, where: str) -> LockedVersion:
    item, fields, where = _table_fields(table, where, ("name", "arch", "suite", "sha256"))
    pins = item.get("packages")
    if not isinstance(pins, list) or not pins:
        raise InvalidInput(f'{where}: needs packages = ["package=version", ...]')
    packages = []
    for pin in pins:
        package, sep, version = str(pin).partition("=")
        if not sep or not _PACKAGE.match(package) or not _VERSION.match(version):
            raise InvalidInput(f"{where}: package {pin!r} is not package=version")
        packages.append((package, version))
    if QEMU_PACKAGE not in dict(packages):
        raise InvalidInput(f"{where}: packages lack {QEMU_PACKAGE}")
    return LockedVersion(
        name=fields["name"], arch=fields["arch"], suite=fields["suite"],
        packages=tuple(sorted(packages)), sha256=fields["sha256"],
    )  # fmt: skip


def _build_from_toml(table: object, where: str) -> BuiltVersion:
    keys = ("name", "arch", "suite", "source_package", "source_version", "sha256")
    item, fields, where = _table_fields(table, where, keys)
    sanitizers = item.get("sanitizers", [])
    if not isinstance(sanitizers, list) or not all(isinstance(s, str) for s in sanitizers):
        raise InvalidInput(f'{where}: sanitizers must be a list of names ["address", ...]')
    sources = []
    for pin in item.get("sources") or []:
        name, sep, sha = str(pin).partition("=")
        if not sep or not name or not _SHA256.match(sha):
            raise InvalidInput(f"{where}: source {pin!r} is not file=sha256")
        sources.append((name, sha))
    if not sources:
        raise InvalidInput(f'{where}: needs sources = ["file=sha256", ...]')
    return BuiltVersion(
        name=fields["name"], arch=fields["arch"], suite=fields["suite"],
        source_package=fields["source_package"], source_version=fields["source_version"],
        sources=tuple(sorted(sources)), sanitizers=tuple(sanitizers), sha256=fields["sha256"],
    )  # fmt: skip


def read_lock(path: Path) -> Lock:
    """The lock at ``path``; an empty lock if there is no file.

    :raise InvalidInput: the file exists but is not a valid lock.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Lock()
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read the lock file: {err}") from err
    return Lock.from_toml(text, str(path))


def write_lock(path: Path, lock: Lock) -> None:
    """Write ``lock`` to ``path`` atomically (a reader sees the old or the new file)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(lock.to_toml())
    os.replace(tmp, path)


def _quote(text: str) -> str:
    # A JSON string of printable text is a valid TOML basic string.
    return json.dumps(text, ensure_ascii=True)


def _name_key(name: str) -> tuple[tuple[int, object], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-_+]", name))


# -- what the archive serves ---------------------------------------------------------------


def parse_packages_index(text: str) -> dict[str, set[str]]:
    """Package -> every version a Debian ``Packages`` index (or ``apt-cache show``) lists."""
    served: dict[str, set[str]] = {}
    for stanza in re.split(r"\n\s*\n", text):
        package = re.search(r"^Package:\s*(\S+)", stanza, re.MULTILINE)
        version = re.search(r"^Version:\s*(\S+)", stanza, re.MULTILINE)
        if package and version:
            served.setdefault(package.group(1), set()).add(version.group(1))
    return served


def unserved(entry: LockedVersion, served: Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    """The locked ``(package, version)`` pairs the archive no longer serves.

    ``qemu-system-arm`` comes first if it is among them: it is the one a reader cares about.
    """
    missing = [(p, v) for p, v in entry.packages if v not in set(served.get(p, ()))]
    return sorted(missing, key=lambda pv: (pv[0] != QEMU_PACKAGE, pv[0]))


def check_served(entry: LockedVersion, served: Mapping[str, Iterable[str]], lock_name: str) -> None:
    """Raise if the archive no longer serves a package version ``entry`` pins.

    :raise FarmError: one line naming the version, the package, its locked version, the
        suite, what the suite serves instead, and the command that moves the lock.
    """
    missing = unserved(entry, served)
    if not missing:
        return
    package, version = missing[0]
    now = sorted(served.get(package, ()), key=debian_version_key)
    instead = f"it serves {', '.join(now)}" if now else "it has no such package any more"
    more = f" (and {len(missing) - 1} more locked packages)" if len(missing) > 1 else ""
    raise FarmError(
        f"{entry.name}: {lock_name} pins {package} {version} but Debian {entry.suite} "
        f"no longer serves it ({instead}){more}; 'migfuzz qemu install --update {entry.name}' "
        "installs what is served and rewrites the lock"
    )


def lock_status(entry: LockedVersion | BuiltVersion | None, sha256: str) -> str:
    """How an installed binary compares to its lock entry (a ``[[qemu]]`` or a ``[[build]]``
    table): ``locked``, ``differs`` or ``unlocked``."""
    if entry is None:
        return "unlocked"
    return "locked" if entry.sha256 == sha256 else "differs"


def parse_deb_filename(filename: str) -> tuple[str, str, str]:
    """``libattr1_1%3a2.5.2-3_amd64.deb`` -> ``("libattr1", "1:2.5.2-3", "amd64")``.

    :raise InvalidInput: the name is not ``package_version_arch.deb``.
    """
    parts = filename.removesuffix(".deb").split("_")
    if not filename.endswith(".deb") or len(parts) != 3 or not all(parts):
        raise InvalidInput(f"{filename!r} is not a package_version_arch.deb file name")
    return parts[0], urllib.parse.unquote(parts[1]), parts[2]


# -- Debian version strings ----------------------------------------------------------------


def upstream_version(version: str) -> str:
    """The QEMU release in a Debian version: ``1:10.0.2+ds-2+deb13u1~bpo12+1`` -> ``10.0.2``.

    Drops the epoch, the Debian revision and a repack suffix (``+ds``, ``+dfsg``).
    """
    v = version.partition(":")[2] if ":" in version else version
    if "-" in v:
        v = v.rsplit("-", 1)[0]
    return re.sub(r"[+~](?:ds|dfsg).*$", "", v)


def version_series(version: str) -> str:
    """The release series of an upstream version: ``10.0.2`` -> ``10.0``."""
    return ".".join(version.split(".")[:2])


def _char_order(c: str) -> int:
    if c == "~":
        return -1
    if c.isalpha():
        return ord(c)
    return ord(c) + 256


def _leading(text: str, *, digits: bool) -> str:
    """The longest prefix of ``text`` made of digits (or of non-digits)."""
    n = 0
    while n < len(text) and text[n].isdigit() == digits:
        n += 1
    return text[:n]


def _compare_part(a: str, b: str) -> int:
    """dpkg's comparison of an upstream version or revision."""
    while a or b:
        na, nb = _leading(a, digits=False), _leading(b, digits=False)
        for i in range(max(len(na), len(nb))):
            ca = _char_order(na[i]) if i < len(na) else 0
            cb = _char_order(nb[i]) if i < len(nb) else 0
            if ca != cb:
                return -1 if ca < cb else 1
        a, b = a[len(na) :], b[len(nb) :]
        da, db = _leading(a, digits=True), _leading(b, digits=True)
        if int(da or 0) != int(db or 0):
            return -1 if int(da or 0) < int(db or 0) else 1
        a, b = a[len(da) :], b[len(db) :]
    return 0


def compare_versions(a: str, b: str) -> int:
    """Compare two Debian versions as dpkg does: negative, zero or positive."""

    def split(v: str) -> tuple[int, str, str]:
        epoch, _, rest = v.rpartition(":") if ":" in v else ("0", "", v)
        upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
        return int(epoch or 0), upstream, revision

    ea, ua, ra = split(a)
    eb, ub, rb = split(b)
    if ea != eb:
        return -1 if ea < eb else 1
    return _compare_part(ua, ub) or _compare_part(ra, rb)


#: Sort key for Debian versions: ``sorted(versions, key=debian_version_key)``.
debian_version_key = functools.cmp_to_key(compare_versions)

__all__ = [
    "LOCK_FORMAT",
    "QEMU_PACKAGE",
    "BuiltVersion",
    "Lock",
    "LockedVersion",
    "check_served",
    "compare_versions",
    "debian_version_key",
    "lock_status",
    "parse_deb_filename",
    "parse_packages_index",
    "read_lock",
    "unserved",
    "upstream_version",
    "version_series",
    "write_lock",
]
