"""Fault injectors for incident scenarios: stall or signal-storm the master, reload it, rotate
the imapd binary, kill a child or the master. See `spec` for the schedule grammar, `runner` for
running a schedule during a load run (always undone at the end, also when interrupted)."""

from loadtest.faults.runner import FaultRunner
from loadtest.faults.spec import FaultSpec, parse_fault, parse_faults

__all__ = ["FaultRunner", "FaultSpec", "parse_fault", "parse_faults"]
