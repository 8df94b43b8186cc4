"""Hypothesis strategies for migfuzz: machine/CPU configurations and guest programs.

Pure data: nothing in this package starts a process. Import the public surface from here;
the modules behind it may move.
"""

from strategies.cases import case_strategy, rebuild_guest
from strategies.configs import accepted_by, configurations
from strategies.guests import guest_operations, operations_from_json, operations_to_json
from strategies.image import build_guest
from strategies.sweep import sweep_plan

__all__ = [
    "accepted_by",
    "build_guest",
    "case_strategy",
    "configurations",
    "guest_operations",
    "operations_from_json",
    "operations_to_json",
    "rebuild_guest",
    "sweep_plan",
]
