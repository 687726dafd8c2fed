"""The scripted LM of the orchestration and LM-call benchmarks: a responder for ``autoevol_dspy.testing``.

It answers every kind of call a run makes (Auto Evol-Instruct's evolution, response,
analysis, rewrite and judge calls, a small question-answering program, and the proposal
calls of GEPA and MIPROv2) from the parsed request, deterministically given the order of
identical requests. The orchestration benchmark serves it over HTTP with
``autoevol_dspy.testing.StubProcess("stub_behaviour:StubBehaviour", ...)``; the LM-call
benchmark's ``--smoke`` form runs it in-process with ``scripted_lm``.

Quality is carried in the instruction texts as a marker ``[stub-level=N]``: an evolving method
at level N answers (instead of rewriting) every instruction whose stable hash bucket (0-99) is
below N, and a program at level N answers those questions wrongly. Rewrites and proposals
return new texts at other levels, some better, some worse, one a duplicate and one unchanged,
so selection, deduplication and early stop all have work to do.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter

from autoevol_dspy.testing import Answer, Call, generic_answer

__all__ = ["DEFAULT_LEVEL", "StubBehaviour", "bucket", "level_of", "with_level"]

LEVEL = re.compile(r"\s*\[stub-level=(\d+)\]")
#: Failure level of a method or program text without a marker.
DEFAULT_LEVEL = 60
#: Response failures: evolved instructions whose bucket is below this get a "please provide" reply.
RESPONSE_FAILURE_LEVEL = 10
#: How the k-th rewrite of the same text changes its level (a multiplier); 1.0 means "unchanged text".
REWRITE_FACTORS = (0.6, 0.85, 1.25, 0.85, 1.0, 0.7, 1.1)
_FENCE = re.compile(r"```\n?(.*?)\n?```", re.DOTALL)


def bucket(text: str, salt: str = "") -> int:
    """A stable 0-99 bucket of a text."""
    return int(hashlib.sha256(f"{salt}{text}".encode()).hexdigest()[:8], 16) % 100


def level_of(text: str, default: int) -> int:
    """The ``[stub-level=N]`` marker of a text, or ``default``."""
    found = LEVEL.search(text or "")
    return int(found.group(1)) if found else default


def with_level(text: str, level: int) -> str:
    """``text`` with its level marker replaced by ``level``."""
    return f"{LEVEL.sub('', text).rstrip()} [stub-level={level}]"


class StubBehaviour:
    """A responder: ``behaviour(call)`` answers one parsed request; ``reset()`` forgets earlier requests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: Counter[str] = Counter()

    def reset(self) -> None:
        """Forget earlier requests, so a repeated run gets the same replies."""
        with self._lock:
            self._seen.clear()

    def _occurrence(self, *parts: str) -> int:
        """How many identical requests came before this one (m samples of one prompt differ by this)."""
        key = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
        with self._lock:
            index = self._seen[key]
            self._seen[key] += 1
        return index

    def __call__(self, call: Call) -> Answer:
        handler = {
            "text": self._reflection, "analysis": self._analysis, "rewrite": self._rewrite,
            "evolution": self._evolution, "judge": lambda c: {"verdict": "not equal"}, "response": self._response,
            "proposal": self._proposal, "program": self._program,
        }[call.kind]
        answer = handler(call)
        return generic_answer(call, answer) if isinstance(answer, dict) else answer

    def _evolution(self, call: Call) -> dict[str, str]:
        instruction = call.inputs.get("instruction", "")
        if bucket(instruction) < level_of(call.instructions, DEFAULT_LEVEL):
            return {"evolved_instruction": f"The answer is {len(instruction) % 97}."}
        return {"evolved_instruction": f"{instruction} Solve it in at least three steps and state the units of "
                                       "every result."}

    def _response(self, call: Call) -> dict[str, str]:
        instruction = call.inputs.get("instruction", "")
        if bucket(instruction, "response") < RESPONSE_FAILURE_LEVEL:
            return {"response": "Sure, could you please provide the missing numbers?"}
        return {"response": "First, restate the quantities. Second, combine them step by step. "
                            "Third, check the units. The result follows from these steps."}

    def _analysis(self, call: Call) -> dict[str, str]:
        trajectory = call.inputs["trajectory"]
        sample = self._occurrence("analysis", call.inputs.get("current_instructions", ""), trajectory)
        failed = trajectory.count("Detected problem") + trajectory.count("FAILED")
        return {"feedback": f"Analysis variant {sample}: {failed} case(s) failed; the rewriter answered "
                            "the instruction instead of rewriting it. Keep the step structure."}

    def _rewrite(self, call: Call) -> dict[str, str]:
        current = call.inputs.get("current_instructions", "")
        found = re.search(r"Analysis variant (\d+)", call.inputs.get("feedback", ""))
        variant = int(found.group(1)) if found else self._occurrence("rewrite", current)
        return {"improved_instructions": _revised(current, variant)}

    def _program(self, call: Call) -> dict[str, str]:
        question = call.inputs.get("question", "")
        if "answer" not in call.outputs:
            return {}
        correct = sum(int(n) for n in re.findall(r"\d+", question))
        wrong = bucket(question) < level_of(call.instructions, DEFAULT_LEVEL)
        return {"answer": str(correct + 1 if wrong else correct)}

    def _reflection(self, call: Call) -> str:
        blocks = _FENCE.findall(call.prompt)
        current = blocks[0].strip() if blocks else ""
        variant = self._occurrence("reflection", current)
        return f"```\n{_revised(current, variant, force_change=True)}\n```"

    def _proposal(self, call: Call) -> dict[str, str]:
        basic = call.inputs.get("basic_instruction", "Answer the question.")
        variant = self._occurrence("mipro", basic, call.inputs.get("tip", ""))
        tip = bucket(call.inputs.get("tip", ""), "tip") % len(REWRITE_FACTORS)
        return {"proposed_instruction": _revised(basic, variant + tip, force_change=True)}


def _revised(current: str, variant: int, *, force_change: bool = False) -> str:
    """The ``variant``-th rewrite of ``current``: a new level, or the same text for factor 1.0."""
    factor = REWRITE_FACTORS[variant % len(REWRITE_FACTORS)]
    if factor == 1.0 and not force_change:
        return current
    level = max(2, min(95, round(level_of(current, DEFAULT_LEVEL) * factor)))
    return with_level(current or "Answer the question.", level)
