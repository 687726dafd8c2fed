"""Pilot: how often the evolving step answers instead of rewriting, per variant, on a few search seeds.

A quick look before a full ``benchmarks/quality.py`` run: each variant of :class:`EvolInstruct`
evolves the same few seeds of each domain once (temperature 0), the default detectors judge,
and the failures are counted by category. The seeds come from the *search* pool of
``quality.py`` (GSM8K questions outside its held-out draw, MT-Bench second turns), never from
its held-out seeds, so choosing a variant here does not tune on what quality.py reports.

    python benchmarks/evol_pilot.py --n 30 --variants sentence_extend extend   # embedded, minutes
    python benchmarks/evol_pilot.py --smoke                             # scripted stub LM
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402
import dspy  # noqa: E402
import quality  # noqa: E402
from autoevol_dspy import EvolInstruct  # noqa: E402
from autoevol_dspy.evolution.method import EXTEND_DEMOS  # noqa: E402
from autoevol_dspy.evolution.unit import Evolver  # noqa: E402
from methods import previous_extend_program, sentence_extend_program  # noqa: E402


def _with_demos() -> EvolInstruct:
    program = EvolInstruct(style="extend")
    program.evolve.demos = [dspy.Example(**demo) for demo in EXTEND_DEMOS]
    return program


#: The variants the pilot can compare: a name and how to build the program.
VARIANTS: dict[str, Callable[[], EvolInstruct]] = {
    "rewrite": lambda: EvolInstruct(style="rewrite"),
    "extend": lambda: EvolInstruct(style="extend"),
    "extend_demos": _with_demos,
    "previous_extend": previous_extend_program,
    "sentence_extend": sentence_extend_program,
}


def pilot_seeds(key: str, n: int, data_dir: Path) -> list[str]:
    """``n`` seeds of the search pool of ``quality.py`` for domain ``key`` (never its held-out seeds)."""
    settings = argparse.Namespace(data_dir=str(data_dir), heldout=100)
    _, search = quality.domain_data(quality.DOMAINS[key], settings)  # type: ignore[arg-type]
    order = list(range(len(search)))
    random.Random(f"evol-pilot:{key}").shuffle(order)
    return [search[i] for i in order[:n]]


def run_variant(name: str, seeds: list[str], evolver: Evolver) -> dict[str, Any]:
    program = VARIANTS[name]()
    counts: Counter[str] = Counter()
    cases = []
    for seed in seeds:
        result = evolver.evolve_round(program, seed)
        category = result.failure.category if result.failure else "passed"
        counts[category] += 1
        cases.append({"seed": seed, "evolved": result.evolved, "reply": result.reply, "category": category,
                      "reason": result.failure.reason if result.failure else None})
    return {"variant": name, "counts": dict(counts), "cases": cases}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=common.DEFAULT_DATA_DIR)
    parser.add_argument("--domains", nargs="+", choices=["gsm8k", "mt_bench", "humaneval"],
                        default=["gsm8k", "mt_bench"])
    parser.add_argument("--n", type=int, default=20, help="seeds per domain")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["extend"])
    parser.add_argument("--respond", action="store_true", help="also answer and run the response detectors")
    parser.add_argument("--evol-max-tokens", type=int, default=96)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, help="write every case as JSON here")
    args = parser.parse_args(argv)
    common.configure_dspy()
    if args.smoke:
        lm = common.stub_lm(quality.stub_responder, cache=False)
        response_lm = lm
        args.n = min(args.n, 4)
    else:
        from autoevol_dspy.lm import make_lm

        lm = make_lm("local", n_ctx=4096, temperature=0.0, max_tokens=args.evol_max_tokens)
        response_lm = make_lm("local", n_ctx=4096, temperature=0.0, max_tokens=128)
    evolver = Evolver(lm=lm, response_lm=response_lm, respond=args.respond)
    report = []
    for key in args.domains:
        seeds = pilot_seeds(key, args.n, args.data_dir)
        for name in args.variants:
            started = time.perf_counter()
            outcome = run_variant(name, seeds, evolver)
            outcome.update(domain=key, seconds=round(time.perf_counter() - started, 1))
            report.append(outcome)
            answered = outcome["counts"].get("answered_instead", 0)
            print(f"{key:9s} {name:22s} answered_instead {answered:3d}/{len(seeds)}  "
                  f"{json.dumps(outcome['counts'], sort_keys=True)}  {outcome['seconds']:.0f} s", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
