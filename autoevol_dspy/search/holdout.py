"""The held-out check: did the selected instructions beat the initial ones on data the search never saw?

Selection on a dev set flatters the winner (its dev rate is the minimum of several noisy
rates), so every run measures the initial and the best instructions on held-out cases
and reports both rates with 95% intervals and a paired one-sided sign test.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field

from autoevol_dspy.lm.usage import UsageReport
from autoevol_dspy.search.strategies.acceptance import sign_test_p

__all__ = ["MIN_HOLDOUT", "HoldoutComparison", "HoldoutMeasure", "compare_on_holdout", "measure", "rate_interval"]

#: Fewer held-out cases than this cannot say anything: the comparison is reported as "too small".
MIN_HOLDOUT = 10
_Z = 1.959964

Verdict = Literal["confirmed", "not confirmed", "unchanged", "too small"]


class HoldoutMeasure(BaseModel):
    """One set of instructions on the held-out cases."""

    candidate_key: str
    failures: float
    size: int
    losses: dict[int, float] = Field(default_factory=dict)
    interval: tuple[float, float]
    by_category: dict[str, int] = Field(default_factory=dict)
    usage: UsageReport = Field(default_factory=UsageReport)

    @property
    def failure_rate(self) -> float:
        return self.failures / self.size if self.size else 0.0


class HoldoutComparison(BaseModel):
    """Initial vs best instructions on the held-out cases, and whether the gain holds."""

    size: int
    initial: HoldoutMeasure
    best: HoldoutMeasure
    wins: int = Field(description="held-out cases the best does better on")
    losses: int = Field(description="held-out cases the best does worse on")
    p_value: float = Field(description="one-sided sign test that the best is better than the initial")
    verdict: Verdict

    def describe(self) -> str:
        """One line for a person: both rates with intervals, the test, the verdict."""
        def rate(m: HoldoutMeasure) -> str:
            return f"{m.failure_rate:.3f} [{m.interval[0]:.3f}, {m.interval[1]:.3f}]"

        if self.verdict == "unchanged":
            return f"held-out failure rate {rate(self.initial)} on {self.size} cases (the initial instructions were kept)"
        note = {"confirmed": "the gain holds (p < 0.05)", "not confirmed": "the gain does not hold on held-out data",
                "too small": f"too small to say anything (fewer than {MIN_HOLDOUT} cases)"}[self.verdict]
        return (f"held-out failure rate {rate(self.initial)} -> {rate(self.best)} on {self.size} cases: "
                f"{self.wins} better, {self.losses} worse, p = {self.p_value:.3f}; {note}")


def rate_interval(losses: dict[int, float], size: int) -> tuple[float, float]:
    """A 95% interval for the mean loss: Wilson's for pass/fail cases, a normal one for scored cases."""
    if size == 0:
        return (0.0, 1.0)
    values = list(losses.values())
    mean = sum(values) / size
    if all(v in (0.0, 1.0) for v in values):
        centre = (mean + _Z**2 / (2 * size)) / (1 + _Z**2 / size)
        half = _Z * math.sqrt(mean * (1 - mean) / size + _Z**2 / (4 * size**2)) / (1 + _Z**2 / size)
        return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))
    variance = (sum(v * v for v in values) / size - mean**2) * size / max(1, size - 1)
    half = _Z * math.sqrt(max(variance, 0.0) / size)
    return (round(max(0.0, mean - half), 4), round(min(1.0, mean + half), 4))


def measure(candidate_key: str, losses: dict[int, float], size: int, usage: UsageReport | None = None,
            by_category: dict[str, int] | None = None) -> HoldoutMeasure:
    """A held-out measure from case losses."""
    return HoldoutMeasure(candidate_key=candidate_key, failures=round(sum(losses.values()), 9), size=size,
                          losses=losses, interval=rate_interval(losses, size), by_category=dict(by_category or {}),
                          usage=usage or UsageReport())


def compare_on_holdout(initial: HoldoutMeasure, best: HoldoutMeasure) -> HoldoutComparison:
    """The paired comparison of the best instructions against the initial ones on the same held-out cases."""
    cases = set(initial.losses) | set(best.losses)
    wins = sum(1 for i in cases if best.losses.get(i, 0.0) < initial.losses.get(i, 0.0))
    worse = sum(1 for i in cases if best.losses.get(i, 0.0) > initial.losses.get(i, 0.0))
    p_value = sign_test_p(wins, worse)
    if initial.candidate_key == best.candidate_key:
        verdict: Verdict = "unchanged"
    elif initial.size < MIN_HOLDOUT:
        verdict = "too small"
    elif best.failures < initial.failures and p_value < 0.05:
        verdict = "confirmed"
    else:
        verdict = "not confirmed"
    return HoldoutComparison(size=initial.size, initial=initial, best=best, wins=wins, losses=worse,
                             p_value=round(p_value, 6), verdict=verdict)
