"""Evolve a small scripted dataset into a JSONL file; optionally SIGKILL itself midway (for resume tests).

Usage: python evolve_script.py OUT_JSONL [--kill-after N] [--seeds 30] [--rounds 3] [--threads 3]
Writes the summary, plus the evolution calls this process made, as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from autoevol_dspy.data import evolve_dataset
from autoevol_dspy.data.seeds import load_instructions  # noqa: E402
from world import World, kill_after_evolutions, method  # noqa: E402

#: The method every run of this script uses: about a third of the evolutions fail.
METHOD = method(30)


def seed_texts(count: int) -> list[str]:
    """The scripted seed instructions."""
    return [f"Task {i}: add {i} and {i + 3}, then explain." for i in range(count)]


def killing_world(kill_after: int) -> World:
    """A World that SIGKILLs this process at its ``kill_after``-th evolution call (0: never)."""
    return kill_after_evolutions(World(), kill_after)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--kill-after", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=3)
    args = parser.parse_args()
    world = killing_world(args.kill_after)
    summary = evolve_dataset(
        load_instructions(seed_texts(args.seeds)),
        method=METHOD, out_path=args.out, rounds=args.rounds, evol_lm=world.lm, response_lm=world.lm,
        num_threads=args.threads, progress=False,
    )
    report = summary.model_dump(mode="json")
    report["evolution_calls_this_process"] = world.engine.count("evolution")
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
