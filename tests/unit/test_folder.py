"""The campaign folder: refusals, the lock, the event log, and what a resume reads back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from fuzz.campaign.folder import CampaignFolder, ResumeFold, read_jsonl, resume_state
from fuzz.errors import CampaignError, InvalidInput


def test_a_new_campaign_writes_its_record_and_corpus_folder(tmp_path: Path) -> None:
    with CampaignFolder.create(tmp_path / "c", {"seed": 3}) as folder:
        assert folder.record()["seed"] == 3
        assert folder.corpus_dir.is_dir()


def test_a_non_empty_folder_is_refused_in_one_line_naming_resume(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CampaignError) as caught:
        CampaignFolder.create(tmp_path, {})
    message = str(caught.value)
    assert "\n" not in message
    assert f"--resume {tmp_path}" in message
    assert (tmp_path / "notes.txt").read_text() == "mine"  # nothing already there is lost
    assert isinstance(caught.value, InvalidInput)  # exit status 2


def test_a_second_campaign_on_a_locked_folder_is_refused(tmp_path: Path) -> None:
    with (
        CampaignFolder.create(tmp_path / "c", {}),
        pytest.raises(CampaignError, match="in use by pid"),
    ):
        CampaignFolder.reopen(tmp_path / "c")
    with CampaignFolder.reopen(tmp_path / "c"):  # released on close
        pass


def test_a_running_campaigns_folder_is_refused_as_in_use_not_as_non_empty(
    tmp_path: Path,
) -> None:
    # Advice to '--resume' a folder a campaign is running in would only meet the same lock.
    with CampaignFolder.create(tmp_path / "c", {}) as running:
        running.log_event("CampaignStarted", jobs=1)
        with pytest.raises(CampaignError) as caught:
            CampaignFolder.create(tmp_path / "c", {})
        message = str(caught.value)
        assert f"in use by pid {os.getpid()}" in message
        assert "--resume" not in message and "\n" not in message
        assert running.record_path.is_file()  # the running campaign's record is untouched
    with pytest.raises(CampaignError, match="not empty: continue it with"):
        CampaignFolder.create(tmp_path / "c", {})  # no longer running: today's advice


def test_refusing_a_non_empty_folder_leaves_no_lock_file_behind(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CampaignError):
        CampaignFolder.create(tmp_path, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_folder_without_a_record_is_not_a_campaign(tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match="not a campaign folder"):
        CampaignFolder.reopen(tmp_path)


def test_a_garbled_record_is_a_one_line_error(tmp_path: Path) -> None:
    with CampaignFolder.create(tmp_path / "c", {}) as folder:
        folder.record_path.write_text("{not json")
        with pytest.raises(CampaignError, match="cannot read the campaign record"):
            folder.record()


def test_events_are_read_back_and_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    with CampaignFolder.create(tmp_path / "c", {}) as folder:
        folder.log_event("RunStarted", worker=0, run_index=0)
        folder.log_event("CaseJudged", kind="agree")  # a field named like the type's key
    with open(tmp_path / "c" / "events.jsonl", "a") as f:
        f.write('{"type": "CaseJud')  # the driver was killed mid-line
    with CampaignFolder.reopen(tmp_path / "c") as folder:
        events = list(folder.events())
    assert [e["type"] for e in events] == ["RunStarted", "CaseJudged"]
    assert events[1]["kind"] == "agree"


def _log(path: Path, events: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def test_resume_state_continues_each_workers_seed_sequence_and_budget(tmp_path: Path) -> None:
    events = [
        {"t": 100.0, "type": "CampaignStarted"},
        {"t": 101.0, "type": "RunStarted", "worker": 0, "run_index": 0},
        {"t": 101.0, "type": "RunStarted", "worker": 1, "run_index": 0},
        {"t": 102.0, "type": "CaseJudged", "worker": 0},
        {"t": 102.5, "type": "CaseJudged", "worker": 1},
        {"t": 103.0, "type": "RunStarted", "worker": 0, "run_index": 1},
        {"t": 110.0, "type": "CaseJudged", "worker": 0},
        # killed; resumed an hour later: the gap is not campaign time
        {"t": 3700.0, "type": "CampaignStarted"},
        {"t": 3701.0, "type": "RunStarted", "worker": 1, "run_index": 1},
        {"t": 3705.0, "type": "CaseJudged", "worker": 1},
        {"t": 3705.0, "type": "WorkerFinished", "worker": 1, "complete": False},  # stopped
    ]
    state = resume_state(iter(events), tmp_path)
    assert state.next_run == {0: 1, 1: 1}  # each starts again at the run it was in
    assert state.slot_cases == {0: 1, 1: 1}  # with the cases it had judged before it
    assert state.finished == set()
    assert state.cases == 4
    assert state.seconds == pytest.approx(10.0 + 5.0)
    assert state.sessions == 2


def test_a_finding_announced_but_not_shrunk_is_finished_on_resume(tmp_path: Path) -> None:
    events = [
        {"t": 1.0, "type": "CampaignStarted"},
        {"t": 2.0, "type": "FindingSeen", "signature": "a: x", "path": str(tmp_path / "a")},
        {"t": 3.0, "type": "FindingSeen", "signature": "b: y", "path": str(tmp_path / "b")},
        {"t": 4.0, "type": "ReproducerWritten", "signature": "a: x", "path": str(tmp_path / "a")},
        {"t": 5.0, "type": "FindingSeen", "signature": "c: z", "path": str(tmp_path / "c")},
        {"t": 6.0, "type": "ReproducerUnstable", "signature": "c: z", "path": str(tmp_path / "c")},
    ]
    _log(tmp_path / "events.jsonl", events)
    state = resume_state(read_jsonl(tmp_path / "events.jsonl"), tmp_path)
    assert state.unshrunk == [tmp_path / "b"]


def test_an_empty_log_resumes_from_the_start(tmp_path: Path) -> None:
    state = resume_state(read_jsonl(tmp_path / "missing.jsonl"), tmp_path)
    assert (state.next_run, state.cases, state.seconds, state.unshrunk) == ({}, 0, 0.0, [])


def test_a_worker_that_finished_its_share_is_not_restarted(tmp_path: Path) -> None:
    events = [
        {"t": 1.0, "type": "CampaignStarted"},
        {"t": 1.0, "type": "RunStarted", "worker": 0, "run_index": 0},
        {"t": 2.0, "type": "WorkerFinished", "worker": 0, "complete": True},
        {"t": 2.0, "type": "RunStarted", "worker": 1, "run_index": 3},
    ]
    state = resume_state(iter(events), tmp_path)
    assert state.finished == {0}
    assert state.next_run[1] == 3


def test_the_resume_fold_can_be_read_midway_and_goes_on(tmp_path: Path) -> None:
    """The report folds the log once and reads the resume state at the end; reading it
    earlier changes nothing of what the rest of the log adds."""
    events = [
        {"t": 1.0, "type": "CampaignStarted"},
        {"t": 1.0, "type": "RunStarted", "worker": 0, "run_index": 0},
        {"t": 2.0, "type": "FindingSeen", "signature": "a: x", "path": "corpus/a", "worker": 0},
        {"t": 3.0, "type": "CaseJudged", "worker": 0},
        {"t": 9.0, "type": "CampaignStarted"},
        {"t": 10.0, "type": "ReproducerWritten", "signature": "a: x", "path": "corpus/a"},
        {"t": 12.0, "type": "CaseJudged", "worker": 0},
    ]
    fold = ResumeFold(tmp_path)
    for event in events[:4]:
        fold.add(event)
    midway = fold.state()
    assert (midway.seconds, midway.unshrunk, midway.replay) == (
        2.0, [tmp_path / "corpus/a"], {0: {"a: x"}},
    )  # fmt: skip
    midway.replay[0].clear()  # the caller's copy, not the fold's
    assert fold.state().replay == {0: {"a: x"}}
    for event in events[4:]:
        fold.add(event)
    assert fold.state() == resume_state(iter(events), tmp_path)
    assert (fold.state().seconds, fold.state().unshrunk, fold.state().cases) == (5.0, [], 2)


def test_the_event_log_is_read_line_by_line_torn_and_bad_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a": 1}\n[1, 2]\n\xff\xfe{"b"\n{"c": "\xc3\xa9"}\r\n{"d": 4')
    assert list(read_jsonl(path)) == [{"a": 1}, {"c": "\u00e9"}]
