"""How far can the method's words move the evolver? Every edit the search can draw, measured on held-out seeds.

`quality.py` asks whether a search confirms a better evolving method on held-out seeds. This
benchmark asks whether any search could: it lists every candidate the edit library (the
proposal source a small optimizer LM relies on) makes from the initial method, one edit each,
and measures each on the held-out seeds of `quality.py`, with the same LMs, detectors and
paired sign test. The best of them is then chosen *on those same held-out seeds*: an oracle,
which no honest search can beat, so its p-value is a lower bound on what a search could show
(the LM's own amendments are left out: on the embedded model the guard refuses most of them).
If even the oracle is not confirmed, the criterion is out of reach of the method's words on this
evolver, whatever the search does; if it is, a search with enough dev seeds could find it.

    python benchmarks/method_ceiling.py --domains mt_bench gsm8k     # embedded SmolLM2-135M (about 50 min a domain on 2 cores)
    python benchmarks/method_ceiling.py --smoke                      # seconds, scripted stub LM
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402
import quality  # noqa: E402
from autoevol_dspy import EvolInstruct  # noqa: E402
from autoevol_dspy.evolution.signatures import ExtendInstruction  # noqa: E402
from autoevol_dspy.search.holdout import HoldoutComparison, compare_on_holdout  # noqa: E402
from autoevol_dspy.search.strategies import EditLibrary  # noqa: E402
from autoevol_dspy.search.strategies.proposal_source import ProposalRequest, fields_of  # noqa: E402
from autoevol_dspy.tasks import EvolutionTask  # noqa: E402

logger = logging.getLogger("benchmarks.method_ceiling")

SECTION = "How far the method's words move the evolver: every edit the search can draw, on held-out seeds"


def library_candidates(initial: str) -> list[str]:
    """Every method the edit library makes from ``initial`` in one step, whatever the trajectory's failures:
    the package's own source asked until it has nothing new (no LM, no benchmark text)."""
    inputs, outputs = fields_of(ExtendInstruction)
    hints = dict(EvolutionTask.edit_hints)
    request = ProposalRequest(step=1, predictor="evolve", current=initial, trajectory="",
                              failures=tuple((category, "") for category in hints), inputs=inputs, outputs=outputs,
                              edit_hints=hints)
    library, texts = EditLibrary(), []
    while (draft := library.draft(request, sample=len(texts))) is not None:
        texts.append(draft.text)
    return texts


def added_line(initial: str, method: str) -> str:
    """What ``method`` says beyond ``initial``, for the table."""
    return method[len(initial):].strip() if method.startswith(initial) else method


@dataclass(frozen=True)
class Measured:
    method: str
    check: HoldoutComparison
    categories: dict[str, int]


def run_domain(key: str, settings: quality.Settings, *, limit: int | None) -> dict[str, Any]:
    """The initial method and every library candidate on one domain's held-out seeds; then the oracle pair."""
    started = time.perf_counter()
    heldout, _ = quality.domain_data(quality.DOMAINS[key], settings)
    lms = quality.build_lms(settings)
    style = quality.style_for(settings, lms)
    if style != "extend":
        raise SystemExit("method_ceiling measures the extend step's library (the embedded model's style); "
                         f"this evol LM takes {style!r}")
    initial_program = EvolInstruct(style="extend")
    initial_text = initial_program.method
    initial, initial_categories = quality.measure_method(initial_program, heldout, lms, settings, "initial")
    logger.info("%s initial: %.3f", key, initial.failure_rate)
    candidates = library_candidates(initial_text)[:limit]
    measured: list[Measured] = []
    for number, method in enumerate(candidates, start=1):
        result, categories = quality.measure_method(EvolInstruct(method, style="extend"), heldout, lms, settings,
                                                    f"edit {number}")
        check = compare_on_holdout(initial, result)
        logger.info("%s edit %d/%d: %.3f (%d/%d, p=%.3f)", key, number, len(candidates), result.failure_rate,
                    check.wins, check.losses, check.p_value)
        measured.append(Measured(method, check, categories))
    ranked = sorted(measured, key=lambda m: (m.check.best.failures, m.check.p_value))
    pair = None
    helpful = [m for m in ranked if m.check.best.failures < initial.failures]
    if len(helpful) >= 2:  # two steps of a search can stack two edits: the two best, chosen on held-out
        stacked = f"{helpful[0].method}\n{added_line(initial_text, helpful[1].method)}"
        result, categories = quality.measure_method(EvolInstruct(stacked, style="extend"), heldout, lms, settings,
                                                    "stacked")
        pair = Measured(stacked, compare_on_holdout(initial, result), categories)
    return {"domain": key, "heldout": len(heldout), "initial": initial, "initial_text": initial_text,
            "initial_categories": initial_categories, "measured": measured, "pair": pair,
            "seconds": round(time.perf_counter() - started, 1)}


def _row(label: str, text: str, item: Measured) -> list[str]:
    check = item.check
    return [label, f"`{text}`", quality._rate(check.best), f"{check.wins}/{check.losses}", f"{check.p_value:.3f}",
            quality._categories(item.categories)]


def oracle(result: dict[str, Any]) -> Measured | None:
    """The candidate with the lowest p-value against the initial method, the stacked pair included."""
    pool = [*result["measured"], *([result["pair"]] if result["pair"] else [])]
    return min(pool, key=lambda m: m.check.p_value) if pool else None


def render_domain(result: dict[str, Any]) -> str:
    initial_text = result["initial_text"]
    rows = [["(a) initial method", "—", quality._rate(result["initial"]), "—", "—",
             quality._categories(result["initial_categories"])]]
    for number, item in enumerate(result["measured"], start=1):
        rows.append(_row(f"edit {number}", quality._short(added_line(initial_text, item.method), 110), item))
    if result["pair"] is not None:
        rows.append(_row("two best edits stacked", quality._short(added_line(initial_text, result["pair"].method), 110),
                         result["pair"]))
    table = common.markdown_table(
        ["method", "what it adds to (a)", f"held-out failure rate [95% CI], n={result['heldout']}",
         "better/worse than (a)", "p (one-sided sign test vs (a))", "failures"], rows)
    best = oracle(result)
    confirmed = sum(1 for m in result["measured"] if m.check.verdict == "confirmed")
    line = ("no candidate" if best is None else
            f"the oracle (lowest p of {len(result['measured']) + (result['pair'] is not None)} candidates, chosen on "
            f"these held-out seeds): {quality._rate(best.check.best)} against {quality._rate(result['initial'])}, "
            f"{best.check.wins}/{best.check.losses}, p = {best.check.p_value:.3f}; candidates with p < 0.05: "
            f"{confirmed} of {len(result['measured'])}")
    return (f"### {quality.DOMAINS[result['domain']].title}\n\n{table}\n\n{line[0].upper()}{line[1:]}.\n\n"
            f"Domain wall time {result['seconds'] / 60:.0f} min.\n")


def render_section(results: list[dict[str, Any]], settings: quality.Settings, command: str, info: dict[str, Any],
                   seconds: float) -> str:
    lm = ("scripted stub LM (smoke run: the numbers mean nothing)" if settings.smoke else
          f"{settings.evol_lm or 'embedded SmolLM2-135M-Instruct (llama.cpp)'} evolves (style `extend`) and answers "
          f"at temperature 0 (max_tokens {settings.evol_max_tokens} / {settings.response_max_tokens})")
    return "\n".join([
        f"Command: `{command}`", "", common.machine_line(info, load_at_end=common.current_load()), "",
        f"LMs: {lm}. Total wall time {seconds / 60:.0f} min.", "",
        "Candidates: every method `EditLibrary` makes from the initial one in one step, asked with every failure "
        "category the evolution task knows; each measured on the held-out seeds of `quality.py` (same seeds, "
        "detectors, sign test). The oracle picks its candidate on those held-out seeds, so its p-value is a bound "
        "that no honest search can beat.", "",
        *[render_domain(result) for result in results],
    ])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=common.DEFAULT_DATA_DIR,
                        help="folder with the public data sets (default: ../shared/data from the repo root)")
    parser.add_argument("--domains", nargs="+", choices=list(quality.DOMAINS), default=["mt_bench", "gsm8k"])
    parser.add_argument("--heldout", type=int, default=100, help="held-out seeds per domain (MT-Bench: at most 80)")
    parser.add_argument("--limit", type=int, default=None, help="measure only the first N candidates")
    parser.add_argument("--smoke", action="store_true", help="tiny run on a scripted stub LM (seconds)")
    parser.add_argument("--evol-max-tokens", type=int, default=96)
    parser.add_argument("--response-max-tokens", type=int, default=128)
    parser.add_argument("--num-threads", type=int, default=4, help="LM calls in flight (default 4)")
    parser.add_argument("--results", type=Path, default=None,
                        help="RESULTS.md to update (default benchmarks/RESULTS.md; with --smoke: none)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.smoke:
        args.heldout, args.limit = 12, 3 if args.limit is None else args.limit
    elif args.results is None:
        args.results = common.DEFAULT_RESULTS
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    common.setup_logging(args.verbose)
    common.configure_dspy()
    settings = quality.Settings(
        data_dir=str(args.data_dir), smoke=args.smoke, heldout=args.heldout, search_seeds=(), batch_size=1,
        dev_size=0, train_size=0, num_candidates=1, max_steps=0,
        style="extend" if args.smoke else "auto", proposal_style="auto", compare=(),
        evol_max_tokens=args.evol_max_tokens, response_max_tokens=args.response_max_tokens, optimizer_max_tokens=0,
        evol_lm=None, optimizer_lm=None, optimizer_temperature=0.0, num_threads=args.num_threads)
    command = "python benchmarks/method_ceiling.py " + " ".join(
        shlex.quote(a) for a in quality._recorded(argv or sys.argv[1:]))
    info = common.machine_info()
    started = time.perf_counter()
    results = [run_domain(key, settings, limit=args.limit) for key in args.domains]
    section = render_section(results, settings, command.strip(), info, time.perf_counter() - started)
    common.publish(section, section=SECTION, results=args.results, write=args.results is not None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
