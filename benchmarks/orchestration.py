"""Orchestration against the physical limit: AutoEvolInstruct, GEPA and MIPROv2 on a stub LM server.

The benchmark starts the shared stub server (``autoevol_dspy.testing.StubProcess`` answering with
``stub_behaviour.StubBehaviour``; latency L per call, at most C calls served at once),
runs each optimizer with ``num_threads=C`` against it through ``make_lm("openai/stub",
api_base=..., cache=False)``, counts the LM calls N on the server and reports wall / ideal.

The ideal is ``max(N*L/C, L*chain)``. N*L/C is the server's capacity: N calls of L seconds on
C slots. ``chain`` is the longest sequence of calls that must wait for one another, derived
from AutoEvolInstruct's algorithm and computed from the run's own records:

* an evaluation (baseline, candidate, re-measured incumbent) runs independent cases; one case
  is ``rounds`` evolution calls, then the judge call if an LLM judge is on, then the response
  call, so its chain is ``rounds*[evolution calls>0] + [judge calls>0] + [response calls>0]``
  (1 when every case failed before the response, 1 for a program whose case is one call);
* a step is its trajectory (an evaluation-like batch: the same per-case chain), then its m
  proposals (analysis -> rewrite: 2), then its candidate evaluations one after another (each
  needs the best failure count so far for the exact early stop), each with its own chain;
* the run is the baseline evaluation, then its steps in order (a step's trajectory uses the
  method the previous step selected).

So ``chain = chain(baseline) + sum over steps (chain(trajectory) + 2 + sum chain(evaluation))``.
The records hold, per phase, the number of units (cases, or proposal samples) and their calls;
a unit's chain is its own calls in order (1 or 2 for a case here), the calls spread evenly.

Two more figures split wall / ideal into its causes. ``schedule`` is an overhead-free run of
the same phases one after another, each scheduled in order on C slots as ``parallel.py`` starts
them (greedy, one L per call): schedule / ideal is what the loop's structure costs (a phase
waits for its last case; a mini-batch of 10 or 5 samples cannot fill C slots), and
wall / schedule is the per-call overhead (DSPy client CPU, HTTP, threads). ``pooled`` is the
schedule if each step's candidate evaluations shared one pool, a possible change to the core.
For GEPA and MIPROv2 the ideal is N*L/C with their own N and C = their num_threads (their
chains are not derived).

GEPA and MIPROv2 (instruction-only: no demos) optimize a one-predictor question-answering
program with an exact-match metric on the same server, with about as many metric calls as
AutoEvolInstruct's run on that same program (also reported). All runs of one repeat are
interleaved, so load drift on a shared machine hits them alike; the tables show medians.

Every figure in the report comes from the run that writes it. ``--profile`` adds one more
AutoEvolInstruct (evolution) run at the comparison point under a per-thread CPU profiler and
reports where the client's CPU went, by component.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import heapq
import logging
import os
import platform
import pstats
import re
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch of DSPy's price map
os.environ.setdefault("TQDM_DISABLE", "1")  # GEPA's and MIPROv2's progress bars (read when tqdm is imported)

import dspy  # noqa: E402

from autoevol_dspy.search.strategies import NoImprovement  # noqa: E402
from autoevol_dspy import AutoEvolInstruct, EvolInstruct  # noqa: E402
from autoevol_dspy.lm import make_lm  # noqa: E402
from autoevol_dspy.search.records import RunResult  # noqa: E402

from autoevol_dspy.testing import StubProcess  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parent
#: The scripted LM the stub server answers with (imported by the server process from this directory).
RESPONDER = "stub_behaviour:StubBehaviour"

logger = logging.getLogger("benchmarks.orchestration")

RESULTS = BENCHMARKS / "RESULTS.md"
SECTION = "## Orchestration against the limit"
GOAL = 1.15
CASE_ROLES = ("evolution", "judge", "response", "program")


# Data and program -----------------------------------------------------------------------------

def questions(count: int) -> list[dspy.Example]:
    """Deterministic arithmetic word problems with their answers (inputs: ``question``)."""
    items = []
    for i in range(count):
        a, b, c = 3 + i % 17, 2 * i % 23 + 1, 5 + (7 * i) % 29
        text = f"Problem {i}: a shop sells {a} pens, {b} pencils and {c} rulers. How many items does it sell?"
        items.append(dspy.Example(question=text, answer=str(a + b + c + i)).with_inputs("question"))
    return items


def seed_instructions(count: int) -> list[dspy.Example]:
    """The same problems as instruction seeds for the evolution task."""
    return [dspy.Example(instruction=e.question).with_inputs("instruction") for e in questions(count)]


class QA(dspy.Module):
    """A one-predictor program: answer the question with a number."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = dspy.Predict("question -> answer")

    def forward(self, question: str) -> dspy.Prediction:
        return self.answer(question=question)


class MetricCounter:
    """Exact match on ``answer``, counting its calls (thread-safe); GEPA's form returns feedback."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def _score(self, example: Any, prediction: Any) -> float:
        with self._lock:
            self.calls += 1
        return float(str(getattr(prediction, "answer", "")).strip() == str(example.answer))

    def exact(self, example: Any, prediction: Any, trace: Any = None) -> float:
        return self._score(example, prediction)

    def with_feedback(self, gold: Any, pred: Any, trace: Any = None, pred_name: Any = None,
                      pred_trace: Any = None) -> dspy.Prediction:
        score = self._score(gold, pred)
        feedback = "correct" if score else f"expected {gold.answer}, got {getattr(pred, 'answer', None)}"
        return dspy.Prediction(score=score, feedback=feedback)


# Measurements -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Phase:
    """Independent units (cases or proposal samples) that must all end before the next phase starts.

    ``units`` holds each unit's chain: how many calls it makes one after another.
    """

    name: str
    step: int
    kind: str
    units: tuple[int, ...]

    @property
    def calls(self) -> int:
        return sum(self.units)

    @property
    def chain(self) -> int:
        return max(self.units, default=0)


def spread(calls: int, count: int) -> tuple[int, ...]:
    """``calls`` spread over ``count`` units as evenly as possible, the longer ones interleaved."""
    if count <= 0:
        return ()
    base, extra = divmod(calls, count)
    return tuple(base + (1 if (i + 1) * extra // count > i * extra // count else 0) for i in range(count))


def makespan(units: list[int], slots: int) -> int:
    """Greedy in-order schedule of units (chains of calls of one L each) on ``slots``: finish time in L."""
    free = [0] * slots
    heapq.heapify(free)
    end = 0
    for chain in units:
        start = heapq.heappop(free)
        heapq.heappush(free, start + chain)
        end = max(end, start + chain)
    return end


@dataclass
class Measurement:
    """One optimizer run against the stub: wall time, server-side calls, and the bounds."""

    optimizer: str
    concurrency: int
    latency_s: float
    wall_s: float
    calls: int
    client_calls: int | None = None
    metric_calls: int | None = None
    cpu_s: float = 0.0
    service_s: float = 0.0
    server_cpu_s: float = 0.0
    phases: list[Phase] = field(default_factory=list)
    by_role: dict[str, int] = field(default_factory=dict)

    @property
    def chain(self) -> int:
        return sum(p.chain for p in self.phases)

    @property
    def ideal_s(self) -> float:
        """max(N*L/C, L*chain): the goal's denominator."""
        return max(self.calls * self.latency_s / self.concurrency, self.chain * self.latency_s)

    @property
    def schedule_s(self) -> float | None:
        """An overhead-free run of the same phases, one after another, each scheduled in order on C slots."""
        if not self.phases:
            return None
        return self.latency_s * sum(makespan(list(p.units), self.concurrency) for p in self.phases)

    @property
    def pooled_s(self) -> float | None:
        """The same, if each step's candidate evaluations shared one pool instead of running one by one."""
        if not self.phases:
            return None
        total, pool = 0, []
        for phase in self.phases:
            if phase.kind == "evaluation" and phase.step > 0:
                pool += phase.units
                continue
            total += makespan(pool, self.concurrency) + makespan(list(phase.units), self.concurrency)
            pool = []
        total += makespan(pool, self.concurrency)
        return self.latency_s * total

    @property
    def ratio(self) -> float:
        return self.wall_s / self.ideal_s


def phases_of(result: RunResult) -> list[Phase]:
    """The run's phases in order: the baseline, then per step its trajectory, proposals and evaluations."""
    phases = []
    for trial in (t for t in result.trials if t.step == 0):
        phases.append(Phase("baseline", 0, "evaluation", spread(trial.usage.calls, trial.evaluated)))
    for plan in result.plans:
        roles = plan.usage.by_role
        trajectory = sum(roles[r].calls for r in CASE_ROLES if r in roles)
        samples = roles["analysis"].calls if "analysis" in roles else 0
        proposals = samples + (roles["rewrite"].calls if "rewrite" in roles else 0)
        phases.append(Phase(f"step {plan.step} trajectory", plan.step, "trajectory",
                            spread(trajectory, plan.trajectory_size)))
        phases.append(Phase(f"step {plan.step} proposals", plan.step, "proposals", spread(proposals, samples)))
        for trial in (t for t in result.trials if t.step == plan.step):
            phases.append(Phase(f"step {plan.step} {trial.kind}", plan.step, "evaluation",
                                spread(trial.usage.calls, trial.evaluated)))
    return phases


def timed(server: StubProcess, run: Callable[[], Any]) -> tuple[float, float, dict[str, Any], Any]:
    """Run ``run()`` with fresh server counters; return wall seconds, CPU seconds, server stats, result."""
    server.reset()
    cpu = time.process_time()
    started = time.perf_counter()
    value = run()
    wall = time.perf_counter() - started
    return wall, time.process_time() - cpu, server.stats(), value


# The optimizers ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """The run configuration shared by all optimizers."""

    batch_size: int
    dev_size: int
    num_candidates: int
    steps: int
    seeds: int


def run_autoevol_evolution(server: StubProcess, lm: dspy.LM, concurrency: int, s: Settings) -> Measurement:
    """AutoEvolInstruct on instruction data (evolution -> response -> detectors)."""
    optimizer = AutoEvolInstruct(
        lm=lm, optimizer_lm=lm, num_candidates=s.num_candidates, batch_sampler=s.batch_size,
        dev_size=s.dev_size, max_steps=s.steps, stopper=NoImprovement(s.steps), num_threads=concurrency,
        progress=False,
    )
    wall, cpu, stats, _ = timed(server, lambda: optimizer.compile(EvolInstruct(), trainset=seed_instructions(s.seeds)))
    result = optimizer.result
    return Measurement(
        optimizer="AutoEvolInstruct (evolution)", concurrency=concurrency, latency_s=server.latency_s, wall_s=wall,
        calls=stats["total"], client_calls=result.usage.calls, cpu_s=cpu, service_s=stats["service_s"],
        server_cpu_s=stats["cpu_s"], phases=phases_of(result),
        metric_calls=sum(t.evaluated for t in result.trials) + sum(p.trajectory_size for p in result.plans),
        by_role=stats["by_role"],
    )


def split(s: Settings) -> tuple[list[dspy.Example], list[dspy.Example]]:
    """Train and dev examples for the program optimizers (disjoint)."""
    data = questions(s.seeds)
    return data[s.dev_size:], data[: s.dev_size]


def run_autoevol_program(server: StubProcess, lm: dspy.LM, concurrency: int, s: Settings) -> Measurement:
    """AutoEvolInstruct on the QA program with the exact-match metric."""
    metric = MetricCounter()
    train, dev = split(s)
    optimizer = AutoEvolInstruct(
        metric=metric.exact, lm=lm, optimizer_lm=lm, num_candidates=s.num_candidates, batch_sampler=s.batch_size,
        dev_size=s.dev_size, max_steps=s.steps, stopper=NoImprovement(s.steps), num_threads=concurrency,
        progress=False,
    )
    wall, cpu, stats, _ = timed(server, lambda: optimizer.compile(QA(), trainset=train, valset=dev))
    result = optimizer.result
    return Measurement(
        optimizer="AutoEvolInstruct (program)", concurrency=concurrency, latency_s=server.latency_s, wall_s=wall,
        calls=stats["total"], client_calls=result.usage.calls, cpu_s=cpu, service_s=stats["service_s"],
        server_cpu_s=stats["cpu_s"], phases=phases_of(result),
        metric_calls=metric.calls, by_role=stats["by_role"],
    )


def run_gepa(server: StubProcess, lm: dspy.LM, concurrency: int, s: Settings, budget: int) -> Measurement:
    """dspy.GEPA on the QA program with ``budget`` metric calls."""
    metric = MetricCounter()
    train, dev = split(s)
    gepa = dspy.GEPA(metric=metric.with_feedback, reflection_lm=lm, max_metric_calls=budget,
                     num_threads=concurrency, track_stats=False, seed=0)
    with dspy.context(lm=lm):
        wall, cpu, stats, _ = timed(server, lambda: gepa.compile(QA(), trainset=train, valset=dev))
    return Measurement(optimizer="dspy.GEPA", concurrency=concurrency, latency_s=server.latency_s, wall_s=wall,
                       calls=stats["total"], cpu_s=cpu, service_s=stats["service_s"], metric_calls=metric.calls,
                       server_cpu_s=stats["cpu_s"], by_role=stats["by_role"])


def mipro_trials(budget: int, dev_size: int, minibatch: int, full_eval_steps: int) -> int:
    """The number of MIPROv2 trials whose metric calls come closest to ``budget``."""
    def calls(trials: int) -> int:
        return dev_size + trials * minibatch + dev_size * (trials // full_eval_steps + 1)
    return min(range(1, 200), key=lambda t: abs(calls(t) - budget))


def run_mipro(server: StubProcess, lm: dspy.LM, concurrency: int, s: Settings, budget: int) -> Measurement:
    """dspy.MIPROv2, instruction-only, on the QA program with about ``budget`` metric calls."""
    metric = MetricCounter()
    train, dev = split(s)
    minibatch, full_eval_steps = max(1, s.dev_size // 2), 5
    trials = mipro_trials(budget, s.dev_size, minibatch, full_eval_steps)
    mipro = dspy.MIPROv2(metric=metric.exact, prompt_model=lm, task_model=lm, max_bootstrapped_demos=0,
                         max_labeled_demos=0, auto=None, num_candidates=s.num_candidates, num_threads=concurrency,
                         verbose=False, track_stats=False, seed=0)

    def compile_() -> dspy.Module:
        return mipro.compile(QA(), trainset=train, valset=dev, num_trials=trials, minibatch_size=minibatch,
                             minibatch_full_eval_steps=full_eval_steps, max_bootstrapped_demos=0,
                             max_labeled_demos=0)

    with dspy.context(lm=lm):
        wall, cpu, stats, _ = timed(server, compile_)
    return Measurement(optimizer="dspy.MIPROv2 (instructions only)", concurrency=concurrency,
                       latency_s=server.latency_s, wall_s=wall, calls=stats["total"], cpu_s=cpu,
                       service_s=stats["service_s"], server_cpu_s=stats["cpu_s"], metric_calls=metric.calls,
                       by_role=stats["by_role"])


# Reporting --------------------------------------------------------------------------------------

Key = tuple[str, float, int]  # (optimizer, latency in seconds, concurrency)


def machine() -> str:
    """nproc, CPU model and RAM of this machine."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        ram = f"{kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, AttributeError):
        ram = "RAM unknown"
    return f"nproc {len(os.sched_getaffinity(0))} ({os.cpu_count()} CPUs), {model}, {ram}"


def cpu_probe_ms() -> float:
    """CPU milliseconds of a fixed pure-Python loop: how fast one core of this (shared) machine is right now."""
    started = time.process_time()
    total = 0
    for i in range(1_000_000):
        total += i * i
    return 1000 * (time.process_time() - started)


def load() -> str:
    """The 1/5/15-minute load averages."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def replace_section(path: Path, heading: str, body: str) -> None:
    """Replace (or append) the ``## heading`` section of a markdown file, keeping every other section."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    section = f"{heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}\s*\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def median(values: list[float]) -> float:
    return statistics.median(values)


def _cell(runs: list[Measurement], value: Callable[[Measurement], float | None], fmt: str) -> str:
    values = [value(m) for m in runs]
    return "-" if any(v is None for v in values) else format(median(values), fmt)


def summary_row(key: Key, runs: list[Measurement]) -> str:
    """Medians over the repeats of one (optimizer, L, C), with the range of wall / ideal."""
    name, latency, concurrency = key
    ratios = [m.ratio for m in runs]
    spread_text = f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(runs) > 1 else ""
    cells = [
        name, f"{latency * 1000:g}", str(concurrency), _cell(runs, lambda m: m.calls, ".0f"),
        _cell(runs, lambda m: m.metric_calls or 0, ".0f"),
        _cell(runs, lambda m: m.chain if m.phases else None, ".0f"),
        _cell(runs, lambda m: m.ideal_s, ".2f"), _cell(runs, lambda m: m.schedule_s, ".2f"),
        _cell(runs, lambda m: m.wall_s, ".2f"), f"**{median(ratios):.3f}**{spread_text}",
        _cell(runs, lambda m: m.schedule_s / m.ideal_s if m.phases else None, ".3f"),
        _cell(runs, lambda m: m.wall_s / m.schedule_s if m.phases else None, ".3f"),
        _cell(runs, lambda m: m.pooled_s / m.ideal_s if m.phases else None, ".3f"),
        _cell(runs, lambda m: 1000 * m.cpu_s / m.calls, ".1f"),
        _cell(runs, lambda m: m.service_s / m.calls / m.latency_s, ".3f"),
    ]
    return "| " + " | ".join(cells) + " |"


def summary_table(groups: dict[Key, list[Measurement]]) -> str:
    """One row per (optimizer, L, C): medians over repeats."""
    lines = [
        "| optimizer | L ms | C | N calls (server) | metric calls | chain | ideal s | schedule s | wall s | "
        "**wall / ideal** | schedule / ideal | wall / schedule | pooled / ideal | client CPU ms/call | service / L |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [summary_row(key, runs) for key, runs in groups.items()]
    return "\n".join(lines)


def phase_table(m: Measurement) -> str:
    """The phases of one AutoEvolInstruct run, to show where the bounds come from."""
    lines = ["| phase | units | calls | chain | N*L/C s | schedule s |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for p in m.phases:
        lines.append(f"| {p.name} | {len(p.units)} | {p.calls} | {p.chain} | "
                     f"{p.calls * m.latency_s / m.concurrency:.2f} | "
                     f"{makespan(list(p.units), m.concurrency) * m.latency_s:.2f} |")
    return "\n".join(lines)


def verdict(groups: dict[Key, list[Measurement]]) -> str:
    """Goal check on the AutoEvolInstruct rows."""
    rows = []
    for (name, latency, concurrency), runs in groups.items():
        if name.startswith("AutoEvolInstruct"):
            value = median([m.ratio for m in runs])
            rows.append(f"{name} L={latency * 1000:g} ms C={concurrency}: {value:.3f} "
                        f"({'met' if value <= GOAL else 'missed'})")
    return f"Goal wall / ideal <= {GOAL}: " + "; ".join(rows) + "."


def reading(groups: dict[Key, list[Measurement]]) -> str:
    """What the numbers say: the structure's share and the overhead's share, per AutoEvolInstruct row."""
    lines = []
    for (name, latency, concurrency), runs in groups.items():
        if not name.startswith("AutoEvolInstruct") or not runs[0].phases:
            continue
        cpu_ms = median([1000 * m.cpu_s / m.calls for m in runs])
        lines.append(
            f"- {name}, L={latency * 1000:g} ms, C={concurrency}: structure "
            f"x{median([m.schedule_s / m.ideal_s for m in runs]):.3f} "
            f"(x{median([m.pooled_s / m.ideal_s for m in runs]):.3f} with pooled evaluations), per-call overhead "
            f"x{median([m.wall_s / m.schedule_s for m in runs]):.3f}; sustaining C calls per L takes "
            f"{cpu_ms * concurrency / (latency * 1000):.2f} core(s) of client CPU at {cpu_ms:.1f} ms per call."
        )
    return "\n".join(lines)


#: Components of the client's CPU in a ``--profile`` run, by the source files their frames come from (first match).
COMPONENTS = (
    ("DSPy cost estimation", ("dspy/clients/costs.py", "dspy/clients/model_metadata")),
    ("thread pool (concurrent.futures, autoevol_dspy.parallel)", ("concurrent/futures", "autoevol_dspy/parallel.py")),
    ("autoevol_dspy (the rest)", ("autoevol_dspy/",)),
    ("HTTP and JSON (lm15 transports, sockets, json)", ("lm15/transports", "/socket.py", "/ssl.py", "/json/")),
    ("DSPy (adapters, Predict, LM client, lm15 rest)", ("/dspy/",)),
)


@dataclass
class CpuProfile:
    """Where the client's CPU went in one profiled run, measured by that run."""

    label: str
    calls: int
    cpu_s: float
    by_component: dict[str, float]


def profile_threads(run: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run ``run()`` with a CPU-time profiler (cProfile on ``time.thread_time``) in every thread it starts."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_profiler(frame: Any, event: str, arg: Any) -> None:  # the first profile event of a new thread
        sys.setprofile(None)
        profile = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profile)
        profile.enable()

    main = cProfile.Profile(time.thread_time)
    profiles.append(main)
    threading.setprofile(start_profiler)
    main.enable()
    try:
        value = run()
    finally:
        main.disable()
        threading.setprofile(None)
    seconds: dict[str, float] = {name: 0.0 for name, _ in COMPONENTS}
    seconds["other (Python runtime, Optuna, SQLite, ...)"] = 0.0
    for profile in profiles:
        profile.create_stats()
        for (filename, _, _), (_, _, own_time, _, _) in profile.stats.items():
            where = filename.replace("\\", "/")
            name = next((n for n, parts in COMPONENTS if any(p in where for p in parts)),
                        "other (Python runtime, Optuna, SQLite, ...)")
            seconds[name] += own_time
    return value, seconds


def run_profiled(server: StubProcess, lm: dspy.LM, concurrency: int, s: Settings) -> CpuProfile:
    """One more AutoEvolInstruct (evolution) run, under the profiler (its timings are not reported)."""
    optimizer = AutoEvolInstruct(
        lm=lm, optimizer_lm=lm, num_candidates=s.num_candidates, batch_sampler=s.batch_size,
        dev_size=s.dev_size, max_steps=s.steps, stopper=NoImprovement(s.steps), num_threads=concurrency,
        progress=False,
    )
    server.reset()
    _, seconds = profile_threads(lambda: optimizer.compile(EvolInstruct(), trainset=seed_instructions(s.seeds)))
    label = f"AutoEvolInstruct (evolution), L={server.latency_s * 1000:g} ms, C={concurrency}"
    return CpuProfile(label=label, calls=server.stats()["total"], cpu_s=sum(seconds.values()), by_component=seconds)


def notes(groups: dict[Key, list[Measurement]], profile: CpuProfile | None) -> str:
    """Per-call CPU on both sides, and the client's CPU by component when this run was profiled."""
    runs = [m for ms in groups.values() for m in ms if m.calls]
    client = median([1000 * m.cpu_s / m.calls for m in runs]) if runs else 0.0
    server = median([1000 * m.server_cpu_s / m.calls for m in runs]) if runs else 0.0
    text = (f"CPU per call in this run (median over all rows and repeats): client {client:.1f} ms, stub server "
            f"{server:.1f} ms in its own process.")
    if profile is None:
        return text + " No CPU profile in this run (`--profile` adds one)."
    shares = ", ".join(f"{name} {100 * value / profile.cpu_s:.0f}%"
                       for name, value in sorted(profile.by_component.items(), key=lambda item: -item[1]) if value)
    return (text + f" CPU profile of one extra run ({profile.label}; {profile.calls} calls, {profile.cpu_s:.1f} s of "
            f"client CPU, {1000 * profile.cpu_s / max(1, profile.calls):.1f} ms per call with the profiler's own "
            f"overhead; self time by source file): {shares}.")


LEGEND = """\
- ideal = max(N*L/C, L*chain) (derivation in `benchmarks/orchestration.py`); schedule = the same phases
  run without any overhead, one after another, each scheduled in order on C slots (what the loop's
  structure allows); pooled = the same if each step's candidate evaluations shared one pool;
  wall / ideal = (schedule / ideal) x (wall / schedule): the structure's cost times the per-call overhead
  (DSPy client CPU, HTTP, threads); service / L = how long a call really held a server slot, over L
  (sleep overshoot on a busy machine). GEPA and MIPROv2: ideal = N*L/C, chain and schedule not derived."""


def report(args: argparse.Namespace, groups: dict[Key, list[Measurement]], command: str,
           loads: tuple[str, str], profile: CpuProfile | None = None) -> str:
    """The markdown body of the section."""
    example = next((runs[0] for key, runs in groups.items() if key[0] == "AutoEvolInstruct (evolution)"), None)
    parts = [
        f"Command: `{command}`",
        "",
        f"- Machine: {machine()}; Python {platform.python_version()}, DSPy {dspy.__version__}",
        f"- Date: {dt.datetime.now().isoformat(timespec='seconds')}; load average before {loads[0]}, after "
        f"{loads[1]} (probe: CPU ms of a fixed pure-Python loop, the speed of one core of this shared VM)",
        "- Stub server (`autoevol_dspy.testing.StubProcess` answering with `benchmarks/stub_behaviour.py`, its own "
        "process): latency L per call, at most C calls served at once; LM `make_lm('openai/stub', api_base=..., "
        "cache=False)`; num_threads = C",
        f"- AutoEvolInstruct: mini-batch {args.batch_size}, dev {args.dev_size}, m {args.num_candidates}, "
        f"{args.steps} step(s) (patience = steps), {args.seeds} synthetic seeds; GEPA / MIPROv2 (no demos) on a "
        f"one-predictor QA program with exact match, budgeted to AutoEvolInstruct's metric calls on that program; "
        f"{args.repeats} repeat(s) interleaved, medians (range)"
        + ("; **smoke run: not a measurement**" if args.smoke else ""),
        LEGEND,
        "",
        summary_table(groups),
        "",
        verdict(groups),
        "",
        reading(groups),
        "",
        notes(groups, profile),
    ]
    if example is not None:
        parts += ["", f"Phases of one AutoEvolInstruct (evolution) run, L={example.latency_s * 1000:g} ms "
                      f"C={example.concurrency}:", "", phase_table(example)]
    return "\n".join(parts)


# Main -------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[50.0, 200.0],
                        help="values of the latency L of every stub call (default: 50 200)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 8],
                        help="values of C (server slots = num_threads) (default: 4 8)")
    parser.add_argument("--compare-at", type=float, nargs=2, metavar=("L_MS", "C"), default=None,
                        help="the (L, C) of the program comparison with GEPA and MIPROv2 (default: first L, last C)")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--dev-size", type=int, default=50)
    parser.add_argument("--num-candidates", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=150, help="synthetic seed problems (default 150)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compare", action="store_true", help="skip the GEPA / MIPROv2 comparison")
    parser.add_argument("--profile", action="store_true", help="profile one more AutoEvolInstruct run at the "
                        "comparison point and report the client's CPU by component")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--smoke", action="store_true", help="a tiny quick run (for CI; not a measurement)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.latency_ms, args.concurrency, args.batch_size, args.dev_size = [5.0], [4], 3, 8
        args.num_candidates, args.steps, args.seeds, args.repeats = 2, 1, 20, 1
    if args.compare_at is None:
        args.compare_at = (args.latency_ms[0], args.concurrency[-1])
    args.compare_at = (float(args.compare_at[0]), int(args.compare_at[1]))
    return args


def quiet_libraries() -> None:
    """Keep DSPy, GEPA, Optuna and the loop's own step logs from flooding the output."""
    for name in ("dspy", "gepa", "optuna", "LiteLLM", "httpx", "autoevol_dspy"):
        logging.getLogger(name).setLevel(logging.WARNING if name == "autoevol_dspy" else logging.ERROR)
    warnings.filterwarnings("ignore")


def warm_up(lm: dspy.LM) -> None:
    """One call, so connection setup and metadata loading are not timed."""
    with dspy.context(lm=lm):
        dspy.Predict("question -> answer")(question="warm-up: 1 + 1")


def stub(latency_ms: float, concurrency: int) -> StubProcess:
    """The stub server for one (L, C), answering with the benchmarks' scripted behaviour."""
    return StubProcess(RESPONDER, latency_s=latency_ms / 1000, capacity=concurrency, path=[str(BENCHMARKS)])


def run_point(args: argparse.Namespace, latency_ms: float, concurrency: int) -> list[Measurement]:
    """Every optimizer due at one (L, C), against one fresh server."""
    s = Settings(args.batch_size, args.dev_size, args.num_candidates, args.steps, args.seeds)
    with stub(latency_ms, concurrency) as server:
        lm = make_lm("openai/stub", api_base=server.base_url, cache=False)
        warm_up(lm)
        found = [run_autoevol_evolution(server, lm, concurrency, s)]
        if not args.no_compare and (latency_ms, concurrency) == args.compare_at:
            program = run_autoevol_program(server, lm, concurrency, s)
            budget = program.metric_calls or 1
            found += [program, run_gepa(server, lm, concurrency, s, budget),
                      run_mipro(server, lm, concurrency, s, budget)]
    for m in found:
        if m.client_calls is not None and m.client_calls != m.calls:
            logger.warning("%s: the server counted %d calls, the client %d (retries?)", m.optimizer, m.calls,
                           m.client_calls)
    return found


def run_all(args: argparse.Namespace) -> dict[Key, list[Measurement]]:
    """All repeats, interleaved: every (L, C) once per repeat."""
    groups: dict[Key, list[Measurement]] = {}
    for repeat in range(args.repeats):
        for latency_ms in args.latency_ms:
            for concurrency in args.concurrency:
                for m in run_point(args, latency_ms, concurrency):
                    logger.info("repeat %d: %s L=%g ms C=%d: N=%d wall %.2fs ideal %.2fs ratio %.3f (load %s)",
                                repeat + 1, m.optimizer, latency_ms, m.concurrency, m.calls, m.wall_s, m.ideal_s,
                                m.ratio, load())
                    groups.setdefault((m.optimizer, m.latency_s, m.concurrency), []).append(m)
    return groups


def main(argv: list[str] | None = None) -> int:
    """Run, print the section, and write it into RESULTS.md."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    quiet_libraries()
    command = "python benchmarks/orchestration.py" + (" " + " ".join(sys.argv[1:]) if len(sys.argv) > 1 else "")
    before = f"{load()}, CPU probe {cpu_probe_ms():.0f} ms"
    groups = run_all(args)
    profile = None
    if args.profile:
        latency_ms, concurrency = args.compare_at
        s = Settings(args.batch_size, args.dev_size, args.num_candidates, args.steps, args.seeds)
        with stub(latency_ms, concurrency) as server:
            lm = make_lm("openai/stub", api_base=server.base_url, cache=False)
            warm_up(lm)
            profile = run_profiled(server, lm, concurrency, s)
    body = report(args, groups, command, (before, f"{load()}, CPU probe {cpu_probe_ms():.0f} ms"), profile)
    print(body)
    if not args.no_write:
        replace_section(args.results, SECTION, body)
        logger.info("updated %s", args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
