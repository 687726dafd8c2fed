"""Acceptance under noise: which criterion turns noisy dev-set wins into true improvement.

A seeded simulation of the search loop, no LM. Each run draws one fixed dev set of n cases
and an initial incumbent; each step proposes m candidates, evaluates every one on the same
dev cases, takes the one with the fewest failures (the first on ties, as the loop does) and
asks the library's acceptance criterion (``StrictImprovement``, ``MarginAcceptance``,
``PairedTestAcceptance``, imported and called as the loop calls them) whether it replaces the
incumbent; an accepted candidate is the next step's incumbent, with the dev losses it was
selected on. Because the simulation knows every instruction's true failure rate, it reports
per criterion and dev size: how often a step accepts a candidate that is truly no better
(false acceptance), the true improvement per step, the true rate after the last step, and
how much the dev rate of the selected winner flatters it.

Assumptions (each one an option; the defaults are a judgement, not a measurement):

* Cases: a case fails when ``b + z + u + e > 0``. ``z ~ N(0, difficulty_sd^2)`` is the case's
  difficulty, shared by every instruction (a case that is hard for one is hard for all);
  ``u ~ N(0, quirk_sd^2)`` is the instruction's own per-case quirk, which a candidate inherits
  from its incumbent with correlation ``inherit``; ``e ~ N(0, 1)`` is drawn at each evaluation.
  An instruction's true failure rate, over the whole population of cases, is
  ``Phi(b / sqrt(1 + difficulty_sd^2 + quirk_sd^2))``, so ``b`` is set from the rate.
* Effects: a candidate's true rate is the incumbent's plus an effect. Most rewrites change
  little (``N(0, small_sd^2)`` points, about half of them slightly worse); a share helps and a
  share hurts by ``U(big_lo, big_hi)`` points. Effects are stated at the initial rate and scale
  with the failures left (times incumbent rate / initial rate); rates stay in [0.005, 0.995].

The incumbent keeps the dev losses it was selected on (the library's default); the
sensitivity table adds scenarios with other effect distributions, less paired cases, and
the paper protocol's re-measured incumbent (fresh evaluation noise each step).

Common random numbers: every criterion sees the same draws for a given (n, m), so the
paired differences against strict improvement are tighter than the separate intervals.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import NormalDist

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import common  # noqa: E402

from autoevol_dspy.search.strategies.acceptance import (  # noqa: E402
    AcceptanceCriterion,
    MarginAcceptance,
    PairedTestAcceptance,
    StrictImprovement,
)

SECTION = "Acceptance under noise (issue 10)"
STRICT = "strict (paper)"
MIN_RATE, MAX_RATE = 0.005, 0.995
_Z95 = 1.959964
_GRID = np.linspace(0.001, 0.999, 3993)
_PROBIT = np.array([NormalDist().inv_cdf(float(p)) for p in _GRID])


@dataclass(frozen=True)
class Model:
    """The simulation's assumptions (see the module docstring)."""

    initial_rate: float = 0.40
    difficulty_sd: float = 1.5
    quirk_sd: float = 0.5
    inherit: float = 0.5
    small_sd: float = 1.5
    gain_share: float = 0.12
    harm_share: float = 0.18
    big_lo: float = 5.0
    big_hi: float = 20.0

    @property
    def latent_sd(self) -> float:
        """Standard deviation of ``z + u + e``: the scale that turns a true rate into ``b``."""
        return math.sqrt(1.0 + self.difficulty_sd**2 + self.quirk_sd**2)


@dataclass(frozen=True)
class Scenario:
    """A named variant of the assumptions for the sensitivity table."""

    name: str
    model: Model
    remeasure: bool = False


@dataclass
class CellRuns:
    """Per-run, per-step records of one criterion at one (n, m)."""

    accepted: np.ndarray
    false: np.ndarray
    gain: np.ndarray
    false_cost: np.ndarray
    best_flattery: np.ndarray
    final_rate: np.ndarray


@dataclass(frozen=True)
class Summary:
    """One table row: a criterion at one (n, m)."""

    label: str
    n: int
    m: int
    accept: float
    false: float
    false_share: float
    false_cost: float
    gain: float
    gain_half: float
    final: float
    best_flattery: float
    accepted_flattery: float


# Model ------------------------------------------------------------------------------------------


def probit(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile of ``p`` (interpolated in a fine table; ``p`` within [0.001, 0.999])."""
    return np.interp(p, _GRID, _PROBIT)


def draw_effects(rng: np.random.Generator, shape: tuple[int, ...], model: Model) -> np.ndarray:
    """Candidate minus incumbent true rate, in points at the initial rate (negative = better)."""
    kind = rng.random(shape)
    small = rng.normal(0.0, model.small_sd, shape)
    big = rng.uniform(model.big_lo, model.big_hi, shape)
    gains = kind < model.gain_share
    harms = (kind >= model.gain_share) & (kind < model.gain_share + model.harm_share)
    return np.where(gains, -big, np.where(harms, big, small))


def failures(rng: np.random.Generator, rates: np.ndarray, difficulty: np.ndarray, quirks: np.ndarray,
             model: Model) -> np.ndarray:
    """One evaluation: per-case losses (1.0 failed, 0.0 passed) of instructions with these true rates."""
    offset = model.latent_sd * probit(rates)
    noise = rng.normal(0.0, 1.0, quirks.shape)
    return (offset[..., None] + difficulty + quirks + noise > 0).astype(float)


def criteria(n: int) -> list[tuple[str, AcceptanceCriterion]]:
    """The library's criteria in the settings compared, labelled for the table."""
    return [
        (STRICT, StrictImprovement()),
        ("margin 1", MarginAcceptance(min_fewer=1)),
        ("margin 2", MarginAcceptance(min_fewer=2)),
        ("margin 3", MarginAcceptance(min_fewer=3)),
        (f"margin 0.05n (={0.05 * n:g})", MarginAcceptance(min_fewer=0.05 * n)),
        ("paired alpha 0.05", PairedTestAcceptance(alpha=0.05)),
        ("paired alpha 0.1", PairedTestAcceptance(alpha=0.1)),
        ("paired alpha 0.2", PairedTestAcceptance(alpha=0.2)),
    ]


def base_label(label: str) -> str:
    """The label without the per-n value (``margin 0.05n (=2.5)`` -> ``margin 0.05n``)."""
    return label.split(" (=")[0]


# Simulation ----------------------------------------------------------------------------------------


def simulate(criterion: AcceptanceCriterion, *, n: int, m: int, steps: int, repeats: int, seed: int,
             model: Model, remeasure: bool = False) -> CellRuns:
    """Chained steps of ``repeats`` independent runs; the draws depend only on (seed, n, m, remeasure)."""
    rng = np.random.default_rng([seed, n, m])
    difficulty = rng.normal(0.0, model.difficulty_sd, (repeats, n))
    quirks = rng.normal(0.0, model.quirk_sd, (repeats, n))
    rate = np.full(repeats, model.initial_rate)
    losses = failures(rng, rate, difficulty, quirks, model)
    incumbent = [dict(enumerate(row)) for row in losses.tolist()]
    runs = CellRuns(*(np.zeros((repeats, steps), dtype=bool) for _ in range(2)),
                    *(np.zeros((repeats, steps)) for _ in range(3)), np.zeros(repeats))
    rows = np.arange(repeats)
    keep = math.sqrt(1.0 - model.inherit**2)
    for step in range(steps):
        if remeasure:
            losses = failures(rng, rate, difficulty, quirks, model)
            incumbent = [dict(enumerate(row)) for row in losses.tolist()]
        effect = draw_effects(rng, (repeats, m), model) * (rate / model.initial_rate)[:, None] / 100.0
        rates = np.clip(rate[:, None] + effect, MIN_RATE, MAX_RATE)
        fresh = rng.normal(0.0, model.quirk_sd, (repeats, m, n))
        child_quirks = model.inherit * quirks[:, None, :] + keep * fresh
        child_losses = failures(rng, rates, difficulty[:, None, :], child_quirks, model)
        best = child_losses.sum(axis=2).argmin(axis=1)
        best_losses, best_rate = child_losses[rows, best], rates[rows, best]
        accepted = np.array([
            criterion.accepts(candidate=dict(enumerate(row)), incumbent=incumbent[i], dev_size=n)
            for i, row in enumerate(best_losses.tolist())
        ], dtype=bool)
        runs.accepted[:, step] = accepted
        runs.false[:, step] = accepted & (best_rate >= rate)
        runs.false_cost[:, step] = np.where(runs.false[:, step], 100.0 * (best_rate - rate), 0.0)
        runs.best_flattery[:, step] = 100.0 * (best_rate - best_losses.mean(axis=1))
        new_rate = np.where(accepted, best_rate, rate)
        runs.gain[:, step] = 100.0 * (rate - new_rate)
        for i in np.flatnonzero(accepted):
            incumbent[i] = dict(enumerate(best_losses[i].tolist()))
        quirks = np.where(accepted[:, None], child_quirks[rows, best], quirks)
        rate = new_rate
    runs.final_rate[:] = rate
    return runs


def summarize(label: str, n: int, m: int, runs: CellRuns) -> Summary:
    """Rates per step, the mean gain per step with its 95% interval over runs, the flattery."""
    per_run = runs.gain.mean(axis=1)
    acceptances, false = int(runs.accepted.sum()), int(runs.false.sum())
    accepted_flattery = float(runs.best_flattery[runs.accepted].mean()) if acceptances else float("nan")
    return Summary(
        label=label, n=n, m=m, accept=float(runs.accepted.mean()), false=float(runs.false.mean()),
        false_share=false / acceptances if acceptances else 0.0,
        false_cost=float(runs.false_cost.sum()) / false if false else 0.0,
        gain=float(per_run.mean()), gain_half=_Z95 * float(per_run.std(ddof=1)) / math.sqrt(len(per_run)),
        final=float(runs.final_rate.mean()), best_flattery=float(runs.best_flattery.mean()),
        accepted_flattery=accepted_flattery,
    )


def paired_difference(a: CellRuns, b: CellRuns) -> tuple[float, float]:
    """Mean gain per step of ``a`` minus ``b`` over the same draws, and the half width of its 95% interval."""
    diff = a.gain.mean(axis=1) - b.gain.mean(axis=1)
    return float(diff.mean()), _Z95 * float(diff.std(ddof=1)) / math.sqrt(len(diff))


# Calibration figures --------------------------------------------------------------------------------


def no_better_share(model: Model, seed: int) -> float:
    """The share of candidates whose true rate is not lower than the incumbent's."""
    effects = draw_effects(np.random.default_rng([seed, 1]), (200_000,), model)
    return float((effects >= 0).mean())


def discordance(model: Model, seed: int) -> float:
    """The share of cases on which a candidate of the same true rate and its incumbent disagree."""
    rng = np.random.default_rng([seed, 2])
    size = 200_000
    difficulty = rng.normal(0.0, model.difficulty_sd, size)
    quirks = rng.normal(0.0, model.quirk_sd, size)
    child = model.inherit * quirks + math.sqrt(1.0 - model.inherit**2) * rng.normal(0.0, model.quirk_sd, size)
    rate = np.array(model.initial_rate)
    first = failures(rng, rate, difficulty, quirks, model)
    second = failures(rng, rate, difficulty, child, model)
    return float((first != second).mean())


# Report ------------------------------------------------------------------------------------------------


def fmt_points(value: float, half: float | None = None) -> str:
    """Signed points with two decimals, and the interval when ``half`` is given."""
    if half is None:
        return f"{value:+.2f}"
    return f"{value:+.2f} [{value - half:+.2f}, {value + half:+.2f}]"


def table(rows: Sequence[Summary]) -> str:
    """The markdown table of one m."""
    headers = ["criterion", "n", "accepted / step", "false acc. / step", "false share of acc.",
               "cost of a false acc., pts", "true gain / step, pts [95% CI]", "true rate after last step",
               "winner flattered by, pts", "accepted flattered by, pts"]
    body = [[s.label, s.n, f"{s.accept:.1%}", f"**{s.false:.1%}**", f"{s.false_share:.0%}", f"{s.false_cost:.2f}",
             fmt_points(s.gain, s.gain_half), f"{s.final:.3f}", f"{s.best_flattery:.1f}",
             "-" if math.isnan(s.accepted_flattery) else f"{s.accepted_flattery:.1f}"] for s in rows]
    return common.markdown_table(headers, body)


Cells = dict[tuple[str, int, int], Summary]


def best_within(cells: Cells, labels: Sequence[str], *, n: int, ms: Sequence[int], limit: float) -> str | None:
    """The criterion with the largest mean gain over ``ms`` at dev size ``n`` whose false acceptance stays
    below ``limit`` at every m (strict improvement wins ties), or ``None`` when none does."""
    ok = [label for label in labels if all(cells[(label, n, m)].false < limit for m in ms)]
    if not ok:
        return None
    return max(ok, key=lambda label: (sum(cells[(label, n, m)].gain for m in ms), label == STRICT))


def versus_strict(runs: dict[tuple[str, int, int], CellRuns], label: str, *, n: int, ms: Sequence[int]) -> str:
    """The paired difference in gain per step of ``label`` minus strict improvement, per m."""
    return ", ".join(f"m={m}: {fmt_points(*paired_difference(runs[(label, n, m)], runs[(STRICT, n, m)]))}"
                     for m in ms)


def recommendation(summaries: list[Summary], runs: dict[tuple[str, int, int], CellRuns], *, at: int,
                   limit: float, ms: Sequence[int]) -> tuple[str, str]:
    """The criterion to use by default and a paragraph generated from the figures explaining why."""
    cells = {(base_label(s.label), s.n, s.m): s for s in summaries}
    labels = list(dict.fromkeys(base_label(s.label) for s in summaries))
    chosen = best_within(cells, labels, n=at, ms=ms, limit=limit)
    best = chosen or min(labels, key=lambda label: max(cells[(label, at, m)].false for m in ms))
    full = {base_label(s.label): s.label for s in summaries if s.n == at}

    def figures(label: str) -> str:
        return "; ".join(f"m={m}: {fmt_points(c.gain, c.gain_half)} pts/step, false acceptance {c.false:.1%}, "
                         f"true rate after the last step {c.final:.3f}"
                         for m in ms for c in [cells[(label, at, m)]])

    where = f"n={at} (the paper's dev size)" if at == 50 else f"n={at}"
    lines = [f"At {where}, **{full[best]}** gives the largest true improvement among the criteria whose false "
             f"acceptance stays below {limit:.0%} per step at every m"
             + ("" if chosen else " (none does; this is the one with the lowest false acceptance)")
             + f" ({figures(best)})."]
    costs = ", ".join(f"{cells[(best, at, m)].false_cost:.2f}" for m in ms)
    lines.append(f"A false acceptance costs it {costs} pts of true rate on average (by m): the winners that are "
                 "truly no better are mostly rewrites that change little, as the big harms rarely win on dev.")
    if best == STRICT:
        rivals = [label for label in labels if label not in (STRICT, "margin 1")]
        runner = best_within(cells, rivals, n=at, ms=ms, limit=limit)
        versus = ("no other criterion meets the bound" if runner is None else
                  f"the best alternative within the bound, {full[runner]}, differs from it by "
                  f"{versus_strict(runs, runner, n=at, ms=ms)} pts/step on the same draws, with false acceptance "
                  + ", ".join(f"{cells[(runner, at, m)].false:.1%}" for m in ms))
        lines.append(f"**Strict improvement is as good as any alternative here**: it meets the bound and gains the "
                     f"most; {versus}.")
    else:
        diffs = [paired_difference(runs[(best, at, m)], runs[(STRICT, at, m)]) for m in ms]
        strict_ok = all(cells[(STRICT, at, m)].false < limit for m in ms)
        paired = f"on the same draws, {full[best]} minus strict: {versus_strict(runs, best, n=at, ms=ms)} pts/step"
        if strict_ok and all(d - h <= 0 for d, h in diffs):
            lines.append(f"Strict improvement also meets the bound and {paired}: **strict improvement is as good**.")
        else:
            why = "its false acceptance breaks the bound" if not strict_ok else "it gains significantly less"
            lines.append(f"Strict improvement ({figures(STRICT)}): {paired}. **Strict improvement is not as good**: "
                         f"{why}.")
    per_n = [f"n={n}: {best_within(cells, labels, n=n, ms=ms, limit=limit) or f'none below {limit:.0%}'}"
             for n in sorted({s.n for s in summaries})]
    lines.append("Best criterion under the same bound at each dev size: " + "; ".join(per_n) + ".")
    return full[best], " ".join(lines)


# Sensitivity ---------------------------------------------------------------------------------------------


def scenarios(model: Model) -> list[Scenario]:
    """Variants of the assumptions: fewer or no real gains, less paired cases, a re-measured incumbent."""
    return [
        Scenario("fewer real gains (5% help, 25% hurt)", replace(model, gain_share=0.05, harm_share=0.25)),
        Scenario("no real gains (0% help, 30% hurt)", replace(model, gain_share=0.0, harm_share=0.30)),
        Scenario("less paired (quirk sd 1.0, inherit 0.3)", replace(model, quirk_sd=1.0, inherit=0.3)),
        Scenario("incumbent re-measured each step (paper protocol)", model, remeasure=True),
    ]


def run_sensitivity(args: argparse.Namespace, at: int) -> list[tuple[str, Cells]]:
    """Every criterion but margin 1 (it equals strict) at dev size ``at`` under each scenario."""
    found = []
    for scenario in scenarios(args.model):
        cells: Cells = {}
        for m in args.candidates:
            for label, criterion in criteria(at):
                if label == "margin 1":
                    continue
                cell = simulate(criterion, n=at, m=m, steps=args.steps, repeats=args.repeats, seed=args.seed,
                                model=scenario.model, remeasure=scenario.remeasure)
                cells[(base_label(label), at, m)] = summarize(label, at, m, cell)
        found.append((scenario.name, cells))
    return found


def sensitivity_table(base: Cells, found: list[tuple[str, Cells]], *, at: int, ms: Sequence[int],
                      limit: float) -> str:
    """Gain per step (false acceptance per step) at dev size ``at``; the best within the bound in bold."""
    labels = [label for label, n, m in base if n == at and m == ms[0] and label != "margin 1"]
    rows = []
    for name, cells in [("as above", base), *found]:
        for m in ms:
            top = best_within(cells, labels, n=at, ms=[m], limit=limit)
            rows.append([name, m] + [
                ("**{}**" if label == top else "{}").format(f"{c.gain:+.2f} ({c.false:.1%})")
                for label in labels for c in [cells[(label, at, m)]]])
    return common.markdown_table(["scenario", "m", *labels], rows)


def robustness(found: list[tuple[str, Cells]], *, at: int, ms: Sequence[int], limit: float) -> str:
    """One sentence: the best criterion within the bound under each scenario."""
    parts = []
    for name, cells in found:
        labels = list(dict.fromkeys(label for label, _, _ in cells))
        parts.append(f"{name}: {best_within(cells, labels, n=at, ms=ms, limit=limit) or f'none below {limit:.0%}'}")
    return f"Under the sensitivity scenarios, the best within the bound at n={at} is: " + "; ".join(parts) + "."


COLUMNS = (
    "Columns: false acc. / step = steps that accepted a candidate whose true rate is not lower than the "
    "incumbent's; cost of a false acc. = the mean true rate increase it brought; true gain / step = drop of the "
    "incumbent's true failure rate per step (mean over runs, 95% interval); winner flattered by = true minus dev "
    "failure rate of each step's best candidate, and of the accepted ones. Margin 1 equals strict improvement on "
    "pass/fail cases (integer failure counts)."
)


def assumptions(args: argparse.Namespace) -> str:
    """The paragraph that states the simulation's settings and assumptions with their implied figures."""
    model = args.model
    text = (
        f"Simulation, no LM: {args.repeats} runs per cell of {args.steps} chained steps each; dev sizes "
        f"{', '.join(map(str, args.dev_sizes))}; m = {', '.join(map(str, args.candidates))}; seed {args.seed}; "
        "the library's own criterion classes decide; the incumbent keeps the dev losses it was selected on (the "
        "library's default protocol). Assumptions (options of the script): initial true failure rate "
        f"{model.initial_rate}; case difficulty sd {model.difficulty_sd}, instruction quirk sd {model.quirk_sd} "
        f"inherited with correlation {model.inherit}, evaluation noise sd 1 (probit scale): a candidate with the "
        f"incumbent's true rate disagrees with it on {discordance(model, args.seed):.0%} of cases. Effects at the "
        f"initial rate: {model.gain_share:.0%} of candidates help and {model.harm_share:.0%} hurt by "
        f"U({model.big_lo:g}, {model.big_hi:g}) points, the rest change by N(0, {model.small_sd:g}^2) points; "
        f"{no_better_share(model, args.seed):.0%} of candidates are truly no better; effects scale with the "
        "failures left."
    )
    return text + (" **Smoke run: not a measurement.**" if args.smoke else "")


def recommend_at(args: argparse.Namespace) -> int:
    """The dev size the recommendation is made at: ``--recommend-at`` if simulated, else the largest."""
    return args.recommend_at if args.recommend_at in args.dev_sizes else max(args.dev_sizes)


def section(args: argparse.Namespace, summaries: list[Summary], runs: dict[tuple[str, int, int], CellRuns],
            found: list[tuple[str, Cells]], command: str, info: dict, elapsed: float) -> str:
    """The markdown body of the RESULTS.md section."""
    at, limit = recommend_at(args), args.fa_limit
    default, paragraph = recommendation(summaries, runs, at=at, limit=limit, ms=args.candidates)
    parts = [f"Command: `{command}` (took {elapsed:.0f} s)", "",
             common.machine_line(info, load_at_end=common.current_load()), "", assumptions(args), "", COLUMNS]
    for m in args.candidates:
        parts += ["", f"m = {m}:", "", table([s for s in summaries if s.m == m])]
    if found:
        base = {(base_label(s.label), s.n, s.m): s for s in summaries}
        intro = (f"Sensitivity at n={at}: true gain per step in points (false acceptance per step) under other "
                 f"assumptions, same seed and runs; in bold the best with false acceptance below {limit:.0%}:")
        parts += ["", intro, "", sensitivity_table(base, found, at=at, ms=args.candidates, limit=limit)]
        paragraph += " " + robustness(found, at=at, ms=args.candidates, limit=limit)
    parts += ["", f"Recommended default: **{default}**. " + paragraph]
    return "\n".join(parts)


# Main -------------------------------------------------------------------------------------------------


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the docstring's layout and shows every default."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Options; ``--smoke`` shrinks the grid to seconds."""
    defaults = Model()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--dev-sizes", type=int, nargs="+", default=[10, 20, 50, 100], help="values of n")
    parser.add_argument("--candidates", type=int, nargs="+", default=[3, 5], help="values of m")
    parser.add_argument("--steps", type=int, default=10, help="chained steps per run")
    parser.add_argument("--repeats", type=int, default=2000, help="runs per cell")
    parser.add_argument("--seed", type=int, default=0, help="seed of every draw")
    parser.add_argument("--initial-rate", type=float, default=defaults.initial_rate,
                        help="true failure rate of the initial instructions")
    parser.add_argument("--difficulty-sd", type=float, default=defaults.difficulty_sd,
                        help="spread of case difficulty shared by all instructions (probit scale)")
    parser.add_argument("--quirk-sd", type=float, default=defaults.quirk_sd,
                        help="spread of an instruction's own per-case quirks (probit scale)")
    parser.add_argument("--inherit", type=float, default=defaults.inherit,
                        help="correlation of a candidate's quirks with its incumbent's")
    parser.add_argument("--small-sd", type=float, default=defaults.small_sd,
                        help="sd in points of the small effect most candidates have")
    parser.add_argument("--gain-share", type=float, default=defaults.gain_share,
                        help="share of candidates that truly help by a big effect")
    parser.add_argument("--harm-share", type=float, default=defaults.harm_share,
                        help="share of candidates that truly hurt by a big effect")
    parser.add_argument("--big-effect", type=float, nargs=2, metavar=("LO", "HI"),
                        default=[defaults.big_lo, defaults.big_hi], help="range in points of a big effect")
    parser.add_argument("--fa-limit", type=float, default=0.10, help="false acceptance bound for the recommendation")
    parser.add_argument("--recommend-at", type=int, default=50, help="dev size the recommendation is made at")
    parser.add_argument("--results", type=Path, default=None,
                        help="RESULTS.md to update (default benchmarks/RESULTS.md; with --smoke: none)")
    parser.add_argument("--no-sensitivity", action="store_true", help="skip the sensitivity scenarios")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    parser.add_argument("--smoke", action="store_true", help="tiny grid in seconds (for CI; not a measurement)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.dev_sizes, args.candidates, args.steps, args.repeats = [10, 20], [3], 3, 40
        args.recommend_at = 20
    if args.results is None and not args.smoke:
        args.results = common.DEFAULT_RESULTS
    if args.gain_share + args.harm_share > 1 or not 0 <= args.inherit <= 1:
        parser.error("--gain-share + --harm-share must be at most 1 and --inherit within [0, 1]")
    args.model = Model(initial_rate=args.initial_rate, difficulty_sd=args.difficulty_sd, quirk_sd=args.quirk_sd,
                       inherit=args.inherit, small_sd=args.small_sd, gain_share=args.gain_share,
                       harm_share=args.harm_share, big_lo=args.big_effect[0], big_hi=args.big_effect[1])
    return args


def run_grid(args: argparse.Namespace) -> tuple[list[Summary], dict[tuple[str, int, int], CellRuns]]:
    """Every criterion at every (n, m)."""
    summaries: list[Summary] = []
    runs: dict[tuple[str, int, int], CellRuns] = {}
    for m in args.candidates:
        for n in args.dev_sizes:
            for label, criterion in criteria(n):
                cell = simulate(criterion, n=n, m=m, steps=args.steps, repeats=args.repeats, seed=args.seed,
                                model=args.model)
                runs[(base_label(label), n, m)] = cell
                summaries.append(summarize(label, n, m, cell))
    return summaries, runs


def main(argv: list[str] | None = None) -> int:
    """Run the grid, print the section, and write it into RESULTS.md."""
    args = parse_args(argv)
    command = "python benchmarks/acceptance.py" + (" " + shlex.join(sys.argv[1:]) if len(sys.argv) > 1 else "")
    info = common.machine_info()
    started = time.perf_counter()
    summaries, runs = run_grid(args)
    found = [] if args.no_sensitivity else run_sensitivity(args, recommend_at(args))
    body = section(args, summaries, runs, found, command, info, time.perf_counter() - started)
    print(f"## {SECTION}\n\n{body}")
    if args.results is not None and not args.no_write:
        common.write_section(args.results, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
