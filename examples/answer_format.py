"""Find the instruction that makes a small model answer in the form a program needs, and check it on held-out data.

A ``question -> answer`` program answers word problems of a few sentences; the program that reads its
answers needs a bare number, and the metric says so in its feedback ("the answer must be the
number alone, ..."). The plain instruction "Answer the question." leaves the embedded 135M
model writing sentences ("The answer is 18."). AutoEvolInstruct proposes candidates from
several sources (rules read from the metric's feedback, general edits made from the
signature, a rule its optimizer LM writes from worked examples), measures each on a dev set,
and checks the winner against the plain instruction on held-out questions it never saw.

The metric checks the form only: a 135M model rarely gets the arithmetic right whatever it is
told, but it does follow an instruction about the form of its answer. The data
(``examples/data/story_problems.jsonl``, from ``make_story_problems.py`` beside it) was written
for this project.

    python examples/answer_format.py                      # embedded model, offline (a few minutes on 2 cores)
    python examples/answer_format.py --lm openai/gpt-4o-mini   # any LM: the same code, a stronger model

Rerunning with the same settings continues the study in --out; ``--restart`` starts over.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import dspy

from autoevol_dspy import AutoEvolError, AutoEvolInstruct
from autoevol_dspy.lm import make_lm

DATA = Path(__file__).parent / "data" / "story_problems.jsonl"


class AnswerQuestion(dspy.Signature):
    """Answer the question."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


def bare_number(example: dspy.Example, prediction: dspy.Prediction, trace=None) -> dspy.Prediction:
    """Passes a bare number (digits only); the feedback says what a right answer looks like."""
    answer = str(prediction.answer or "").strip()
    if answer.isdigit():
        return dspy.Prediction(score=1.0, feedback="Right: a bare number.")
    return dspy.Prediction(score=0.0, feedback=f"Wrong: the answer {answer[:80]!r} is not a bare number; the answer "
                                               "must be the number alone, without words, units or symbols.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lm", default="local", help="the LM that answers and proposes (default: embedded model)")
    parser.add_argument("--out", type=Path, default=Path("runs/answer-format"), help="run directory")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--dev-size", type=int, default=16)
    parser.add_argument("--holdout", type=int, default=64, help="questions kept out of the search for the check")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--restart", action="store_true", help="delete --out and start over")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    if args.restart and args.out.exists():
        shutil.rmtree(args.out)
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    examples = [dspy.Example(**row).with_inputs("question") for row in rows]
    lm = make_lm(args.lm, temperature=0.0, max_tokens=32)
    optimizer_lm = make_lm(args.lm, temperature=0.6, max_tokens=128)
    dspy.configure(lm=lm, adapter=dspy.JSONAdapter())
    optimizer = AutoEvolInstruct(
        bare_number, optimizer_lm=optimizer_lm, num_candidates=args.candidates, batch_sampler=4,
        dev_size=args.dev_size, holdout=args.holdout, max_steps=args.steps, num_threads=args.threads,
        run_dir=args.out,
    )
    try:
        program = optimizer.compile(dspy.Predict(AnswerQuestion), trainset=examples)
    except AutoEvolError as exc:
        print(f"answer_format: error: {exc}", file=sys.stderr)
        return 2
    print(optimizer.result.describe())
    print(f"\nthe instruction now:\n{program.signature.instructions}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
