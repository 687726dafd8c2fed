"""What the rewrite remembers of this run: earlier candidates, how they did, what went wrong in them.

The optimizer LM sees a few of the best and a few of the worst earlier rewrites of the
predictor with their dev failure rates and main failure categories, so it builds on what
helped and stops proposing what already lost (a weak point of optimizers that forget).
"""

from __future__ import annotations

from autoevol_dspy.search.proposer import NO_HISTORY
from autoevol_dspy.search.records import TrialRecord
from autoevol_dspy.text import clip

__all__ = ["earlier_attempts"]


def _rate(trial: TrialRecord) -> str:
    if trial.status == "complete":
        return f"dev failure rate {trial.failure_rate:.3f}"
    return f"dev failure rate at least {trial.failures / trial.dev_size:.3f} (stopped early: it could not win)"


def _problems(trial: TrialRecord) -> str:
    top = sorted(trial.failures_by_category.items(), key=lambda item: (-item[1], item[0]))[:3]
    return ", ".join(f"{name} {count}" for name, count in top) or "none"


def earlier_attempts(trials: list[TrialRecord], *, predictor: str, incumbent: TrialRecord,
                     accepted: frozenset[int] = frozenset(), best: int = 2, worst: int = 2, limit: int = 500) -> str:
    """A short account of earlier rewrites of ``predictor``: the ``best`` best and ``worst`` worst, and the incumbent.

    ``accepted``: the trial numbers that some step accepted (they may have been replaced since).
    """
    earlier = [t for t in trials if t.kind == "candidate" and t.predictor == predictor and t.finished
               and t.number != incumbent.number]
    if not earlier:
        return NO_HISTORY
    ranked = sorted(earlier, key=lambda t: (t.status != "complete", t.failures, t.number))
    chosen = ranked if len(ranked) <= best + worst else ranked[:best] + ranked[-worst:]
    lines = [f"The current instructions have dev failure rate {incumbent.failure_rate:.3f}."]
    for trial in chosen:
        outcome = "accepted" if trial.number in accepted else "not accepted"
        lines.append(f"- Step {trial.step} rewrite ({outcome}): {_rate(trial)}; main problems: {_problems(trial)}."
                     f"\n  Text: {clip(trial.instructions.get(predictor, ''), limit)}")
    return "\n".join(lines)
