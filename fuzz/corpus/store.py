"""The corpus as a small storage interface shared by parallel workers.

In the spirit of Hypothesis's ``ExampleDatabase`` (save/fetch/delete and nothing else), a
:class:`CorpusStore` answers three questions and does one thing:

* :meth:`~CorpusStore.known` -- which signatures already have an entry (one folder each,
  named from the signature, so the answer is a file-name lookup);
* :meth:`~CorpusStore.claim` -- may this worker record that signature? A claim is a file
  created with ``O_EXCL``: exactly one worker wins it, so no two workers shrink the same
  signature and no entry is written twice. A claim whose owner process is gone is stale
  and is taken over, so a killed worker blocks nothing;
* :meth:`~CorpusStore.save` -- write an entry atomically (see
  :func:`fuzz.corpus.entry.write_entry`): first the unshrunk case, at once, then its
  minimal form in place;
* :meth:`~CorpusStore.save_folder` -- the same for an entry this layer does not know the
  files of (a stateful sequence, :mod:`fuzz.stateful.repro`): claimed while it is written,
  built by the caller's writer in a dot-folder, fsynced, renamed into place, released.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from fuzz.core.binary import QemuBinary
from fuzz.corpus.entry import Entry, iter_entries, write_entry, write_folder
from fuzz.errors import CorpusError, StorageError
from fuzz.judge.oracles import Signature

_CLAIMS = ".claims"
#: Entries of flaky findings (a new signature its own case did not show again reliably):
#: apart from the corpus, so that ``regress`` does not replay them as reproducers.
FLAKY = ".flaky"


def _entry_name(signature: Signature) -> str:
    return f"{signature.slug()}-{signature.short_hash()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def known_in(folders: Iterable[Path]) -> dict[Signature, Path]:
    """Every signature with a readable entry in any of ``folders`` (missing ones are empty;
    corrupt entries are skipped)."""
    found: dict[Signature, Path] = {}
    for folder in folders:
        if folder.is_dir():
            found.update(CorpusStore(folder).known())
    return found


class CorpusStore:
    """Reproducer entries under one folder, safe to share between worker processes.

    :param known_elsewhere: signatures recorded in other corpora (the repository's, a
        campaign's ``--known`` folders): counted when met, never recorded again here.
    """

    def __init__(self, root: Path, known_elsewhere: frozenset[Signature] = frozenset()) -> None:
        self.root = root
        self.known_elsewhere = known_elsewhere

    def path_for(self, signature: Signature) -> Path:
        """Where the entry of ``signature`` lives (whether or not it exists yet)."""
        return self.root / _entry_name(signature)

    def has(self, signature: Signature) -> bool:
        """Whether ``signature`` already has an entry (here, or in a known corpus)."""
        if signature in self.known_elsewhere:
            return True
        name = _entry_name(signature)
        return any((d / name / "outcome.json").is_file() for d in (self.root, self.root / FLAKY))

    def known(self) -> dict[Signature, Path]:
        """Every signature with a readable entry; corrupt entries are skipped, not fatal."""
        found: dict[Signature, Path] = {}
        for item in iter_entries(self.root):
            if not isinstance(item, CorpusError) and item.path is not None:
                found[item.signature] = item.path
        return found

    def _claim_path(self, signature: Signature) -> Path:
        return self.root / _CLAIMS / _entry_name(signature)

    def claim(self, signature: Signature) -> bool:
        """Try to become the one worker that records ``signature``.

        :return: True if this process holds the claim now (it did already, or it won it,
            or it took over a stale one); False if another live worker holds it or the
            entry already exists.
        """
        if self.has(signature):
            return False
        return self.claim_again(signature)

    def claim_again(self, signature: Signature) -> bool:
        """Claim ``signature`` even though its entry exists: to finish its shrink (a
        resumed campaign). False if another live worker holds the claim."""
        path = self._claim_path(signature)
        path.parent.mkdir(parents=True, exist_ok=True)
        me = f"{_host()} {os.getpid()}"
        for _attempt in range(2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = self._owner(path)
                if owner == me:
                    return True
                if owner is not None and not self._stale(owner):
                    return False
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            return True
        return False

    @staticmethod
    def _owner(path: Path) -> str | None:
        try:
            return path.read_text().strip() or None
        except OSError:
            return None

    @staticmethod
    def _stale(owner: str) -> bool:
        host, _, pid = owner.rpartition(" ")
        if host != _host() or not pid.isdigit():
            return False  # another machine's claim: never taken over from here
        return not _pid_alive(int(pid))

    def release(self, signature: Signature) -> None:
        """Drop this process's claim on ``signature`` (its entry, if any, stays).

        The claims folder goes too once it is empty: a corpus with no shrink in progress
        holds nothing but entries.
        """
        path = self._claim_path(signature)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()

    def recover_stale_claims(self) -> list[Path]:
        """Remove the claims of workers that are gone (a killed campaign); return the
        entries they were shrinking that were already written (first case only)."""
        claims = self.root / _CLAIMS
        unfinished = []
        for claim in sorted(claims.glob("*")) if claims.is_dir() else []:
            owner = self._owner(claim)
            if owner is not None and not self._stale(owner):
                continue
            if (self.root / claim.name / "outcome.json").is_file():
                unfinished.append(self.root / claim.name)
            with contextlib.suppress(FileNotFoundError):
                claim.unlink()
        with contextlib.suppress(OSError):
            claims.rmdir()
        return unfinished

    def save(self, entry: Entry, src: QemuBinary, dst: QemuBinary, *, flaky: bool = False) -> Path:
        """Write (or replace, whole) the entry of ``entry.signature``; returns its folder.

        :param flaky: write it among the flaky findings (``.flaky/``), not the corpus.
        :raise StorageError: it could not be written (the folder keeps what it had).
        """
        root = self.root / FLAKY if flaky else self.root
        try:
            path, _written = write_entry(root, entry, src, dst, replace=True)
        except OSError as err:
            raise StorageError(
                f"{root}: cannot write the entry of '{entry.signature}' "
                f"({err.strerror or err}); entries written before are whole"
            ) from None
        return path

    def save_folder(self, signature: Signature, fill: Callable[[Path], None]) -> Path | None:
        """Write (or replace, whole) the entry of ``signature`` as ``fill`` makes it.

        The entry is claimed while it is written (no two processes write one signature at
        once), built in a dot-folder beside the others, fsynced and renamed into place, so a
        crash mid-write leaves no half entry; the claim is released after (unless this
        process held it before).

        :param fill: writes the entry's files into the empty folder it is given.
        :return: the entry's folder; None if another live process holds the claim (nothing
            was written).
        :raise StorageError: it could not be written (the folder keeps what it had).
        """
        held = self._owner(self._claim_path(signature)) == f"{_host()} {os.getpid()}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not self.claim_again(signature):
                return None
            try:
                return write_folder(self.root, _entry_name(signature), fill)
            finally:
                if not held:
                    self.release(signature)
        except OSError as err:
            raise StorageError(
                f"{self.root}: cannot write the entry of '{signature}' "
                f"({err.strerror or err}); entries written before are whole"
            ) from None


def _host() -> str:
    """This machine's name, which a claim records beside its pid (what
    ``socket.gethostname`` says, without a socket module in a storage layer)."""
    return os.uname().nodename
