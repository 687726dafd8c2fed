"""Whole-dataset evolution against a server at its limit: requests/s vs C/L, peak memory vs seeds, CPU per call.

The shared stub server (``autoevol_dspy.testing.StubProcess`` answering with
``stub_behaviour.StubBehaviour``, its own process) serves C requests at once with latency L,
so no client can get more than C/L answers a second. ``evolve_dataset`` evolves a JSONL file
of N synthetic seeds (one round, each evolution answered: two calls a seed) through
``make_lm('openai/stub', api_base=..., cache=False)`` with ``num_threads`` = C. Each run is a
child process, so its peak RSS (``ru_maxrss``) is the evolution's own; requests/s counts the
answers the server gave over the child's wall time of ``evolve_dataset``.

With ``--baseline-rev REV`` the same runs are made, interleaved, with the package as it was
at REV (``benchmarks/revisions.py``): the baseline measured in the same run. A last point puts
a rate limit on the server (HTTP 429 beyond R requests/s, ``Retry-After`` the next free slot):
requests sent, 429s per answer and seeds left unfinished show whether the client slows down.

    python benchmarks/evolve_throughput.py --baseline-rev HEAD~1
    python benchmarks/evolve_throughput.py --smoke
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from common import DEFAULT_RESULTS, current_load, machine_info, machine_line, markdown_table, median, write_section  # noqa: E402
from revisions import exported, short_hash  # noqa: E402

logger = logging.getLogger("evolve_throughput")

SECTION = "Evolve throughput against a server (issue 13)"
RESPONDER = "stub_behaviour:StubBehaviour"
GOAL = 0.9


# The child: one evolve_dataset run ------------------------------------------------------------


def _rss_mib() -> float:
    """The resident set size of this process now, in MiB."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Evolve ``spec['seeds']`` against ``spec['url']``; wall, CPU, rows and memory of this process."""
    import resource

    import dspy

    from autoevol_dspy.data import evolve_dataset
    from autoevol_dspy.lm import make_lm

    logging.basicConfig(level=logging.WARNING)
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    lm = make_lm("openai/stub", api_base=spec["url"], cache=False)
    method = Path(spec["method"]).read_text(encoding="utf-8")
    rss_before = _rss_mib()
    cpu, started = time.process_time(), time.perf_counter()
    summary = evolve_dataset(spec["seeds"], method=method, out_path=spec["out"], evol_lm=lm, rounds=1,
                             num_threads=spec["threads"], progress=False, max_errors=None)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "rows": summary.rows, "errors": summary.errors,
            "client_calls": summary.usage.calls, "rss_before_mib": rss_before,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# The parent: servers, seeds, runs ------------------------------------------------------------


@dataclass
class Run:
    """One child run and what the server counted meanwhile."""

    code: str
    seeds: int
    limited: bool
    wall_s: float
    cpu_s: float
    rows: int
    errors: int
    answered: int
    requests: int
    rate_limited: int
    peak_in_service: int
    rss_before_mib: float
    peak_rss_mib: float

    @property
    def per_s(self) -> float:
        return self.answered / self.wall_s

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.cpu_s / max(1, self.answered)


def write_seeds(directory: Path, count: int) -> Path:
    """A JSONL file of ``count`` distinct synthetic instructions."""
    path = directory / f"seeds-{count}.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            text = (f"Problem {i}: a shop sells {3 + i % 17} pens, {2 * i % 23 + 1} pencils and {5 + 7 * i % 29} "
                    "rulers. How many items does it sell in total?")
            handle.write(json.dumps({"id": f"s{i}", "instruction": text}) + "\n")
    return path


def write_method(directory: Path) -> Path:
    """The default method, marked for the stub as one that always rewrites (every seed gets a response call)."""
    from stub_behaviour import with_level

    from autoevol_dspy import EvolInstruct

    path = directory / "method.txt"
    path.write_text(with_level(EvolInstruct().method, 0), encoding="utf-8")
    return path


def run_child(server: Any, env: dict[str, str] | None, *, code: str, seeds: Path, count: int, method: Path,
              threads: int, work: Path, limited: bool) -> Run:
    """One evolution in a child process (``env`` picks the code), against a freshly counted server."""
    out = work / f"out-{code}-{count}-{int(limited)}-{time.monotonic_ns()}.jsonl"
    spec = {"url": server.base_url, "seeds": str(seeds), "method": str(method), "out": str(out), "threads": threads}
    server.reset()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)], env=env,
                          capture_output=True, text=True, cwd=BENCHMARKS.parent)
    if done.returncode != 0:
        raise RuntimeError(f"the {code} run failed: {done.stderr[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    stats = server.stats()
    return Run(code=code, seeds=count, limited=limited, wall_s=found["wall_s"], cpu_s=found["cpu_s"],
               rows=found["rows"], errors=found["errors"], answered=stats["total"], requests=stats["requests"],
               rate_limited=stats["faults"].get("rate_limit", 0), peak_in_service=stats["peak_in_service"],
               rss_before_mib=found["rss_before_mib"], peak_rss_mib=found["peak_rss_mib"])


def measure(args: argparse.Namespace, work: Path) -> list[Run]:
    """Every point, ``repeats`` times, the codes interleaved within each repeat."""
    from autoevol_dspy.testing import StubProcess

    method = write_method(work)
    files = {count: write_seeds(work, count) for count in sorted(set(args.seeds + [args.limited_seeds]))}
    codes: dict[str, dict[str, str] | None] = {"this change": None}
    runs: list[Run] = []
    with _baseline(args.baseline_rev) as baseline_env:
        if baseline_env is not None:
            codes[f"baseline {short_hash(args.baseline_rev)}"] = baseline_env
        open_server = StubProcess(RESPONDER, latency_s=args.latency_ms / 1000, capacity=args.capacity,
                                  path=[str(BENCHMARKS)])
        limited_server = StubProcess(RESPONDER, latency_s=args.latency_ms / 1000, capacity=args.capacity,
                                     path=[str(BENCHMARKS)], rate_limit_per_s=args.rate_limit)
        with open_server as server, limited_server as limited:
            for repeat in range(args.repeats):
                for count in args.seeds:
                    for code, env in _rotated(codes, repeat):
                        runs.append(run_child(server, env, code=code, seeds=files[count], count=count,
                                              method=method, threads=args.threads, work=work, limited=False))
                        logger.info("repeat %d: %s", repeat + 1, _line(runs[-1], args))
                if args.rate_limit:
                    for code, env in _rotated(codes, repeat):
                        runs.append(run_child(limited, env, code=code, seeds=files[args.limited_seeds],
                                              count=args.limited_seeds, method=method, threads=args.threads,
                                              work=work, limited=True))
                        logger.info("repeat %d (rate-limited): %s", repeat + 1, _line(runs[-1], args))
    return runs


def _rotated(codes: dict[str, Any], repeat: int) -> list[tuple[str, Any]]:
    """The codes in an order that changes from repeat to repeat (load drift hits all alike)."""
    items = list(codes.items())
    shift = repeat % len(items)
    return items[shift:] + items[:shift]


class _baseline:  # noqa: N801 - used as a context manager, like contextlib's
    """``exported(rev)``, or nothing without a revision."""

    def __init__(self, rev: str | None) -> None:
        self.rev = rev
        self._context = exported(rev) if rev else None

    def __enter__(self) -> dict[str, str] | None:
        return self._context.__enter__() if self._context else None

    def __exit__(self, *exc: object) -> None:
        if self._context:
            self._context.__exit__(*exc)


def _line(run: Run, args: argparse.Namespace) -> str:
    return (f"{run.code}, {run.seeds} seeds: {run.answered} answers in {run.wall_s:.1f}s = {run.per_s:.0f}/s "
            f"({run.per_s / limit(args):.3f} of C/L), {run.requests} requests, {run.rate_limited} x 429, "
            f"peak {run.peak_in_service} in service, {run.cpu_ms_per_call:.2f} ms CPU/call, peak RSS "
            f"{run.peak_rss_mib:.0f} MiB, {run.errors} seeds unfinished")


def limit(args: argparse.Namespace) -> float:
    """C / L: the most answers a second the server can give."""
    return args.capacity / (args.latency_ms / 1000)


# Report ---------------------------------------------------------------------------------------


def _group(runs: list[Run]) -> dict[tuple[str, int, bool], list[Run]]:
    groups: dict[tuple[str, int, bool], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.code, run.seeds, run.limited), []).append(run)
    return groups


def throughput_table(runs: list[Run], args: argparse.Namespace) -> str:
    rows = []
    for (code, seeds, limited), group in _group(runs).items():
        if limited:
            continue
        ratios = [r.per_s / limit(args) for r in group]
        spread = f" ({min(ratios):.3f}-{max(ratios):.3f})" if len(group) > 1 else ""
        rows.append([code, seeds, f"{median(r.answered for r in group):.0f}", f"{median(r.wall_s for r in group):.1f}",
                     f"{median(r.per_s for r in group):.0f}", f"**{median(ratios):.3f}**{spread}",
                     f"{median(r.peak_in_service for r in group):.0f}",
                     f"{median(r.cpu_ms_per_call for r in group):.2f}",
                     f"{median(r.rss_before_mib for r in group):.0f}", f"{median(r.peak_rss_mib for r in group):.0f}",
                     f"{median(r.errors for r in group):.0f}"])
    return markdown_table(["code", "seeds", "answers", "wall s", "answers/s", "**/ (C/L)**", "peak in service",
                           "client CPU ms/call", "RSS before MiB", "peak RSS MiB", "seeds unfinished"], rows)


def rate_limit_table(runs: list[Run]) -> str:
    rows = []
    for (code, seeds, limited), group in _group(runs).items():
        if not limited:
            continue
        rows.append([code, seeds, f"{median(r.answered for r in group):.0f}", f"{median(r.requests for r in group):.0f}",
                     f"{median(r.rate_limited / max(1, r.answered) for r in group):.2f}",
                     f"{median(r.per_s for r in group):.0f}", f"{median(r.wall_s for r in group):.1f}",
                     f"{median(r.errors for r in group):.0f}"])
    return markdown_table(["code", "seeds", "answers", "requests sent", "429s per answer", "answers/s", "wall s",
                           "seeds unfinished"], rows)


def verdict(runs: list[Run], args: argparse.Namespace) -> str:
    """The goals, checked on this change's rows."""
    mine = [r for r in runs if r.code == "this change" and not r.limited]
    lines = []
    largest = max(args.seeds)
    ratio = median(r.per_s / limit(args) for r in mine if r.seeds == largest)
    lines.append(f"- Requests/s at {largest} seeds: {ratio:.3f} of C/L = {limit(args):.0f}/s "
                 f"(goal >= {GOAL}: {'met' if ratio >= GOAL else 'missed'}).")
    if len(args.seeds) > 1:
        small, large = min(args.seeds), max(args.seeds)
        peak = {n: median(r.peak_rss_mib for r in mine if r.seeds == n) for n in (small, large)}
        grew = peak[large] - peak[small]
        lines.append(f"- Peak RSS {peak[small]:.0f} MiB at {small} seeds, {peak[large]:.0f} MiB at {large} "
                     f"({grew:+.0f} MiB for {large - small} more seeds: "
                     f"{'flat' if abs(grew) <= 0.05 * peak[small] else 'not flat'}).")
    cpu = median(r.cpu_ms_per_call for r in mine)
    lines.append(f"- Client CPU {cpu:.2f} ms per call: {cpu * limit(args) / 1000:.2f} core(s) at C/L.")
    return "\n".join(lines)


def report(args: argparse.Namespace, runs: list[Run], info: dict[str, Any], load_end: float | None,
           command: str) -> str:
    parts = [
        f"Command: `{command}`" + (" (**smoke run: not a measurement**)" if args.smoke else ""),
        "",
        machine_line(info, load_at_end=load_end),
        "",
        f"Stub server in its own process: C = {args.capacity} requests served at once, L = {args.latency_ms:g} ms, "
        f"so at most C/L = {limit(args):.0f} answers/s. `evolve_dataset` on a JSONL file of N synthetic seeds, one "
        f"round, each evolution answered (two calls a seed, ~10% of answers fail the response check), "
        f"num_threads = {args.threads}, LM `make_lm('openai/stub', api_base=..., cache=False)`; each run a child "
        f"process (peak RSS = its `ru_maxrss`; RSS before = after imports, before `evolve_dataset`). "
        f"{args.repeats} repeat(s), codes interleaved, medians (range)."
        + (f" Baseline: the package at `{args.baseline_rev}` ({short_hash(args.baseline_rev)}), "
           "exported by `benchmarks/revisions.py` and run in the same session." if args.baseline_rev else ""),
        "",
        throughput_table(runs, args),
        "",
        verdict(runs, args),
    ]
    if args.rate_limit:
        parts += ["", f"Rate-limited server: the same stub answering at most {args.rate_limit:g} requests/s "
                      f"(429 with `Retry-After` beyond), {args.limited_seeds} seeds, num_threads = {args.threads}, "
                      "DSPy's default 3 retries:", "", rate_limit_table(runs)]
    return "\n".join(parts)


# Main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 5000], help="dataset sizes (default 1000 5000)")
    parser.add_argument("--capacity", type=int, default=256, help="C: requests the server serves at once")
    parser.add_argument("--latency-ms", type=float, default=500.0, help="L: latency of every answer")
    parser.add_argument("--threads", type=int, default=None, help="num_threads (default: C)")
    parser.add_argument("--rate-limit", type=float, default=100.0,
                        help="requests/s of the rate-limited point (0 skips it; default 100)")
    parser.add_argument("--limited-seeds", type=int, default=1000, help="seeds of the rate-limited point")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-rev", help="git revision whose package is measured beside this one")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--smoke", action="store_true", help="a tiny quick run (for CI; not a measurement)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seeds, args.capacity, args.latency_ms, args.repeats = [20, 40], 8, 20.0, 1
        args.rate_limit, args.limited_seeds = 50.0, 20
    args.threads = args.threads or args.capacity
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    info = machine_info()
    command = "python benchmarks/evolve_throughput.py" + (" " + " ".join(sys.argv[1:]) if len(sys.argv) > 1 else "")
    with tempfile.TemporaryDirectory(prefix="evolve-throughput-") as work:
        runs = measure(args, Path(work))
    body = report(args, runs, info, current_load(), command)
    print(body)
    if not args.no_write:
        write_section(args.results, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
