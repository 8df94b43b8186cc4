"""GNU ``as`` for AArch64 as a test oracle: assemble a listing, return the raw bytes."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest


def gnu_as(source: str) -> bytes:
    """Assemble ``source`` with GNU as (warnings are errors) and return the raw section bytes."""
    gas = shutil.which("aarch64-linux-gnu-as")
    objcopy = shutil.which("aarch64-linux-gnu-objcopy")
    if gas is None or objcopy is None:
        pytest.skip("aarch64-linux-gnu-as/objcopy not on PATH (Debian binutils-aarch64-linux-gnu)")
    with tempfile.TemporaryDirectory() as tmp:
        src, obj, binary = Path(tmp, "guest.s"), Path(tmp, "guest.o"), Path(tmp, "guest.bin")
        src.write_text(source)
        run = subprocess.run(
            [gas, "--fatal-warnings", "-o", str(obj), str(src)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        assert not run.stderr, run.stderr
        subprocess.run([objcopy, "-O", "binary", str(obj), str(binary)], check=True)
        return binary.read_bytes()
