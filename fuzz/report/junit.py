"""``migfuzz regress --junit-xml``: the regress verdicts as a JUnit XML file for CI.

One ``<testcase>`` per corpus entry (named by its folder), so a CI system shows which
reproducer changed. Whether an entry fails is decided by :func:`fuzz.triage.replay.is_failure`,
the very rule ``regress`` uses for its exit status; this module only spells it in JUnit:
a failure is ``<failure>``, an outcome that changed with the binary (not a failure unless
``--strict``) is ``<skipped>``, and every case carries what regress printed for it in
``<system-out>``. The XML is built with :mod:`xml.etree`, so QEMU messages are escaped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fuzz.triage.replay import RegressKind, is_failure

__all__ = ["CLASSNAME", "JUnitCase", "junit_xml", "regress_case", "write_junit"]

CLASSNAME = "migfuzz.regress"


@dataclass(frozen=True)
class JUnitCase:
    """One entry's result: ``status`` is ``passed``, ``failed`` or ``skipped``."""

    name: str
    status: str
    message: str
    output: str
    seconds: float = 0.0


def regress_case(
    name: str, kind: RegressKind | None, output: str, *, strict: bool, seconds: float = 0.0
) -> JUnitCase:
    """How ``regress`` judged one entry, as a JUnit case.

    :param kind: the entry's regress kind; None for an entry that could not be replayed
        (corrupt, or its versions are missing), which ``regress`` counts as a failure.
    :param output: what ``regress`` printed for the entry.
    """
    text = output.strip()
    if kind is None:
        return JUnitCase(name, "failed", text or "entry could not be replayed", output, seconds)
    if is_failure(kind, strict=strict):
        return JUnitCase(name, "failed", f"{kind}: {text}" if text else str(kind), output, seconds)
    if kind is RegressKind.SAME:
        return JUnitCase(name, "passed", "", output, seconds)
    return JUnitCase(name, "skipped", str(kind), output, seconds)


def junit_xml(cases: Sequence[JUnitCase], *, suite: str = CLASSNAME) -> str:
    """A JUnit XML document with one ``<testsuite>`` holding ``cases``."""
    root = ET.Element("testsuites")
    failures = sum(c.status == "failed" for c in cases)
    skipped = sum(c.status == "skipped" for c in cases)
    total = sum(c.seconds for c in cases)
    node = ET.SubElement(root, "testsuite", {
        "name": suite, "tests": str(len(cases)), "failures": str(failures), "errors": "0",
        "skipped": str(skipped), "time": f"{total:.3f}",
    })  # fmt: skip
    for case in cases:
        element = ET.SubElement(node, "testcase", {
            "name": case.name, "classname": CLASSNAME, "time": f"{case.seconds:.3f}",
        })  # fmt: skip
        if case.status == "failed":
            failure = ET.SubElement(element, "failure", {"message": _one_line(case.message),
                                                         "type": "regress"})  # fmt: skip
            failure.text = _xml_safe(case.message)
        elif case.status == "skipped":
            ET.SubElement(element, "skipped", {"message": _one_line(case.message)})
        if case.output:
            ET.SubElement(element, "system-out").text = _xml_safe(case.output)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(cases: Sequence[JUnitCase], path: Path) -> None:
    """Write :func:`junit_xml` to ``path`` (atomically)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(junit_xml(cases), encoding="utf-8")
    tmp.replace(path)


def _one_line(text: str) -> str:
    return _xml_safe(" ".join(text.split()))[:500]


def _xml_safe(text: str) -> str:
    """Drop the control characters XML 1.0 cannot hold (QEMU output may have some)."""
    return "".join(c for c in text if c in "\t\n\r" or ord(c) >= 0x20)
