"""Small events the engine emits and the CLI displays.

The engine never prints: it calls an ``emit(event)`` function it was given. The CLI turns
events into a progress display; a distributed runner could send them over a wire.
"""

from __future__ import annotations

from dataclasses import dataclass

from fuzz.outcome import Stage, StepOutcome


@dataclass(frozen=True)
class StepStarted:
    """A save or restore is starting on one version."""

    stage: Stage
    version: str


@dataclass(frozen=True)
class StepFinished:
    """A save or restore ended."""

    outcome: StepOutcome


@dataclass(frozen=True)
class Message:
    """Free text for the user (install progress and the like)."""

    text: str


Event = StepStarted | StepFinished | Message
