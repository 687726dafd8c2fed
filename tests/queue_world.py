"""The stub world of the shared-study tests: several distinct candidates a step, answers that do not depend on
which process asks.

Evolution, response and analysis answers depend on the request's content only (as in
``faulty_world``). The optimizer's rewrites of a method of quality q are the qualities
``REWRITES[q]`` in the order the rewrite calls arrive: every run proposes the same set of
candidates each step (the driver alone proposes), with distinct qualities, so one candidate
is best whatever order they are planned in. ``reset()`` starts the script again for the next run.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

from autoevol_dspy.testing import Call
from faulty_world import SEEDS, quality_of, respond
from world import method

#: The rewrites of each quality, one per rewrite call in turn: step 1 from q90, step 2 from q30.
REWRITES = {90: [60, 30, 75, 45], 30: [35, 12, 20, 50], 12: [15, 40, 25, 33]}
INITIAL_QUALITY = 90


class QueueWorld:
    """A responder with a per-quality rewrite script and ``reset()``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: dict[int, int] = defaultdict(int)

    def reset(self) -> None:
        with self.lock:
            self.counters.clear()

    def __call__(self, call: Call):
        if call.kind != "rewrite":
            return respond(call)
        quality = quality_of(call.inputs["current_instructions"])
        options = REWRITES.get(quality, [quality + 1])
        with self.lock:
            index = self.counters[quality]
            self.counters[quality] += 1
        return {"improved_instructions": method(options[index % len(options)], "rewritten")}


def optimize_args(api_base: str, out: Path, initial: Path, *extra: str) -> list[str]:
    """Two steps of four candidates on a dev set of 16, two LM calls at a time."""
    return ["optimize", str(SEEDS), "--out", str(out), "--lm", "openai/stub", "--api-base", api_base,
            "--initial-method", str(initial), "--steps", "2", "--candidates", "4", "--batch-size", "3",
            "--dev-size", "16", "--holdout", "0", "--patience", "2", "--threads", "2", "--no-progress", *extra]


def initial_method(directory: Path) -> Path:
    path = directory / "initial.txt"
    path.write_text(method(INITIAL_QUALITY) + "\n", encoding="utf-8")
    return path
