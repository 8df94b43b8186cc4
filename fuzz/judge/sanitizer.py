"""Sanitizer reports in a QEMU's stderr: AddressSanitizer, UndefinedBehaviorSanitizer,
LeakSanitizer.

A QEMU built with ``migfuzz qemu build --sanitize`` aborts on its first report (the
farm runs it with ``abort_on_error=1``: :data:`fuzz.core.binary.SANITIZER_OPTIONS`), so
the step is a crash and its stderr holds the report. :func:`find_report` reads it into a
:class:`SanitizerReport`: the tool, the kind of error (``heap-use-after-free``, ``SEGV``,
``signed-integer-overflow``), QEMU's own innermost functions of the first stack (frames of
the sanitizer runtime, libc and glib skipped) and the whole text. Its
:meth:`~SanitizerReport.signature_detail` is what a crashed step's signature says:
``asan heap-use-after-free in vmstate_load_state < cpu_post_load``.

Pure: it reads text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: How many of QEMU's function names a signature shows, innermost first.
SIGNATURE_FRAMES = 2
#: The longest report kept (a report with shadow bytes and three stacks is ~5 KB).
MAX_REPORT_CHARS = 64 * 1024

_TOOLS = {
    "AddressSanitizer": "asan",
    "LeakSanitizer": "lsan",
    "UndefinedBehaviorSanitizer": "ubsan",
    "ThreadSanitizer": "tsan",
}
_ERROR = re.compile(r"^==\d+==ERROR: (\w+Sanitizer): (.*)$", re.MULTILINE)
_DEADLY = re.compile(r"^(\w+Sanitizer):DEADLYSIGNAL$", re.MULTILINE)
_RUNTIME_ERROR = re.compile(r"^(?:\S+:\d+(?::\d+)?: )?runtime error: (.*)$", re.MULTILINE)
_FRAME = re.compile(r"^\s*#(\d+) 0x[0-9a-fA-F]+(?: in (\S+))?(?: (.*))?$")
_END = re.compile(r"^==\d+==ABORTING\s*$", re.MULTILINE)
_RUNTIME_NOTE = re.compile(
    r"^(?:==\d+==WARNING: .*|False positive error reports may follow"
    r"|For details see https://github\.com/google/sanitizers/issues/\d+)\n?",
    re.MULTILINE,
)
_SUMMARY = re.compile(r"^SUMMARY: \w+Sanitizer: .*$", re.MULTILINE)

#: Function-name prefixes of frames that are not QEMU's: the sanitizer runtimes, libc, glib.
_FOREIGN_FUNCTIONS = (
    "__interceptor_", "___interceptor_", "__asan", "__ubsan", "__lsan", "__sanitizer",
    "__tsan", "__libc_", "__GI_", "__memmove_", "__memcpy_", "__memset_", "__strlen_",
    "__strcmp_", "__memcmp_", "_start", "g_", "_g_", "start_thread", "clone",
)  # fmt: skip
#: Functions the runtimes intercept, named plainly by newer compilers.
_INTERCEPTED = frozenset({
    "malloc", "calloc", "realloc", "free", "memcpy", "memmove", "memset", "memcmp",
    "strlen", "strcmp", "strncmp", "strcpy", "strdup", "abort", "raise",
})  # fmt: skip
#: Where foreign frames come from: the runtimes' sources, libc, glib, the dynamic loader.
_FOREIGN_PLACES = (
    "libsanitizer", "libasan", "libubsan", "liblsan", "libtsan", "libc.so", "libc-",
    "libglib", "libgobject", "ld-linux", "/sysdeps/", "glibc",
)  # fmt: skip

#: UndefinedBehaviorSanitizer's messages, as the check names ``-fsanitize=`` uses.
_UBSAN_KINDS = (
    ("shift exponent", "shift-out-of-bounds"),
    ("left shift of", "shift-out-of-bounds"),
    ("signed integer overflow", "signed-integer-overflow"),
    ("negation of", "signed-integer-overflow"),
    ("division by zero", "integer-divide-by-zero"),
    ("misaligned address", "alignment"),
    ("out of bounds for type", "bounds"),
    ("null pointer", "null"),
    ("not a valid value for type", "invalid-value"),
    ("pointer overflow", "pointer-overflow"),
    ("applying non-zero offset", "pointer-overflow"),
    ("applying zero offset to null pointer", "pointer-overflow"),
    ("outside the range of representable values", "float-cast-overflow"),
    ("execution reached an unreachable program point", "unreachable"),
    ("reached the end of a value-returning function", "missing-return"),
    ("variable length array bound", "vla-bound"),
    ("nonnull", "nonnull-attribute"),
)  # fmt: skip


@dataclass(frozen=True)
class SanitizerReport:
    """One sanitizer report: which tool, what error, where in QEMU, and its whole text."""

    tool: str
    """``asan``, ``ubsan``, ``lsan`` (``tsan``)."""
    kind: str
    """The error: ``heap-use-after-free``, ``SEGV``, ``shift-out-of-bounds``, ``memory-leak``."""
    frames: tuple[str, ...]
    """QEMU's own functions of the first stack, innermost first."""
    text: str
    """The report as the sanitizer printed it."""

    def signature_detail(self, depth: int = SIGNATURE_FRAMES) -> str:
        """``asan heap-use-after-free in vmstate_load_state < cpu_post_load``: the tool, the
        kind and up to ``depth`` functions, innermost first, no address or line number."""
        where = " < ".join(self.frames[:depth])
        return f"{self.tool} {self.kind}" + (f" in {where}" if where else "")

    def to_json(self) -> dict[str, Any]:
        """The report's fields without its text (a step's ``details["sanitizer"]``)."""
        return {"tool": self.tool, "kind": self.kind, "frames": list(self.frames)}

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> SanitizerReport | None:
        """The report a step's details hold (``sanitizer`` and ``sanitizer_report``), or
        None if they hold none or a malformed one."""
        data, text = details.get("sanitizer"), details.get("sanitizer_report", "")
        if not isinstance(data, dict):
            return None
        tool, kind, frames = data.get("tool"), data.get("kind"), data.get("frames", [])
        if not (isinstance(tool, str) and isinstance(kind, str) and isinstance(frames, list)):
            return None
        return cls(tool, kind, tuple(str(f) for f in frames), str(text))


def find_report(stderr: str) -> SanitizerReport | None:
    """The first sanitizer report in a QEMU's stderr text, or None if there is none."""
    error = _ERROR.search(stderr)
    runtime = _RUNTIME_ERROR.search(stderr)
    if runtime is not None and (error is None or runtime.start() < error.start()):
        return _ubsan_report(stderr, runtime)
    if error is None:
        return None
    name, message = error.group(1), error.group(2)
    start = _report_start(stderr, error.start())
    text = _report_text(stderr, start)
    tool = _TOOLS.get(name, name.lower())
    if name == "LeakSanitizer" or "detected memory leaks" in message:
        kind = "memory-leak"
        tool = "lsan"
    else:
        kind = message.split()[0] if message.split() else "error"
        if kind == "attempting":  # "attempting double-free on 0x..."
            kind = message.split()[1]
    return SanitizerReport(tool, kind, qemu_frames(text[error.end() - start :]), text)


def without_sanitizer_lines(stderr: str, report: SanitizerReport | None = None) -> str:
    """``stderr`` without ``report``'s text and without the runtime's own notes
    (``==123==WARNING: ASan doesn't fully support makecontext/swapcontext ...``, printed
    by every run of a sanitizer build): what is left is QEMU's own lines."""
    if report is not None:
        stderr = stderr.replace(report.text, "")
    return _RUNTIME_NOTE.sub("", stderr)


def _ubsan_report(stderr: str, runtime: re.Match[str]) -> SanitizerReport:
    start = stderr.rfind("\n", 0, runtime.start()) + 1
    text = _report_text(stderr, start)
    message = runtime.group(1)
    kind = next((k for phrase, k in _UBSAN_KINDS if phrase in message), "undefined-behavior")
    return SanitizerReport("ubsan", kind, qemu_frames(text[runtime.end() - start :]), text)


def _report_start(stderr: str, error_at: int) -> int:
    """Where the report whose error line starts at ``error_at`` begins: with the rule of
    ``=`` and the ``DEADLYSIGNAL`` line just before it, if there."""
    start = error_at
    for line in reversed(stderr[:error_at].splitlines(keepends=True)[-2:]):
        shown = line.strip()
        if not (shown.startswith("=====") or _DEADLY.fullmatch(shown)):
            break
        start -= len(line)
    return start


def _report_text(stderr: str, start: int) -> str:
    """The report from ``start`` to its ``ABORTING`` line, else its summary, else the end."""
    end_match = _END.search(stderr, start) or _SUMMARY.search(stderr, start)
    end = end_match.end() if end_match else len(stderr)
    return stderr[start:end].rstrip()[:MAX_REPORT_CHARS]


def qemu_frames(text: str) -> tuple[str, ...]:
    """QEMU's own function names in the first stack of ``text``, innermost first.

    The first stack is the run of ``#N`` lines from the first ``#0``; frames of the
    sanitizer runtime, libc, glib and the loader, and frames without a function name, are
    skipped.
    """
    frames: list[str] = []
    started = False
    for line in text.splitlines():
        m = _FRAME.match(line)
        if m is None:
            if started and line.strip():
                break
            continue
        if m.group(1) == "0" and started:
            break
        started = True
        function, place = m.group(2), m.group(3) or ""
        if function is None or _foreign(function, place):
            continue
        frames.append(function)
    return tuple(frames)


def _foreign(function: str, place: str) -> bool:
    """Whether a frame belongs to a sanitizer runtime, libc, glib or the loader."""
    return (
        function.startswith(_FOREIGN_FUNCTIONS)
        or function in _INTERCEPTED
        or any(p in place for p in _FOREIGN_PLACES)
    )
