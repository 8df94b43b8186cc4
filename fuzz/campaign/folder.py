"""A campaign folder: what an overnight campaign leaves behind, and what lets it resume.

``migfuzz fuzz --out DIR`` (default ``campaigns/<UTC time>/``) writes::

    DIR/campaign.json     what was asked: pairs, seed, budget, jobs, settings, and the
                          exact binaries (name, sha256, version line, path)
    DIR/corpus/           the reproducers this campaign found (a corpus like any other)
    DIR/events.jsonl      append-only: every event of every worker, one JSON per line
    DIR/timeseries.jsonl  one sample every few seconds: cases, rate, signatures, ...
    DIR/coverage.json     state coverage of the measured saves, per version, section and
                          field (:mod:`fuzz.judge.coverage`), rewritten as it grows
    DIR/hypothesis/       Hypothesis's example database (the failing examples it shrank)
    DIR/.lock             held (``flock``) while a campaign runs in the folder

Only the driver writes here (workers write entries into ``corpus/`` through the
:class:`~fuzz.corpus.store.CorpusStore`). The event log is the campaign's memory: a resumed
campaign reads from it how far each worker's seed sequence got, how much of the budget
was spent, and which findings were announced but not yet shrunk (coverage is not in it:
its events name hundreds of fields each, so ``coverage.json`` holds their sum, which a
resumed campaign goes on from). Each line is written
whole and flushed, so a driver killed mid-write loses at most a half line, which the
reader skips.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from fuzz.errors import CampaignError, StorageError
from fuzz.judge.coverage import Coverage

RECORD = "campaign.json"
EVENTS = "events.jsonl"
SERIES = "timeseries.jsonl"
COVERAGE = "coverage.json"
CORPUS = "corpus"
HYPOTHESIS = "hypothesis"
LOCK = ".lock"
FORMAT = 1


def default_folder(parent: Path = Path("campaigns")) -> Path:
    """``campaigns/<UTC time>/``: a new folder name for a campaign started now."""
    return parent / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class ResumeState:
    """What the event log says about the campaign so far.

    A resumed worker starts again at the beginning of the Hypothesis run it was in when
    the campaign stopped, with the case count it had then: its seeds are derived from
    the run index, so it draws the very cases an uninterrupted campaign would have.

    :param next_run: worker slot -> the run index it starts at (the one it was in).
    :param slot_cases: worker slot -> cases it had judged before that run began.
    :param finished: worker slots that had ended their share of the work.
    :param replay: worker slot -> signatures it recorded in the run it was in (it shrinks
        them again when it meets them again in that run, as it did then).
    :param seconds: campaign time spent so far (sum over its sessions).
    :param cases: cases judged so far.
    :param unshrunk: entry folders announced (first case written) whose shrink never ended.
    :param sessions: how many times the campaign was started (1 + resumes).
    """

    next_run: dict[int, int] = field(default_factory=dict)
    slot_cases: dict[int, int] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    replay: dict[int, set[str]] = field(default_factory=dict)
    seconds: float = 0.0
    cases: int = 0
    unshrunk: list[Path] = field(default_factory=list)
    sessions: int = 0


class CampaignFolder:
    """One campaign's folder, locked for as long as this object is open.

    Use :meth:`create` for a new campaign and :meth:`reopen` to resume one; both take the
    lock, and :meth:`close` releases it.
    """

    def __init__(self, root: Path, lock: IO[str]) -> None:
        self.root = root
        self._lock = lock
        self._events: IO[str] | None = None
        self._series: IO[str] | None = None

    # -- paths --------------------------------------------------------------------------

    @staticmethod
    def corpus_of(root: Path) -> Path:
        """Where the reproducers of a campaign in ``root`` go (before it is made)."""
        return root / CORPUS

    @staticmethod
    def hypothesis_of(root: Path) -> Path:
        """Hypothesis's example database of a campaign in ``root`` (before it is made)."""
        return root / HYPOTHESIS

    @property
    def corpus_dir(self) -> Path:
        """Where this campaign's reproducers go."""
        return self.corpus_of(self.root)

    @property
    def hypothesis_dir(self) -> Path:
        """Hypothesis's example database."""
        return self.hypothesis_of(self.root)

    @property
    def record_path(self) -> Path:
        """``campaign.json``."""
        return self.root / RECORD

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, record: dict[str, Any]) -> CampaignFolder:
        """Start a campaign in ``root`` (new or empty) and write its record.

        :raise CampaignError: another campaign holds ``root`` (checked first: advice to
            resume a running campaign would only meet the same lock), or ``root`` holds
            something already (resume it, or pick another folder).
        """
        if root.exists() and not root.is_dir():
            raise CampaignError(f"campaign folder {root} is a file, not a folder")
        root.mkdir(parents=True, exist_ok=True)
        had_lock = (root / LOCK).exists()
        lock = _take_lock(root)
        if any(p.name != LOCK for p in root.iterdir()):
            _release(lock)
            if not had_lock:  # leave a folder that is not ours as it was
                (root / LOCK).unlink(missing_ok=True)
            raise CampaignError(
                f"campaign folder {root} is not empty: continue it with "
                f"'migfuzz fuzz --resume {root}', or give another --out"
            )
        folder = cls(root, lock)
        folder.corpus_dir.mkdir(exist_ok=True)
        _write_atomic(folder.record_path, {"format": FORMAT, **record})
        return folder

    @classmethod
    def reopen(cls, root: Path) -> CampaignFolder:
        """Open an existing campaign folder to resume it.

        :raise CampaignError: no campaign record there, or another campaign holds it.
        """
        if not (root / RECORD).is_file():
            raise CampaignError(f"{root} is not a campaign folder (no {RECORD})")
        folder = cls(root, _take_lock(root))
        folder.corpus_dir.mkdir(exist_ok=True)
        return folder

    def record(self) -> dict[str, Any]:
        """The campaign's record (``campaign.json``).

        :raise CampaignError: it does not parse or has another format.
        """
        try:
            data = json.loads(self.record_path.read_text())
        except (OSError, ValueError) as err:
            why = f"{self.record_path}: cannot read the campaign record: {err}"
            raise CampaignError(why) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CampaignError(f"{self.record_path}: not a format-{FORMAT} campaign record")
        return data

    def close(self) -> None:
        """Flush the logs and release the lock."""
        for stream in (self._events, self._series):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._events = self._series = None
        _release(self._lock)

    def __enter__(self) -> CampaignFolder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- logs ---------------------------------------------------------------------------

    def log_event(self, event_type: str, /, **data: Any) -> None:
        """Append one event (its type and fields, plus the time) to ``events.jsonl``."""
        if self._events is None:
            self._events = open(self.root / EVENTS, "a", encoding="utf-8")  # noqa: SIM115
        _append(self._events, {**data, "t": round(time.time(), 3), "type": event_type})

    def log_sample(self, **data: Any) -> None:
        """Append one time-series sample to ``timeseries.jsonl``."""
        if self._series is None:
            self._series = open(self.root / SERIES, "a", encoding="utf-8")  # noqa: SIM115
        _append(self._series, {"t": round(time.time(), 3), **data})

    def read_coverage(self) -> Coverage:
        """The campaign's state coverage so far (``coverage.json``); empty if there is none
        yet, or it does not parse (it is then started again)."""
        return read_coverage(self.root) or Coverage()

    def write_coverage(self, coverage: Coverage) -> None:
        """Replace ``coverage.json`` (atomically).

        :raise StorageError: it cannot be written.
        """
        try:
            _write_atomic(self.root / COVERAGE, coverage.to_json())
        except OSError as err:
            raise StorageError(f"{self.root / COVERAGE}: cannot write it ({err})") from None

    def events(self) -> Iterator[dict[str, Any]]:
        """The logged events in order; a torn last line (a killed driver) is skipped."""
        yield from read_jsonl(self.root / EVENTS)

    def resume_state(self) -> ResumeState:
        """Read the event log back into what a resumed campaign needs."""
        return resume_state(self.events(), self.root)


def read_coverage(root: Path) -> Coverage | None:
    """The state coverage in campaign folder ``root``; None: no ``coverage.json``, or one
    that does not parse."""
    try:
        return Coverage.from_json(json.loads((root / COVERAGE).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, read line by line (a week-long event log is
    over a gigabyte: it is never held whole); lines that do not parse are skipped."""
    try:
        stream = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return
    with stream:
        for line in stream:
            with contextlib.suppress(ValueError):
                item = json.loads(line)
                if isinstance(item, dict):
                    yield item


def resume_state(events: Iterable[dict[str, Any]], root: Path) -> ResumeState:
    """Fold a campaign's events into a :class:`ResumeState` (pure; see the event names
    the driver logs in :mod:`fuzz.campaign.driver`). Memory grows with the workers and the
    findings still being shrunk, never with the length of the log."""
    fold = ResumeFold(root)
    for event in events:
        fold.add(event)
    return fold.state()


class ResumeFold:
    """:func:`resume_state` one event at a time, for a reader that folds the same pass
    into more (the report): :meth:`add` every event in order, then :meth:`state`."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._state = ResumeState()
        self._session_start: float | None = None
        self._last_t = 0.0
        self._pending: dict[str, Path] = {}
        self._judged: dict[int, int] = {}

    def add(self, event: Mapping[str, Any]) -> None:
        """Fold one event in."""
        state = self._state
        t = float(event.get("t", 0.0))
        kind = event.get("type")
        slot = int(event.get("worker", -1))
        if kind == "CaseJudged":  # first: nearly every event is one
            state.cases += 1
            self._judged[slot] = self._judged.get(slot, 0) + 1
        elif kind == "CampaignStarted":
            if self._session_start is not None:
                state.seconds += max(0.0, self._last_t - self._session_start)
            self._session_start = t
            state.sessions += 1
        elif kind == "RunStarted":
            state.next_run[slot] = int(event["run_index"])
            state.slot_cases[slot] = self._judged.get(slot, 0)
            state.finished.discard(slot)
            state.replay[slot] = set()
        elif kind == "WorkerFinished" and event.get("complete", True):
            state.finished.add(slot)
        elif kind == "FindingSeen" and event.get("path"):
            self._pending[str(event["signature"])] = Path(str(event["path"]))
            state.replay.setdefault(slot, set()).add(str(event["signature"]))
        elif kind in ("ReproducerWritten", "ReproducerUnstable"):
            self._pending.pop(str(event["signature"]), None)
        self._last_t = max(self._last_t, t)

    def state(self) -> ResumeState:
        """The campaign so far, as the events added up to now tell it."""
        state = self._state
        seconds = state.seconds
        if self._session_start is not None:
            seconds += max(0.0, self._last_t - self._session_start)
        root = self._root
        return ResumeState(
            next_run=dict(state.next_run), slot_cases=dict(state.slot_cases),
            finished=set(state.finished),
            replay={slot: set(sigs) for slot, sigs in state.replay.items()},
            seconds=seconds, cases=state.cases,
            unshrunk=[p if p.is_absolute() else root / p for p in self._pending.values()],
            sessions=state.sessions,
        )  # fmt: skip


def _take_lock(root: Path) -> IO[str]:
    """Hold ``root``'s lock, with this process's pid in it, until :func:`_release`.

    :raise CampaignError: a running campaign holds it (named by its pid).
    """
    lock = open(root / LOCK, "a+", encoding="utf-8")  # noqa: SIM115 (held until close)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        owner = lock.read().strip() or "another process"
        lock.close()
        raise CampaignError(
            f"campaign folder {root} is in use by {owner}: a campaign is running there "
            "(wait for it to end or stop it, or give another folder)"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}\n")
    lock.flush()
    return lock


def _release(lock: IO[str]) -> None:
    """Let go of a lock :func:`_take_lock` took."""
    with contextlib.suppress(OSError):
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _append(stream: IO[str], item: dict[str, Any]) -> None:
    """Append one JSON line; a torn line (a full disk) is skipped when read back.

    :raise StorageError: the line could not be written.
    """
    try:
        stream.write(json.dumps(item, sort_keys=True, default=str) + "\n")
        stream.flush()
    except OSError as err:
        raise StorageError(f"{stream.name}: cannot append to it ({err.strerror or err})") from None


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)
