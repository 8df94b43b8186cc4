"""The ``migfuzz`` command line: arguments in, events displayed. The only module that prints.

Exit statuses: 0 the command did its job and found no divergence; 1 it found a divergence
(or a regression); 2 bad input (one line on stderr, no traceback); 3 the harness failed;
130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from rich.console import Console

from fuzz import __version__
from fuzz.campaign.driver import (
    Summary,
)
from fuzz.campaign.folder import default_folder
from fuzz.campaign.loop import (
    campaign_seed,
    default_pairs,
    hypothesis_shrink_seconds,
    parse_pairs,
)
from fuzz.campaign.sessions import (
    LIVE_EVERY,
    FuzzOptions,
    SessionResult,
    run_into_corpus,
    run_new,
    run_resumed,
)
from fuzz.core.binary import QemuBinary
from fuzz.core.capabilities import Capabilities
from fuzz.core.case import Case, MachineConfig
from fuzz.core.devices import device_counts
from fuzz.core.live import feature_counts
from fuzz.core.outcome import TransferOutcome
from fuzz.core.settings import RunSettings
from fuzz.corpus.entry import Entry, entry_folders, load_entry
from fuzz.errors import (
    CorpusError,
    HarnessError,
    InvalidInput,
    MigfuzzError,
    StorageError,
    UsageError,
)
from fuzz.events import (
    Event,
    RecheckBegins,
    RecheckEnded,
    RecheckSkipped,
    SessionBegins,
    StepFinished,
)
from fuzz.judge.coverage import summary_lines
from fuzz.judge.oracles import ControlFailed, Divergence, InvalidCase
from fuzz.report.junit import JUnitCase, regress_case, write_junit
from fuzz.run.engine import CaseRun
from fuzz.run.session import Session
from fuzz.stateful.replay import (
    SequenceEntry,
    SequenceReplay,
    is_sequence_entry,
    load_any_entry,
    replay_sequence,
)
from fuzz.status_panel import campaign_display
from fuzz.triage.bisect import Axis, Point, Role, bisect_axis
from fuzz.triage.bugreport import bug_report
from fuzz.triage.describe import diff_layouts, save_layout
from fuzz.triage.diagnose import diagnose
from fuzz.triage.recheck import Rechecked
from fuzz.triage.replay import (
    SHORT_HASH,
    RegressKind,
    Replay,
    ReplayResult,
    ReplayVerdict,
    current_ref,
    is_failure,
    replay,
    rerecord,
)
from fuzz.versions.build import SANITIZERS, build_qemu, parse_sanitizers
from fuzz.versions.farm import (
    DEBIAN_SUITES,
    Farm,
    config_binaries,
    default_cache_dir,
    default_config_file,
    parse_qemu_option,
)
from fuzz.versions.probe import capabilities, probed_settings

#: A corpus entry of either kind: one case (``case.json``) or a stateful sequence.
AnyEntry = Entry | SequenceEntry

EXIT_OK, EXIT_FOUND, EXIT_USAGE, EXIT_HARNESS, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

log = logging.getLogger(__name__)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as :class:`UsageError` (one line, exit 2)."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}")


def _pairs(text: str, what: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {item!r}: expected NAME=VALUE")
        pairs.append((key, value))
    return tuple(pairs)


def _add_case_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--src", required=True, help="version that saves")
    p.add_argument("--dst", required=True, help="version that restores")
    p.add_argument("--machine", required=True, help="machine type, e.g. virt-10.0")
    p.add_argument("--cpu", required=True, help="CPU model, e.g. cortex-a57")
    p.add_argument("--cpu-props", default="", metavar="K=V,...", help="-cpu properties")
    p.add_argument("--machine-opts", default="", metavar="K=V,...", help="-machine options")
    p.add_argument("--smp", type=int, default=1)
    p.add_argument("--memory", type=int, default=64, metavar="MIB")


def _case_from_args(args: argparse.Namespace, farm: Farm) -> tuple[QemuBinary, QemuBinary, Case]:
    """The two binaries and the case named on the command line, checked against the probes."""
    config = MachineConfig(
        machine=args.machine, cpu=args.cpu,
        machine_options=_pairs(args.machine_opts, "--machine-opts"),
        cpu_properties=_pairs(args.cpu_props, "--cpu-props"),
        smp=args.smp, memory_mib=args.memory,
    )  # fmt: skip
    src, dst = farm.get(args.src), farm.get(args.dst)
    for binary in {src.name: src, dst.name: dst}.values():
        _require(capabilities(binary, farm.cache_dir), binary.name, config)
    return src, dst, Case(config=config)


def _add_fuzz_parser(sub: Any) -> None:
    """The ``fuzz`` subcommand's options."""
    fz = sub.add_parser("fuzz", help="differential fuzz campaign over pairs of versions")
    fz.add_argument(
        "--pairs", default="", metavar="A:B,...",
        help="ordered pairs (default: all ordered pairs of installed versions)",
    )  # fmt: skip
    fz.add_argument("--budget", default=None, metavar="DURATION", help="e.g. 10m, 30s, 2h")
    fz.add_argument("--max-cases", type=int, default=None, metavar="N", help="stop after N cases")
    fz.add_argument("--seed", type=int, default=None,
                    help="seed of the case generator (default: a fresh one, printed and "
                         "recorded; give the same seed again to draw the same cases)")  # fmt: skip
    fz.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                    help="worker processes (default: one per core)")  # fmt: skip
    fz.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                    help="run the workers on this Dask cluster (migfuzz[dask]; default -j: "
                         "its worker threads; see README)")  # fmt: skip
    fz.add_argument("--reuse", action=argparse.BooleanOptionalAction, default=True,
                    help="a first look at each case on long-lived QEMU processes, on pairs "
                         "whose recent cases loaded cleanly (default; --no-reuse: every case "
                         "on fresh processes only; see README)")  # fmt: skip
    fz.add_argument("--fan-out", action=argparse.BooleanOptionalAction, default=True,
                    help="restore each save on every destination of its source that starts "
                         "the configuration, each judged as a case (default; --no-fan-out: "
                         "only on the drawn pair's; see README)")  # fmt: skip
    fz.add_argument("--past-refusals", action=argparse.BooleanOptionalAction, default=True,
                    help="load a pair refused on the CPU's register list again with the "
                         "list patched, and judge what follows (default; see "
                         "docs/campaigns.md)")  # fmt: skip
    fz.add_argument("--tolerance", action="store_true",
                    help="also load each case's stream on its source with one cpreg left out, "
                         "and check QEMU's promise that it keeps its reset value (every case "
                         "on fresh processes; see docs/how-cases-run.md)")  # fmt: skip
    fz.add_argument("--live-every", type=int, default=LIVE_EVERY, metavar="N",
                    help="migrate one configuration in about N live: its guest keeps running "
                         "while it migrates over a transport both versions offer (multifd, "
                         "xbzrle, postcopy, mapped-ram...); 0: never (default: "
                         f"{LIVE_EVERY}; see docs/live-migration.md)")  # fmt: skip
    fz.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=True,
                    help="open a campaign on a --budget with live cases by one live "
                         "migration per source and multifd, xbzrle, postcopy and mapped-ram, "
                         "fanned out to every destination that offers it (default; see "
                         "docs/live-migration.md)")  # fmt: skip
    fz.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help="the campaign folder (default: campaigns/<UTC time>/): its record, "
                         "new reproducers, event log, time series")  # fmt: skip
    fz.add_argument("--resume", type=Path, default=None, metavar="DIR",
                    help="continue the campaign in DIR where it stopped")  # fmt: skip
    fz.add_argument("--known", type=Path, action="append", default=[], metavar="DIR",
                    help="a corpus whose signatures count as known: met, never recorded "
                         "again (repeatable; default: the repository's corpus/)")  # fmt: skip
    fz.add_argument("--recheck", action="store_true",
                    help="first replay every open finding (the --known corpora's and the "
                         "campaign's) whose binary changed since it was recorded, and mark "
                         "the fixed ones")  # fmt: skip
    fz.add_argument("--corpus", type=Path, default=None, metavar="DIR",
                    help="no campaign folder: write reproducers straight into DIR "
                         "(scripts)")  # fmt: skip
    fz.add_argument("--no-guests", action="store_true", help="save machines paused at reset only")
    fz.add_argument("--one-sided", action="store_true",
                    help="also draw options one side lacks (tests clean refusals)")  # fmt: skip
    fz.add_argument("--stateful", action="store_true",
                    help="step live processes at random (start, run, save, load, read "
                         "back, reset); compare each load with a one-shot load")  # fmt: skip


#: What ``migfuzz --help`` opens with: what the tool is for, in a user's words.
ABOUT = """\
migfuzz finds where QEMU's AArch64 migration breaks between versions.

It draws machine and CPU configurations and small bare-metal guests, saves each case on
QEMU version A, restores it on B and on A itself (the control), and reports every way B
differs from the control: a refusal, a crash, a hang, or state that came back different.
Each new divergence is shrunk to a minimal reproducer with a plain-QEMU repro.sh."""

#: What ``migfuzz --help`` ends with: the commands a user types daily.
EXAMPLES = """\
daily commands:
  migfuzz qemu install                  Debian's QEMU versions, as qemu.lock pins them
  migfuzz fuzz --budget 8h              a campaign over every ordered pair (fresh seed)
  migfuzz fuzz --pairs 10.0:11.1 -j 4   one pair, four workers
  migfuzz fuzz --resume campaigns/T     go on with a stopped or killed campaign
  migfuzz report campaigns/T            its HTML report
  migfuzz repro corpus/ENTRY            replay a reproducer: same, different or fixed
  migfuzz bisect corpus/ENTRY           which versions show its cause
  migfuzz bug corpus/ENTRY -o bug.md    a bug report for QEMU
  migfuzz regress corpus/               replay every entry (CI)

'migfuzz COMMAND --help' says more; the README and docs/ say the rest."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    p = _Parser(prog="migfuzz", description=ABOUT, epilog=EXAMPLES,
                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--version", action="version", version=f"migfuzz {__version__}")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where QEMU versions and probes are kept (default: $MIGFUZZ_CACHE "
                        "or $XDG_CACHE_HOME/migfuzz)")  # fmt: skip
    p.add_argument("--config", type=Path, default=None,
                   help="TOML file naming your own QEMU builds (default: $MIGFUZZ_CONFIG "
                        "or $XDG_CONFIG_HOME/migfuzz/config.toml)")  # fmt: skip
    p.add_argument("--qemu", action="append", default=[], metavar="NAME=PATH",
                   help="your own qemu-system-aarch64 as version NAME (repeatable)")  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    qemu = sub.add_parser("qemu", help="install and list QEMU versions")
    qsub = qemu.add_subparsers(dest="qemu_command", required=True, parser_class=_Parser)
    inst = qsub.add_parser("install", help="install Debian's QEMU versions side by side")
    inst.add_argument("names", nargs="*", default=[], metavar="VERSION",
                      help="a version name, a QEMU release or Debian version some suite serves "
                           "(10.0.2, 1:10.0.2+ds-2+deb13u1~bpo12+1) or NAME=VERSION "
                           f"(default: {' '.join(DEBIAN_SUITES)} and every version the lock "
                           "names, e.g. point releases the corpus uses)")  # fmt: skip
    inst.add_argument("--force", action="store_true", help="reinstall even if installed")
    inst.add_argument("--update", action="store_true",
                      help="install what Debian serves now, not what the lock pins, and "
                           "rewrite the lock")  # fmt: skip
    bld = _add_build_parser(qsub)
    lst = qsub.add_parser("list", help="show installed versions and what each can do")
    lst.add_argument("--json", action="store_true", help="print the probed capabilities as JSON")
    avail = qsub.add_parser("available", help="QEMU versions the Debian archive serves, by suite")
    avail.add_argument("--refresh", action="store_true", help="fetch the package lists again")
    avail.add_argument("--json", action="store_true", help="print the versions as JSON")
    for qp in (inst, lst, bld):
        qp.add_argument("--lock", type=Path, default=None, metavar="FILE",
                        help="the lock file (default: $MIGFUZZ_LOCK, else qemu.lock of this "
                             "checkout)")  # fmt: skip

    run = sub.add_parser("run", help="save one case on --src and restore it on --dst")
    _add_case_args(run)
    run.add_argument("--json", action="store_true", help="print outcomes as JSON")

    diff = sub.add_parser(
        "diff", help="explain one case: outcome, responsible registers, changed state"
    )
    _add_case_args(diff)
    diff.add_argument("--no-localize", action="store_true", help="skip register localization")
    diff.add_argument("--json", action="store_true", help="print the report as JSON")

    desc = sub.add_parser(
        "describe", help="what --src and --dst write differently for one paused configuration"
    )
    _add_case_args(desc)
    desc.add_argument("--json", action="store_true", help="print the difference as JSON")

    _add_fuzz_parser(sub)

    rp = sub.add_parser("repro", help="replay one reproducer: same, different, or fixed")
    rp.add_argument("path", type=Path, help="a corpus entry folder")
    rp.add_argument(
        "--src", default=None, metavar="NAME=PATH", help="replay with this source binary"
    )
    rp.add_argument(
        "--dst", default=None, metavar="NAME=PATH", help="replay with this destination binary"
    )
    rp.add_argument("--runs", type=int, default=1, metavar="N",
                    help="replay N times and say how often the recorded cause showed "
                         "(its reliability); the verdict is the first run's")  # fmt: skip

    rg = sub.add_parser(
        "regress", help="replay every corpus entry; fail on any change on the recorded binaries"
    )
    rg.add_argument("corpus", type=Path, nargs="?", default=Path("corpus"))
    rg.add_argument("--update", action="store_true", help="re-record entries whose outcome changed")
    rg.add_argument("--strict", action="store_true",
                    help="also fail on outcomes that changed with the binary (another build of "
                         "the same version name)")  # fmt: skip
    rg.add_argument("--junit-xml", type=Path, default=None, metavar="FILE",
                    help="also write the verdicts as JUnit XML: a testcase per entry")  # fmt: skip

    rep = sub.add_parser("report", help="write a campaign folder's HTML report")
    rep.add_argument("folder", type=Path, help="a campaign folder ('migfuzz fuzz --out DIR')")
    rep.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                     help="where to write the page (default: FOLDER/report.html)")  # fmt: skip
    _add_bisect_parsers(sub)
    return p


def _add_build_parser(qsub: Any) -> argparse.ArgumentParser:
    bld: argparse.ArgumentParser = qsub.add_parser(
        "build", help="build a QEMU from Debian's source package (e.g. with AddressSanitizer)"
    )
    bld.add_argument("version", metavar="VERSION",
                     help="a QEMU release whose source a Debian suite serves (11.1.3)")  # fmt: skip
    bld.add_argument("--sanitize", default=None, metavar=",".join(SANITIZERS),
                     help="build with these sanitizers (installed as VERSION-asan, "
                          "VERSION-ubsan, VERSION-asan-ubsan)")  # fmt: skip
    bld.add_argument("--name", default=None, help="install it under this version name")
    bld.add_argument("--force", action="store_true", help="build again even if installed")
    bld.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2, metavar="N",
                     help="compile jobs (default: one per core)")  # fmt: skip
    return bld


def _add_bisect_parsers(sub: Any) -> None:
    bis = sub.add_parser(
        "bisect", help="replay one reproducer over every version: where its cause appears"
    )
    bug = sub.add_parser("bug", help="write a QEMU bug report (markdown) for one reproducer")
    for bp in (bis, bug):
        bp.add_argument("path", type=Path, help="a corpus entry folder")
        bp.add_argument("--versions", default=None, metavar="A,B,...",
                        help="bisect over these versions (default: every installed version "
                             "and user build); the entry's own are always included")  # fmt: skip
        bp.add_argument("--axis", choices=("dst", "src", "both"), default="both",
                        help="vary the destination (source held), the source (destination "
                             "held), or both (default)")  # fmt: skip
    bis.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    bug.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                     help="write the report here (default: standard output)")  # fmt: skip
    bug.add_argument("--no-bisect", action="store_true",
                     help="leave out the version range (runs no QEMU)")  # fmt: skip


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``10m``, ``2h`` -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if m is None or float(m.group(1)) <= 0:
        raise UsageError(f"--budget {text!r}: expected a duration like 90s, 10m or 2h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def build_farm(args: argparse.Namespace) -> Farm:
    """The farm the user asked for: cache folder, config file and --qemu binaries."""
    farm = Farm(cache_dir=args.cache_dir or default_cache_dir())
    for binary in config_binaries(args.config or default_config_file()):
        farm.add(binary)
    for spec in args.qemu:
        farm.add(parse_qemu_option(spec))
    return farm


def _display(event: Event) -> None:
    if isinstance(event, StepFinished):
        o = event.outcome
        err.print(f"  {o.stage} on {o.version}: {o.verdict} ({o.seconds:.2f} s)", style="dim")


def _where_loading_stopped(result: TransferOutcome) -> str | None:
    """From the load-path trace: the failing step, else the last field QEMU loaded."""
    step = result.failing_step
    path = step.details.get("load_path") if step else None
    if not isinstance(path, dict) or not path:
        return None
    return str(path.get("failed") or f"after {path.get('last_field')}")


def run_settings(farm: Farm, binaries: Sequence[QemuBinary], **kwargs: Any) -> RunSettings:
    """The settings of a run over ``binaries``: each used as far as its probe says it goes
    (:func:`~fuzz.versions.probe.probed_settings`)."""
    return probed_settings(binaries, farm.cache_dir, **kwargs)


def _require(caps: Capabilities, name: str, config: MachineConfig) -> None:
    if config.machine not in caps.machine_types:
        virt = caps.virt_machine_types()
        span = f"{virt[0]} .. {virt[-1]}" if virt else "none"
        raise UsageError(f"QEMU {name} has no machine type {config.machine!r} (virt types: {span})")
    if config.cpu not in caps.cpu_models:
        raise UsageError(
            f"QEMU {name} has no CPU model {config.cpu!r} (AArch64 models: "
            f"{', '.join(caps.aarch64_cpu_models)})"
        )


def _show_transfer(label: str, result: TransferOutcome) -> None:
    out.print(f"{label:7} {result.summary()}", markup=False)
    step = result.failing_step
    for line in step.messages[1:] if step else ():
        out.print(f"          {line}", style="dim", markup=False)
    if where := _where_loading_stopped(result):
        out.print(f"          load path stopped: {where}", style="dim", markup=False)


def _exit_status(run: CaseRun) -> int:
    """Found, agree, unusable control (harness) or invalid case (usage)."""
    judgement = run.judgement
    if isinstance(judgement, Divergence):
        return EXIT_FOUND
    if isinstance(judgement, ControlFailed):
        return EXIT_HARNESS
    if isinstance(judgement, InvalidCase):
        return EXIT_USAGE
    return EXIT_OK


def _verdict_line(run: CaseRun) -> str:
    judgement = run.judgement
    if isinstance(judgement, Divergence):
        return f"verdict: divergence: {judgement.signature}"
    if isinstance(judgement, ControlFailed):
        return f"verdict: the control did not complete: {judgement.reason}"
    if isinstance(judgement, InvalidCase):
        return f"verdict: setup error (invalid there; not a divergence): {judgement.reason}"
    return "verdict: same as control"


def cmd_run(args: argparse.Namespace, farm: Farm) -> int:
    """``migfuzz run``: one case, its control, and the one judge's verdict."""
    src, dst, case = _case_from_args(args, farm)
    settings = run_settings(farm, [src, dst], pair_after_failed_control=True)
    with Session(settings, emit=_display) as session:
        run = session.run_case(src, dst, case)
    if args.json:
        out.print_json(json.dumps({
            "control": run.control.to_json(), "pair": run.pair.to_json(),
            "signature": None if run.signature is None else str(run.signature),
        }))  # fmt: skip
        return _exit_status(run)
    out.print(f"case: {case.config.describe()}")
    _show_transfer("control", run.control)
    _show_transfer("pair", run.pair)
    out.print(_verdict_line(run), markup=False)
    return _exit_status(run)


def cmd_diff(args: argparse.Namespace, farm: Farm) -> int:
    """``migfuzz diff``: outcome, signature, responsible registers, changed fields."""
    src, dst, case = _case_from_args(args, farm)
    settings = run_settings(farm, [src, dst], pair_after_failed_control=True)
    with Session(settings, emit=_display) as session:
        report = diagnose(session, src, dst, case, localize=not args.no_localize)
    if args.json:
        data = {
            "control": report.control.to_json(),
            "pair": report.pair.to_json(),
            **report.to_json(),
        }
        out.print_json(json.dumps(data))
        return EXIT_FOUND if report.signature else EXIT_OK

    def say(text: str = "") -> None:
        out.print(text, markup=False)

    say(f"case:      {case.config.describe()}")
    for label, result, state in (("control", report.control, report.control_state),
                                 ("pair", report.pair, report.pair_state)):  # fmt: skip
        say(f"{label + ':':10} {result.summary()}")
        if where := _where_loading_stopped(result):
            say(f"{'':10} load path stopped: {where}")
        if state is not None:
            counts = (
                f"{state.compared} fields compared, {len(state.changed)} changed, "
                f"{len(state.only_before)} only in {result.src}'s stream, "
                f"{len(state.only_after)} only in {result.dst}'s"
            )
            say(f"{'':10} {'round trip' if label == 'control' else 'vs control'}: {counts}")
            for change in state.changed[:20]:
                say(f"{'':12} {change.path}: {change.before} -> {change.after}")
    say(f"signature: {report.signature or 'none (the pair agrees with the control)'}")
    loc = report.localization
    if loc is not None:
        if loc.responsible:
            done = "" if loc.complete else " (search budget ran out: may not be minimal)"
            say(f"responsible registers, found by patching {src.name}'s stream until "
                f"{dst.name} loads it ({loc.tests} restores, {loc.candidates} differing "
                f"entries){done}:")  # fmt: skip
            for patch in loc.responsible:
                say(f"  {patch.describe()}")
        else:
            say(f"registers: not localized: {loc.note}")
    for note in report.notes:
        say(f"note:      {note}")
    return EXIT_FOUND if report.signature else EXIT_OK


def cmd_describe(args: argparse.Namespace, farm: Farm) -> int:
    """``migfuzz describe``: both versions' stream layouts for one configuration, compared."""
    src, dst, case = _case_from_args(args, farm)
    with Session() as session:
        a = session.run(lambda: save_layout(src, case))
        b = session.run(lambda: save_layout(dst, case))
    difference = diff_layouts(a, b)
    if args.json:
        out.print_json(json.dumps({
            "a": src.name, "b": dst.name, "config": case.config.to_json(),
            **difference.to_json(),
        }))  # fmt: skip
        return EXIT_OK
    out.print(f"case: {case.config.describe()}; A = {src.name}, B = {dst.name}", markup=False)
    for line in difference.lines(src.name, dst.name):
        out.print(line, markup=False)
    return EXIT_OK


@contextlib.contextmanager
def _transient_status() -> Iterator[Callable[[str], None]]:
    """Where a slow step says what it is doing (reading package lists, downloading).

    On a terminal, one status line that each message replaces and that is gone when the
    step ends; elsewhere (CI, logs) the messages are logged, shown with ``-v``. Either
    way a command that then fails on bad input still says only its one line.
    """
    if not err.is_terminal:
        yield log.info
        return
    with err.status("", spinner="dots") as shown:
        yield shown.update


def _say_progress(message: str) -> None:
    err.print(message, markup=False)


def cmd_qemu_install(args: argparse.Namespace, farm: Farm) -> int:
    """``migfuzz qemu install``: Debian versions into the cache, as the lock pins them."""
    if args.lock is not None:
        farm.lock_file = args.lock
    names = args.names or farm.default_names()
    with _transient_status() as status:
        binaries = farm.install(names, force=args.force, update=args.update,
                                progress=_say_progress, status=status)  # fmt: skip
    for binary in binaries:
        capabilities(binary, farm.cache_dir)
    out.print(f"installed in {farm.qemu_dir}: {', '.join(b.name for b in binaries)}")
    return EXIT_OK


def cmd_qemu_build(args: argparse.Namespace, farm: Farm) -> int:
    """``migfuzz qemu build``: a QEMU from Debian's source, e.g. with AddressSanitizer."""
    if args.lock is not None:
        farm.lock_file = args.lock
    sanitizers = parse_sanitizers(args.sanitize)
    with _transient_status() as status:
        binary = build_qemu(farm, args.version, sanitizers=sanitizers, name=args.name,
                            force=args.force, jobs=args.jobs, progress=_say_progress,
                            status=status)  # fmt: skip
    capabilities(binary, farm.cache_dir)
    out.print(f"built in {farm.qemu_dir}: {binary.name}", markup=False)
    return EXIT_OK


def cmd_qemu_available(args: argparse.Namespace, farm: Farm) -> int:
    """``migfuzz qemu available``: every qemu-system-arm the Debian archive serves."""
    with _transient_status() as status:
        index = farm.available(refresh=args.refresh, status=status)
    if args.json:
        out.print_json(json.dumps({
            "mirror": index.mirror, "arch": index.arch, "absent": list(index.absent),
            "versions": [{"suite": o.suite, "qemu": o.upstream, "debian_version": o.version,
                          "name": o.name} for o in index.offers],
        }))  # fmt: skip
        return EXIT_OK
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(index.fetched))
    out.print(f"qemu-system-arm in {index.mirror} ({index.arch}; lists of {when})", markup=False)
    rows = [("suite", "QEMU", "Debian version", "install as")]
    rows += [(o.suite, o.upstream, o.version, o.name) for o in index.offers]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(),
                  markup=False)  # fmt: skip
    if index.absent:
        out.print(f"not on this mirror: {' '.join(index.absent)}", markup=False)
    return EXIT_OK


def cmd_qemu_list(args: argparse.Namespace, farm: Farm) -> int:
    """``migfuzz qemu list``: a table of versions, their probed capabilities and lock state."""
    if args.lock is not None:
        farm.lock_file = args.lock
    versions = farm.installed()
    states = farm.lock_states()
    if not versions:
        err.print("no QEMU versions installed: run 'migfuzz qemu install'")
        return EXIT_USAGE
    probed: list[tuple[QemuBinary, Capabilities]] = [
        (b, capabilities(b, farm.cache_dir)) for b in versions.values()
    ]
    if args.json:
        out.print_json(
            json.dumps(
                {
                    b.name: {"binary": b.to_json(), "lock": states.get(b.name), **c.to_json()}
                    for b, c in probed
                }
            )
        )
        return EXIT_OK
    rows = [("name", "QEMU", "origin", "virt machine types", "AArch64 CPUs", "trace", "sha256",
             "lock")]  # fmt: skip
    for b, c in probed:
        virt = c.virt_machine_types()
        rows.append((
            b.name, c.version, b.origin,
            f"{virt[0]}..{virt[-1]} ({len(virt)})" if virt else "-",
            str(len(c.aarch64_cpu_models)), "yes" if c.trace_works else "no", c.binary_hash[:12],
            states.get(b.name, "-"),
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out.print(f"QEMU versions in {farm.qemu_dir}")
    for row in rows:
        out.print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(),
            markup=False,
        )
    for b, c in probed:
        props = [p for p in c.cpu_property_names("max") if not p[3:].isdigit()]
        out.print(f"[{b.name}] {c.version_line}", markup=False)
        out.print(f"  AArch64 CPU models: {' '.join(c.aarch64_cpu_models)}")
        out.print(f"  max -cpu properties: {' '.join(props)} (+ sveN/smeN lengths)")
        out.print(
            "  virt options: "
            + " ".join(
                p.name for p in c.virt_options if p.type == "bool" or p.name.startswith("gic")
            )
        )
        snap = ", snapshot-load" if c.has_snapshot_load else ", loadvm (HMP) only"
        out.print(f"  migration: {' '.join(c.migration_transports)}{snap}")
        out.print(f"  binary: {b.path}")
    lock = farm.lock_file or "the lock"
    for name, state in states.items():
        if state == "differs" and versions[name].origin.startswith("build:"):
            out.print(f"note: {name}: a build whose sha256 differs from {lock} (builds are not "
                      "bit-reproducible); 'migfuzz qemu build --force' records this one",
                      markup=False)  # fmt: skip
        elif state == "differs":
            out.print(f"note: {name}: sha256 differs from {lock}; 'migfuzz qemu install --force "
                      f"{name}' installs the locked binary", markup=False)  # fmt: skip
        elif state == "unlocked" and versions[name].origin.startswith("build:"):
            out.print(f"note: {name}: a build not in {lock}; 'migfuzz qemu build --force' "
                      "with its version and sanitizers records it", markup=False)  # fmt: skip
        elif state == "unlocked":
            out.print(f"note: {name}: not in {lock}; 'migfuzz qemu install {name}' records it",
                      markup=False)  # fmt: skip
    return EXIT_OK


def _print_summary(summary: Summary) -> None:
    out.print()
    state = "interrupted" if summary.interrupted else "finished"
    out.print(f"fuzz {state}: {summary.cases} cases in {summary.seconds:.1f} s "
              f"({summary.cases_per_second:.2f} cases/s), {summary.invalid} invalid, "
              f"{summary.control_failure_count} control failures")  # fmt: skip
    for reason, count in sorted(summary.control_failures.items(), key=lambda kv: -kv[1]):
        out.print(f"  {count:5d}x control failed: {reason}", markup=False)
    for reason, count in sorted(summary.harness.items(), key=lambda kv: -kv[1]):
        out.print(f"  {count:5d}x harness failed (twice; not a finding): {reason}", markup=False)
    if summary.workers_lost:
        out.print(f"  {summary.workers_lost} worker process(es) died (see [worker] lines)",
                  markup=False)  # fmt: skip
    if summary.engine and summary.cases:
        e = summary.engine
        out.print(f"engine: {e.get('reused', 0)} runs on long-lived processes, "
                  f"{e.get('confirmed', 0)} confirmed and {e.get('sampled', 0)} sampled on "
                  f"fresh ones, {e.get('fresh', 0)} fresh only; {e.get('disagreed', 0)} "
                  "disagreements")  # fmt: skip
        if e.get("live"):
            features = feature_counts(e)
            out.print(f"live: {e['live']} runs migrated a running guest; over "
                      + ", ".join(f"{name} {n}" for name, n in features), markup=False)  # fmt: skip
            reach = [f"{name} on {ran} of {offered}" for name, ran, offered in summary.live_pairs()]
            out.print("live cases per pair: " + ", ".join(reach) + " pairs that offer it",
                      markup=False)  # fmt: skip
        if e.get("devices"):
            added = device_counts(e)
            out.print(f"devices: {e['devices']} runs had devices added; "
                      + ", ".join(f"{name} {n}" for name, n in added), markup=False)  # fmt: skip
        if e.get("tolerance_checked"):
            out.print(f"tolerance: {e['tolerance_checked']} loads with a cpreg left out, "
                      f"{e.get('tolerance_broken', 0)} broke QEMU's promise")  # fmt: skip
        if e.get("past_looked"):
            out.print(f"past refusals: {e['past_looked']} refused loads looked past, "
                      f"{e.get('past_past', 0)} got past the cpu once patched "
                      f"({e.get('past_saves', 0)} destination saves and "
                      f"{e.get('past_tests', 0)} test loads to learn the patches)")  # fmt: skip
        per_case = 1000 / summary.cases
        out.print(f"time: cpu per case {summary.python_seconds * per_case:.0f} ms migfuzz "
                  f"(Python) + {summary.qemu_seconds * per_case:.0f} ms QEMU")  # fmt: skip
    pairs = " ".join(f"{a}->{b}: {n}" for (a, b), n in sorted(summary.per_pair.items()))
    out.print(f"cases per pair: {pairs or '-'}", markup=False)
    met = [f for f in summary.findings.values() if f.count]
    for flaky in summary.flaky.values():
        out.print(f"flaky (shown {flaky.reliability} times, not shrunk): {flaky.signature}",
                  markup=False)  # fmt: skip
        out.print(f"         entry: {flaky.path}", markup=False)
    graded = ", ".join(f"{n} {grade}" for grade, n in summary.by_promise().items())
    out.print(f"distinct divergences met: {len(met)}" + (f" ({graded})" if met else ""))
    for f in sorted(met, key=lambda f: -f.count):
        pairs = " ".join(f"{a}->{b}" for a, b in sorted(f.pairs))
        tag = "new" if f.new else "known"
        out.print(f"  {f.count:5d}x [{tag}] {f.signature}", markup=False)
        out.print(f"         pairs: {pairs}", markup=False)
        out.print(f"         reproducer: {f.path or '(not written)'}", markup=False)
        grade = f.promise()
        if grade is not None:
            out.print(f"         promise: {grade.promise} \u2014 {grade.reason}", markup=False)
    for line in summary_lines(summary.coverage):
        out.print(line, markup=False)


#: The repository's own corpus (a checkout): its signatures are always known to a campaign.
REPO_CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def _fuzz_options(args: argparse.Namespace, farm: Farm) -> FuzzOptions:
    if args.live_every < 0:
        raise UsageError(f"--live-every {args.live_every}: must be 0 (never) or more")
    if args.max_cases is not None and args.max_cases < 1:
        raise UsageError(f"--max-cases {args.max_cases}: must be at least 1")
    budget = parse_duration(args.budget) if args.budget else None
    if budget is None and args.max_cases is None:
        budget = 600.0
    pairs = parse_pairs(args.pairs) if args.pairs else default_pairs(list(farm.everyday()))
    if not pairs:
        raise UsageError("no version pairs: install at least two versions ('migfuzz qemu install')")
    for name in {name for pair in pairs for name in pair}:
        farm.get(name)  # an unknown version is refused before any folder is made
    # A campaign folder starts from the repository's corpus; --corpus (scripts, CI) from
    # that corpus alone, as it always did.
    default = [REPO_CORPUS] if args.corpus is None and REPO_CORPUS.is_dir() else []
    known = list(args.known) or default
    for k in known:
        if not k.is_dir():
            raise UsageError(f"--known {k}: no such folder")
    return FuzzOptions(
        tuple(pairs), campaign_seed(args.seed), budget, args.max_cases, not args.no_guests,
        # A tolerance check needs the source's stream: fresh processes only.
        args.one_sided, args.reuse and not args.tolerance, tuple(known), args.fan_out,
        args.past_refusals, args.tolerance, args.live_every if not args.no_guests else 0,
        args.sweep,
    )  # fmt: skip


def cmd_fuzz(args: argparse.Namespace, farm: Farm) -> int:
    """``migfuzz fuzz``: a campaign; ends with the findings summary.

    By default the campaign gets its own folder (:mod:`fuzz.campaign.folder`); ``--resume`` goes
    on with one; ``--corpus`` writes reproducers straight into a corpus folder instead.
    """
    if args.stateful:
        from fuzz.stateful.command import cmd_fuzz_stateful  # noqa: PLC0415

        budget = parse_duration(args.budget) if args.budget else None
        return cmd_fuzz_stateful(args, farm, lambda line: out.print(line, markup=False),
                                 budget=budget)  # fmt: skip
    hypothesis_shrink_seconds()  # a bad MIGFUZZ_SHRINK_SECONDS is refused before any work
    if args.resume is not None and (args.out is not None or args.corpus is not None):
        raise UsageError("--resume DIR goes on with DIR's campaign: no --out or --corpus with it")
    if args.out is not None and args.corpus is not None:
        raise UsageError("--out (a campaign folder) and --corpus (no folder): give one")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"-j {args.jobs}: must be at least 1")
    jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    if args.scheduler is not None and args.jobs is None:
        from fuzz.campaign.cluster import cluster_slots  # noqa: PLC0415 (Dask is optional)

        jobs = cluster_slots(args.scheduler)
    if args.resume is not None:
        result = run_resumed(
            farm, args.resume, jobs=None if args.jobs is None else jobs, default_jobs=jobs,
            emit=_show_session, display=_campaign_display, scheduler=args.scheduler,
            recheck=args.recheck,
        )  # fmt: skip
    elif args.corpus is not None:
        result = run_into_corpus(farm, jobs, _fuzz_options(args, farm), args.corpus,
                                 emit=_show_session, display=_campaign_display,
                                 scheduler=args.scheduler, recheck=args.recheck)  # fmt: skip
    else:
        result = run_new(farm, jobs, _fuzz_options(args, farm), args.out or default_folder(),
                         emit=_show_session, display=_campaign_display,
                         scheduler=args.scheduler, recheck=args.recheck)  # fmt: skip
    return _session_status(result)


def _show_session(event: object) -> None:
    """What a campaign session says around its campaign (its first line, the re-check)."""
    if isinstance(event, SessionBegins):
        pairs = ", ".join(f"{a}->{b}" for a, b in event.pairs)
        verb = f"resuming (session {event.session})" if event.session > 1 else "fuzzing"
        err.print(f"{verb} with seed {event.seed}: {len(event.pairs)} pairs: {pairs}; "
                  f"{event.jobs} worker(s); {event.where}", markup=False)  # fmt: skip
    elif isinstance(event, RecheckSkipped):
        err.print(f"[recheck] skipped: {event.line}", markup=False)
    elif isinstance(event, RecheckBegins):
        err.print(f"[recheck] {event.count} open finding(s) on binaries they were not "
                  "recorded on; replaying them first", markup=False)  # fmt: skip
    elif isinstance(event, Rechecked):
        err.print(f"[recheck] {event.entry.name}: {event.line}", markup=False)
    elif isinstance(event, RecheckEnded):
        err.print(f"[recheck] {len(event.fixed)} of {event.total} fixed"
                  + "".join(f"\n[recheck]   fixed: {sig}" for sig in event.fixed),
                  markup=False)  # fmt: skip


def _campaign_display(
    begins: SessionBegins,
) -> contextlib.AbstractContextManager[Callable[[object], None]]:
    """The live panel on a terminal, plain lines elsewhere (:mod:`fuzz.status_panel`)."""
    return campaign_display(err, budget_seconds=begins.budget_seconds,
                            max_cases=begins.max_cases, pairs=begins.pairs, jobs=begins.jobs,
                            deadline=begins.deadline)  # fmt: skip


def _session_status(result: SessionResult) -> int:
    """``fuzz``'s exit status, and the one line that says why it is a failure."""
    summary = result.summary
    if summary is None:
        out.print(f"the campaign already spent its budget ({result.cases_before} cases in "
                  f"{result.seconds_before:.0f} s): nothing to resume")  # fmt: skip
        return EXIT_OK
    _print_summary(summary)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if summary.cases == 0 and not result.unshrunk:
        err.print("migfuzz: error: no case ran: nothing was tested", markup=False)
        return EXIT_HARNESS
    if summary.cases and summary.control_failure_count == summary.cases:
        err.print(f"migfuzz: error: all {summary.cases} controls failed: nothing was "
                  "compared", markup=False)  # fmt: skip
        return EXIT_HARNESS
    return EXIT_FOUND if any(f.new for f in summary.findings.values()) else EXIT_OK


def _binary_for(farm: Farm, recorded: str, override: str | None) -> QemuBinary:
    if override is None:
        return farm.get(recorded)
    return parse_qemu_option(override)


def cmd_repro(args: argparse.Namespace, farm: Farm) -> int:
    """``migfuzz repro``: replay one entry and say how it compares."""
    if args.runs < 1:
        raise UsageError(f"--runs {args.runs}: must be at least 1")
    entry = load_any_entry(args.path)
    if isinstance(entry, SequenceEntry):
        return _repro_sequence(args, farm, entry)
    src = _binary_for(farm, entry.src.name, args.src)
    dst = _binary_for(farm, entry.dst.name, args.dst)
    with Session(run_settings(farm, [src, dst]), emit=_display) as session:
        result, same = _replays(
            lambda: replay(session, entry, src, dst, cache_dir=farm.cache_dir), args.runs
        )
    out.print(f"entry:    {args.path}", markup=False)
    out.print(f"recorded: {entry.src.name} -> {entry.dst.name}: {entry.signature}", markup=False)
    out.print(entry.promise.line(), markup=False)
    for check in result.binaries_changed:
        out.print(f"binary:   {check.describe()}", markup=False)
    out.print(f"control:  {result.control.summary()}", markup=False)
    out.print(f"pair:     {result.pair.summary()}", markup=False)
    out.print(f"verdict:  {result.describe()}", markup=False)
    _print_reliability(same)
    return _repro_status(result.verdict)


_R = TypeVar("_R", bound=ReplayResult)


def _replays(once: Callable[[], _R], runs: int) -> tuple[_R, list[bool]]:
    """The first of ``runs`` replays, and for each whether it showed the recorded cause."""
    first = once()
    same = [first.verdict is ReplayVerdict.SAME]
    same += [once().verdict is ReplayVerdict.SAME for _ in range(runs - 1)]
    return first, same


def _print_reliability(same: Sequence[bool]) -> None:
    if len(same) > 1:
        out.print(f"reliability: {sum(same)}/{len(same)} runs showed the recorded cause",
                  markup=False)  # fmt: skip


def _repro_status(verdict: ReplayVerdict) -> int:
    """``repro``'s exit status: 0 fixed, 1 a divergence (same or not), 3 unusable."""
    if verdict is ReplayVerdict.FIXED:
        return EXIT_OK
    return EXIT_HARNESS if verdict is ReplayVerdict.UNUSABLE else EXIT_FOUND


def _repro_sequence(args: argparse.Namespace, farm: Farm, entry: SequenceEntry) -> int:
    """``repro`` of a stateful entry: its steps again, on the recorded version names."""
    if args.src is not None or args.dst is not None:
        raise UsageError(f"{args.path}: a stateful entry has no --src/--dst; its steps name "
                         "their versions (use --qemu NAME=PATH to run another build)")  # fmt: skip
    binaries = {name: farm.get(name) for name in entry.versions}
    with Session(run_settings(farm, list(binaries.values())), emit=_display) as session:
        result, same = _replays(
            lambda: replay_sequence(session, entry, binaries, cache_dir=farm.cache_dir),
            args.runs,
        )
    out.print(f"entry:    {args.path}", markup=False)
    out.print(f"recorded: {entry.sequence.signature}", markup=False)
    for line in entry.sequence.describe():
        out.print(f"          {line}", markup=False)
    for check in result.binaries_changed:
        out.print(f"binary:   {check.describe()}", markup=False)
    out.print(f"verdict:  {result.describe()}", markup=False)
    _print_reliability(same)
    return _repro_status(result.verdict)


def cmd_regress(args: argparse.Namespace, farm: Farm) -> int:
    """``migfuzz regress``: every entry must replay to its recorded signature.

    On the recorded binaries a change fails; on another build of the same version name it
    is reported as *changed with the binary* and fails only with ``--strict``.
    """
    folders = entry_folders(args.corpus)
    if not folders:
        raise UsageError(f"{args.corpus}: no corpus entries there")
    items = [_read_entry(folder) for folder in folders]
    _print_regress_binaries(farm, items)
    counts = dict.fromkeys(RegressKind, 0)
    errors = failures = 0
    junit: list[JUnitCase] = []
    with Session() as session:
        for folder, item in zip(folders, items, strict=True):
            began = time.monotonic()
            with out.capture() as said:  # shown below, and kept for --junit-xml
                kind = _regress_one(session, item, farm, update=args.update, strict=args.strict)
            out.print(said.get(), end="", markup=False, emoji=False, highlight=False)
            junit.append(regress_case(folder.name, kind, said.get(), strict=args.strict,
                                      seconds=time.monotonic() - began))  # fmt: skip
            if kind is None:
                errors += 1
                failures += 1
            else:
                counts[kind] += 1
                failures += is_failure(kind, strict=args.strict)
    out.print("summary: " + ", ".join(f"{n} {kind}" for kind, n in counts.items())
              + f", {errors} error{'s' if errors != 1 else ''}", markup=False)  # fmt: skip
    out.print(f"{len(folders) - failures} passed, {failures} failed")
    if args.junit_xml is not None:
        _write_or_fail(lambda: write_junit(junit, args.junit_xml), args.junit_xml)
        out.print(f"JUnit XML: {args.junit_xml}", markup=False)
    return EXIT_FOUND if failures and not args.update else EXIT_OK


def cmd_report(args: argparse.Namespace, _farm: Farm) -> int:
    """``migfuzz report``: one self-contained HTML page about a campaign folder."""
    from fuzz.report.gather import gather  # noqa: PLC0415 (matplotlib loads only for a report)
    from fuzz.report.html import write_report  # noqa: PLC0415

    data = gather(args.folder)
    target = args.output or args.folder / "report.html"
    _write_or_fail(lambda: write_report(data, target), target)
    empty = " (an empty campaign: no case was judged)" if data.cases == 0 else ""
    out.print(f"report: {target}{empty}", markup=False)
    return EXIT_OK


_AXES: dict[str, tuple[Role, ...]] = {
    "dst": ("destination",),
    "src": ("source",),
    "both": ("destination", "source"),
}


def _bisect(args: argparse.Namespace, farm: Farm, entry: Entry) -> list[Axis]:
    """Run ``bisect``'s axes for ``entry``; each version's verdict goes to stderr as it comes."""
    binaries = farm.everyday()
    if args.versions is not None:
        names = [n.strip() for n in args.versions.split(",") if n.strip()]
        if not names:
            raise UsageError(f"--versions {args.versions!r}: expected names like 5.2,7.2,11.1")
        binaries = {n: farm.get(n) for n in names}
    for name in (entry.src.name, entry.dst.name):
        binaries.setdefault(name, farm.get(name))

    def show(point: Point) -> None:
        err.print(f"  {point.label:<18} {point.status:<17} {point.detail}", markup=False)

    axes = []
    with Session(run_settings(farm, list(binaries.values()))) as session:
        for role in _AXES[args.axis]:
            held = entry.src.name if role == "destination" else entry.dst.name
            err.print(f"{role}s, {'source' if role == 'destination' else 'destination'} "
                      f"{held}:", markup=False)  # fmt: skip
            axes.append(bisect_axis(session, entry, binaries, role, cache_dir=farm.cache_dir,
                                    progress=show))  # fmt: skip
    return axes


def _one_shot_entry(path: Path, command: str) -> Entry:
    """A one-shot entry for ``command``; a stateful one is bad input, said in one line."""
    if is_sequence_entry(path):
        raise UsageError(f"{path}: a stateful entry; '{command}' takes one-shot entries "
                         "(its repro.sh replays the steps with plain QEMU)")  # fmt: skip
    return load_entry(path)


def cmd_bisect(args: argparse.Namespace, farm: Farm) -> int:
    """``migfuzz bisect``: where an entry's cause first appears, and where it is fixed.

    Exit 0 when the bisect ran (whatever it found), like ``describe``.
    """
    entry = _one_shot_entry(args.path, args.command)
    axes = _bisect(args, farm, entry)
    if args.json:
        out.print_json(data={
            "entry": str(args.path),
            "signature": str(entry.signature),
            "src": entry.src.name,
            "dst": entry.dst.name,
            **entry.promise.to_json(),
            "axes": [axis.to_json() for axis in axes],
        })  # fmt: skip
        return EXIT_OK
    out.print(f"entry:    {args.path}", markup=False)
    out.print(f"recorded: {entry.src.name} -> {entry.dst.name}: {entry.signature}", markup=False)
    out.print(entry.promise.line(), markup=False)
    for axis in axes:
        held = "source" if axis.role == "destination" else "destination"
        out.print(f"{axis.role}s ({held} {axis.fixed}):", markup=False)
        for point in axis.points:
            out.print(f"  {point.label:<18} {point.status}", markup=False)
        out.print(f"  conclusion: {axis.conclusion()}", markup=False)
    return EXIT_OK


def cmd_bug(args: argparse.Namespace, farm: Farm) -> int:
    """``migfuzz bug``: a markdown QEMU bug report for one entry (with its version range)."""
    entry = _one_shot_entry(args.path, args.command)
    axes = [] if args.no_bisect else _bisect(args, farm, entry)
    text = bug_report(entry, lock=farm.lock(), axes=axes)
    if args.output is None:
        out.print(text, end="", markup=False, emoji=False, highlight=False)
        return EXIT_OK
    _write_or_fail(lambda: args.output.write_text(text), args.output)
    err.print(f"bug report: {args.output}", markup=False)
    return EXIT_OK


def _write_or_fail(write: Callable[[], object], target: Path) -> None:
    """Run ``write``; a file that cannot be written is bad input (one line, exit 2)."""
    try:
        write()
    except OSError as e:
        raise UsageError(f"{target}: cannot write it ({e.strerror or e})") from None


def _read_entry(folder: Path) -> AnyEntry | CorpusError:
    """One entry of either kind, or the error that names what is wrong with it."""
    try:
        return load_any_entry(folder)
    except CorpusError as e:
        return e


def _versions_of(entry: AnyEntry) -> list[str]:
    """The version names an entry runs."""
    if isinstance(entry, SequenceEntry):
        return entry.versions
    return [entry.src.name, entry.dst.name]


def _print_regress_binaries(farm: Farm, items: Sequence[AnyEntry | CorpusError]) -> None:
    """Name the exact binaries a regress run uses: version, short SHA-256, version line."""
    entries = [e for e in items if not isinstance(e, CorpusError)]
    names = dict.fromkeys(n for e in entries for n in _versions_of(e))
    out.print("binaries:")
    width = max((len(n) for n in names), default=0)
    for name in sorted(names, key=lambda n: [int(w) if w.isdigit() else -1 for w in n.split(".")]):
        try:
            ref = current_ref(farm.get(name), farm.cache_dir)
        except InvalidInput as e:
            out.print(f"  {name.ljust(width)}  not available: {e}", markup=False)
            continue
        out.print(f"  {name.ljust(width)}  {ref.sha256[:SHORT_HASH]}  {ref.version_line}",
                  markup=False)  # fmt: skip


def _regress_one(
    session: Session, item: AnyEntry | CorpusError, farm: Farm, *, update: bool, strict: bool
) -> RegressKind | None:
    """Replay one entry for ``regress``; prints its line, returns its kind (None: error)."""
    if isinstance(item, CorpusError):
        out.print(f"ERROR    {item}", markup=False)
        return None
    name = item.path.name if item.path else item.name
    try:
        binaries = {version: farm.get(version) for version in _versions_of(item)}
        session.settings = run_settings(farm, list(binaries.values()))
        result: Replay | SequenceReplay
        if isinstance(item, SequenceEntry):
            result = replay_sequence(session, item, binaries, cache_dir=farm.cache_dir)
        else:
            src, dst = binaries[item.src.name], binaries[item.dst.name]
            result = replay(session, item, src, dst, cache_dir=farm.cache_dir)
    except InvalidInput as e:
        out.print(f"ERROR    {name}: {e}", markup=False)
        return None
    kind = result.kind
    if kind is RegressKind.SAME:
        out.print(f"PASS     {name}", markup=False)
        return kind
    if kind is RegressKind.CHANGED_WITH_BINARY:
        verdict = " (--strict: a failure)" if strict else ""
        out.print(f"BINARY   {name}: changed with the binary{verdict}: "
                  f"{result.describe_binary_change()}", markup=False)  # fmt: skip
    elif kind is RegressKind.UNUSABLE:
        out.print(f"UNUSABLE {name}: {result.describe()}", markup=False)
    else:
        out.print(f"CHANGED  {name}: {result.describe()}", markup=False)
    if update and result.verdict is not ReplayVerdict.UNUSABLE:
        if isinstance(result, SequenceReplay) or isinstance(item, SequenceEntry):
            out.print("         not re-recorded: a stateful entry is re-recorded by "
                      "'migfuzz fuzz --stateful'", markup=False)  # fmt: skip
        elif item.path is not None:
            rerecord(item, result, binaries[item.src.name], binaries[item.dst.name])
            out.print(f"         re-recorded {item.path}", markup=False)
    return kind


COMMANDS: dict[str, Callable[[argparse.Namespace, Farm], int]] = {
    "run": cmd_run,
    "diff": cmd_diff,
    "describe": cmd_describe,
    "fuzz": cmd_fuzz,
    "repro": cmd_repro,
    "regress": cmd_regress,
    "report": cmd_report,
    "bisect": cmd_bisect,
    "bug": cmd_bug,
    "qemu install": cmd_qemu_install,
    "qemu build": cmd_qemu_build,
    "qemu list": cmd_qemu_list,
    "qemu available": cmd_qemu_available,
}


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``migfuzz`` console script and of ``python -m fuzz``."""
    # SIGTERM ends every command the way Ctrl-C does: cleanly, exit 130, no QEMU left.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")  # fmt: skip
        if not args.verbose:
            # qemu.qmp logs a QEMU that exits under it as an error; for us that is a verdict.
            logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)
        farm = build_farm(args)
        name = args.command + (f" {args.qemu_command}" if args.command == "qemu" else "")
        return COMMANDS[name](args, farm)
    except InvalidInput as e:
        err.print(f"migfuzz: error: {e}", markup=False)
        return EXIT_USAGE
    except HarnessError as e:
        err.print(f"migfuzz: harness error: {e}", markup=False)
        return EXIT_HARNESS
    except StorageError as e:
        err.print(f"migfuzz: error: {e}", markup=False)
        return EXIT_HARNESS
    except MigfuzzError as e:
        err.print(f"migfuzz: {e}", markup=False)
        return EXIT_FOUND
    except KeyboardInterrupt:
        err.print("migfuzz: interrupted")
        return EXIT_INTERRUPTED
