"""Training-data hygiene throughput: rows/s and peak memory of ``clean_file`` beside a plain exact-match dedup.

Instruction files of N rows (10,000 and 100,000) are cleaned against a 1,000-item benchmark
file: ``--dedup`` alone, ``--decontaminate`` alone, both, and, in the same run, a plain
exact-match baseline (a set of the raw instruction strings, same reader, same writer). Each run
is a child process (no LM is loaded), so its peak RSS (``ru_maxrss``) is its own; "growth" is
the peak over the RSS after the imports.

The data: the benchmark is the first 1,000 GSM8K train questions (``--gsm8k``; openai/
grade-school-math, MIT, read from ``../shared/data``, never copied here); the instruction rows are
word-bigram chains over the other questions (distinct rows of GSM8K's lengths and words, each
with a shorter chain as its ``output``), with 5% exact copies, 2% case/spacing variants, 2%
variants with a few words appended and 1% benchmark items wrapped in other text, each after
the row it repeats. The table also gives the share of each planted kind that was removed.

    nice -n 15 python benchmarks/hygiene_throughput.py
    python benchmarks/hygiene_throughput.py --smoke
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
sys.path.insert(0, str(BENCHMARKS))

logger = logging.getLogger("hygiene_throughput")

SECTION = "Training-data hygiene throughput (issue 21)"
METHODS = ("exact-match baseline", "dedup", "decontaminate", "dedup + decontaminate")
SUFFIXES = ["Thanks!", "Be concise.", "Please answer briefly.", "Explain your reasoning.", "Show your work."]
WRAPS = [("My teacher gave us this one: ", " Can you walk me through it?"), ("Question from a forum. ", ""),
         ("", " I have to hand this in tomorrow, please help.")]


# The child: one clean --------------------------------------------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One clean of ``spec['data']`` by ``spec['method']``: wall time, rows, counts and memory of this process."""
    import resource

    from autoevol_dspy.data import HygieneOptions, clean_file
    from autoevol_dspy.data.io import iter_records
    from autoevol_dspy.data.sinks import RowSink

    import datasketch  # noqa: F401 - its import (scipy) is a one-off cost, not throughput

    source, out, method = Path(spec["data"]), Path(spec["out"]), spec["method"]
    rss_before = _rss_mib()
    started = time.perf_counter()
    if method == "exact-match baseline":
        seen: set[str] = set()
        rows_in = rows_out = 0
        with RowSink(out) as sink:
            for row in iter_records(source):
                rows_in += 1
                if row["instruction"] not in seen:
                    seen.add(row["instruction"])
                    sink.write(row)
                    rows_out += 1
        counts = {"rows_in": rows_in, "rows_out": rows_out, "exact_duplicates": rows_in - rows_out,
                  "near_duplicates": 0, "contaminated": {}}
    else:
        options = HygieneOptions(dedup="dedup" in method,
                                 decontaminate=(spec["bench"],) if "decontaminate" in method else ())
        counts = clean_file(source, out=out, options=options).counts.model_dump()
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kept = Counter(row["kind"] for row in iter_records(out))  # after the measurement
    return {"wall_s": wall, "counts": counts, "kept_by_kind": dict(kept), "rss_before_mib": rss_before,
            "peak_rss_mib": peak}


# The parent: data, runs, table -----------------------------------------------------------------


def _questions(args: argparse.Namespace) -> list[str]:
    """GSM8K train questions, or in a smoke run without them the package's examples."""
    path = Path(args.gsm8k)
    if path.is_file():
        return list(dict.fromkeys(json.loads(line)["question"] for line in path.read_text().splitlines() if line))
    if not args.smoke:
        raise SystemExit(f"GSM8K train not found at {path}: pass --gsm8k PATH (openai/grade-school-math, MIT)")
    texts = [json.loads(line)["instruction"] for line in (REPO / "examples" / "seeds.jsonl").read_text().splitlines()]
    texts += [json.loads(line)["question"] for line in (REPO / "examples" / "benchmark.jsonl").read_text().splitlines()]
    return texts


class Chain:
    """A word-bigram chain over a corpus: text of real words and lengths, rarely a copy of a line."""

    def __init__(self, texts: list[str], rng: random.Random) -> None:
        self.rng = rng
        self.next: dict[str, list[str]] = defaultdict(list)
        self.starts = [text.split()[0] for text in texts if text.split()]
        self.lengths = [len(text.split()) for text in texts]
        for text in texts:
            words = text.split()
            for a, b in zip(words, words[1:]):
                self.next[a].append(b)

    def text(self, length: int | None = None) -> str:
        length = length or self.rng.choice(self.lengths)
        words = [self.rng.choice(self.starts)]
        while len(words) < length:
            options = self.next.get(words[-1])
            words.append(self.rng.choice(options) if options else self.rng.choice(self.starts))
        return " ".join(words)


def write_bench(work: Path, questions: list[str], items: int) -> Path:
    path = work / "bench.jsonl"
    path.write_text("".join(json.dumps({"question_id": i, "question": q}) + "\n" for i, q in enumerate(questions[:items])))
    return path


def write_data(work: Path, questions: list[str], items: int, count: int, seed: int = 0) -> Path:
    """``count`` rows: chains over the questions the benchmark does not hold, and the planted rows."""
    rng = random.Random(seed)
    chain = Chain(questions[items:], rng)
    bench = questions[:items]
    path = work / f"data-{count}.jsonl"
    made: list[str] = []
    with path.open("w", encoding="utf-8") as handle:
        for index in range(count):
            draw = rng.random()
            if made and draw < 0.05:
                kind, text = "exact", rng.choice(made)
            elif made and draw < 0.07:
                kind, text = "case", "  " + rng.choice(made).upper().replace(" ", "  ").rstrip("?.")
            elif made and draw < 0.09:
                kind, text = "suffix", f"{rng.choice(made)} {rng.choice(SUFFIXES)}"
            elif draw < 0.10:
                before, after = rng.choice(WRAPS)
                kind, text = "leak", before + rng.choice(bench) + after
            else:
                kind, text = "clean", chain.text()
                made.append(text)
            row = {"id": f"r{index}", "kind": kind, "instruction": text, "output": chain.text(rng.randint(10, 40))}
            handle.write(json.dumps(row) + "\n")
    return path


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                          capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"the {spec['method']} run failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    questions = _questions(args)
    items = min(args.bench_items, len(questions) // 2)
    bench = write_bench(work, questions, items)
    runs = []
    for count in args.sizes:
        data = write_data(work, questions, items, count)
        planted = Counter(json.loads(line)["kind"] for line in data.read_text().splitlines())
        for repeat in range(args.repeats):
            shift = repeat % len(METHODS)
            for method in METHODS[shift:] + METHODS[:shift]:  # the order rotates: load drift hits all alike
                spec = {"data": str(data), "bench": str(bench), "method": method,
                        "out": str(work / f"out-{count}-{METHODS.index(method)}.jsonl")}
                found = run_child(spec)
                found.update(method=method, rows=count, items=items, planted=dict(planted))
                runs.append(found)
                logger.info("%d rows, %s: %.0f rows/s, peak RSS %.0f MiB", count, method, count / found["wall_s"],
                            found["peak_rss_mib"])
    return runs


def _removed_share(run: dict[str, Any], kind: str) -> str:
    planted = run["planted"].get(kind, 0)
    if not planted:
        return "-"
    return f"{1 - run['kept_by_kind'].get(kind, 0) / planted:.0%}"


def table(runs: list[dict[str, Any]]) -> str:
    from common import markdown_table, median

    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["rows"], run["method"])].append(run)
    rows = []
    for (count, method), group in groups.items():
        baseline = groups[(count, METHODS[0])]
        rate = median(count / run["wall_s"] for run in group)
        base_rate = median(count / run["wall_s"] for run in baseline)
        last = group[-1]
        clean_lost = 1 - last["kept_by_kind"].get("clean", 0) / last["planted"]["clean"]
        rows.append([count, method, f"**{rate:,.0f}**", f"{rate / base_rate:.2f}",
                     f"{median(run['wall_s'] for run in group):.1f}",
                     f"{median(run['peak_rss_mib'] for run in group):.0f}",
                     f"{median(run['peak_rss_mib'] - run['rss_before_mib'] for run in group):.0f}",
                     *(_removed_share(last, kind) for kind in ("exact", "case", "suffix", "leak")),
                     f"{clean_lost:.2%}"])
    return markdown_table(["rows", "method", "rows/s", "/ baseline", "wall s", "peak RSS MiB", "growth MiB",
                           "exact removed", "case removed", "suffix removed", "leaks removed", "clean lost"], rows)


def main() -> int:
    from common import DEFAULT_DATA_DIR, DEFAULT_RESULTS, current_load, machine_info, machine_line, write_section

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--gsm8k", default=str(DEFAULT_DATA_DIR / "gsm8k_train.jsonl"),
                        help="GSM8K train (openai/grade-school-math, MIT): the benchmark items and the word chains")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="rows per file")
    parser.add_argument("--bench-items", type=int, default=1000, help="benchmark items (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point; the table gives medians")
    parser.add_argument("--smoke", action="store_true", help="a tiny, quick run (not a measurement)")
    parser.add_argument("--results", default=str(DEFAULT_RESULTS), help="the RESULTS.md to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.smoke:
        args.sizes, args.bench_items, args.repeats = [300, 1200], 30, 1
    info = machine_info()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hygiene-bench-") as scratch:
        runs = measure(args, Path(scratch))
    shown = [arg for index, arg in enumerate(sys.argv[1:]) if arg != "--gsm8k" and sys.argv[index] != "--gsm8k"]
    command = "python benchmarks/hygiene_throughput.py " + " ".join(shown)  # the data path is this machine's
    body = "\n\n".join([
        ("Smoke run: not a measurement." if args.smoke else
         f"`{command.strip()}` (GSM8K train from `--gsm8k`, niceness {os.nice(0)}); {args.repeats} run(s) per "
         "point, medians; each run a child process, no LM loaded."),
        machine_line(info, load_at_end=current_load()),
        f"Benchmark file: {runs[0]['items']} items; planted: 5% exact copies, 2% case/spacing variants, 2% with a "
        "few words appended, 1% benchmark items wrapped in other text (shares removed, from the last run).",
        table(runs),
    ])
    print(body)
    if not args.no_write:
        write_section(Path(args.results), SECTION, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
