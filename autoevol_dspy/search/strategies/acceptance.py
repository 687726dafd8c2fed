"""When a step's best candidate replaces the incumbent: fewer failures, by a margin, or by a paired test.

Selection on a small dev set flatters the winner, so the criterion decides how much
evidence a replacement needs. Both trials were judged on the same dev cases; each is
given as its case losses (dev index -> loss; 1 per failed case, ``1 - score`` for a
scored metric). ``could_accept`` lets the exact early stop abandon a candidate as soon
as its running loss rules it out (losses only grow as cases are judged).
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

from autoevol_dspy.errors import ConfigurationError

__all__ = ["AcceptanceCriterion", "MarginAcceptance", "PairedTestAcceptance", "StrictImprovement", "sign_test_p"]

_EPSILON = 1e-9


def _total(losses: dict[int, float]) -> float:
    return sum(losses.values())


@runtime_checkable
class AcceptanceCriterion(Protocol):
    """Judges a fully evaluated candidate against the incumbent on the same dev cases."""

    def accepts(self, *, candidate: dict[int, float], incumbent: dict[int, float], dev_size: int) -> bool:
        """Whether the candidate replaces the incumbent."""
        ...

    def could_accept(self, *, loss: float, incumbent_loss: float, dev_size: int) -> bool:
        """Whether a candidate whose total loss is already ``loss`` can still be accepted."""
        ...

    def describe(self) -> dict[str, Any]: ...


class StrictImprovement:
    """Accept any candidate with fewer failures than the incumbent (the paper's rule)."""

    def accepts(self, *, candidate: dict[int, float], incumbent: dict[int, float], dev_size: int) -> bool:
        return _total(candidate) < _total(incumbent) - _EPSILON

    def could_accept(self, *, loss: float, incumbent_loss: float, dev_size: int) -> bool:
        return loss < incumbent_loss - _EPSILON

    def describe(self) -> dict[str, Any]:
        return {"type": "StrictImprovement"}


class MarginAcceptance:
    """Accept only a candidate with at least ``min_fewer`` fewer failures than the incumbent."""

    def __init__(self, *, min_fewer: float = 2) -> None:
        if isinstance(min_fewer, bool) or not isinstance(min_fewer, (int, float)) or min_fewer <= 0:
            raise ConfigurationError(f"min_fewer must be a positive number, got {min_fewer!r}")
        self.min_fewer = min_fewer

    def accepts(self, *, candidate: dict[int, float], incumbent: dict[int, float], dev_size: int) -> bool:
        return _total(candidate) <= _total(incumbent) - self.min_fewer + _EPSILON

    def could_accept(self, *, loss: float, incumbent_loss: float, dev_size: int) -> bool:
        return loss <= incumbent_loss - self.min_fewer + _EPSILON

    def describe(self) -> dict[str, Any]:
        return {"type": "MarginAcceptance", "min_fewer": self.min_fewer}


def sign_test_p(wins: int, losses: int) -> float:
    """One-sided exact sign test (McNemar on the discordant pairs): P(X >= wins), X ~ Bin(wins + losses, 1/2)."""
    n = wins + losses
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n


class PairedTestAcceptance:
    """Accept a candidate with fewer failures that also does better on significantly more cases than it
    does worse on (a one-sided sign test on the shared dev cases at level ``alpha``)."""

    def __init__(self, *, alpha: float = 0.1) -> None:
        if not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
            raise ConfigurationError(f"alpha must be between 0 and 1, got {alpha!r}")
        self.alpha = alpha

    def accepts(self, *, candidate: dict[int, float], incumbent: dict[int, float], dev_size: int) -> bool:
        cases = set(candidate) | set(incumbent)
        wins = sum(1 for i in cases if candidate.get(i, 0.0) < incumbent.get(i, 0.0) - _EPSILON)
        losses = sum(1 for i in cases if candidate.get(i, 0.0) > incumbent.get(i, 0.0) + _EPSILON)
        better = _total(candidate) < _total(incumbent) - _EPSILON
        return better and sign_test_p(wins, losses) < self.alpha

    def could_accept(self, *, loss: float, incumbent_loss: float, dev_size: int) -> bool:
        return loss < incumbent_loss - _EPSILON

    def describe(self) -> dict[str, Any]:
        return {"type": "PairedTestAcceptance", "alpha": self.alpha}
