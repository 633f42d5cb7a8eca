"""How a run ends other than with a result: a cooperative stop, or a run that left the finite numbers."""

from __future__ import annotations


class Stopped(Exception):
    """should_stop() asked the run to stop (cooperative cancel) after `outer_step` outer steps."""

    def __init__(self, outer_step: int) -> None:
        super().__init__(f"stopped on request after outer step {outer_step}")
        self.outer_step = outer_step


class NonFiniteError(RuntimeError):
    """A cost or meta-gradient became NaN or infinite; no matrices are returned."""


class CheckpointMismatch(ValueError):
    """A checkpoint that cannot resume this run (another spec, or another format)."""
