"""Which URI a migration takes: ``file:`` where the version has it and a plain file can
be named, ``exec:cat`` otherwise (a fifo, a path with a comma, an older QEMU)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from fuzz.run.runner import load_uri, save_to


def test_a_version_with_file_uris_reads_a_plain_file_itself(tmp_path: Path) -> None:
    stream = tmp_path / "s.stream"
    stream.write_bytes(b"QEVM")
    assert load_uri(stream, file_uri=True) == f"file:{stream}"
    assert load_uri(stream, file_uri=False).startswith("exec:cat ")


@pytest.mark.parametrize("kind", ["fifo", "missing", "comma"])
def test_anything_a_file_uri_cannot_name_goes_through_cat(tmp_path: Path, kind: str) -> None:
    stream = tmp_path / ("a,b.stream" if kind == "comma" else "s.stream")
    if kind == "fifo":
        os.mkfifo(stream)
    elif kind == "comma":
        stream.write_bytes(b"QEVM")
    assert load_uri(stream, file_uri=True).startswith("exec:cat ")


class _Monitor:
    """Just enough of a QemuMachine for :func:`save_to`: records the URI, completes."""

    returncode = None

    def __init__(self) -> None:
        self.uris: list[str] = []

    async def execute(self, command: str, args: Any = None) -> Any:
        return {"status": "postmigrate"} if command == "query-status" else {}

    async def execute_until(self, command: str, args: Any, **_kw: Any) -> Any:
        self.uris.append(args["uri"])
        return {"status": "completed"}


@pytest.mark.parametrize(
    ("name", "file_uri", "scheme"),
    [("s.stream", True, "file:"), ("s.stream", False, "exec:"), ("a,b.stream", True, "exec:")],
)
def test_a_save_takes_a_file_uri_only_where_it_can(
    tmp_path: Path, name: str, file_uri: bool, scheme: str
) -> None:
    vm = _Monitor()
    status, _ = asyncio.run(save_to(vm, tmp_path / name, 5.0, file_uri=file_uri))  # type: ignore[arg-type]
    assert status == "completed"
    assert [u.split(":")[0] + ":" for u in vm.uris] == [scheme]
