"""The QEMU lock file: round trip, what a broken file says, and what the archive no longer serves.

Pure logic: the archive is a fake ``Packages`` index, no apt and no network.
"""

from __future__ import annotations

import itertools
import json
import platform
from pathlib import Path

import pytest

from fuzz.errors import FarmError, InvalidInput
from fuzz.versions.farm import DEBIAN_SUITES, Farm, Offer
from fuzz.versions.lock import (
    Lock,
    LockedVersion,
    check_served,
    compare_versions,
    lock_status,
    parse_deb_filename,
    parse_packages_index,
    read_lock,
    unserved,
    upstream_version,
    write_lock,
)

SHA_A = "a" * 64
SHA_B = "b" * 64

ENTRY = LockedVersion(
    name="5.2",
    arch="amd64",
    suite="bullseye",
    packages=(
        ("libc6", "2.31-13+deb11u11"),
        ("libglib2.0-0", "2.66.8-1+deb11u6"),
        ("qemu-system-arm", "1:5.2+dfsg-11+deb11u3"),
    ),
    sha256=SHA_A,
)

# Two stanzas of a Packages index as the archive serves it after a point release: libc6 and
# glib as locked, qemu-system-arm one Debian revision further.
PACKAGES = """\
Package: libc6
Source: glibc
Version: 2.31-13+deb11u11
Architecture: amd64
Description: GNU C Library: Shared libraries

Package: libglib2.0-0
Version: 2.66.8-1+deb11u6
Architecture: amd64

Package: qemu-system-arm
Source: qemu
Version: 1:5.2+dfsg-11+deb11u4
Architecture: amd64
Depends: libc6 (>= 2.29), qemu-system-common (= 1:5.2+dfsg-11+deb11u4)
"""


def test_lock_round_trips_through_its_file(tmp_path: Path) -> None:
    other = LockedVersion(
        name="11.1.2", arch="amd64", suite="forky",
        packages=(("qemu-system-arm", "1:11.1.2+ds-3"),), sha256=SHA_B,
    )  # fmt: skip
    lock = Lock().with_entry(other).with_entry(ENTRY)
    path = tmp_path / "qemu.lock"
    write_lock(path, lock)
    assert read_lock(path) == lock
    assert [v.name for v in lock.versions] == ["5.2", "11.1.2"]  # numeric order, not text
    text = path.read_text()
    assert '"qemu-system-arm=1:5.2+dfsg-11+deb11u3",' in text and "format = 1" in text


def test_an_entry_replaces_the_one_of_the_same_name_and_arch() -> None:
    lock = Lock().with_entry(ENTRY)
    moved = LockedVersion(ENTRY.name, ENTRY.arch, ENTRY.suite, ENTRY.packages, SHA_B)
    arm = LockedVersion(ENTRY.name, "arm64", ENTRY.suite, ENTRY.packages, SHA_B)
    lock = lock.with_entry(moved).with_entry(arm)
    assert lock.get("5.2", "amd64") == moved and lock.get("5.2", "arm64") == arm
    assert len(lock.versions) == 2 and lock.get("7.2", "amd64") is None
    assert ENTRY.qemu_version == "1:5.2+dfsg-11+deb11u3"
    assert ENTRY.pins()[0] == "libc6=2.31-13+deb11u11"


def test_no_lock_file_is_an_empty_lock(tmp_path: Path) -> None:
    assert read_lock(tmp_path / "qemu.lock") == Lock()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[qemu\n", "not a lock file"),
        ("format = 9\n", "lock format 9"),
        ('format = 1\n[[qemu]]\nname = "5.2"\n', r"entry 1: needs arch"),
        (
            'format = 1\n[[qemu]]\nname = "5.2"\narch = "amd64"\nsuite = "bullseye"\n'
            f'sha256 = "{SHA_A}"\npackages = ["libc6"]\n',
            r"entry 1 \(5\.2\): package 'libc6' is not package=version",
        ),
        (
            'format = 1\n[[qemu]]\nname = "5.2"\narch = "amd64"\nsuite = "bullseye"\n'
            'sha256 = "abc"\npackages = ["libc6=2.31"]\n',
            "is not 64 hex digits",
        ),
        (
            'format = 1\n[[qemu]]\nname = "5.2"\narch = "amd64"\nsuite = "bullseye"\n'
            f'sha256 = "{SHA_A}"\npackages = ["libc6=2.31"]\n',
            "packages lack qemu-system-arm",
        ),
    ],
)
def test_a_broken_lock_is_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        Lock.from_toml(text, "qemu.lock")
    assert "\n" not in str(info.value) and str(info.value).startswith("qemu.lock")


def test_packages_index_lists_every_version() -> None:
    served = parse_packages_index(PACKAGES + "\nPackage: libc6\nVersion: 2.31-13+deb11u10\n")
    assert served["libc6"] == {"2.31-13+deb11u11", "2.31-13+deb11u10"}
    assert served["qemu-system-arm"] == {"1:5.2+dfsg-11+deb11u4"}


def test_a_locked_version_the_archive_no_longer_serves_is_one_line() -> None:
    served = parse_packages_index(PACKAGES)
    assert unserved(ENTRY, served) == [("qemu-system-arm", "1:5.2+dfsg-11+deb11u3")]
    with pytest.raises(FarmError) as info:
        check_served(ENTRY, served, "qemu.lock")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "5.2: qemu.lock pins qemu-system-arm 1:5.2+dfsg-11+deb11u3 but Debian bullseye "
        "no longer serves it (it serves 1:5.2+dfsg-11+deb11u4)"
    )
    assert "migfuzz qemu install --update 5.2" in message


def test_qemu_is_named_first_and_the_rest_are_counted() -> None:
    served = parse_packages_index(PACKAGES.replace("2.66.8-1+deb11u6", "2.66.8-1+deb11u7"))
    with pytest.raises(FarmError, match=r"pins qemu-system-arm .*\(and 1 more locked packages\)"):
        check_served(ENTRY, served, "qemu.lock")
    gone = {k: v for k, v in served.items() if k != "libglib2.0-0"}
    gone["qemu-system-arm"] = {"1:5.2+dfsg-11+deb11u3"}
    with pytest.raises(FarmError, match=r"libglib2\.0-0 2\.66\.8-1.*no such package any more"):
        check_served(ENTRY, gone, "qemu.lock")


def test_a_served_lock_passes() -> None:
    served = parse_packages_index(PACKAGES.replace("deb11u4", "deb11u3"))
    check_served(ENTRY, served, "qemu.lock")


def test_lock_status_compares_the_binary_hash() -> None:
    assert lock_status(ENTRY, SHA_A) == "locked"
    assert lock_status(ENTRY, SHA_B) == "differs"
    assert lock_status(None, SHA_A) == "unlocked"


def test_farm_reports_installs_that_differ_from_or_are_missing_in_the_lock(
    tmp_path: Path,
) -> None:
    lock_file = tmp_path / "qemu.lock"
    farm = Farm(cache_dir=tmp_path / "cache", lock_file=lock_file)
    for name, content in (("5.2", b"five"), ("11.1.2", b"eleven")):
        root = farm.qemu_dir / name / "root/usr/bin"
        root.mkdir(parents=True)
        (root / "qemu-system-aarch64").write_bytes(content)
        (farm.qemu_dir / name / "installed.json").write_text(json.dumps({
            "name": name, "origin": "debian:sid", "loader": "lib/ld.so",
        }))  # fmt: skip
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), "amd64")
    write_lock(
        lock_file, Lock().with_entry(LockedVersion("5.2", arch, "bullseye", ENTRY.packages, SHA_A))
    )
    assert farm.lock_states() == {"5.2": "differs", "11.1.2": "unlocked"}


def test_a_locked_name_installs_as_locked_without_asking_the_archive(tmp_path: Path) -> None:
    farm = Farm(cache_dir=tmp_path, lock_file=None)
    lock = Lock().with_entry(
        LockedVersion("10.0.2", "amd64", "bookworm-backports", ENTRY.packages, SHA_A)
    )
    plan = farm._plan("10.0.2", lock, "amd64", update=False, status=print)
    assert (plan.name, plan.suite, plan.locked) == (
        "10.0.2",
        "bookworm-backports",
        lock.versions[0],
    )
    assert plan.pins() == ENTRY.pins()
    plan = farm._plan("7.2", lock, "amd64", update=False, status=print)
    assert (plan.name, plan.suite, plan.locked, plan.pins()) == (
        "7.2",
        "bookworm",
        None,
        ["qemu-system-arm"],
    )
    with pytest.raises(InvalidInput, match="expected NAME=VERSION"):
        farm._plan("dev=", lock, "amd64", update=False, status=print)


def test_deb_file_names_give_package_and_version() -> None:
    assert parse_deb_filename("libattr1_1%3a2.5.2-3_amd64.deb") == (
        "libattr1",
        "1:2.5.2-3",
        "amd64",
    )
    with pytest.raises(InvalidInput, match=r"not a package_version_arch\.deb"):
        parse_deb_filename("qemu.tar.gz")


def test_debian_versions_compare_as_dpkg_does() -> None:
    ordered = [
        "1.0~rc1", "1.0", "1.0-1", "1:5.2+dfsg-11+deb11u3", "1:10.0.2+ds-2+deb13u1~bpo12+1",
        "1:10.0.13+ds-0+deb13u1", "1:11.1.3+ds-1~bpo13+1", "1:11.1.3+ds-1",
    ]  # fmt: skip
    for a, b in itertools.pairwise(ordered):
        assert compare_versions(a, b) < 0 < compare_versions(b, a), (a, b)
    assert compare_versions("1:7.2+dfsg-7", "1:7.2+dfsg-7") == 0


def test_upstream_versions_and_install_names() -> None:
    assert upstream_version("1:10.0.2+ds-2+deb13u1~bpo12+1") == "10.0.2"
    assert upstream_version("1:7.2+dfsg-7+deb12u18+b3") == "7.2"
    assert Offer("trixie", "1:10.0.13+ds-0+deb13u1").name == "10.0"
    assert Offer("bookworm-backports", "1:10.0.2+ds-2+deb13u1~bpo12+1").name == "10.0.2"
    offer = Offer("forky", "1:11.1.2+ds-3")
    assert offer.name == "11.1.2"
    assert all(offer.matches(s) for s in ("11.1.2", "1:11.1.2+ds-3", "11.1.2+ds-3"))
    assert not offer.matches("11.1")


def test_the_default_install_is_every_suite_and_every_locked_point_release(tmp_path: Path) -> None:
    """A clean checkout's 'qemu install' must install what the committed corpus replays
    on, point releases included (an entry of 10.0.2 -> 10.0 needs 10.0.2)."""
    lock_file = tmp_path / "qemu.lock"
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), "amd64")
    lock = Lock()
    for name, other_arch in (("10.0.2", arch), ("5.2", arch), ("9.9.9", "s390x")):
        lock = lock.with_entry(LockedVersion(name, other_arch, "trixie", ENTRY.packages, SHA_A))
    write_lock(lock_file, lock)
    farm = Farm(cache_dir=tmp_path / "cache", lock_file=lock_file)
    assert farm.default_names() == ["5.2", "7.2", "10.0", "10.0.2", "11.1"]
    assert Farm(cache_dir=tmp_path, lock_file=None).default_names() == list(DEBIAN_SUITES)
