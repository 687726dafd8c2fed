"""The guard: its checks in order, cheapest first, each under a time limit; the first rejection wins."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from autoevol_dspy.errors import ConfigurationError
from autoevol_dspy.search.strategies.proposal_guard.base import ProposalCheck, ProposalContext, Rejection, _positive
from autoevol_dspy.search.strategies.proposal_guard.length import LengthOutOfRange
from autoevol_dspy.search.strategies.proposal_guard.not_instruction import NotAnInstruction
from autoevol_dspy.search.strategies.proposal_guard.prompt_format import NamesPromptFormat
from autoevol_dspy.search.strategies.proposal_guard.repetition import RepeatsItself, RestatesInstructions
from autoevol_dspy.search.strategies.proposal_guard.task import DropsTask
from autoevol_dspy.search.strategies.proposal_guard.trajectory import CopiesTrajectory
from autoevol_dspy.timelimit import TimeLimitExceeded, call_with_time_limit


def default_checks() -> list[ProposalCheck]:
    """The rule checks, cheapest first; no LM calls."""
    return [LengthOutOfRange(), RepeatsItself(), RestatesInstructions(), NotAnInstruction(), NamesPromptFormat(),
            DropsTask(), CopiesTrajectory()]


class ProposalGuard:
    """Runs its checks in order and returns the first rejection, or ``None`` for a usable proposal."""

    def __init__(self, *, checks: Sequence[ProposalCheck] | None = None, retries: int = 2,
                 check_time_limit: float | None = 120.0) -> None:
        """``retries``: how many more rounds of m samples a step asks for when every sample was refused.

        ``check_time_limit``: seconds one check may take on one proposal (``None``: no limit); a
        check that runs past it refuses the proposal as ``check_timeout``.
        """
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ConfigurationError(f"retries must be a non-negative integer, got {retries!r}")
        if check_time_limit is not None:
            _positive("check_time_limit", check_time_limit)
        self.retries = retries
        self.check_time_limit = check_time_limit
        self.checks = list(default_checks() if checks is None else checks)
        for check in self.checks:
            if not isinstance(check, ProposalCheck):
                raise ConfigurationError(f"{check!r} is not a ProposalCheck (needs check() and describe())")

    def check(self, proposal: ProposalContext) -> Rejection | None:
        for rule in self.checks:
            try:  # a check that overruns (an LM judge, a user's own) refuses, and the step goes on
                rejection = call_with_time_limit(rule.check, proposal, seconds=self.check_time_limit)
            except TimeLimitExceeded as exc:
                rejection = Rejection(category="check_timeout", reason=f"the check {exc}", check=type(rule).__name__)
            if rejection is not None:
                return rejection
        return None

    def check_all(self, proposal: ProposalContext) -> list[Rejection]:
        """Every check's rejection, for measuring the rules one by one."""
        return [rejection for rule in self.checks if (rejection := rule.check(proposal)) is not None]

    def describe(self) -> dict[str, Any]:
        return {"type": "ProposalGuard", "retries": self.retries, "checks": [rule.describe() for rule in self.checks]}
