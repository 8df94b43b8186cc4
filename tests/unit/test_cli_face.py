"""What a user reads first: ``migfuzz --help``, and the seed a campaign draws."""

from __future__ import annotations

import pytest

from fuzz.campaign.loop import SEED_BITS, campaign_seed
from fuzz.cli import build_parser
from fuzz.errors import UsageError


def test_help_says_what_migfuzz_is_and_ends_with_the_daily_commands() -> None:
    text = build_parser().format_help()
    assert "finds where QEMU's AArch64 migration breaks" in text
    assert "The only module that prints" not in text  # the module's docstring is for us
    tail = text[text.index("daily commands:") :]
    for command in ("fuzz --budget", "fuzz --resume", "report", "repro", "bisect", "regress"):
        assert f"migfuzz {command}" in tail


def test_a_campaign_draws_a_fresh_seed_unless_given_one() -> None:
    drawn = {campaign_seed(None) for _ in range(8)}
    assert len(drawn) > 1 and all(0 <= s < 2**SEED_BITS for s in drawn)
    assert campaign_seed(0) == 0 and campaign_seed(77) == 77
    with pytest.raises(UsageError, match="--seed -1"):
        campaign_seed(-1)
