"""Worst time of every pattern the package compiles on hostile text, today's code beside another revision.

Each pattern (``autoevol_dspy.testing.adversarial.package_patterns``) searches every
adversarial text (100 KB of repeated separators, numbers with units, nested brackets, the
looping reply that hung a run) and the fixed-seed fuzz texts; the table gives its worst
time and the input that caused it. A measurement that runs past ``--limit`` seconds is cut
by a timer and shown as "> limit". ``--baseline-rev REV`` measures the package at REV in a
child process in the same run (its checks read at most what its own code reads).

    python benchmarks/patterns.py --baseline-rev b1fd199
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

_ADVERSARIAL = HERE.parent / "autoevol_dspy" / "testing" / "adversarial.py"


class _Overrun(Exception):
    pass


def _load_adversarial():
    """This tree's adversarial texts, even when ``autoevol_dspy`` is imported from another revision."""
    spec = importlib.util.spec_from_file_location("_adversarial", _ADVERSARIAL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measure(*, limit: float, size: int, fuzz: int) -> dict[str, dict]:
    """Worst seconds of each pattern of the importable package over the hostile texts (cut at ``limit``)."""
    adversarial = _load_adversarial()
    texts = dict(adversarial.adversarial_texts(size))
    texts.update(adversarial.fuzz_texts(count=fuzz))

    def on_alarm(signum, frame):
        raise _Overrun

    signal.signal(signal.SIGALRM, on_alarm)
    results: dict[str, dict] = {}
    for name, pattern in sorted(adversarial.package_patterns().items()):
        worst, worst_input = 0.0, ""
        for label, text in texts.items():
            start = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                for _ in pattern.finditer(text):
                    pass
                pattern.fullmatch(text)
                elapsed = time.perf_counter() - start
            except _Overrun:
                elapsed = float("inf")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if elapsed > worst:
                worst, worst_input = elapsed, label
            if elapsed == float("inf"):
                break
        results[name] = {"worst_s": worst, "input": worst_input, "engine": type(pattern).__module__}
    return results


def _format(seconds: float | None, limit: float) -> str:
    if seconds is None:
        return "-"
    return f"> {limit:g} s" if seconds == float("inf") else f"{seconds * 1000:.1f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-rev", help="also measure the package at this git revision, side by side")
    parser.add_argument("--limit", type=float, default=5.0, help="seconds after which one measurement is cut")
    parser.add_argument("--size", type=int, default=100_000, help="characters of each adversarial text")
    parser.add_argument("--fuzz", type=int, default=200, help="fixed-seed fuzz texts")
    parser.add_argument("--smoke", action="store_true", help="a tiny quick form (not a measurement)")
    parser.add_argument("--no-write", action="store_true", help="print without touching RESULTS.md")
    parser.add_argument("--results", type=Path, default=None, help="the results file (default benchmarks/RESULTS.md)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.fuzz, args.limit = 2_000, 5, 2.0
    if args.child:
        print(json.dumps(measure(limit=args.limit, size=args.size, fuzz=args.fuzz)))
        return 0

    from common import DEFAULT_RESULTS, machine_info, machine_line, markdown_table, write_section

    info = machine_info()
    child = [sys.executable, __file__, "--child", "--limit", str(args.limit), "--size", str(args.size),
             "--fuzz", str(args.fuzz)]
    now = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
    before: dict[str, dict] = {}
    if args.baseline_rev:
        from revisions import exported, short_hash

        with exported(args.baseline_rev) as env:
            before = json.loads(subprocess.run(child, check=True, capture_output=True, text=True,
                                               env=env).stdout)
    rows = []
    for name in sorted(set(now) | set(before)):
        old, new = before.get(name), now.get(name)
        rows.append([name, _format(old and old["worst_s"], args.limit), old["input"] if old else "-",
                     _format(new and new["worst_s"], args.limit), new["input"] if new else "-",
                     new["engine"] if new else "-"])
    head = ([f"worst at {args.baseline_rev}", "its input"] if args.baseline_rev else ["-", "-"])
    table = markdown_table(["pattern", *head, "worst now", "its input", "engine"], rows)
    command = "python benchmarks/patterns.py" + (f" --baseline-rev {args.baseline_rev}" if args.baseline_rev else "")
    smoke = "Smoke run: a tiny form that keeps the script working, not a measurement.  \n" if args.smoke else ""
    body = (f"{smoke}Command: `{command}`  \n{machine_line(info)}  \n"
            f"Each pattern searched {args.size:,}-character hostile texts and {args.fuzz} fuzz texts "
            f"(seed 23); a measurement is cut at {args.limit:g} s. Names absent from one side did not exist "
            f"there (patterns moved or were written as code).\n\n{table}\n")
    print(body)
    if not args.no_write:
        write_section(args.results or DEFAULT_RESULTS, "Patterns on hostile text (issue 23)", body)
    slow = [row[0] for row in rows if now.get(row[0]) and now[row[0]]["worst_s"] > 0.5]
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
