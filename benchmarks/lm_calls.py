"""LM calls against the paper's protocol: one real run, counted by role, in both protocols.

The same AutoEvolInstruct optimization runs twice on one seed set (GSM8K train questions):
once with the defaults (deduplicated candidates, exact early stop, no incumbent re-measure)
and once as ``AutoEvolInstruct.paper_protocol(...)`` (every candidate and the incumbent on the
whole dev set each step). Both use the embedded SmolLM2-135M-Instruct model: evolution and
response at temperature 0, the optimizer LM at temperature 0.6. The benchmark counts LM
requests by role, checks that both runs selected the same methods (same incumbent failure
rates per step, same final method text) and reports ours / paper. The failures are whatever
the model produces.

Reproducibility: DSPy's disk cache is off (``cache=False``), or the second run would replay
the first. The optimizer LM samples at 0.6, and a llama.cpp context draws from one random
stream, so the runs' samples would differ with the calls made before them; the optimizer LM
here gets a seed per request (from the request's text and how many identical requests came
before), so both runs draw the same m samples from the same prompts. All calls run on one
thread (the llama.cpp context is serialized anyway), so both runs ask in the same order.

``--smoke`` runs a tiny configuration on the scripted stub LM of ``stub_behaviour.py`` in-process
(no model), to keep the script working in CI; its numbers are not a measurement.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import sys
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch of DSPy's price map

import dspy  # noqa: E402
from dspy.lm15 import response_to_events  # noqa: E402

from autoevol_dspy.search.strategies import NoImprovement  # noqa: E402
from autoevol_dspy.tasks import EvolutionTask  # noqa: E402
from autoevol_dspy import AutoEvolInstruct, EvolInstruct  # noqa: E402
from autoevol_dspy.lm.local_engine import default_model_path, shared_engine
from autoevol_dspy.lm import make_lm  # noqa: E402
from autoevol_dspy.search.records import RunResult  # noqa: E402
from autoevol_dspy.lm.usage import ROLES  # noqa: E402
from autoevol_dspy.testing import scripted_lm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from orchestration import load, machine, replace_section  # noqa: E402
from stub_behaviour import StubBehaviour  # noqa: E402

logger = logging.getLogger("benchmarks.lm_calls")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "gsm8k_train.jsonl"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## LM calls against the paper's protocol"
GOAL = 0.7
PRESETS: dict[str, dict[str, int]] = {
    "scaled": {"batch_size": 5, "dev_size": 20, "num_candidates": 3, "steps": 2, "rounds": 1},
    "paper": {"batch_size": 10, "dev_size": 50, "num_candidates": 5, "steps": 10, "rounds": 1},
    "smoke": {"batch_size": 3, "dev_size": 8, "num_candidates": 3, "steps": 2, "rounds": 1},
}


# LMs --------------------------------------------------------------------------------------------

class SeededEngine:
    """Wraps an engine: a sampled request without a seed gets one from its text and its repeat count.

    Not a fake: it wraps the real embedded model so both protocols draw the same optimizer samples.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.supports_response_schema = getattr(inner, "supports_response_schema", False)
        self.supports_function_calling = getattr(inner, "supports_function_calling", False)
        self.supports_reasoning = getattr(inner, "supports_reasoning", False)
        self.supported_params = getattr(inner, "supported_params", frozenset())
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget earlier requests, so a second run draws the same seeds."""
        with self._lock:
            self._seen.clear()

    def _seeded(self, request: Any) -> Any:
        config = request.config
        if config.seed is not None or not config.temperature:
            return request
        key = hashlib.sha256(repr((request.system, request.messages, config)).encode()).hexdigest()
        with self._lock:
            occurrence = self._seen[key]
            self._seen[key] += 1
        seed = int(hashlib.sha256(f"{key}:{occurrence}".encode()).hexdigest()[:7], 16)
        return dataclasses.replace(request, config=dataclasses.replace(config, seed=seed))

    def complete(self, request: Any) -> Any:
        return self.inner.complete(self._seeded(request))

    def stream(self, request: Any) -> Any:
        return response_to_events(self.complete(request))

    def close(self) -> None:
        """The inner engine is shared and owned elsewhere."""


@dataclass
class Models:
    """The three LMs of a run, and the engines to reset between the two runs."""

    evol: dspy.LM
    response: dspy.LM
    optimizer: dspy.LM
    resettable: list[Any]
    description: str


def real_models(args: argparse.Namespace) -> Models:
    """The embedded model: evol and response at temperature 0, the optimizer at 0.6 with per-request seeds."""
    local = {"n_ctx": args.n_ctx, "n_threads": args.n_threads, "cache": False}
    evol = make_lm("local", temperature=0.0, max_tokens=args.max_tokens, **local)
    response = make_lm("local", temperature=0.0, max_tokens=args.response_max_tokens, **local)
    engine = SeededEngine(shared_engine(default_model_path(), n_ctx=args.n_ctx, n_threads=args.n_threads))
    optimizer = dspy.LM(evol.model, engine=engine, temperature=args.optimizer_temperature,
                        max_tokens=args.optimizer_max_tokens, cache=False)
    text = (f"embedded SmolLM2-135M-Instruct (llama.cpp, n_threads={args.n_threads or 'all'}, n_ctx={args.n_ctx}); "
            f"evol: temperature 0, max_tokens {args.max_tokens}; response: temperature 0, max_tokens "
            f"{args.response_max_tokens}; optimizer: temperature {args.optimizer_temperature}, max_tokens "
            f"{args.optimizer_max_tokens}, seeded per request; adapter: {args.adapter}; cache off")
    return Models(evol, response, optimizer, [engine], text)


def stub_models() -> Models:
    """The scripted stub for ``--smoke``: one in-process scripted LM plays every role."""
    behaviour = StubBehaviour()
    lm, _ = scripted_lm(behaviour, cache=False)
    return Models(lm, lm, lm, [behaviour], "scripted stub LM (stub_behaviour.StubBehaviour in-process), NOT the model")


# Data -------------------------------------------------------------------------------------------

def read_questions(path: Path, count: int) -> list[str]:
    """The first ``count`` GSM8K questions of a jsonl file."""
    if not path.is_file():
        raise SystemExit(f"data file not found: {path} (GSM8K train, see --help)")
    found = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                found.append(json.loads(line)["question"].strip())
            if len(found) >= count:
                break
    if len(found) < count:
        raise SystemExit(f"{path} has {len(found)} questions, fewer than --seeds {count}")
    return found


# Runs -------------------------------------------------------------------------------------------

@dataclass
class ProtocolRun:
    """One protocol's run: calls by role, what it selected, how long it took."""

    name: str
    result: RunResult
    wall_s: float

    @property
    def by_role(self) -> dict[str, int]:
        return {role: usage.calls for role, usage in self.result.usage.by_role.items()}

    @property
    def calls(self) -> int:
        return self.result.usage.calls

    @property
    def selection(self) -> tuple[list[float], str]:
        return [s.incumbent_failure_rate for s in self.result.steps], self.result.best_method


def run_protocol(name: str, args: argparse.Namespace, models: Models, seeds: list[str]) -> ProtocolRun:
    """Run one protocol from a fresh start (engines reset, no cache)."""
    for engine in models.resettable:
        engine.reset()
    settings = dict(
        task=EvolutionTask(lm=models.evol, response_lm=models.response, rounds=args.rounds),
        lm=models.evol, optimizer_lm=models.optimizer,
        num_candidates=args.num_candidates, batch_sampler=args.batch_size, dev_size=args.dev_size,
        max_steps=args.steps, stopper=NoImprovement(args.patience), num_threads=1, seed=args.seed,
        progress=False,
    )
    optimizer = AutoEvolInstruct.paper_protocol(**settings) if name == "paper" else AutoEvolInstruct(**settings)
    adapter = dspy.JSONAdapter() if args.adapter == "json" else dspy.ChatAdapter()
    logger.info("running the %s protocol", name)
    started = time.perf_counter()
    with dspy.context(adapter=adapter):
        optimizer.compile(EvolInstruct(), trainset=seeds)
    run = ProtocolRun(name, optimizer.result, time.perf_counter() - started)
    logger.info("%s: %d calls in %.0fs, failure rates %s, stop %s", name, run.calls, run.wall_s,
                run.result.failure_rate_by_step, run.result.stop_reason)
    return run


# Report -----------------------------------------------------------------------------------------

def calls_table(ours: ProtocolRun, paper: ProtocolRun) -> str:
    """LM requests by role for both protocols."""
    lines = ["| role | ours (dedup + early stop) | paper protocol | ours / paper |", "| --- | ---: | ---: | ---: |"]
    for role in ROLES:
        a, b = ours.by_role.get(role, 0), paper.by_role.get(role, 0)
        if a or b:
            lines.append(f"| {role} | {a} | {b} | {a / b:.2f} |" if b else f"| {role} | {a} | {b} | - |")
    lines.append(f"| **all** | **{ours.calls}** | **{paper.calls}** | **{ours.calls / paper.calls:.3f}** |")
    return "\n".join(lines)


def where_saved(ours: ProtocolRun, paper: ProtocolRun) -> str:
    """Where the difference comes from: incumbent re-measures, duplicates, early stops."""
    remeasure = sum(t.usage.calls for t in paper.result.trials if t.kind == "incumbent")
    pruned = [t for t in ours.result.trials if t.status == "pruned"]
    samples = sum(len(c.samples) for p in ours.result.plans for c in p.candidates)
    distinct = sum(len(p.candidates) for p in ours.result.plans)
    discarded = sum(len(p.discarded) for p in ours.result.plans)
    evaluated_paper = sum(1 for t in paper.result.trials if t.kind == "candidate")
    return (f"Where the difference comes from - paper protocol: {remeasure} calls re-measuring the incumbent, "
            f"{evaluated_paper} candidate evaluation(s). Ours: {samples} usable sample(s) ({discarded} discarded "
            f"by the validity check) gave {distinct} distinct candidate(s) after deduplication; "
            f"{len(pruned)} evaluation(s) stopped early, after {sum(t.evaluated for t in pruned)} of "
            f"{sum(t.dev_size for t in pruned)} dev cases.")


def reading(ours: ProtocolRun) -> str:
    """Why early stop could or could not save calls in this run."""
    failures = {t.number: t.failures for t in ours.result.trials}
    bounds = [failures[s.incumbent_before] for s in ours.result.steps]  # the early-stop bound of each step
    dev = ours.result.dev_size
    responses = ours.by_role.get("response", 0)
    text = (f"Reading: the exact early stop ends a candidate's evaluation once its failures reach the incumbent's "
            f"(or the best candidate's so far), so a candidate that fails everything still costs that many cases. "
            f"Here the incumbent failed {bounds} of {dev} dev cases per step")
    if bounds and min(bounds) >= dev:
        text += (": every case, so no evaluation could stop early and the whole saving is the paper protocol's "
                 "per-step re-measure of the incumbent (plus any duplicate samples)")
    if not responses:
        text += "; no evolution parsed, so the response LM was never called"
    return text + "."


def selection_check(ours: ProtocolRun, paper: ProtocolRun) -> tuple[bool, str]:
    """Whether both runs selected the same methods, with the evidence."""
    (rates_a, method_a), (rates_b, method_b) = ours.selection, paper.selection
    same = rates_a == rates_b and method_a == method_b
    text = (f"Same selection: **{'yes' if same else 'NO'}** - incumbent failure rate per step, ours "
            f"{[ours.result.initial_failure_rate] + rates_a}, paper {[paper.result.initial_failure_rate] + rates_b}; "
            f"final method text {'identical' if method_a == method_b else 'different'} "
            f"(sha256 {hashlib.sha256(method_a.encode()).hexdigest()[:12]}"
            + ("" if method_a == method_b else f" vs {hashlib.sha256(method_b.encode()).hexdigest()[:12]}") + ")")
    return same, text


def report(args: argparse.Namespace, models: Models, ours: ProtocolRun, paper: ProtocolRun, command: str,
           loads: tuple[str, str]) -> str:
    """The markdown body of the section."""
    ratio = ours.calls / paper.calls
    same, check = selection_check(ours, paper)
    met = ratio <= GOAL and same
    preset = "smoke" if args.smoke else ("paper (full)" if args.preset == "paper" else args.preset)
    data = "synthetic instructions (smoke)" if args.smoke else f"GSM8K train questions from `{args.data.name}`"
    parts = [
        f"Command: `{command}`",
        "",
        f"- Machine: {machine()}; Python {platform.python_version()}, DSPy {dspy.__version__}",
        f"- Date: {dt.datetime.now().isoformat(timespec='seconds')}; load average before {loads[0]}, after {loads[1]}",
        f"- Configuration: **{preset}** - mini-batch {args.batch_size}, dev {args.dev_size}, m {args.num_candidates}, "
        f"{args.rounds} round(s), at most {args.steps} step(s), patience {args.patience}; "
        f"{args.seeds} {data}",
        f"- LMs: {models.description}",
        f"- One run per protocol (LM call counts do not vary with timing); wall: ours {ours.wall_s:.0f} s, "
        f"paper {paper.wall_s:.0f} s; stop: ours {ours.result.stop_reason}, paper {paper.result.stop_reason}"
        + ("; **smoke run: scripted stub LM, not a measurement**" if args.smoke else ""),
        "",
        calls_table(ours, paper),
        "",
        check,
        "",
        where_saved(ours, paper),
        "",
        reading(ours),
        "",
        f"Goal ours / paper <= {GOAL} with the same selection: **{'met' if met else 'missed'}** ({ratio:.3f}).",
    ]
    return "\n".join(parts)


# Main -------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Data: GSM8K train (openai/grade-school-math, grade_school_math/data/train.jsonl, MIT), one JSON "
               "object per line with a 'question' field; in this workspace at ../shared/data/gsm8k_train.jsonl.",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"GSM8K train jsonl (default {DEFAULT_DATA})")
    parser.add_argument("--preset", choices=["scaled", "paper"], default="scaled",
                        help="scaled (default): batch 5, dev 20, m 3, 2 steps; paper: batch 10, dev 50, m 5, "
                             "10 steps (hours on 2 cores)")
    for name in ("batch-size", "dev-size", "num-candidates", "steps", "rounds"):
        parser.add_argument(f"--{name}", type=int, default=None, help="override the preset")
    parser.add_argument("--seeds", type=int, default=None, help="GSM8K questions to use (default: dev + 3 batches)")
    parser.add_argument("--patience", type=int, default=None, help="steps without improvement (default: --steps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=96, help="evolution max_tokens (default 96)")
    parser.add_argument("--response-max-tokens", type=int, default=64, help="response max_tokens (default 64)")
    parser.add_argument("--optimizer-max-tokens", type=int, default=144, help="optimizer max_tokens (default 144)")
    parser.add_argument("--optimizer-temperature", type=float, default=0.6)
    parser.add_argument("--n-threads", type=int, default=1,
                        help="llama.cpp threads (default 1: far faster than 2 on a busy 2-core machine)")
    parser.add_argument("--n-ctx", type=int, default=4096, help="llama.cpp context (default 4096)")
    parser.add_argument("--adapter", choices=["json", "chat"], default="json",
                        help="DSPy adapter: json (one grammar-constrained call per request, default) or chat "
                             "(ChatAdapter, which retries with JSON when the reply does not parse)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run on the scripted stub LM (no model; for CI, not a measurement)")
    args = parser.parse_args(argv)
    preset = PRESETS["smoke" if args.smoke else args.preset]
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.smoke:
        args.adapter = "chat"
    args.patience = args.patience or args.steps
    args.seeds = args.seeds or args.dev_size + 3 * args.batch_size
    return args


def smoke_seeds(count: int) -> list[str]:
    """Deterministic instructions for the scripted run."""
    return [f"Problem {i}: Tom has {i + 3} apples and buys {2 * i + 1} more. How many apples does he have?"
            for i in range(count)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in ("dspy", "optuna", "LiteLLM", "httpx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    command = "python benchmarks/lm_calls.py" + (" " + " ".join(sys.argv[1:]) if len(sys.argv) > 1 else "")
    seeds = smoke_seeds(args.seeds) if args.smoke else read_questions(args.data, args.seeds)
    models = stub_models() if args.smoke else real_models(args)
    before = load()
    ours = run_protocol("ours", args, models, seeds)
    paper = run_protocol("paper", args, models, seeds)
    body = report(args, models, ours, paper, command, (before, load()))
    print(body)
    if not args.no_write:
        replace_section(args.results, SECTION, body)
        logger.info("updated %s", args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
