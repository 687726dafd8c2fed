"""Generated tokens per second: LlamaCppEngine through dspy.LM versus llama-cpp-python called directly.

Both sides run the same GGUF with the same settings (temperature 0, same max_tokens, same
threads and context size) on the same prompts, interleaved call by call (the order flips every
call) so that load on the machine hits both alike. Each side has its own llama context, so
neither reuses the other's prompt cache. Prints a markdown table of medians over repeats and
the ratio engine/direct (goal: >= 0.95).

    python benchmarks/engine_throughput.py --prompts 8 --max-tokens 64 --repeats 5
    python benchmarks/engine_throughput.py --smoke
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import dspy

from autoevol_dspy.lm.local_engine import DEFAULT_N_CTX
from autoevol_dspy.lm.local_engine import default_model_path
from autoevol_dspy.lm.local_engine import LlamaCppEngine, default_threads

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


def _prompts(count: int) -> list[str]:
    return [PROMPTS[i % len(PROMPTS)] + ("" if i < len(PROMPTS) else f" (variant {i // len(PROMPTS)})")
            for i in range(count)]


def _call_dspy(lm: dspy.LM, prompt: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    text = lm(prompt)[0]  # one user message, as on the direct side
    elapsed = time.perf_counter() - started
    return elapsed, lm.history[-1]["usage"]["completion_tokens"], text


def _call_direct(llama: Any, prompt: str, max_tokens: int) -> tuple[float, int, str]:
    started = time.perf_counter()
    result = llama.create_chat_completion(messages=[{"role": "user", "content": prompt}], temperature=0.0,
                                          max_tokens=max_tokens)
    elapsed = time.perf_counter() - started
    return elapsed, result["usage"]["completion_tokens"], result["choices"][0]["message"]["content"] or ""


def run(*, prompts: int, max_tokens: int, repeats: int, threads: int, n_ctx: int, model: Path) -> dict[str, Any]:
    from llama_cpp import Llama

    engine = LlamaCppEngine(model_path=model, n_ctx=n_ctx, n_threads=threads)
    lm = dspy.LM(f"local/{model.stem}", engine=engine, cache=False, temperature=0.0, max_tokens=max_tokens)
    direct = Llama(model_path=str(model), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)
    texts = _prompts(prompts)
    # Warm-up, not measured: loads the engine's model and touches both contexts once.
    _call_dspy(lm, texts[0])
    _call_direct(direct, texts[0], max_tokens)

    rates: dict[str, list[float]] = {"dspy": [], "direct": []}
    tokens: dict[str, list[int]] = {"dspy": [], "direct": []}
    overhead_ms: list[float] = []
    same = 0
    for repeat in range(repeats):
        seconds = {"dspy": 0.0, "direct": 0.0}
        counted = {"dspy": 0, "direct": 0}
        for index, prompt in enumerate(texts):
            order = ("dspy", "direct") if (repeat + index) % 2 == 0 else ("direct", "dspy")
            got: dict[str, tuple[float, int, str]] = {}
            for side in order:
                got[side] = _call_dspy(lm, prompt) if side == "dspy" else _call_direct(direct, prompt, max_tokens)
            for side, (elapsed, count, _) in got.items():
                seconds[side] += elapsed
                counted[side] += count
            overhead_ms.append((got["dspy"][0] - got["direct"][0]) * 1000)
            same += got["dspy"][2] == got["direct"][2]
        for side in rates:
            rates[side].append(counted[side] / seconds[side])
            tokens[side].append(counted[side])
        logging.info("repeat %d: dspy %.1f tok/s, direct %.1f tok/s", repeat + 1, rates["dspy"][-1],
                     rates["direct"][-1])
    fixed = _fixed_cost_ms(lm, direct, texts[0])
    engine.close()
    direct.close()
    return {"rates": rates, "tokens": tokens, "overhead_ms": overhead_ms, "same": same,
            "calls": prompts * repeats, "fixed_ms": fixed}


def _fixed_cost_ms(lm: dspy.LM, direct: Any, prompt: str, calls: int = 30) -> dict[str, float]:
    """Median wall time of a 1-token call on an already-cached prompt: what each path adds per call."""
    one = lm.copy(max_tokens=1)
    times: dict[str, list[float]] = {"dspy": [], "direct": []}
    for _ in range(calls):
        times["dspy"].append(_call_dspy(one, prompt)[0])
        times["direct"].append(_call_direct(direct, prompt, 1)[0])
    return {side: statistics.median(values) * 1000 for side, values in times.items()}


def table(result: dict[str, Any]) -> str:
    rates, tokens = result["rates"], result["tokens"]
    lines = ["| path | median tok/s | min tok/s | max tok/s | generated tokens per repeat |",
             "|---|---:|---:|---:|---:|"]
    labels = {"dspy": "dspy.LM(engine=LlamaCppEngine)", "direct": "Llama.create_chat_completion"}
    for side in ("dspy", "direct"):
        lines.append(f"| {labels[side]} | {statistics.median(rates[side]):.1f} | {min(rates[side]):.1f} | "
                     f"{max(rates[side]):.1f} | {statistics.median(tokens[side]):.0f} |")
    ratio = statistics.median(rates["dspy"]) / statistics.median(rates["direct"])
    paired = statistics.median(d / r for d, r in zip(rates["dspy"], rates["direct"]))
    lines.append("")
    lines.append(f"ratio engine/direct (medians): **{ratio:.3f}** (goal >= 0.95); "
                 f"median of per-repeat ratios: {paired:.3f}; "
                 f"median per-call difference dspy - direct: {statistics.median(result['overhead_ms']):+.1f} ms; "
                 f"identical outputs: {result['same']}/{result['calls']} calls")
    fixed = result["fixed_ms"]
    lines.append("")
    lines.append(f"fixed cost of one 1-token call on a cached prompt (median of 30): dspy.LM + engine "
                 f"{fixed['dspy']:.2f} ms, direct {fixed['direct']:.2f} ms (difference "
                 f"{fixed['dspy'] - fixed['direct']:+.2f} ms per call)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8, help="distinct prompts per repeat")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens for every call")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; the table shows medians")
    parser.add_argument("--threads", type=int, default=default_threads(), help="llama.cpp threads, both sides")
    parser.add_argument("--n-ctx", type=int, default=DEFAULT_N_CTX, help="context size, both sides")
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--smoke", action="store_true", help="tiny quick run: 2 prompts, 8 tokens, 1 repeat")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("dspy").setLevel(logging.ERROR)  # "truncated at max_tokens" is the point here
    if args.smoke:
        args.prompts, args.max_tokens, args.repeats = 2, 8, 1
    model = args.model or default_model_path()
    result = run(prompts=args.prompts, max_tokens=args.max_tokens, repeats=args.repeats, threads=args.threads,
                 n_ctx=args.n_ctx, model=model)
    print(f"model {model.name}, {args.prompts} prompts x {args.repeats} repeats, max_tokens={args.max_tokens}, "
          f"temperature=0, threads={args.threads}, n_ctx={args.n_ctx}\n")
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
