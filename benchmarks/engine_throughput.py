"""Calls/s and tokens/s of the embedded engine: a pool of contexts, one context, llama-cpp-python directly.

Every side runs the same GGUF with the same settings (temperature 0, same max_tokens, n_ctx and
threads per context) over the same prompts:

- ``pool``: ``dspy.LM`` on ``LlamaCppEngine(contexts=C)``, called from C threads at once;
- ``one``: ``dspy.LM`` on ``LlamaCppEngine(contexts=1)``, called from the same C threads (its one
  context serializes them: the engine before the pool);
- ``direct``: one ``Llama``, ``create_chat_completion`` called in sequence;
- ``direct pool``: C ``Llama`` objects used from C threads, each thread taking a free one.

Each repeat runs every side once over the prompts, the order of the sides rotating from repeat
to repeat, so that load on the machine hits all alike; the tables give medians over repeats and
the ratios pool/one (goal >= 1.8 on 2 cores) and through DSPy/direct (goal >= 0.95). "Cores
used" is the process's CPU seconds per wall second while a side ran: on a machine that other
jobs share, it tells how many cores the run really got. A second table measures prefix routing:
prompts under two long system prompts (as DSPy's adapters write them) through the pool routed
by shared prefix against the same pool without routing.

    python benchmarks/engine_throughput.py --prompts 8 --max-tokens 64 --repeats 5
    python benchmarks/engine_throughput.py --smoke
"""

from __future__ import annotations

import argparse
import logging
import queue
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy

from autoevol_dspy.lm.local_engine import (
    DEFAULT_N_CTX,
    LlamaCppEngine,
    default_model_path,
    pool_shape,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import current_load, machine_info, machine_line

logger = logging.getLogger("engine_throughput")

# Instruction-like prompts of the kind the evol LM sees, written for this benchmark.
PROMPTS = (
    "Explain in a short paragraph why the sky looks blue during the day.",
    "Write three tips for a student preparing for a mathematics exam.",
    "A train travels 60 km in 45 minutes. What is its average speed in km/h? Explain.",
    "Describe how to make a cup of tea, step by step.",
    "Rewrite this instruction to make it harder: 'List the planets of the solar system.'",
    "What are the main differences between a list and a tuple in Python?",
    "Summarize the water cycle for a ten-year-old.",
    "Give two arguments for and two against working from home.",
    "Write a short poem about autumn leaves.",
    "How does a refrigerator keep food cold?",
    "Suggest a name for a bakery and explain the choice.",
    "Compute 17 times 23 and show your working.",
)

# Two system prompts shaped like DSPy's ChatAdapter output, written for this benchmark: calls
# under one share a long prefix, which the pool can reuse when it routes them to one context.
_SYSTEM = """Your input fields are:
1. `{a}` (str): {a_text}
Your output fields are:
1. `reasoning` (str): Think step by step before answering.
2. `{b}` (str): {b_text}
All interactions will be structured in the following way, with the appropriate values filled in.

[[ ## {a} ## ]]
{{{a}}}

[[ ## reasoning ## ]]
{{reasoning}}

[[ ## {b} ## ]]
{{{b}}}

[[ ## completed ## ]]
In adhering to this structure, your objective is:
        {goal} Keep the answer short, check every step, prefer plain words, and never repeat the
        input. When the input is ambiguous, state the reading you chose in one sentence first.
        Answers that are wrong, empty, or that copy the input are counted as failures."""
SYSTEMS = (
    _SYSTEM.format(a="instruction", a_text="An instruction written by a user.", b="evolved_instruction",
                   b_text="A harder version of the instruction that a careful model can still answer.",
                   goal="Rewrite the instruction so that it is harder to answer, adding one constraint."),
    _SYSTEM.format(a="question", a_text="A question about everyday science or arithmetic.", b="answer",
                   b_text="The answer, one or two sentences.",
                   goal="Answer the question correctly and briefly, as a patient teacher would."),
)


def _prompts(count: int) -> list[str]:
    return [PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" (variant {i // len(PROMPTS)})")
            for i in range(count)]


@dataclass
class Side:
    """One way of running a batch of prompts, and its figures per repeat."""

    name: str
    label: str
    run_batch: Callable[[list[Any]], tuple[int, list[str]]]  # -> (generated tokens, texts)
    calls_s: list[float] = field(default_factory=list)
    tokens_s: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    cores: list[float] = field(default_factory=list)  # CPU seconds of this process per wall second
    texts: list[str] = field(default_factory=list)

    def measure(self, batch: list[Any]) -> None:
        started, cpu = time.perf_counter(), time.process_time()
        generated, self.texts = self.run_batch(batch)
        seconds = time.perf_counter() - started
        self.cores.append((time.process_time() - cpu) / seconds)
        self.calls_s.append(len(batch) / seconds)
        self.tokens_s.append(generated / seconds)
        self.tokens.append(generated)


def _dspy_batch(lm: dspy.LM, callers: int) -> Callable[[list[Any]], tuple[int, list[str]]]:
    """Run a batch through ``lm`` from ``callers`` threads; tokens come from the LM's history."""
    def call(prompt: Any) -> str:
        return lm(messages=prompt)[0] if isinstance(prompt, list) else lm(prompt)[0]

    def run(batch: list[Any]) -> tuple[int, list[str]]:
        lm.history.clear()
        with ThreadPoolExecutor(max_workers=callers) as executor:
            texts = list(executor.map(call, batch))
        return sum(entry["usage"]["completion_tokens"] for entry in lm.history), texts

    return run


def _direct_batch(llamas: list[Any], max_tokens: int) -> Callable[[list[Any]], tuple[int, list[str]]]:
    """Run a batch on these ``Llama`` objects directly, one caller thread per object."""
    free: queue.Queue[Any] = queue.Queue()
    for llama in llamas:
        free.put(llama)

    def call(prompt: str) -> tuple[int, str]:
        llama = free.get()
        try:
            result = llama.create_chat_completion(messages=[{"role": "user", "content": prompt}], temperature=0.0,
                                                  max_tokens=max_tokens)
        finally:
            free.put(llama)
        return result["usage"]["completion_tokens"], result["choices"][0]["message"]["content"] or ""

    def run(batch: list[Any]) -> tuple[int, list[str]]:
        if len(llamas) == 1:
            results = [call(prompt) for prompt in batch]
        else:
            with ThreadPoolExecutor(max_workers=len(llamas)) as executor:
                results = list(executor.map(call, batch))
        return sum(count for count, _ in results), [text for _, text in results]

    return run


def _engine_lm(model: Path, max_tokens: int, **settings: Any) -> tuple[LlamaCppEngine, dspy.LM]:
    engine = LlamaCppEngine(model_path=model, **settings)
    return engine, dspy.LM(f"local/{model.stem}", engine=engine, cache=False, temperature=0.0, max_tokens=max_tokens)


def _warm(side: Side, batch: list[Any], engine: LlamaCppEngine | None = None) -> None:
    """Unmeasured batches until every context of ``engine`` is loaded (lazy loading is not measured)."""
    for _ in range(5):
        side.run_batch(batch)
        if engine is None or engine.loaded_contexts == engine.pool_size:
            return
    logger.warning("%s: only %d of %d contexts loaded after warm-up", side.name, engine.loaded_contexts,
                   engine.pool_size)


def _rounds(sides: list[Side], batch: list[Any], repeats: int) -> None:
    for repeat in range(repeats):
        shift = repeat % len(sides)
        for side in sides[shift:] + sides[:shift]:
            side.measure(batch)
        logger.info("repeat %d: %s", repeat + 1,
                    ", ".join(f"{s.name} {s.calls_s[-1]:.2f} calls/s {s.tokens_s[-1]:.1f} tok/s" for s in sides))


def run_throughput(*, model: Path, prompts: int, max_tokens: int, repeats: int, contexts: int, threads: int,
                   n_ctx: int) -> dict[str, Any]:
    """The four sides of the main table, measured side by side."""
    from llama_cpp import Llama

    settings = {"n_ctx": n_ctx, "n_threads": threads}
    pool_engine, pool_lm = _engine_lm(model, max_tokens, contexts=contexts, **settings)
    one_engine, one_lm = _engine_lm(model, max_tokens, contexts=1, **settings)
    llamas = [Llama(model_path=str(model), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)
              for _ in range(contexts)]
    sides = [Side("pool", f"dspy.LM, pool of {contexts} contexts, {contexts} callers", _dspy_batch(pool_lm, contexts)),
             Side("one", f"dspy.LM, one context, {contexts} callers", _dspy_batch(one_lm, contexts)),
             Side("direct", "Llama.create_chat_completion, one Llama, in sequence",
                  _direct_batch(llamas[:1], max_tokens)),
             Side("direct pool", f"Llama.create_chat_completion, {contexts} Llamas, {contexts} threads",
                  _direct_batch(llamas, max_tokens))]
    texts = _prompts(prompts)
    for side, engine in zip(sides, (pool_engine, one_engine, None, None)):
        _warm(side, texts[:contexts], engine)
    _rounds(sides, texts, repeats)
    fixed = _fixed_cost_ms(one_lm, llamas[0], texts[0])
    for closable in (pool_engine, one_engine, *llamas):
        closable.close()
    return {"sides": {side.name: side for side in sides}, "fixed_ms": fixed}


def _fixed_cost_ms(lm: dspy.LM, llama: Any, prompt: str, calls: int = 30) -> dict[str, float]:
    """Median wall time of a 1-token call on an already-cached prompt: what each path adds per call."""
    one = lm.copy(max_tokens=1)
    direct = _direct_batch([llama], 1)
    times: dict[str, list[float]] = {"dspy": [], "direct": []}
    for _ in range(calls):
        for side, run in (("dspy", lambda: one(prompt)), ("direct", lambda: direct([prompt]))):
            started = time.perf_counter()
            run()
            times[side].append(time.perf_counter() - started)
    return {side: statistics.median(values) * 1000 for side, values in times.items()}


def run_routing(*, model: Path, calls: int, max_tokens: int, repeats: int, contexts: int, threads: int,
                n_ctx: int) -> dict[str, Any]:
    """Pools routed by shared prefix against pools that take the first free context, on two-system-prompt traffic.

    Each pool first loads all its contexts (as a concurrent phase of a run would); then it serves
    one caller (routing can pick any context) and ``contexts`` callers (mostly one is free).
    """
    batch = [[{"role": "system", "content": SYSTEMS[i % 2]}, {"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]
             for i in range(calls)]
    sides, engines = [], []
    for routed in (True, False):
        engine, lm = _engine_lm(model, max_tokens, contexts=contexts, n_threads=threads, n_ctx=n_ctx,
                                route_by_prefix=routed)
        engines.append(engine)
        _warm(Side("warm-up", "", _dspy_batch(lm, contexts)), batch[:contexts], engine)
        how = "routed by prefix" if routed else "first free context"
        for callers in sorted({1, contexts}):
            lm = dspy.LM(lm.model, engine=engine, cache=False, temperature=0.0, max_tokens=max_tokens)
            sides.append(Side(_routing_name(routed, callers), f"pool of {contexts}, {how}, {callers} caller(s)",
                              _dspy_batch(lm, callers)))
    _rounds(sides, batch, repeats)
    prompt_tokens = engines[0].count_prompt_tokens(batch[0])
    for engine in engines:
        engine.close()
    return {"sides": {side.name: side for side in sides}, "prompt_tokens": prompt_tokens,
            "callers": sorted({1, contexts})}


def _routing_name(routed: bool, callers: int) -> str:
    return f"{'routed' if routed else 'unrouted'} x{callers}"


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _paired(a: Side, b: Side, metric: str) -> float:
    """Median over repeats of the per-repeat ratio a/b (both measured in the same minutes)."""
    return _median([x / y for x, y in zip(getattr(a, metric), getattr(b, metric))])


def _same(a: Side, b: Side) -> str:
    return f"{sum(x == y for x, y in zip(a.texts, b.texts))}/{len(a.texts)}"


def throughput_table(result: dict[str, Any]) -> str:
    sides = result["sides"]
    lines = ["| path | median calls/s | median tok/s | min-max tok/s | generated tokens per repeat | cores used |",
             "|---|---:|---:|---:|---:|---:|"]
    for side in sides.values():
        lines.append(f"| {side.label} | {_median(side.calls_s):.2f} | {_median(side.tokens_s):.1f} | "
                     f"{min(side.tokens_s):.1f}-{max(side.tokens_s):.1f} | {_median(side.tokens):.0f} | "
                     f"{_median(side.cores):.2f} |")
    pool, one, direct, direct_pool = (sides[name] for name in ("pool", "one", "direct", "direct pool"))
    lines += ["", ("| ratio | tok/s, ratio of medians | tok/s, median of per-repeat ratios | calls/s, median of "
              "per-repeat ratios | goal |"), "|---|---:|---:|---:|---|"]
    for label, a, b, goal in (("pool / one context (through DSPy)", pool, one, ">= 1.8 on 2 cores"),
                              ("one context through DSPy / direct", one, direct, ">= 0.95"),
                              ("pool through DSPy / direct pool", pool, direct_pool, ">= 0.95")):
        lines.append(f"| {label} | **{_median(a.tokens_s) / _median(b.tokens_s):.3f}** | "
                     f"{_paired(a, b, 'tokens_s'):.3f} | {_paired(a, b, 'calls_s'):.3f} | {goal} |")
    lines += ["", (f"Identical outputs at temperature 0 (last repeat): pool vs one context {_same(pool, one)}, "
              f"one context vs direct {_same(one, direct)}, direct pool vs direct {_same(direct_pool, direct)}.")]
    fixed = result["fixed_ms"]
    lines += ["", (f"Fixed cost of one 1-token call on a cached prompt (median of 30): dspy.LM + engine "
                   f"{fixed['dspy']:.2f} ms, direct {fixed['direct']:.2f} ms "
                   f"({fixed['dspy'] - fixed['direct']:+.2f} ms per call).")]
    return "\n".join(lines)


def routing_table(result: dict[str, Any]) -> str:
    sides = result["sides"]
    lines = ["| pool | median calls/s | median tok/s | min-max calls/s | cores used |", "|---|---:|---:|---:|---:|"]
    for side in sides.values():
        lines.append(f"| {side.label} | {_median(side.calls_s):.2f} | {_median(side.tokens_s):.1f} | "
                     f"{min(side.calls_s):.2f}-{max(side.calls_s):.2f} | {_median(side.cores):.2f} |")
    lines.append("")
    for callers in result["callers"]:
        routed, unrouted = sides[_routing_name(True, callers)], sides[_routing_name(False, callers)]
        lines.append(f"- {callers} caller(s): routed / unrouted calls/s **{_paired(routed, unrouted, 'calls_s'):.3f}** "
                     f"(median of per-repeat ratios), identical outputs {_same(routed, unrouted)}")
    lines.append(f"- prompt of {result['prompt_tokens']} tokens, of which the system prompt is most")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    contexts, threads = pool_shape()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8, help="distinct prompts per repeat")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens for every call")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; the tables show medians")
    parser.add_argument("--contexts", type=int, default=contexts, help="pool size and caller threads")
    parser.add_argument("--threads", type=int, default=threads, help="llama.cpp threads per context, every side")
    parser.add_argument("--n-ctx", type=int, default=DEFAULT_N_CTX, help="context size, every side")
    parser.add_argument("--routing-calls", type=int, default=12, help="calls per repeat of the routing table (0: skip)")
    parser.add_argument("--routing-max-tokens", type=int, default=16, help="max_tokens of the routing calls")
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--smoke", action="store_true", help="tiny quick run: 2 prompts, 8 tokens, 1 repeat")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("dspy").setLevel(logging.ERROR)  # "truncated at max_tokens" is the point here
    if args.smoke:
        args.prompts, args.max_tokens, args.repeats, args.routing_calls, args.routing_max_tokens = 2, 8, 1, 4, 4
    model = args.model or default_model_path()
    info = machine_info()
    started = time.perf_counter()
    throughput = run_throughput(model=model, prompts=args.prompts, max_tokens=args.max_tokens, repeats=args.repeats,
                           contexts=args.contexts, threads=args.threads, n_ctx=args.n_ctx)
    routing = None
    if args.routing_calls:
        routing = run_routing(model=model, calls=args.routing_calls, max_tokens=args.routing_max_tokens,
                              repeats=args.repeats, contexts=args.contexts, threads=args.threads, n_ctx=args.n_ctx)
    print(machine_line(info, load_at_end=current_load()) + f" Run took {time.perf_counter() - started:.0f} s.\n")
    print(f"model {model.name}, {args.prompts} prompts x {args.repeats} repeats, max_tokens={args.max_tokens}, "
          f"temperature=0, {args.contexts} contexts x {args.threads} threads, n_ctx={args.n_ctx}\n")
    print(throughput_table(throughput))
    if routing is not None:
        print(f"\nPrefix routing: {args.routing_calls} calls per repeat alternating two system prompts, "
              f"max_tokens={args.routing_max_tokens}\n")
        print(routing_table(routing))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
