"""The farm's pure logic: names, sorting, user binaries, config files, apt sources."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fuzz.core.binary import version_sort_key
from fuzz.errors import UsageError
from fuzz.versions.farm import (
    ArchiveIndex,
    Farm,
    Offer,
    check_version_name,
    config_binaries,
    debian_mirror,
    parse_qemu_option,
)
from fuzz.versions.lock import Lock


def test_versions_sort_numerically_then_words() -> None:
    names = ["11.1", "dev", "5.2", "10.0", "7.2", "10.0-rc1"]
    assert sorted(names, key=version_sort_key) == ["5.2", "7.2", "10.0", "10.0-rc1", "11.1", "dev"]


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "has space", "-flag"])
def test_bad_version_names_are_refused(bad: str) -> None:
    with pytest.raises(UsageError):
        check_version_name(bad)


@pytest.mark.parametrize("spec", ["dev", "dev=", "=/bin/true", "dev=/nonexistent/qemu"])
def test_bad_qemu_option(spec: str) -> None:
    with pytest.raises(UsageError, match="--qemu"):
        parse_qemu_option(spec)


def test_a_non_qemu_binary_is_refused_by_name(tmp_path: Path) -> None:
    fake = tmp_path / "qemu-system-aarch64"
    fake.write_text("#!/bin/sh\necho hello\n")
    fake.chmod(0o755)
    with pytest.raises(UsageError, match="not a QEMU binary"):
        parse_qemu_option(f"dev={fake}")


def test_a_user_binary_that_says_qemu_is_accepted(tmp_path: Path) -> None:
    fake = tmp_path / "qemu"
    fake.write_text("#!/bin/sh\necho 'QEMU emulator version 99.0.0'\n")
    fake.chmod(0o755)
    binary = parse_qemu_option(f"dev={fake}")
    assert binary.name == "dev" and binary.origin == "user"
    assert binary.command() == [str(fake.resolve())]


def test_config_file_names_user_binaries(tmp_path: Path) -> None:
    fake = tmp_path / "qemu"
    fake.write_text("#!/bin/sh\necho 'QEMU emulator version 99.0.0'\n")
    fake.chmod(0o755)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[qemu.dev]\npath = "{fake}"\ndata_dir = "{tmp_path}"\n')
    [binary] = config_binaries(cfg)
    assert binary.name == "dev" and binary.data_dir == tmp_path
    assert binary.command()[-2:] == ["-L", str(tmp_path)]


def test_broken_config_file_is_one_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text("[qemu.dev\n")
    with pytest.raises(UsageError, match="config file"):
        config_binaries(cfg)


def test_half_finished_install_is_not_taken_for_an_installed_version(tmp_path: Path) -> None:
    farm = Farm(cache_dir=tmp_path)
    (farm.qemu_dir / "10.0" / "root").mkdir(parents=True)  # no installed.json marker
    (farm.qemu_dir / ".11.1.partial-123").mkdir()
    assert farm.installed() == {}
    with pytest.raises(UsageError, match=r"unknown QEMU version '10\.0'.*qemu install 10\.0"):
        farm.get("10.0")


def test_complete_install_is_found(tmp_path: Path) -> None:
    farm = Farm(cache_dir=tmp_path)
    root = farm.qemu_dir / "7.2"
    root.mkdir(parents=True)
    (root / "installed.json").write_text(
        json.dumps({"name": "7.2", "origin": "debian:bookworm", "loader": "lib/x/ld.so"})
    )
    binary = farm.get("7.2")
    assert binary.loader == root / "root" / "lib/x/ld.so"
    assert binary.command()[1] == "--library-path"


def test_unknown_debian_version_to_install(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no Debian QEMU 'dev' to install: give one of 5\.2"):
        Farm(cache_dir=tmp_path, lock_file=None).install(["dev"])


def test_a_release_no_suite_serves_names_what_its_series_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offers = (
        Offer("bookworm-backports", "1:10.0.2+ds-2+deb13u1~bpo12+1"),
        Offer("trixie", "1:10.0.13+ds-0+deb13u1"),
        Offer("sid", "1:11.1.3+ds-1"),
    )
    index = ArchiveIndex("http://deb.example/debian", "amd64", offers, ("bullseye-backports",), 0)
    farm = Farm(cache_dir=tmp_path, lock_file=None)
    monkeypatch.setattr(farm, "available", lambda **_kw: index)
    with pytest.raises(UsageError) as info:
        farm.install(["10.0.9"])
    assert str(info.value) == (
        "no Debian QEMU '10.0.9' to install: no suite serves it; the 10.0 series has "
        "10.0.2 (bookworm-backports: 1:10.0.2+ds-2+deb13u1~bpo12+1), "
        "10.0.13 (trixie: 1:10.0.13+ds-0+deb13u1)"
    )
    plan = farm._plan("1:10.0.2+ds-2+deb13u1~bpo12+1", Lock(), "amd64", update=False, status=print)
    assert (plan.name, plan.suite) == ("10.0.2", "bookworm-backports")
    assert plan.pins() == ["qemu-system-arm=1:10.0.2+ds-2+deb13u1~bpo12+1"]


def test_mirror_comes_from_the_systems_deb822_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIGFUZZ_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_from_legacy_sources_list_and_env_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIGFUZZ_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://m.example/debian bookworm main\n"
    )
    assert debian_mirror(tmp_path) == "http://m.example/debian"
    monkeypatch.setenv("MIGFUZZ_DEBIAN_MIRROR", "http://other.example/debian/")
    assert debian_mirror(tmp_path) == "http://other.example/debian"


def test_no_mirror_is_a_farm_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fuzz.errors import FarmError

    monkeypatch.delenv("MIGFUZZ_DEBIAN_MIRROR", raising=False)
    with pytest.raises(FarmError, match="MIGFUZZ_DEBIAN_MIRROR"):
        debian_mirror(tmp_path)
