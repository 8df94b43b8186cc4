"""Past the first refusal on real QEMU: causes named, the state behind compared, reproduced.

Pairs across release series refuse the CPU's register list; patched, they load, and what
they restored is judged like any case. The pairs here must agree behind the refusal (their
devices, GIC and RAM come back as the control's): a false finding there would be ours.
"""

from __future__ import annotations

import subprocess

import pytest

from fuzz.core.boards import board_of
from fuzz.core.capabilities import settings_for
from fuzz.core.case import Case, MachineConfig
from fuzz.core.outcome import Verdict
from fuzz.corpus.entry import Entry, VersionRef, load_entry, write_entry
from fuzz.judge.oracles import Agree, Divergence
from fuzz.run.session import Session
from fuzz.versions.probe import capabilities
from strategies.cases import rebuild_guest
from strategies.guests import SetGpr
from strategies.image import build_guest

pytestmark = pytest.mark.qemu

#: A guest that writes a register the read-back checks.
GUEST_OPS = [{"op": "sysreg", "register": "TPIDR_EL1", "value": "0x1234"}]


def _session(binaries, farm, *names: str) -> Session:
    """A session that loads every refused pair past its refusal (campaigns: one in 4)."""
    caps = {n: capabilities(binaries[n], farm.cache_dir) for n in names}
    return Session(settings_for(caps, behind_every=1))


@pytest.mark.parametrize(
    ("src", "dst", "config", "causes"),
    [
        # 5.2 and 10.0.x say only "error while loading state ... of device 'cpu'".
        (
            "5.2", "7.2", MachineConfig("virt-5.2", "cortex-a57"),
            {
                # Two debug registers 7.2 added: missing, and not kept at their reset value.
                "cpreg missing from incoming stream: not kept at its reset value",
                # Its AArch32 view P15_0_C0_C1_2 is refused too: counted once.
                "cpreg value not accepted: ID_DFR0_EL1",
            },
        ),
        # Every CPU's list is patched, each toward the destination's own.
        (
            "7.2", "10.0", MachineConfig("virt-5.2", "cortex-a57", smp=3),
            {
                "cpreg missing from incoming stream: not kept at its reset value",
                "cpreg only in incoming stream: P15_0_*",
                "cpreg value not accepted: ID_DFR0_EL1",
            },
        ),
        (
            "10.0.2", "10.0", MachineConfig("virt-10.0", "max"),
            {"cpreg only in incoming stream: P14_3_*"},
        ),
        # 11.1 names the register itself: its own word is kept.
        (
            "10.0", "11.1", MachineConfig("virt-10.0", "cortex-a57"),
            {"cpreg only in incoming stream: ID_AA64ISAR0_EL1"},
        ),
    ],
)  # fmt: skip
def test_a_refusal_is_signed_by_its_registers_and_agrees_behind(
    farm, src, dst, config, causes
) -> None:
    if not {src, dst} <= set(farm.installed()):
        pytest.skip(f"{src} or {dst} is not installed (scripts/setup installs qemu.lock's)")
    binaries = {name: farm.get(name) for name in (src, dst)}
    with _session(binaries, farm, src, dst) as session:
        run = session.run_case(binaries[src], binaries[dst], Case(config))
    assert run.pair.verdict is Verdict.REFUSED
    assert {c.detail for c in run.causes} == causes
    past = run.past
    assert past is not None and past.evidence.pair.verdict is Verdict.COMPLETED
    # Nothing differs behind the refusal: state (every field both versions save) and all.
    assert isinstance(past.judgement, Agree), past.judgement
    assert past.behind == ()


def test_without_the_load_the_refusal_is_signed_alike(binaries, farm) -> None:
    """Campaigns load past one refusal in four; the others are signed from the edits learned
    for the configuration, with no restore, and must be signed the same."""
    case = Case(MachineConfig("virt-5.2", "cortex-a57"))
    caps = {n: capabilities(binaries[n], farm.cache_dir) for n in ("7.2", "10.0")}
    with Session(settings_for(caps, behind_every=10**9)) as session:
        first = session.run_case(binaries["7.2"], binaries["10.0"], case)
        again = session.run_case(binaries["7.2"], binaries["10.0"], case)
        stats = session.cases.stats
    with _session(binaries, farm, "7.2", "10.0") as session:
        loaded = session.run_case(binaries["7.2"], binaries["10.0"], case)
    assert first.causes == again.causes == loaded.causes
    assert again.past is not None and again.past.judgement is None and again.past.behind == ()
    assert stats["past_signed"] == 2 and stats["past_saves"] == 1  # learned once


def test_a_difference_behind_the_refusal_is_found_and_reproduced(binaries, farm, tmp_path) -> None:
    """A guest whose state 7.2 -> 10.0 restores alike; the second load is compared all the
    same: its re-save and its read-back are there, and the reproducer loads the patched
    stream on the destination with plain QEMU."""
    config = MachineConfig("virt-5.2", "cortex-a57")
    case = Case(config, rebuild_guest(GUEST_OPS, config.smp))
    with _session(binaries, farm, "7.2", "10.0") as session:
        run = session.run_case(binaries["7.2"], binaries["10.0"], case)
    past = run.past
    assert past is not None and past.evidence.pair_resave is not None
    assert past.evidence.pair.load is not None
    transcript = past.evidence.pair.load.details["transcript"]
    assert "TPIDR_EL1=0x0000000000001234" in transcript
    assert isinstance(run.judgement, Divergence)
    # The reproducer of the pair's patched load: the control loads the source's stream,
    # the pair the patched one, both with plain QEMU.
    entry = Entry(
        run.judgement.signature, VersionRef("7.2", ""), VersionRef("10.0", ""), case,
        run.control, past.evidence.pair, {"behind": [str(c) for c in past.first_causes]},
        run.source_stream, patched_stream=past.stream,
    )  # fmt: skip
    folder, _ = write_entry(tmp_path, entry, binaries["7.2"], binaries["10.0"])
    assert load_entry(folder).patched_stream == past.stream
    script = (folder / "repro.sh").read_text()
    assert "# Found behind: refused-on-load: cpreg" in script
    result = subprocess.run(
        ["sh", str(folder / "repro.sh")], capture_output=True, text=True, timeout=60
    )
    text = result.stdout + result.stderr
    assert "control: loaded" in text and "pair: loaded" in text, text


def test_a_refusal_behind_the_refusal_is_its_own_finding(binaries, farm, tmp_path) -> None:
    """7.2 -> 10.0 on xlnx-versal-virt is refused on the CPU's list and, once that is
    patched, on the ``usb-dwc3`` section: 10.0 grew the register array it saves without a
    new version (QEMU b513766ee9). That second refusal is a finding of its own, marked as
    behind the first, and the reproducer's patched load is refused there with plain QEMU."""
    board = board_of("xlnx-versal-virt")
    assert board is not None
    config = MachineConfig(board.machine, board.cpu, smp=4, memory_mib=board.memory_mib)
    case = Case(config, build_guest([SetGpr(3, 5)], smp=4, uart=board.uart))
    with _session(binaries, farm, "7.2", "10.0") as session:
        run = session.run_case(binaries["7.2"], binaries["10.0"], case)
    past = run.past
    assert past is not None and past.evidence is not None
    assert past.evidence.pair.verdict is Verdict.REFUSED
    assert [str(c) for c in past.behind] == [
        "refused-on-load: Missing section footer for usb-dwc3 after usb-dwc3:cfg.dwc_usb3_user"
    ]
    assert past.behind[-1] in run.causes and run.causes[0] in past.first_causes
    entry = Entry(
        past.behind[0], VersionRef("7.2", ""), VersionRef("10.0", ""), case,
        run.control, past.evidence.pair, {"behind": [str(c) for c in past.first_causes]},
        run.source_stream, patched_stream=past.stream,
    )  # fmt: skip
    folder, _ = write_entry(tmp_path, entry, binaries["7.2"], binaries["10.0"])
    result = subprocess.run(
        ["sh", str(folder / "repro.sh")], capture_output=True, text=True, timeout=120
    )
    text = result.stdout + result.stderr
    assert "control: loaded" in text, text
    assert "Missing section footer for usb-dwc3" in text, text


def test_past_a_crash_in_a_subsection_the_destination_does_not_send(
    binaries, farm, tmp_path
) -> None:
    """11.1 -> 10.0 aborts in 11.1's ``cpu/wfxt-timer`` (10.0 has no such subsection).
    Left out, the load meets the refusal behind it -- 11.1 no longer migrates
    ID_AA64ISAR0_EL1 -- found by the tool, not by reading; patched too, the rest agrees."""
    config = MachineConfig("virt-10.0", "cortex-a57")
    case = Case(config, rebuild_guest(GUEST_OPS, config.smp))
    with _session(binaries, farm, "11.1", "10.0") as session:
        run = session.run_case(binaries["11.1"], binaries["10.0"], case)
    assert run.pair.verdict is Verdict.CRASHED
    past = run.past
    assert past is not None and past.evidence is not None
    assert past.left_out == ("cpu/wfxt-timer",)
    assert [str(c) for c in past.first_causes] == [
        "crashed-on-load: assertion in vmstate_load_state: first_elem || !n_elems || !size "
        "after cpu/wfxt-timer:wfxt_timer"
    ]
    assert [p.register for p in past.signing or ()] == ["ID_AA64ISAR0_EL1"]
    assert [c.detail for c in past.behind] == [
        "cpreg missing from incoming stream: not kept at its reset value"
    ]
    assert past.evidence.pair.verdict is Verdict.COMPLETED
    assert isinstance(past.judgement, Agree), past.judgement
    entry = Entry(
        past.behind[0], VersionRef("11.1", ""), VersionRef("10.0", ""), case, run.control,
        past.evidence.pair, {"behind": [str(c) for c in past.first_causes],
                             "past_refusal": past.to_json()},
        run.source_stream, patched_stream=past.stream,
    )  # fmt: skip
    folder, _ = write_entry(tmp_path, entry, binaries["11.1"], binaries["10.0"])
    script = (folder / "repro.sh").read_text()
    assert "Left out of it, as the destination sends none: cpu/wfxt-timer." in script
    result = subprocess.run(
        ["sh", str(folder / "repro.sh")], capture_output=True, text=True, timeout=60
    )
    text = result.stdout + result.stderr
    assert "control: loaded" in text and "pair: loaded" in text, text


def test_past_a_subsection_the_destination_refuses_by_name(farm) -> None:
    """10.2 refuses 11.1's ``cpu/fpmr`` by name (``VM subsection 'cpu/fpmr' in 'cpu' does
    not exist``): left out, the cpreg list's refusal behind it is found, FPMR itself among
    its registers. 10.2.2 is a build from Debian's source package (``migfuzz qemu build
    10.2.2``, ~20 minutes), not on a fresh machine."""
    if "10.2.2" not in farm.installed():
        pytest.skip("10.2.2 is not installed (built from source: migfuzz qemu build 10.2.2)")
    binaries = {name: farm.get(name) for name in ("11.1", "10.2.2")}
    config = MachineConfig("virt-10.0", "max")
    case = Case(config, rebuild_guest(GUEST_OPS, config.smp))
    with _session(binaries, farm, "11.1", "10.2.2") as session:
        run = session.run_case(binaries["11.1"], binaries["10.2.2"], case)
    past = run.past
    assert past is not None and past.evidence is not None
    assert past.left_out == ("cpu/fpmr",)
    assert "VM subsection 'cpu/fpmr' in 'cpu' does not exist" in past.first_causes[0].detail
    behind = {c.detail for c in past.behind}
    assert "cpreg only in incoming stream: S3_3_C4_C4_2" in behind, behind  # FPMR
    assert past.evidence.pair.verdict is Verdict.COMPLETED
    assert isinstance(past.judgement, Agree), past.judgement
