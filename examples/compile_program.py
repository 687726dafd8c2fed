"""Compile a small DSPy program with AutoEvolInstruct: route customer messages to a support team.

The program has two predictors: ``summarize`` (a dspy.Predict that states the customer's
issue in one line) and ``route`` (a dspy.ChainOfThought that picks the team from the
message and that summary). A metric with feedback says which runs failed and why; each
optimization step rewrites one predictor's instructions from those failures.

By default everything runs offline on the embedded SmolLM2-135M model with tiny settings
(a few minutes on 2 CPU cores); a 135M model is weak, so expect high failure rates. Use a
stronger model for real results, e.g. ``--lm openai/gpt-4o-mini`` (with OPENAI_API_KEY) or
``--lm openai/MODEL --api-base http://127.0.0.1:8000/v1`` for a local vLLM or llama.cpp server.

    python examples/compile_program.py                      # embedded model, tiny run (~2 minutes)
    python examples/compile_program.py --local-threads 1    # the same, when other programs load the cores
    python examples/compile_program.py --steps 3 --candidates 4 --dev-size 12 --batch-size 4

Rerunning with the same settings continues the study in --out; a rerun with other
settings needs another --out (or delete the old one).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import dspy

from autoevol_dspy import AutoEvolError, AutoEvolInstruct
from autoevol_dspy.lm import make_lm
from autoevol_dspy.tasks.base import get_instructions

logger = logging.getLogger("compile_program")

TEAMS = ("billing", "shipping", "technical", "account")
DATA = Path(__file__).parent / "data" / "support_messages.jsonl"


class Summarize(dspy.Signature):
    """State in one short sentence what the customer needs."""

    message: str = dspy.InputField(desc="a message a customer sent to support")
    issue: str = dspy.OutputField(desc="one sentence")


class Route(dspy.Signature):
    """Pick the support team that should handle the message."""

    message: str = dspy.InputField()
    issue: str = dspy.InputField(desc="what the customer needs")
    team: str = dspy.OutputField(desc="one of: billing, shipping, technical, account")


class SupportRouter(dspy.Module):
    """Summarize the issue, then route the message to a team."""

    def __init__(self) -> None:
        super().__init__()
        self.summarize = dspy.Predict(Summarize)
        self.route = dspy.ChainOfThought(Route)

    def forward(self, message: str) -> dspy.Prediction:
        issue = self.summarize(message=message).issue
        return self.route(message=message, issue=issue)


def teams_named(text: str) -> list[str]:
    """The team names an answer mentions, in the order the teams are listed."""
    words = set("".join(ch if ch.isalpha() else " " for ch in str(text).lower()).split())
    return [team for team in TEAMS if team in words]


def team_metric(example: dspy.Example, prediction: dspy.Prediction, trace=None) -> dspy.Prediction:
    """Right when the answer names exactly the expected team; the feedback says what was wrong."""
    named = teams_named(prediction.get("team", ""))
    if named == [example.label]:
        return dspy.Prediction(score=1.0, feedback=None)
    answer = str(prediction.get("team", ""))[:80]
    if not named:
        problem = f"the answer {answer!r} names no team; it must be one of {', '.join(TEAMS)}"
    elif len(named) > 1:
        problem = f"the answer {answer!r} names several teams ({', '.join(named)}); name exactly one"
    else:
        problem = f"routed to {named[0]}, but the message is for {example.label}"
    return dspy.Prediction(score=0.0, feedback=problem)


def load_messages(path: Path) -> list[dspy.Example]:
    """The labelled messages, with ``message`` marked as the input."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [dspy.Example(message=row["message"], label=row["label"]).with_inputs("message") for row in rows]


def is_local(spec: str) -> bool:
    return spec == "local" or spec.startswith("local:")


def build_lm(spec: str, args: argparse.Namespace, max_tokens: int) -> dspy.LM:
    """An LM from a spec; the embedded model gets a context long enough for the optimizer's prompts."""
    if is_local(spec):
        return make_lm(spec, n_ctx=4096, n_threads=args.local_threads, temperature=0.0, max_tokens=max_tokens)
    return make_lm(spec, api_base=args.api_base, temperature=0.0, max_tokens=max_tokens)


def adapter_for(args: argparse.Namespace) -> dspy.Adapter | None:
    """JSON for local models: llama.cpp then decodes only JSON that parses, so no call is wasted on a retry."""
    specs = [args.lm, args.optimizer_lm or args.lm]
    return dspy.JSONAdapter() if any(is_local(spec) for spec in specs) else None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lm", default="local", help="LM spec of the program (default: the embedded model)")
    parser.add_argument("--optimizer-lm", help="LM spec that analyses and rewrites (default: --lm)")
    parser.add_argument("--api-base", help="OpenAI-compatible server URL for openai/ specs")
    parser.add_argument("--data", type=Path, default=DATA, help="labelled messages (JSONL: message, label)")
    parser.add_argument("--out", type=Path, default=Path("runs/compile_program"), help="run directory")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--dev-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=64, help="longest program answer in tokens")
    parser.add_argument("--optimizer-max-tokens", type=int, default=256, help="longest analysis or rewrite")
    parser.add_argument("--local-threads", type=int, help="llama.cpp threads for local models (default: all "
                        "cores; 1 is faster when other programs keep the cores busy)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("autoevol_dspy", "compile_program"):
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        lm = build_lm(args.lm, args, args.max_tokens)
        optimizer_lm = build_lm(args.optimizer_lm or args.lm, args, args.optimizer_max_tokens)
        optimizer = AutoEvolInstruct(
            metric=team_metric, lm=lm, optimizer_lm=optimizer_lm, num_candidates=args.candidates,
            batch_sampler=args.batch_size, dev_size=args.dev_size, max_steps=args.steps, num_threads=args.threads,
            seed=args.seed, run_dir=args.out,
        )
        student = SupportRouter()
        with dspy.context(adapter=adapter_for(args)):
            compiled = optimizer.compile(student, trainset=load_messages(args.data))
    except AutoEvolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    compiled.save(args.out / "program.json")
    result = optimizer.result
    print(f"dev failure rate: {result.initial_failure_rate:.3f} -> {result.best_failure_rate:.3f} "
          f"(stopped: {result.stop_reason}, {result.usage.calls} LM calls)")
    for name, text in get_instructions(compiled).items():
        changed = "rewritten" if text != get_instructions(student)[name] else "unchanged"
        print(f"\n[{name}] ({changed})\n{text}")
    print(f"\nprogram: {args.out / 'program.json'}  (load with SupportRouter().load(path))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
