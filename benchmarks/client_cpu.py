"""Client CPU per LM call through DSPy: DSPy's own LM route against ``make_lm``'s server engine, side by side.

Every call of a run costs the client CPU in DSPy's adapter, the HTTP client and whatever
wraps them; with hundreds of calls in flight that CPU, not the server, can be the limit.
Each run is a child process that evolves N synthetic seeds with ``evolve_dataset`` (one
round, each evolution answered: two LM calls a seed, the same code path as ``autoevol
evolve``) against the stub server in its own process with no latency, and reports its
process CPU time over the LM calls it made. The clients, interleaved within every repeat:

* ``dspy.LM`` - ``dspy.LM('openai/stub', api_base=..., api_key=...)``: DSPy's own route. After
  each call DSPy estimates its cost, looking the model name up in its price map; a name it
  does not know (any self-hosted model) is searched for among every entry's aliases, twice.
* ``make_lm`` - ``make_lm('openai/stub', api_base=...)`` of this package: its own engine
  (no price lookup for a server, connections pooled, the proxy resolved once, the 429 gate);
  with ``--baseline-rev REV`` also as it was at REV (``benchmarks/revisions.py``).

    python benchmarks/client_cpu.py --baseline-rev main
    python benchmarks/client_cpu.py --smoke
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from common import DEFAULT_RESULTS, current_load, machine_info, machine_line, markdown_table, write_section  # noqa: E402
from revisions import exported, short_hash  # noqa: E402

logger = logging.getLogger("client_cpu")

SECTION = "Client CPU per LM call (issue 13)"
RESPONDER = "stub_behaviour:StubBehaviour"


# The child: one evolve_dataset run ------------------------------------------------------------


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Evolve the seeds once to warm up, then again under measure; CPU ms per LM call of the second run."""
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import dspy

    from autoevol_dspy.data import evolve_dataset
    from autoevol_dspy.lm import make_lm

    logging.basicConfig(level=logging.ERROR)
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    if spec["client"] == "dspy.LM":
        lm = dspy.LM("openai/stub", api_base=spec["url"], api_key="not-needed", cache=False)
    else:
        lm = make_lm("openai/stub", api_base=spec["url"], cache=False)
    method = Path(spec["method"]).read_text(encoding="utf-8")
    seeds = json.loads(Path(spec["seeds"]).read_text(encoding="utf-8"))

    def run(tag: str, count: int) -> tuple[float, int]:
        out = Path(spec["work"]) / f"{tag}-{time.monotonic_ns()}.jsonl"
        cpu = time.process_time()
        summary = evolve_dataset([f"{tag}: {text}" for text in seeds[:count]], method=method, out_path=out,
                                 evol_lm=lm, response_lm=lm, rounds=1, num_threads=spec["threads"], progress=False)
        return time.process_time() - cpu, summary.usage.calls

    run("warm", max(10, len(seeds) // 10))
    cpu_s, calls = run("measured", len(seeds))
    return {"cpu_ms_per_call": 1000 * cpu_s / calls, "calls": calls}


# The parent -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    client: str
    threads: int
    cpu_ms_per_call: float
    calls: int


def write_inputs(work: Path, count: int) -> tuple[Path, Path]:
    """The seed texts (a JSON list) and the method, marked for the stub as one that always rewrites."""
    from stub_behaviour import with_level

    from autoevol_dspy import EvolInstruct

    seeds = work / "seeds.json"
    seeds.write_text(json.dumps([f"Problem {i}: a shop sells {3 + i % 17} pens and {2 * i % 23 + 1} pencils. "
                                 "How many items does it sell?" for i in range(count)]), encoding="utf-8")
    method = work / "method.txt"
    method.write_text(with_level(EvolInstruct().method, 0), encoding="utf-8")
    return seeds, method


def measure(args: argparse.Namespace, work: Path) -> list[Run]:
    from autoevol_dspy.testing import StubProcess

    seeds, method = write_inputs(work, args.seeds)
    runs: list[Run] = []
    with exported(args.baseline_rev) if args.baseline_rev else _nothing() as baseline_env:
        clients: list[tuple[str, str, dict[str, str] | None]] = [("dspy.LM", "dspy.LM", None),
                                                                 ("make_lm (this change)", "make_lm", None)]
        if baseline_env is not None:
            clients.append((f"make_lm at {args.baseline_rev} ({short_hash(args.baseline_rev)})", "make_lm",
                            baseline_env))
        with StubProcess(RESPONDER, path=[str(BENCHMARKS)]) as server:
            for repeat in range(args.repeats):
                shift = repeat % len(clients)
                for name, client, env in clients[shift:] + clients[:shift]:
                    for threads in args.threads:
                        spec = {"url": server.base_url, "client": client, "threads": threads, "seeds": str(seeds),
                                "method": str(method), "work": str(work)}
                        done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                                               json.dumps(spec)], env=env, capture_output=True, text=True,
                                              cwd=BENCHMARKS.parent)
                        if done.returncode != 0:
                            raise RuntimeError(f"the {name} run failed: {done.stderr[-2000:]}")
                        found = json.loads(done.stdout.strip().splitlines()[-1])
                        runs.append(Run(name, threads, found["cpu_ms_per_call"], found["calls"]))
                        logger.info("repeat %d: %s, %d thread(s): %.3f ms CPU per call (%d calls)", repeat + 1,
                                    name, threads, found["cpu_ms_per_call"], found["calls"])
    return runs


class _nothing:  # noqa: N801 - a context manager standing in for exported() without a revision
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def report(args: argparse.Namespace, runs: list[Run], info: dict[str, Any], load_end: float | None,
           command: str) -> str:
    names = list(dict.fromkeys(run.client for run in runs))
    rows, medians = [], {}
    for name in names:
        for threads in args.threads:
            values = [run.cpu_ms_per_call for run in runs if run.client == name and run.threads == threads]
            medians[name, threads] = statistics.median(values)
            spread = f" ({min(values):.3f}-{max(values):.3f})" if len(values) > 1 else ""
            rows.append([name, threads, f"**{medians[name, threads]:.3f}**{spread}",
                         f"{medians[name, threads] / medians.get(('dspy.LM', threads), medians[name, threads]):.2f}"])
    lines = [
        f"Command: `{command}`" + (" (**smoke run: not a measurement**)" if args.smoke else ""),
        "",
        machine_line(info, load_at_end=load_end),
        "",
        f"Each run a child process: `evolve_dataset` of {args.seeds} synthetic seeds, one round, each evolution "
        "answered (two LM calls a seed, DSPy's ChatAdapter), against the stub server in its own process with no "
        "latency; client CPU = the child's process CPU time over its LM calls (after a warm-up run). "
        f"{args.repeats} repeat(s), clients interleaved, medians (range).",
        "",
        markdown_table(["client", "threads", "**client CPU ms / call**", "/ dspy.LM"], rows),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=400, help="seeds a run evolves (two calls each; default 400)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8], help="num_threads values (default 1 8)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-rev", help="git revision whose make_lm is measured beside this one")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--smoke", action="store_true", help="a tiny quick run (for CI; not a measurement)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.threads, args.repeats = 20, [2], 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    info = machine_info()
    command = "python benchmarks/client_cpu.py" + (" " + " ".join(sys.argv[1:]) if len(sys.argv) > 1 else "")
    with tempfile.TemporaryDirectory(prefix="client-cpu-") as work:
        runs = measure(args, Path(work))
    body = report(args, runs, info, current_load(), command)
    print(body)
    if not args.no_write:
        write_section(args.results, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
