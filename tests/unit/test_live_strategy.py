"""Live migrations as values, and the strategy that draws them from two versions' probes.

The probes are real: ``tests/data/probes-migration.jsonl`` holds, per installed version,
the migration facts ``fuzz.versions.probe`` asked of it (``query-migrate-capabilities``,
``query-migrate-parameters``, the QAPI enums) and its transports; regenerate it with
``scripts/probe_migration_facts.py`` after ``migfuzz qemu install`` if the format moves on.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from fuzz.core import command as qemu_command
from fuzz.core.capabilities import Capabilities
from fuzz.core.case import MachineConfig
from fuzz.core.command import Channel, QemuCommand, ShellText
from fuzz.core.live import (
    LiveMigration,
    LiveOutcome,
    Multifd,
    NegotiationFailure,
    Postcopy,
    QmpCommand,
    unsupported,
)
from fuzz.core.outcome import Verdict
from fuzz.errors import CorpusError, InvalidInput
from strategies.guests import (
    DEADLINE_TIMERS,
    MIN_TIMER_MICROS,
    UART_ECHO_BYTES,
    ArmDeadline,
    ConfigureUart,
    Operation,
    SetGpr,
)
from strategies.image import build_guest, build_live_guest
from strategies.transports import live_migrations
from tests.gnu_as import gnu_as
from tests.migration_probes import BASE_PROBE, PROBES, base_probe

PAIRS = list(itertools.product(PROBES, repeat=2))
#: The pairs of the four Debian release series (the point releases probe the same).
SERIES_PAIRS = list(itertools.product(("5.2", "7.2", "10.0", "11.1"), repeat=2))


def _never(strategy: st.SearchStrategy[LiveMigration], condition) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NoSuchExample):
        find(strategy, condition, settings=settings(max_examples=100, database=None))


# -- the probes ------------------------------------------------------------------------------


def test_the_probes_hold_every_installed_version() -> None:
    assert set(PROBES) >= {"5.2", "7.2", "10.0", "11.1"}
    for caps in PROBES.values():
        assert caps.migration is not None and caps.migration.offers("multifd")


def test_a_format_2_probe_still_reads_without_migration_facts() -> None:
    data = json.loads(BASE_PROBE.read_text().splitlines()[0])
    assert data["format"] == 2
    caps = Capabilities.from_json(data)
    assert caps is not None and caps.migration is None
    again = Capabilities.from_json(replace(caps, migration=PROBES["11.1"].migration).to_json())
    assert again is not None and again.migration == PROBES["11.1"].migration


def test_release_numbers() -> None:
    assert replace(base_probe(), version="10.0.13").release() == (10, 0, 13)
    assert replace(base_probe(), version="11.1").release() == (11, 1, 0)


# -- the value -------------------------------------------------------------------------------


def test_the_simplest_migration_sets_events_only() -> None:
    live = LiveMigration()
    assert live.describe() == "unix"
    assert live.setup_commands() == (
        QmpCommand(
            "migrate-set-capabilities", {"capabilities": [{"capability": "events", "state": True}]}
        ),
    )
    assert live.uri(path="/w/m.sock") == "unix:/w/m.sock"


def test_commands_and_description_of_a_full_migration() -> None:
    live = LiveMigration(
        transport="tcp", multifd=Multifd(4, "zstd"), postcopy=Postcopy(after_first_pass=True),
        zero_page_detection="multifd", return_path=True, auto_converge=True,
    )  # fmt: skip
    assert live.describe() == (
        "tcp multifd=4/zstd postcopy@first-pass zero-page=multifd return-path auto-converge"
    )
    caps, params = live.setup_commands()
    assert [c["capability"] for c in caps.arguments["capabilities"]] == [
        "events", "multifd", "postcopy-ram", "return-path", "auto-converge",
    ]  # fmt: skip
    assert params == QmpCommand(
        "migrate-set-parameters",
        {"multifd-channels": 4, "multifd-compression": "zstd", "zero-page-detection": "multifd"},
    )
    assert live.uri(port=4444) == "tcp:127.0.0.1:4444"
    assert live.migrate_command("tcp:127.0.0.1:4444").to_json() == {
        "execute": "migrate", "arguments": {"uri": "tcp:127.0.0.1:4444"},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"mapped_ram": True}, "mapped-ram needs the file transport"),
        ({"transport": "file", "mapped_ram": True, "xbzrle_cache_size": 65536}, "xbzrle"),
        ({"transport": "file", "multifd": Multifd()}, "multifd over a file needs mapped-ram"),
        ({"transport": "file", "postcopy": Postcopy()}, "postcopy over a file"),
        ({"transport": "file", "return_path": True}, "return-path over a file"),
        ({"multifd": Multifd(), "xbzrle_cache_size": 65536}, "multifd with xbzrle"),
        ({"xbzrle_cache_size": 5000}, "not a power of 2"),
        ({"multifd": Multifd(0)}, "channels=0"),
        ({"zero_page_detection": "multifd"}, "without multifd"),
        (
            {"transport": "file", "mapped_ram": True, "multifd": Multifd(2, "zlib")},
            "mapped-ram with multifd compression",
        ),
    ],
)
def test_combinations_no_qemu_takes_are_refused(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        LiveMigration(**kwargs)  # type: ignore[arg-type]


def test_a_path_with_a_comma_makes_no_uri() -> None:
    with pytest.raises(InvalidInput):
        LiveMigration().uri(path="/a,b")


@given(st.sampled_from(PAIRS).flatmap(lambda p: live_migrations(PROBES[p[0]], PROBES[p[1]])))
def test_json_round_trip(live: LiveMigration) -> None:
    assert LiveMigration.from_json(json.loads(json.dumps(live.to_json()))) == live


def test_a_corrupt_record_is_a_corpus_error() -> None:
    with pytest.raises(CorpusError):
        LiveMigration.from_json({"format": 1, "transport": "unix", "multifd": {"channels": "x"}})
    with pytest.raises(CorpusError):
        LiveMigration.from_json({"format": 99})


def test_outcome_round_trip() -> None:
    outcome = LiveOutcome(
        live=LiveMigration(transport="tcp"), src_version="10.0", dst_version="11.1",
        verdict=Verdict.REFUSED, stage="negotiate",
        negotiation=(NegotiationFailure("destination", "migrate-set-capabilities", "no"),),
        statuses=("src:setup",), stats={"ram": {"total": 1}},
    )  # fmt: skip
    again = LiveOutcome.from_json(json.loads(json.dumps(outcome.to_json())))
    assert again == outcome
    assert outcome.summary() == (
        "10.0 -> 11.1 [tcp]: refused at negotiate: destination refused migrate-set-capabilities: no"
    )


# -- the strategy: only what both offer ----------------------------------------------------------


@pytest.mark.parametrize(("src", "dst"), SERIES_PAIRS)
def test_every_drawn_migration_runs_on_its_pair(src: str, dst: str) -> None:
    a, b = PROBES[src], PROBES[dst]

    @settings(max_examples=40)
    @given(live_migrations(a, b))
    def check(live: LiveMigration) -> None:
        assert unsupported(live, (a, b)) == []

    check()


def test_what_5_2_lacks_is_never_drawn_with_it() -> None:
    old, new = PROBES["5.2"], PROBES["11.1"]
    assert not old.migration.offers("mapped-ram")  # type: ignore[union-attr]
    assert new.migration.offers("mapped-ram")  # type: ignore[union-attr]
    for pair in ((old, new), (new, old)):
        strategy = live_migrations(*pair)
        _never(strategy, lambda live: live.mapped_ram)
        _never(strategy, lambda live: live.transport == "file")
        _never(strategy, lambda live: live.zero_page_detection is not None)
    # and the same draws between two 11.1s do reach them
    both_new = live_migrations(new, new)
    assert find(both_new, lambda live: live.mapped_ram).transport == "file"
    assert find(both_new, lambda live: live.zero_page_detection is not None)


def test_postcopy_with_multifd_only_where_both_take_it() -> None:
    def both(live: LiveMigration) -> bool:
        return live.postcopy is not None and live.multifd is not None

    for pair in (("10.0", "11.1"), ("11.1", "10.0"), ("10.0", "10.0"), ("5.2", "5.2")):
        _never(live_migrations(PROBES[pair[0]], PROBES[pair[1]]), both)
    found = find(live_migrations(PROBES["11.1"], PROBES["11.1"]), both)
    assert found == LiveMigration(multifd=Multifd(1), postcopy=Postcopy())


def test_a_compression_one_build_lacks_is_never_drawn() -> None:
    src = PROBES["11.1"]
    assert src.migration is not None
    facts = replace(src.migration, multifd_compressions=("none", "zlib"))
    dst = replace(src, migration=facts)
    _never(
        live_migrations(src, dst), lambda live: live.multifd and live.multifd.compression == "zstd"
    )


def test_without_migration_facts_only_the_plain_migration() -> None:
    plain = replace(PROBES["11.1"], migration=None)
    _never(
        live_migrations(plain, PROBES["11.1"]), lambda live: live.capabilities() != {"events": True}
    )


# -- the strategy: shrinking ---------------------------------------------------------------------


def test_shrinks_to_the_plain_unix_socket() -> None:
    strategy = live_migrations(PROBES["11.1"], PROBES["11.1"])
    assert find(strategy, lambda live: True) == LiveMigration()
    assert find(strategy, lambda live: live.xbzrle_cache_size) == LiveMigration(
        xbzrle_cache_size=1 << 16
    )
    assert find(strategy, lambda live: live.transport == "tcp") == LiveMigration(transport="tcp")


# -- the live guest ------------------------------------------------------------------------------


@pytest.mark.parametrize("echo", [False, True])
def test_a_live_guest_assembles_with_gnu_as_to_its_image(echo: bool) -> None:
    ops: list[Operation] = [SetGpr(3, 5), ArmDeadline(DEADLINE_TIMERS[0], MIN_TIMER_MICROS)]
    if echo:
        ops.append(ConfigureUart(lcr_h=0x10, echo="a" * UART_ECHO_BYTES))
    guest = build_live_guest(ops)
    assert guest.live
    assert gnu_as(guest.source()) == guest.image
    assert "live_loop" in guest.source()


def test_the_live_block_leaves_paused_guests_as_they_were() -> None:
    ops = [SetGpr(3, 5)]
    paused, live = build_guest(ops), build_live_guest(ops)
    assert not paused.live
    assert "live_loop" not in paused.source()
    assert live.operations == paused.operations
    assert live.checkpoint == paused.checkpoint and live.done == paused.done
    assert live.image != paused.image


# -- the command line and a reproducer's shell words -----------------------------------------


def test_a_live_destination_waits_for_its_stream_and_is_not_paused() -> None:
    config = MachineConfig("virt-10.0", "cortex-a57")
    argv = qemu_command.live_destination(config).argv()
    assert argv[argv.index("-incoming") + 1] == "defer"
    assert "-S" not in argv
    assert "-S" in qemu_command.live_source(config, build_live_guest([]), "/g.bin").argv()


def test_a_reproducers_qmp_socket() -> None:
    command = QemuCommand(monitor=Channel.qmp_socket(ShellText("$WORK/src.qmp")), headless=False)
    assert command.argv() == ["-qmp", "unix:$WORK/src.qmp,server=on,wait=off"]
    assert command.shell() == '-qmp "unix:$WORK/src.qmp,server=on,wait=off"'
