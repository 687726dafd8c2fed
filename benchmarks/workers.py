"""Workers sharing one study: wall time of one optimization with N = 1, 2, 4 worker processes on PostgreSQL.

A throwaway PostgreSQL server on loopback holds the study; the stub LM server runs in its own
process with latency L per call and a capacity far above N x threads, so the LM is the
bottleneck. The driver (this process, ``SharedStudy(evaluate=False)``: it plans and decides,
the workers evaluate) runs the same search for each N, with N ``run_worker`` processes of T
threads each, started and ready before the clock starts. Every candidate is evaluated on the
whole dev set (``FullEvaluation``), so each N does the same work and the speedup is the
queue's alone. A single process with the in-process pool (T threads, no queue, the same
database) is the reference for the queue's own cost. Speedup is wall(N=1) / wall(N); the goal is >= 0.8 N.
Repeats are interleaved; the table gives medians. Every run must select the same method with
the same rates; the table says whether they did.

The driver plans step 1 while the workers evaluate the baseline; each later step's trajectory
and proposals, and each decision, run while no trial does, whatever N is (Amdahl's serial part,
measured from the trials' times in the study: the table's serial column); ``--candidates`` sets
how much of a step is parallel.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("TQDM_DISABLE", "1")

from autoevol_dspy.testing import Call  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parent
SECTION = "Workers sharing one study (issue 14)"
GOAL = 0.8
_QUALITY = re.compile(r"QUALITY=q(\d+)")

logger = logging.getLogger("benchmarks.workers")


# The scripted LM the stub serves -------------------------------------------------------------------


def method_text(quality: int) -> str:
    return ("Rewrite the instruction into a harder one, step by step, and give only the rewritten instruction. "
            f"QUALITY=q{quality}")


_PROBLEM = re.compile(r"Problem (\d+):")


class BenchWorld:
    """A method of quality q fails (copies) the dev problems numbered below q, so it fails exactly min(q, dev size)
    of them; its 16 rewrites have the qualities q + 8 .. q + 1 and q - 1 .. q - 8. Every step's candidates are
    distinct and its best one is unique, so every run selects the same methods whatever order it plans them in."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counters: dict[int, int] = defaultdict(int)

    def reset(self) -> None:
        with self.lock:
            self.counters.clear()

    def __call__(self, call: Call) -> dict[str, Any]:
        if call.kind == "evolution":
            quality = int(_QUALITY.search(call.system).group(1))
            text = call.inputs["instruction"]
            if int(_PROBLEM.search(text).group(1)) < quality:
                return {"evolved_instruction": text}
            return {"evolved_instruction": f"{text} Then show every step and check the final answer."}
        if call.kind == "response":
            return {"response": "Here is a complete worked answer with every step explained and a final result."}
        if call.kind == "analysis":
            return {"feedback": "Several cases came back unchanged: the rewriter copied the instruction."}
        if call.kind == "rewrite":
            quality = int(_QUALITY.search(call.inputs["current_instructions"]).group(1))
            with self.lock:
                k = self.counters[quality]
                self.counters[quality] += 1
            offset = 8 - (k % 16) if k % 16 < 8 else 7 - (k % 16)  # +8 .. +1, then -1 .. -8: never the same text
            return {"improved_instructions": method_text(max(0, quality + offset))}
        raise ValueError(f"unexpected call {call.kind}")


# One run ------------------------------------------------------------------------------------------------


def _lms(api_base: str, *, optimizer: bool) -> dict[str, Any]:
    from autoevol_dspy.lm import make_lm

    lms = {"lm": make_lm("openai/stub", api_base=api_base, temperature=0.0, max_tokens=256, cache=False)}
    if optimizer:
        lms["optimizer"] = make_lm("openai/stub", api_base=api_base, temperature=0.6, max_tokens=256, cache=False)
    return lms


def _task(lm: Any) -> Any:
    from autoevol_dspy.tasks import EvolutionTask

    return EvolutionTask(lm=lm, response_lm=lm)


def _seeds(count: int) -> list[str]:
    return [f"Problem {i}: a shop sells {3 + i % 17} pens and {5 + (7 * i) % 29} rulers. How many items?"
            for i in range(count)]


def optimize(args: argparse.Namespace, api_base: str, *, storage: str | None, workers: Any,
             threads: int) -> dict[str, Any]:
    """One search; the driver's wall time, the method and the rates it selected."""
    from autoevol_dspy import AutoEvolInstruct, EvolInstruct
    from autoevol_dspy.search.strategies import FullEvaluation, NoImprovement

    lms = _lms(api_base, optimizer=True)
    optimizer = AutoEvolInstruct(
        task=_task(lms["lm"]), lm=lms["lm"], optimizer_lm=lms["optimizer"], num_candidates=args.candidates,
        batch_sampler=args.batch_size, dev_size=args.dev_size, holdout=0, max_steps=args.steps,
        stopper=NoImprovement(patience=args.steps + 1), evaluation=FullEvaluation(), num_threads=threads,
        storage=storage, study_name="bench", progress=False, workers=workers,
    )
    problems = _seeds(args.dev_size + args.batch_size + 8)
    window, cpu = [time.time()], time.process_time()
    started = time.perf_counter()
    optimizer.compile(EvolInstruct(method_text(args.dev_size)), trainset=problems[args.dev_size:],
                      valset=problems[:args.dev_size])
    wall = time.perf_counter() - started
    window.append(window[0] + wall)
    result = optimizer.result
    return {"wall": wall, "method": result.best_method, "rates": result.failure_rate_by_step,
            "trials": len(result.trials), "serial": serial_seconds(storage, window),
            "cpu": time.process_time() - cpu}


def serial_seconds(storage: str, window: list[float]) -> float:
    """Seconds of the run in which no candidate was being evaluated anywhere: the baseline (one trial, on one
    worker), each step's trajectory and proposals, each decision (Amdahl's serial part)."""
    import optuna

    spans = sorted((t.datetime_start.timestamp(), t.datetime_complete.timestamp())
                   for t in optuna.load_study(study_name="bench", storage=storage).trials
                   if t.datetime_start is not None and t.datetime_complete is not None
                   and t.user_attrs.get("kind") == "candidate")
    busy, reached = 0.0, window[0]
    for start, end in spans:
        start, end = max(start, reached), min(end, window[1])
        if end > start:
            busy, reached = busy + end - start, end
    return window[1] - window[0] - busy


def _start_workers(count: int, url: str, api_base: str, threads: int) -> list[subprocess.Popen]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--storage", url, "--api-base", api_base,
               "--threads", str(threads)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(count)]
    for process in processes:  # imported and waiting for the study before the clock starts
        line = process.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"a worker did not start: {line!r} {process.stderr.read()[-2000:]}")
    return processes


def run_shared(args: argparse.Namespace, stub: Any, url: str, count: int) -> dict[str, Any]:
    from autoevol_dspy import SharedStudy

    stub.reset()
    workers = _start_workers(count, url, stub.base_url, args.threads)
    try:
        shared = SharedStudy(evaluate=False, heartbeat_s=5, grace_s=30, poll_s=args.poll_ms / 1000)
        measured = optimize(args, stub.base_url, storage=url, workers=shared, threads=args.driver_threads)
    finally:
        summaries = []
        for process in workers:
            out, err = process.communicate(timeout=120)
            if process.returncode != 0:
                raise RuntimeError(f"a worker failed: {err[-2000:]}")
            summaries.append(json.loads(out.strip().splitlines()[-1]))
    measured["cpu"] += sum(s["cpu"] for s in summaries)
    measured["calls"] = stub.stats()["requests"]
    measured["trials_by_worker"] = sorted(s["trials"] for s in summaries)
    return measured


def run_single(args: argparse.Namespace, stub: Any, url: str) -> dict[str, Any]:
    stub.reset()
    measured = optimize(args, stub.base_url, storage=url, workers=None, threads=args.threads)
    measured["calls"] = stub.stats()["requests"]
    return measured


def worker_main(args: argparse.Namespace) -> None:
    """The ``--worker`` process: build the same task and LM as the driver, then evaluate until the run ends."""
    from autoevol_dspy import EvolInstruct, run_worker
    from autoevol_dspy.search.queue import rdb_storage

    lm = _lms(args.api_base, optimizer=False)["lm"]
    rdb_storage(args.storage)  # the database's tables made, its driver loaded: idle from here on
    cpu = time.process_time()
    print("READY", flush=True)
    summary = run_worker(EvolInstruct(), _task(lm), storage=args.storage, study_name="bench", lm=lm,
                         num_threads=args.threads, wait_s=300)
    print(json.dumps({"trials": summary.trials, "calls": summary.lm_calls, "seconds": summary.seconds,
                      "cpu": time.process_time() - cpu}))


# Report ---------------------------------------------------------------------------------------------------


def report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]], machine: str, command: str) -> str:
    from common import markdown_table, median

    single = median(r["wall"] for r in runs["single"])
    one = median(r["wall"] for r in runs["1"])
    reference = runs["single"][0]
    alike = all(r["method"] == reference["method"] and r["rates"] == reference["rates"] for r in runs["single"])
    def med(key: str, n: int | str) -> float:
        return median(r[key] for r in runs[str(n)])

    serial_one = med("serial", 1)
    rows = [["one process, in-process pool (no queue)", "-", f"{single:.1f}", "", "", f"{med('serial', 'single'):.1f}",
             "", f"{med('cpu', 'single'):.0f}", med("calls", "single"), "yes (reference)" if alike else "NO"]]
    bounds = {}
    for n in args.workers:
        wall, serial = med("wall", n), med("serial", n)
        speedup = one / wall
        bounds[n] = one / (serial + (one - serial_one) / n) / n  # the parallel part scaling perfectly
        same = all(r["method"] == reference["method"] and r["rates"] == reference["rates"] for r in runs[str(n)])
        rows.append([f"{n} worker process(es)", n, f"{wall:.1f}", f"{speedup:.2f}", f"{speedup / n:.2f}",
                     f"{serial:.1f}", f"{bounds[n]:.2f}", f"{med('cpu', n):.0f}", med("calls", n),
                     "yes" if same else "NO"])
    table = markdown_table(["run", "N", "wall s (median)", "speedup vs N=1", "speedup / N", "serial s",
                            "bound / N", "client CPU s", "LM requests", "same method and rates"], rows)
    worst_n = min(args.workers, key=lambda n: one / med("wall", n) / n)
    worst = one / med("wall", worst_n) / worst_n
    verdict = "met" if worst >= GOAL else "missed"
    return "\n\n".join([
        f"Command: `{command}`",
        machine,
        (f"Setup: {'SQLite' if args.smoke else 'PostgreSQL on loopback'} holds the study; the stub LM server in its own process, latency "
         f"{args.latency_ms:g} ms per call, capacity {args.capacity} (N x threads is at most "
         f"{max(args.workers) * args.threads}); each worker {args.threads} threads, idle processes look at the queue "
         f"every {args.poll_ms:g} ms; dev set {args.dev_size}, "
         f"{args.candidates} candidates a step, {args.steps} steps, mini-batch {args.batch_size}, every candidate "
         f"on the whole dev set; the driver only plans and decides ({args.driver_threads} threads for each step's "
         f"trajectory and proposals; the one-process reference runs everything on {args.threads}). "
         f"{args.repeats} interleaved repeats, medians."),
        table,
        ("Serial s: seconds of the run in which no candidate was being evaluated anywhere (from the trials' start "
         "and end times in the study): the workers picking up the baseline, the baseline (one trial, on one "
         "worker; the driver plans step 1 meanwhile), each later step's trajectory and proposals, each decision. "
         "Bound / N: the speedup / N if everything else scaled perfectly, wall(N=1) / (serial(N) + (wall(N=1) - "
         "serial(N=1)) / N) / N. Client CPU s: the CPU time of the driver and of the workers (from the moment "
         "they are ready), not counting the stub server and PostgreSQL."),
        (f"Goal: speedup >= {GOAL} N at every N: **{verdict}** (worst speedup / N = {worst:.2f} at N = {worst_n}, "
         f"bound there {bounds[worst_n]:.2f}). The gap between the bound and the speedup is the parallel part "
         "not scaling: each step's last trials leave slots idle, and every process shares this machine's cores "
         "(see the load above) with the others and the stub server."),
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=4, help="LM calls in flight per worker (default 4)")
    parser.add_argument("--driver-threads", type=int, default=16, help="LM calls in flight in the driver, which "
                        "only runs each step's trajectory and proposals (default 16)")
    parser.add_argument("--latency-ms", type=float, default=300.0)
    parser.add_argument("--capacity", type=int, default=64)
    parser.add_argument("--poll-ms", type=float, default=100.0, help="how often idle processes look at the queue")
    parser.add_argument("--dev-size", type=int, default=24)
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=BENCHMARKS / "RESULTS.md")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--smoke", action="store_true", help="a tiny quick run on SQLite (not a measurement)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    parser.add_argument("--api-base", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.workers, args.latency_ms, args.dev_size, args.candidates, args.steps, args.repeats = [1, 2], 5.0, 6, 2, 1, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        logging.basicConfig(level=logging.DEBUG if os.environ.get("AUTOEVOL_BENCH_DEBUG") else logging.WARNING,
                            format="%(asctime)s.%(msecs)03d %(name)s: %(message)s", datefmt="%H:%M:%S")
        for noisy in ("LiteLLM", "httpx", "optuna", "urllib3", "httpcore", "sqlalchemy", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        worker_main(args)
        return
    sys.path.insert(0, str(BENCHMARKS))
    from common import machine_info, machine_line, setup_logging, write_section

    from autoevol_dspy.testing import StubProcess

    setup_logging(False)
    info = machine_info()
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="autoevol-workers-") as scratch, \
            StubProcess("workers:BenchWorld", latency_s=args.latency_ms / 1000, capacity=args.capacity,
                        path=[str(BENCHMARKS)]) as stub, _database(args, Path(scratch)) as database:
        for repeat in range(args.repeats):
            runs["single"].append(run_single(args, stub, database(f"r{repeat}single")))
            logger.warning("repeat %d single process: %.1fs", repeat, runs["single"][-1]["wall"])
            for n in args.workers:
                runs[str(n)].append(run_shared(args, stub, database(f"r{repeat}n{n}"), n))
                logger.warning("repeat %d, %d worker(s): %.1fs %s", repeat, n, runs[str(n)][-1]["wall"],
                               runs[str(n)][-1]["trials_by_worker"])
    command = "python benchmarks/workers.py" + (" --smoke" if args.smoke else "")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    body = report(args, runs, machine_line(info, load_at_end=load), command)
    if args.smoke:
        body = "Smoke run (tiny sizes, SQLite): not a measurement.\n\n" + body
    print(body)
    if not args.no_write:
        write_section(args.results, SECTION, body)


class _database:
    """A fresh database per run: PostgreSQL databases on one loopback server, or SQLite files for --smoke."""

    def __init__(self, args: argparse.Namespace, scratch: Path) -> None:
        self.smoke = args.smoke
        self.scratch = scratch
        self.server = None

    def __enter__(self):
        if self.smoke:
            return lambda name: f"sqlite:///{self.scratch / name}.db"
        from autoevol_dspy.testing.postgres import LocalPostgres, postgres_unavailable

        reason = postgres_unavailable()
        if reason is not None:
            raise SystemExit(f"PostgreSQL is needed: {reason}")
        self.server = LocalPostgres().start()
        return self.server.database

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()


if __name__ == "__main__":
    main()
