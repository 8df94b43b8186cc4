"""A QEMU binary as a plain value: how to run it, its content hash, version order.

What identifies a QEMU of the farm or a user's own build, apart from the modules that
install (:mod:`fuzz.versions.farm`) or start (:mod:`fuzz.run.machine`) one: the corpus,
the store and the strategies need the value, never the processes. Nothing here starts a
process.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fuzz.core.command import data_dir_args

#: The environment of a sanitizer build's QEMU (an option the user set wins): a report ends
#: the process by SIGABRT, so the step is a crash whose stderr holds the report, with
#: function names (gcc's runtime symbolizes from the binary's debug information). Leaks
#: are not reported: QEMU frees little at exit, by design.
SANITIZER_OPTIONS: dict[str, str] = {
    "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:symbolize=1:print_summary=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:abort_on_error=1:symbolize=1",
}


@dataclass(frozen=True)
class QemuBinary:
    """How to run one QEMU version.

    ``loader`` and ``library_path`` are set for a Debian root (the root's own ``ld.so``
    runs the binary); a user's own build runs as it is. ``sanitizers`` names the
    ``-fsanitize`` runtimes a build from source has (``address``, ``undefined``).
    """

    name: str
    path: Path
    origin: str
    loader: Path | None = None
    library_path: tuple[Path, ...] = ()
    data_dir: Path | None = None
    module_dir: Path | None = None
    sanitizers: tuple[str, ...] = ()

    def command(self) -> list[str]:
        """The argv prefix that starts this QEMU (before any QEMU option)."""
        argv: list[str] = []
        if self.loader is not None:
            argv += [str(self.loader), "--library-path", ":".join(map(str, self.library_path))]
        argv.append(str(self.path))
        if self.data_dir is not None:
            argv += data_dir_args(self.data_dir)
        return argv

    def environment(self) -> dict[str, str]:
        """The environment QEMU runs with: ours, plus this root's module folder, and for a
        sanitizer build the options that make a report a crash (:data:`SANITIZER_OPTIONS`)."""
        env = dict(os.environ)
        if self.module_dir is not None:
            env["QEMU_MODULE_DIR"] = str(self.module_dir)
        if self.sanitizers:
            for key, value in SANITIZER_OPTIONS.items():
                env.setdefault(key, value)
        return env

    def content_hash(self) -> str:
        """SHA-256 of the binary: the key of its capability probe and of reproducers."""
        return file_sha256(self.path)

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
            **({"sanitizers": list(self.sanitizers)} if self.sanitizers else {}),
        }


_hash_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, remembered while its size and modification time stay."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def version_sort_key(name: str) -> tuple[tuple[int, object], ...]:
    """Sort '5.2' < '7.2' < '10.0' < '11.1' < 'dev' (numbers numerically, words after)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-_+]", name))
