"""``migfuzz fuzz --stateful``: options in, :mod:`fuzz.stateful.engine` run, lines out.

The command's own part of the CLI, kept apart so that :mod:`fuzz.cli` only hands over to
it. It prints nothing itself: it gives its lines to the ``show`` callback the CLI passes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fuzz.campaign.loop import campaign_seed, parse_pairs
from fuzz.errors import UsageError
from fuzz.run.session import Session
from fuzz.stateful.engine import describe_summary, run_stateful
from fuzz.versions.farm import Farm
from fuzz.versions.probe import capabilities

EXIT_OK, EXIT_FOUND = 0, 1


def cmd_fuzz_stateful(
    args: argparse.Namespace, farm: Farm, show: Callable[[str], None], *, budget: float | None
) -> int:
    """Run the stateful engine with ``fuzz``'s options; 1 if it found a divergence.

    Uses ``--pairs`` (required), ``budget`` (``--budget``, parsed by the CLI) or
    ``--max-cases`` (default 10 minutes), ``--seed`` (default: a fresh one, printed on
    the first line) and ``--corpus`` (default: ``corpus/`` in a new temporary folder,
    never the repository's).

    :raise UsageError: no pairs, or an option the stateful mode does not take.
    :raise KeyboardInterrupt: Ctrl-C or SIGTERM (no QEMU is left running).
    """
    if not args.pairs:
        raise UsageError("--stateful needs --pairs, e.g. --pairs 11.1:11.1")
    for name in ("resume", "out"):
        if getattr(args, name, None) is not None:
            raise UsageError(f"--stateful does not take --{name}: give --corpus DIR")
    if args.max_cases is not None and args.max_cases < 1:
        raise UsageError(f"--max-cases {args.max_cases}: must be at least 1")
    if budget is None and args.max_cases is None:
        budget = 600.0
    pairs = parse_pairs(args.pairs)
    names = sorted({v for pair in pairs for v in pair})
    binaries = {name: farm.get(name) for name in names}
    caps = {name: capabilities(b, farm.cache_dir) for name, b in binaries.items()}
    corpus = args.corpus
    if corpus is None:
        corpus = Path(tempfile.mkdtemp(prefix="migfuzz-stateful-")) / "corpus"
    deadline = None if budget is None else time.time() + budget
    seed = campaign_seed(args.seed)
    show(f"stateful fuzzing with seed {seed} of {', '.join(f'{a}:{b}' for a, b in pairs)}; "
         f"entries go to {corpus}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="migfuzz-stateful-work-") as work, Session() as session:
        summary = run_stateful(
            session, binaries, caps, pairs, corpus=corpus, workdir=Path(work),
            max_cases=args.max_cases, deadline=deadline, seed_value=seed, emit=show,
        )  # fmt: skip
    for line in describe_summary(summary):
        show(line)
    return EXIT_FOUND if summary.findings else EXIT_OK
