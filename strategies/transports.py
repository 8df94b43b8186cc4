"""Live migrations for a pair of versions: only what both offer, only what QEMU accepts.

:func:`live_migrations` draws a :class:`~fuzz.core.live.LiveMigration` from the two
versions' probed :class:`~fuzz.core.capabilities.MigrationFacts`: a capability, a parameter
or a value (a multifd compression, a zero-page detection) is drawn only if *both* offer it,
and the combinations QEMU refuses are never drawn (``fuzz.core.live``'s list, with the
commits that set each rule: postcopy with multifd only when both are 10.1 or later,
mapped-ram only over a file and without xbzrle, postcopy or compression, multifd and xbzrle
never together, postcopy and return-path only over a socket).

Every choice is a local draw that shrinks to "off" or to the first option, so a drawn
migration shrinks toward the plain unix socket with no capability (``LiveMigration()``).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from fuzz.core.capabilities import Capabilities
from fuzz.core.live import (
    POSTCOPY_WITH_MULTIFD_FROM,
    LiveMigration,
    Multifd,
    Postcopy,
    Transport,
)

__all__ = ["XBZRLE_CACHE_SIZES", "live_migrations"]

#: xbzrle cache sizes drawn (powers of 2, at least a page; small against the guests' RAM).
XBZRLE_CACHE_SIZES = (1 << 16, 1 << 20, 1 << 23)
#: When postcopy is switched on, in ms after ``migrate``: at once first (it then surely
#: runs before precopy could converge).
_POSTCOPY_AFTER_MS = (0, 5, 50)
#: The most multifd channels drawn.
_MOST_CHANNELS = 4


@dataclass(frozen=True)
class _Both:
    """What two versions both offer."""

    capabilities: frozenset[str]
    parameters: frozenset[str]
    compressions: tuple[str, ...]
    zero_pages: tuple[str, ...]
    file: bool
    postcopy_with_multifd: bool

    @classmethod
    def of(cls, src: Capabilities, dst: Capabilities) -> _Both:
        facts = [c.migration for c in (src, dst)]
        if facts[0] is None or facts[1] is None:
            return cls(frozenset(), frozenset(), (), (), False, False)
        a, b = facts[0], facts[1]
        return cls(
            capabilities=frozenset(a.capabilities) & frozenset(b.capabilities),
            parameters=frozenset(a.parameters) & frozenset(b.parameters),
            compressions=tuple(c for c in a.multifd_compressions if c in b.multifd_compressions),
            zero_pages=tuple(z for z in a.zero_page_detections if z in b.zero_page_detections),
            file=all("file" in c.migration_transports for c in (src, dst)),
            postcopy_with_multifd=min(src.release(), dst.release()) >= POSTCOPY_WITH_MULTIFD_FROM,
        )

    def offers(self, capability: str) -> bool:
        return capability in self.capabilities


def live_migrations(src: Capabilities, dst: Capabilities) -> st.SearchStrategy[LiveMigration]:
    """Live migrations from version ``src`` to ``dst`` that both offer and QEMU accepts.

    Shrinks toward ``LiveMigration()``: a unix socket, no capability but ``events``.
    """
    return _live(_Both.of(src, dst))


@st.composite
def _live(draw: st.DrawFn, both: _Both) -> LiveMigration:
    # Every on/off choice is drawn whatever was drawn before and masked after: a draw
    # skipped for one transport would make that transport the shorter, "simpler" choice
    # sequence, and shrinking would then run away from the unix socket.
    transports: list[Transport] = ["unix", "tcp"]
    if both.file:
        transports.append("file")
    transport = draw(st.sampled_from(transports))
    sockets = transport != "file"
    mapped_ram = draw(st.booleans()) and not sockets and both.offers("mapped-ram")
    multifd = None
    want_multifd = draw(st.booleans())
    if want_multifd and both.offers("multifd") and (sockets or mapped_ram):
        compressions = ["none"]
        if not mapped_ram and "multifd-compression" in both.parameters:
            compressions += [c for c in both.compressions if c != "none"]
        multifd = Multifd(
            channels=draw(st.integers(1, _MOST_CHANNELS)),
            compression=draw(st.sampled_from(compressions)),
        )
    xbzrle = None
    want_xbzrle = draw(st.booleans())
    xbzrle_ok = multifd is None and not mapped_ram and "xbzrle-cache-size" in both.parameters
    if want_xbzrle and xbzrle_ok and both.offers("xbzrle"):
        xbzrle = draw(st.sampled_from(XBZRLE_CACHE_SIZES))
    postcopy = None
    want_postcopy = draw(st.booleans())
    postcopy_ok = sockets and (multifd is None or both.postcopy_with_multifd)
    if want_postcopy and postcopy_ok and both.offers("postcopy-ram"):
        postcopy = Postcopy(
            after_ms=draw(st.sampled_from(_POSTCOPY_AFTER_MS)), after_first_pass=draw(st.booleans())
        )
    zero = None
    want_zero = draw(st.booleans())
    if want_zero and both.zero_pages and "zero-page-detection" in both.parameters:
        zero = draw(st.sampled_from([z for z in both.zero_pages if z != "multifd" or multifd]))
    return_path = draw(st.booleans()) and sockets and both.offers("return-path")
    auto_converge = draw(st.booleans()) and both.offers("auto-converge")
    return LiveMigration(
        transport=transport,
        multifd=multifd,
        xbzrle_cache_size=xbzrle,
        postcopy=postcopy,
        zero_page_detection=zero,
        return_path=return_path,
        auto_converge=auto_converge,
        mapped_ram=mapped_ram,
    )
