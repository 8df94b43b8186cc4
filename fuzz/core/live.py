"""A running (live) migration as a plain value: how it travels and what it negotiates.

Today's cases save a *paused* machine to a file on version A and load it on B. A
:class:`LiveMigration` says how a *running* guest moves instead: the transport (a unix
socket, TCP on 127.0.0.1, or a file), the capabilities both QEMUs set (multifd with its
channels and compression, xbzrle and its cache, postcopy and when to switch to it, mapped-ram,
return-path, auto-converge) and the parameters that go with them. It is pure data with a JSON
round trip and a one-line :meth:`~LiveMigration.describe`; :mod:`strategies.transports` draws
one from both versions' probed :class:`~fuzz.core.capabilities.MigrationFacts`, and
:mod:`fuzz.run.live` runs it.

The QMP a live migration takes is built here too (:meth:`LiveMigration.setup_commands`,
:meth:`~LiveMigration.incoming_command`, ...), as :class:`QmpCommand` values: it is the
monitor's protocol, not QEMU's command line, so it stays next to the value that decides it
(:mod:`fuzz.core.command` keeps the argv: ``-incoming defer`` and a reproducer's QMP
socket). A reproducer renders the same commands as shell words with :meth:`QmpCommand.shell`
(:mod:`fuzz.corpus.live_repro`).

What QEMU itself allows, per version (``migration/options.c``, ``migrate_caps_check``, and
``migration/migration.c``; commits in QEMU's history):

* postcopy-ram with multifd: refused from 8.1 to 10.0 ("Postcopy is not yet compatible with
  multifd", b405dfff1e), allowed from 10.1 (e274188612); 5.2 and 7.2 took the pair
  without a check, and it was broken there (the reason for the check): never drawn below
  10.1 (:data:`POSTCOPY_WITH_MULTIFD_FROM`);
* multifd with xbzrle: refused from 8.2 ("Multifd is not compatible with xbzrle",
  d869f62975); older versions ignore xbzrle under multifd: never together;
* mapped-ram (9.0, 4ed49feb44): a ``file:`` URI only (a seekable channel), not with xbzrle
  or postcopy, not with multifd compression ("Cannot use compression with mapped-ram");
  multifd over a file only with mapped-ram (``transport_supports_multi_channels``);
* postcopy and return-path need a channel back from the destination: sockets only;
* ``events`` is always set (the runner waits on ``MIGRATION`` events), so not drawn.

Pure: nothing here starts a process, opens a socket or reads a file.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fuzz.core.capabilities import Capabilities
from fuzz.core.counts import counts_under
from fuzz.core.outcome import StepOutcome, Verdict
from fuzz.errors import CorpusError, InvalidInput

__all__ = [
    "FEATURE_COUNT_PREFIX",
    "HEADLINE_MIGRATIONS",
    "LIVE_FORMAT",
    "POSTCOPY_WITH_MULTIFD_FROM",
    "TRANSPORTS",
    "LiveMigration",
    "LiveOutcome",
    "LiveStage",
    "Multifd",
    "NegotiationFailure",
    "Postcopy",
    "QmpCommand",
    "Transport",
    "feature_counts",
    "headline_offers",
    "unsupported",
]

#: The JSON format of :class:`LiveMigration` and :class:`LiveOutcome`.
LIVE_FORMAT = 1

Transport = Literal["unix", "tcp", "file"]
#: Every transport, simplest first (what a drawn migration shrinks toward).
TRANSPORTS: tuple[Transport, ...] = ("unix", "tcp", "file")

#: The first release that takes postcopy-ram and multifd together (QEMU e274188612).
POSTCOPY_WITH_MULTIFD_FROM = (10, 1, 0)
#: The first release that refuses multifd with xbzrle (d869f62975); before it, ignored.
_MULTIFD_XBZRLE_REFUSED_FROM = (8, 2, 0)
#: The host's page size, the smallest xbzrle cache QEMU takes ("Cache size is smaller
#: than target page size").
_PAGE = 4096


@dataclass(frozen=True)
class Multifd:
    """Multifd: RAM over ``channels`` extra connections, compressed with ``compression``
    (a ``MultiFDCompression`` value both builds have)."""

    channels: int = 2
    compression: str = "none"


@dataclass(frozen=True)
class Postcopy:
    """Postcopy-ram, and when the runner switches to it (``migrate-start-postcopy``).

    :param after_ms: this long after ``migrate`` was accepted (0: at once, which makes
        sure the switch happens before precopy could converge).
    :param after_first_pass: instead, once QEMU begins its second pass over RAM (the
        ``MIGRATION_PASS`` event with ``pass`` 2: the first iteration ended). A precopy
        that converges at that very sync completes first; the outcome says whether
        postcopy ran.
    """

    after_ms: int = 0
    after_first_pass: bool = False


@dataclass(frozen=True)
class QmpCommand:
    """One QMP command: its name and arguments, as sent."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The QMP message (``{"execute": ..., "arguments": ...}``)."""
        if not self.arguments:
            return {"execute": self.name}
        return {"execute": self.name, "arguments": self.arguments}

    def shell(self) -> str:
        """The message as one shell word (single-quoted JSON)."""
        return shlex.quote(json.dumps(self.to_json(), separators=(",", ":")))


@dataclass(frozen=True)
class LiveMigration:
    """How a running guest migrates: transport, capabilities and parameters.

    The default is the simplest: a unix socket, no capability but ``events``. Every
    capability is set on *both* QEMUs (QEMU needs multifd, postcopy-ram, mapped-ram and
    return-path on both sides; xbzrle and auto-converge are harmless on the destination).

    :param transport: ``unix`` (a socket file in the case's folder), ``tcp`` (127.0.0.1, a
        port the destination picks) or ``file`` (the source migrates into a file, then the
        destination reads it).
    :param multifd: multifd, its channels and compression; None: off.
    :param xbzrle_cache_size: xbzrle with a cache of this many bytes; None: off.
    :param postcopy: postcopy-ram and when to switch; None: precopy only.
    :param zero_page_detection: the ``zero-page-detection`` parameter (QEMU >= 9.0:
        ``none``, ``legacy``, ``multifd``); None: the version's default, not set.
    :param return_path: the ``return-path`` capability.
    :param auto_converge: the ``auto-converge`` capability (throttles the source's vCPUs).
    :param mapped_ram: the ``mapped-ram`` capability (``file`` transport only).
    :raise InvalidInput: a combination no QEMU takes (see the module's list).
    """

    transport: Transport = "unix"
    multifd: Multifd | None = None
    xbzrle_cache_size: int | None = None
    postcopy: Postcopy | None = None
    zero_page_detection: str | None = None
    return_path: bool = False
    auto_converge: bool = False
    mapped_ram: bool = False

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise InvalidInput(f"live migration {self.describe()}: {'; '.join(problems)}")

    def _problems(self) -> list[str]:
        out = []
        if self.transport not in TRANSPORTS:
            out.append(f"transport={self.transport!r} is not one of {TRANSPORTS}")
        if self.multifd is not None and not 1 <= self.multifd.channels <= 255:
            out.append(f"multifd channels={self.multifd.channels} not in 1..255")
        cache = self.xbzrle_cache_size
        if cache is not None and (cache < _PAGE or cache & (cache - 1)):
            out.append(f"xbzrle_cache_size={cache} is not a power of 2 >= {_PAGE}")
        if self.multifd is not None and cache is not None:
            out.append("multifd with xbzrle")
        if self.postcopy is not None and self.postcopy.after_ms < 0:
            out.append(f"postcopy after_ms={self.postcopy.after_ms} < 0")
        if self.zero_page_detection == "multifd" and self.multifd is None:
            out.append("zero-page-detection=multifd without multifd")
        return out + self._file_problems()

    def _file_problems(self) -> list[str]:
        out = []
        cache = self.xbzrle_cache_size
        if self.mapped_ram:
            if self.transport != "file":
                out.append("mapped-ram needs the file transport")
            if cache is not None:
                out.append("mapped-ram with xbzrle")
            if self.multifd is not None and self.multifd.compression != "none":
                out.append("mapped-ram with multifd compression")
        if self.transport == "file":
            if self.multifd is not None and not self.mapped_ram:
                out.append("multifd over a file needs mapped-ram")
            if self.postcopy is not None:
                out.append("postcopy over a file (no return channel)")
            if self.return_path:
                out.append("return-path over a file (no return channel)")
        return out

    # -- what QEMU is told ----------------------------------------------------------------

    def capabilities(self) -> dict[str, bool]:
        """The capabilities set on both sides, ``events`` first; only those turned on."""
        caps = {"events": True}
        if self.multifd is not None:
            caps["multifd"] = True
        if self.xbzrle_cache_size is not None:
            caps["xbzrle"] = True
        if self.postcopy is not None:
            caps["postcopy-ram"] = True
        if self.return_path:
            caps["return-path"] = True
        if self.auto_converge:
            caps["auto-converge"] = True
        if self.mapped_ram:
            caps["mapped-ram"] = True
        return caps

    def parameters(self) -> dict[str, Any]:
        """The parameters set on both sides (none for the simplest migration)."""
        params: dict[str, Any] = {}
        if self.multifd is not None:
            params["multifd-channels"] = self.multifd.channels
            if self.multifd.compression != "none":
                params["multifd-compression"] = self.multifd.compression
        if self.xbzrle_cache_size is not None:
            params["xbzrle-cache-size"] = self.xbzrle_cache_size
        if self.zero_page_detection is not None:
            params["zero-page-detection"] = self.zero_page_detection
        return params

    def setup_commands(self) -> tuple[QmpCommand, ...]:
        """What each side runs before the migration starts: capabilities, then parameters
        (QEMU checks parameters against the capabilities already set)."""
        caps = [{"capability": name, "state": on} for name, on in self.capabilities().items()]
        out = [QmpCommand("migrate-set-capabilities", {"capabilities": caps})]
        if params := self.parameters():
            out.append(QmpCommand("migrate-set-parameters", params))
        return tuple(out)

    def uri(self, *, path: str = "", port: int = 0) -> str:
        """The migration URI: ``unix:PATH``, ``tcp:127.0.0.1:PORT`` or ``file:PATH``.

        :param path: the socket or file (unix, file); QEMU reads options after a comma,
            so it must have none.
        :param port: the TCP port (0: the destination picks one; ask it which).
        """
        if self.transport == "tcp":
            return f"tcp:127.0.0.1:{port}"
        if "," in path:
            raise InvalidInput(f"{path!r}: a migration URI cannot name a path with a comma")
        return f"{self.transport}:{path}"

    @staticmethod
    def incoming_command(uri: str) -> QmpCommand:
        """The destination's ``migrate-incoming``."""
        return QmpCommand("migrate-incoming", {"uri": uri})

    @staticmethod
    def migrate_command(uri: str) -> QmpCommand:
        """The source's ``migrate``."""
        return QmpCommand("migrate", {"uri": uri})

    @staticmethod
    def postcopy_command() -> QmpCommand:
        """The source's switch to postcopy."""
        return QmpCommand("migrate-start-postcopy")

    def features(self) -> list[str]:
        """What a campaign counts this migration under: its transport and each feature it
        sets (``unix``, ``tcp``, ``file``, ``multifd``, ``xbzrle``, ``postcopy``,
        ``mapped-ram``, ``zero-page``, ``return-path``, ``auto-converge``)."""
        flags = {
            "multifd": self.multifd is not None,
            "xbzrle": self.xbzrle_cache_size is not None,
            "postcopy": self.postcopy is not None,
            "mapped-ram": self.mapped_ram,
            "zero-page": self.zero_page_detection is not None,
            "return-path": self.return_path,
            "auto-converge": self.auto_converge,
        }
        return [self.transport, *(name for name, on in flags.items() if on)]

    def needs_source_first(self) -> bool:
        """Whether the destination can only start reading once the source is done (a file)."""
        return self.transport == "file"

    # -- as text and JSON -------------------------------------------------------------------

    def describe(self) -> str:
        """One line, e.g. ``tcp multifd=4/zstd postcopy@first-pass return-path``."""
        words: list[str] = [self.transport]
        if self.multifd is not None:
            words.append(f"multifd={self.multifd.channels}/{self.multifd.compression}")
        if self.xbzrle_cache_size is not None:
            words.append(f"xbzrle={self.xbzrle_cache_size // 1024}K")
        if self.postcopy is not None:
            when = "first-pass" if self.postcopy.after_first_pass else f"{self.postcopy.after_ms}ms"
            words.append(f"postcopy@{when}")
        if self.zero_page_detection is not None:
            words.append(f"zero-page={self.zero_page_detection}")
        flags = (
            ("return-path", self.return_path),
            ("auto-converge", self.auto_converge),
            ("mapped-ram", self.mapped_ram),
        )
        words += [name for name, on in flags if on]
        return " ".join(words)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, with ``format``."""
        return {
            "format": LIVE_FORMAT,
            "transport": self.transport,
            "multifd": None if self.multifd is None else vars(self.multifd),
            "xbzrle_cache_size": self.xbzrle_cache_size,
            "postcopy": None if self.postcopy is None else vars(self.postcopy),
            "zero_page_detection": self.zero_page_detection,
            "return_path": self.return_path,
            "auto_converge": self.auto_converge,
            "mapped_ram": self.mapped_ram,
        }

    @classmethod
    def from_json(cls, data: Any) -> LiveMigration:
        """Parse :meth:`to_json` output.

        :raise CorpusError: another format, or a malformed or impossible migration.
        """
        if not isinstance(data, dict) or data.get("format") != LIVE_FORMAT:
            raise CorpusError(f"live migration: not format {LIVE_FORMAT}: {data!r:.80}")
        try:
            multifd, postcopy = data.get("multifd"), data.get("postcopy")
            cache = data.get("xbzrle_cache_size")
            zero = data.get("zero_page_detection")
            return cls(
                transport=data["transport"],
                multifd=None if multifd is None else Multifd(
                    channels=int(multifd["channels"]), compression=str(multifd["compression"])
                ),
                xbzrle_cache_size=None if cache is None else int(cache),
                postcopy=None if postcopy is None else Postcopy(
                    after_ms=int(postcopy["after_ms"]),
                    after_first_pass=bool(postcopy["after_first_pass"]),
                ),
                zero_page_detection=None if zero is None else str(zero),
                return_path=bool(data.get("return_path", False)),
                auto_converge=bool(data.get("auto_converge", False)),
                mapped_ram=bool(data.get("mapped_ram", False)),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as err:
            raise CorpusError(f"live migration: {err!r}") from err


#: How a run's engine counts name live runs per feature: ``live_<feature>`` beside ``live``.
FEATURE_COUNT_PREFIX = "live_"


def feature_counts(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """The live runs per feature (:meth:`LiveMigration.features`) among an engine's
    counts, most first: ``[("unix", 22), ("postcopy", 21), ...]``."""
    return counts_under(counts, FEATURE_COUNT_PREFIX)


#: One live migration per feature users migrate with most, each alone over the transport
#: it needs (every other setting at QEMU's default): what a campaign's transport sweep runs
#: on every source (:mod:`strategies.sweep`) and what its summary counts per pair.
HEADLINE_MIGRATIONS: Mapping[str, LiveMigration] = {
    "multifd": LiveMigration(transport="unix", multifd=Multifd(channels=2)),
    "xbzrle": LiveMigration(transport="unix", xbzrle_cache_size=1 << 20),
    "postcopy": LiveMigration(transport="unix", postcopy=Postcopy(after_ms=0)),
    "mapped-ram": LiveMigration(transport="file", mapped_ram=True),
}


def headline_offers(
    pairs: Iterable[tuple[str, str]], caps: Mapping[str, Capabilities]
) -> dict[str, list[tuple[str, str]]]:
    """Each headline feature (:data:`HEADLINE_MIGRATIONS`) -> the pairs whose versions both
    offer it."""
    return {
        name: [p for p in pairs if not unsupported(live, (caps[p[0]], caps[p[1]]))]
        for name, live in HEADLINE_MIGRATIONS.items()
    }


def unsupported(live: LiveMigration, versions: Iterable[Capabilities]) -> list[str]:
    """Why ``live`` cannot run between QEMUs of these ``versions`` (empty: it can).

    Each capability and parameter must be offered by every version (its probe's
    :class:`~fuzz.core.capabilities.MigrationFacts`), and the combinations some releases
    refuse are refused for them (the module's list). A version probed without migration
    facts (a format-2 probe) offers nothing but the plain migration.
    """
    out = []
    for caps in versions:
        facts, name = caps.migration, caps.version
        for cap in live.capabilities():
            if cap != "events" and (facts is None or not facts.offers(cap)):
                out.append(f"{name} has no capability {cap}")
        for param, value in live.parameters().items():
            if facts is None or not facts.has_parameter(param):
                out.append(f"{name} has no parameter {param}")
            elif param == "multifd-compression" and value not in facts.multifd_compressions:
                out.append(f"{name} has no multifd compression {value}")
            elif param == "zero-page-detection" and value not in facts.zero_page_detections:
                out.append(f"{name} has no zero-page detection {value}")
        both = live.postcopy is not None and live.multifd is not None
        if both and caps.release() < POSTCOPY_WITH_MULTIFD_FROM:
            out.append(f"{name} cannot do postcopy with multifd (10.1 and later can)")
        if live.transport == "file" and "file" not in caps.migration_transports:
            out.append(f"{name} has no file: migration URI")
    return out


@dataclass(frozen=True)
class NegotiationFailure:
    """One side refused what the live migration asked of it, with QEMU's own words.

    :param side: ``source`` or ``destination``.
    :param command: the QMP command refused (``migrate-set-capabilities``, ...).
    :param error: QEMU's error description.
    """

    side: Literal["source", "destination"]
    command: str
    error: str

    def describe(self) -> str:
        """One line: which side refused which command, and why."""
        return f"{self.side} refused {self.command}: {self.error}"


#: Where a live migration stopped: negotiating, starting, before the checkpoint, while
#: migrating, reading the guest back, or nowhere (it completed).
LiveStage = Literal["start", "negotiate", "checkpoint", "migrate", "read-back", "done"]


@dataclass(frozen=True)
class LiveOutcome:
    """How one live migration ended.

    :param verdict: ``completed`` (the destination runs the guest and it printed its
        read-back), ``refused`` (a side refused a capability, the stream or the URI),
        ``crashed``, ``hung`` or ``setup-error`` (the guest never reached its checkpoint).
    :param stage: where it stopped (``done`` when it completed).
    :param negotiation: each side's refusal of the setup, if any (then ``refused``).
    :param source, destination: each QEMU's step (messages, exit status, time).
    :param pre_save: what the source's guest printed up to its checkpoint.
    :param transcript: what the destination's guest printed after the resume byte.
    :param postcopy_ran: whether the source went through ``postcopy-active``.
    :param statuses: the source's ``MIGRATION`` statuses, in order.
    :param stats: the source's ``query-migrate`` answer at the end (RAM, xbzrle,
        multifd counters), as QEMU gave it.
    """

    live: LiveMigration
    src_version: str
    dst_version: str
    verdict: Verdict
    stage: LiveStage
    messages: tuple[str, ...] = ()
    negotiation: tuple[NegotiationFailure, ...] = ()
    source: StepOutcome | None = None
    destination: StepOutcome | None = None
    pre_save: str = ""
    transcript: str = ""
    postcopy_ran: bool = False
    statuses: tuple[str, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line: the pair, the migration, the verdict and what says most."""
        text = f"{self.src_version} -> {self.dst_version} [{self.live.describe()}]: {self.verdict}"
        if self.verdict is not Verdict.COMPLETED:
            text += f" at {self.stage}"
        headline = next(iter(m.describe() for m in self.negotiation), "")
        headline = headline or next(iter(self.messages), "")
        return f"{text}: {headline}" if headline else text

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "format": LIVE_FORMAT,
            "live": self.live.to_json(),
            "src_version": self.src_version,
            "dst_version": self.dst_version,
            "verdict": str(self.verdict),
            "stage": self.stage,
            "messages": list(self.messages),
            "negotiation": [vars(n) for n in self.negotiation],
            "source": None if self.source is None else self.source.to_json(),
            "destination": None if self.destination is None else self.destination.to_json(),
            "pre_save": self.pre_save,
            "transcript": self.transcript,
            "postcopy_ran": self.postcopy_ran,
            "statuses": list(self.statuses),
            "stats": self.stats,
            "seconds": round(self.seconds, 4),
        }

    @classmethod
    def from_json(cls, data: Any) -> LiveOutcome:
        """Parse :meth:`to_json` output; :class:`CorpusError` names what is wrong."""
        if not isinstance(data, dict) or data.get("format") != LIVE_FORMAT:
            raise CorpusError(f"live outcome: not format {LIVE_FORMAT}")
        try:
            source, destination = data.get("source"), data.get("destination")
            return cls(
                live=LiveMigration.from_json(data["live"]),
                src_version=str(data["src_version"]),
                dst_version=str(data["dst_version"]),
                verdict=Verdict(data["verdict"]),
                stage=data["stage"],
                messages=tuple(str(m) for m in data.get("messages", ())),
                negotiation=tuple(NegotiationFailure(**n) for n in data.get("negotiation", ())),
                source=None if source is None else StepOutcome.from_json(source),
                destination=None if destination is None else StepOutcome.from_json(destination),
                pre_save=str(data.get("pre_save", "")),
                transcript=str(data.get("transcript", "")),
                postcopy_ran=bool(data.get("postcopy_ran", False)),
                statuses=tuple(str(s) for s in data.get("statuses", ())),
                stats=dict(data.get("stats", {})),
                seconds=float(data.get("seconds", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise CorpusError(f"live outcome: {err!r}") from err
