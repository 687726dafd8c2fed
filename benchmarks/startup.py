"""Start-up of the ``autoevol`` command: wall time of ``--version`` and ``optimize --help``, against a baseline.

Each run is a fresh ``python -m autoevol_dspy.cli ...`` process (what the ``autoevol`` script runs),
timed from start to exit. This checkout and the package at ``--baseline-rev`` (exported with
``benchmarks/revisions.py``) run interleaved within every repeat, so both see the same load;
the table gives medians (and ranges). Goal (issue 19): under 1 s for both commands.

    python benchmarks/startup.py --baseline-rev b1fd199
    python benchmarks/startup.py --smoke
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from common import DEFAULT_RESULTS, REPO_ROOT, current_load, machine_info, machine_line, markdown_table, publish  # noqa: E402
from revisions import exported, short_hash  # noqa: E402

SECTION = "Command start-up (issue 19)"
COMMANDS = {"autoevol --version": ["--version"], "autoevol optimize --help": ["optimize", "--help"]}


def time_command(arguments: list[str], env: dict[str, str]) -> float:
    """Seconds from starting ``autoevol ARGUMENTS`` to its exit; a failed command stops the benchmark."""
    started = time.perf_counter()
    # Not from the checkout: ``python -m`` puts the working directory first on the path, before PYTHONPATH.
    completed = subprocess.run([sys.executable, "-m", "autoevol_dspy.cli", *arguments], env=env,
                               cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - started
    if completed.returncode != 0 or not completed.stdout.strip():
        raise SystemExit(f"autoevol {' '.join(arguments)} failed: {completed.stderr[-2000:]}")
    return seconds


def measure(args: argparse.Namespace) -> dict[tuple[str, str], list[float]]:
    """Seconds per (code, command), every repeat running each command of each code once."""
    here = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    codes = {"this checkout": here}
    times: dict[tuple[str, str], list[float]] = {}
    with exported(args.baseline_rev) as baseline:
        codes[short_hash(args.baseline_rev)] = baseline
        for name, env in codes.items():  # a first run of each warms the file cache; it is not counted
            time_command(COMMANDS["autoevol --version"], env)
        for _ in range(args.repeats):
            for name, env in codes.items():
                for command, arguments in COMMANDS.items():
                    times.setdefault((name, command), []).append(time_command(arguments, env))
    return times


def report(args: argparse.Namespace, times: dict[tuple[str, str], list[float]], info: dict, load_end: float | None,
           command: str) -> str:
    names = list(dict.fromkeys(name for name, _ in times))
    baseline, current = names[1], names[0]
    rows = []
    for text in COMMANDS:
        cells = []
        for name in (baseline, current):
            values = times[name, text]
            spread = f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""
            cells.append(f"**{statistics.median(values):.2f}**{spread}")
        ratio = statistics.median(times[baseline, text]) / statistics.median(times[current, text])
        rows.append([f"`{text}`", *cells, f"{ratio:.1f}x"])
    return "\n".join([
        f"Command: `{command}`" + (" (**smoke run: not a measurement**)" if args.smoke else ""),
        "",
        machine_line(info, load_at_end=load_end),
        "",
        f"Wall seconds of one `python -m autoevol_dspy.cli ...` process, start to exit; {args.repeats} repeat(s), "
        "both codes and both commands interleaved in each, medians (range). Goal: under 1 s.",
        "",
        markdown_table(["command", f"{baseline} s", f"{current} s", "faster"], rows),
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", help="git revision measured beside this checkout (default b1fd199, the "
                        "last one before issue 19; HEAD for --smoke)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--smoke", action="store_true", help="one repeat (for CI; not a measurement)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeats = 1
    args.baseline_rev = args.baseline_rev or ("HEAD" if args.smoke else "b1fd199")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    command = " ".join(["python benchmarks/startup.py", *sys.argv[1:]])
    publish(report(args, measure(args), info, current_load(), command), section=SECTION, results=args.results,
            write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
