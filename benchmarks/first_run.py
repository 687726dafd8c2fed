"""The README's first command as a newcomer meets it: wall time, dev and held-out figures, the instruction it adopts.

Runs the job of the README's first shell block (the part after ``pip install ... &&``) in a
scratch folder holding a copy of ``examples/``, with a cold DSPy cache, ``--runs`` times, and
reads what it prints: the dev and held-out failure rates, the held-out verdict, the instruction
that won and the source that drafted it. Goal (issue 18): on the embedded model, at most 10
minutes on 2 cores, ending with a gain the held-out check confirms.

    python benchmarks/first_run.py --runs 3
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))

from common import DEFAULT_RESULTS, REPO_ROOT, current_load, machine_info, machine_line, markdown_table, publish  # noqa: E402

SECTION = "The README's first command (issue 18)"
_SHELL = re.compile(r"```bash\n(.*?)```", re.DOTALL)
_DEV = re.compile(r"^dev failure rate:\s+(\S+) -> (\S+)", re.MULTILINE)
_HELD_OUT = re.compile(r"^held-out failure rate (.+?) on (\d+) cases: (\d+) better, (\d+) worse, p = (\S+); (.+)$",
                       re.MULTILINE)
_BEST = re.compile(r"^best instructions: (.+)$", re.MULTILINE)
_SOURCES = re.compile(r"^proposals by source: (.+)$", re.MULTILINE)
_INSTRUCTION = re.compile(r"^the instruction now:\n(.*)\Z", re.MULTILINE | re.DOTALL)


def first_command(readme: Path = REPO_ROOT / "README.md") -> str:
    """The job of the README's first shell block: the command after its ``pip install ... &&``."""
    block = _SHELL.search(readme.read_text(encoding="utf-8"))
    if block is None:
        raise SystemExit("the README has no shell block")
    line = next(line for line in block.group(1).splitlines() if line.strip())
    return line.split("&&")[-1].strip()


@dataclass(frozen=True)
class FirstRun:
    """What one run of the command printed, and how long it took."""

    seconds: float
    dev: str
    held_out: str
    cases: int
    better: int
    worse: int
    p: str
    verdict: str
    best: str
    sources: str
    instruction: str


def read_summary(stdout: str, seconds: float) -> FirstRun:
    """The figures the command prints at its end; a missing line stops the benchmark with the output's tail."""
    dev, held_out = _DEV.search(stdout), list(_HELD_OUT.finditer(stdout))
    best, sources, instruction = _BEST.search(stdout), _SOURCES.search(stdout), _INSTRUCTION.search(stdout)
    if not (dev and held_out and best and instruction):
        raise SystemExit(f"the command's summary is not in its output:\n{stdout[-3000:]}")
    rates, cases, better, worse, p, verdict = held_out[-1].groups()
    return FirstRun(seconds=seconds, dev=f"{dev.group(1)} -> {dev.group(2)}", held_out=rates, cases=int(cases),
                    better=int(better), worse=int(worse), p=p, verdict=verdict, best=best.group(1),
                    sources=sources.group(1) if sources else "", instruction=instruction.group(1).strip())


def run_once(command: str) -> FirstRun:
    """The command in a fresh scratch folder (a copy of ``examples/``, a cold DSPy cache), timed start to exit."""
    with tempfile.TemporaryDirectory(prefix="first-run-") as scratch:
        shutil.copytree(REPO_ROOT / "examples", Path(scratch) / "examples")
        env = {**os.environ, "DSPY_CACHEDIR": str(Path(scratch) / "dspy-cache"), "PYTHONUNBUFFERED": "1"}
        started = time.perf_counter()
        done = subprocess.run(shlex.split(command), cwd=scratch, env=env, capture_output=True, text=True,
                              timeout=3600)
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return read_summary(done.stdout, seconds)


def report(command: str, runs: list[FirstRun], info: dict, load_end: float | None, recorded: str) -> str:
    minutes = [run.seconds / 60 for run in runs]
    confirmed = sum(run.verdict.startswith("the gain holds") for run in runs)
    rows = [[i + 1, f"{run.seconds / 60:.1f}", run.dev, f"{run.held_out} ({run.cases} cases)",
             f"{run.better}+/{run.worse}- p={run.p}", run.verdict, run.best] for i, run in enumerate(runs)]
    instructions = "\n".join(f"- run {i + 1}: {run.instruction!r}" for i, run in enumerate(runs))
    return "\n".join([
        f"Command: `{recorded}`",
        "",
        machine_line(info, load_at_end=load_end),
        "",
        f"The README's first command, `{command}`, run {len(runs)} time(s), each in a fresh folder with a cold DSPy "
        "cache, on the embedded SmolLM2-135M model (the LM that answers and the optimizer LM). Failure rates are "
        "the program's (lower is better); the held-out cases are never seen by the search. Goal: at most 10 "
        f"minutes on 2 cores, ending with a gain the held-out check confirms. Wall time median "
        f"**{statistics.median(minutes):.1f} min** ({min(minutes):.1f}-{max(minutes):.1f}); the gain confirmed "
        f"in **{confirmed} of {len(runs)}** run(s).",
        "",
        markdown_table(["run", "minutes", "dev failure rate", "held-out failure rate [95% CI]",
                        "held-out check", "verdict", "best instructions"], rows),
        "",
        "Adopted instructions:",
        "",
        instructions,
        "",
        "Proposals by source (last run): " + (runs[-1].sources or "not printed"),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of the command (default 3)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    info, command = machine_info(), first_command()
    runs = []
    for i in range(args.runs):
        runs.append(run_once(command))
        print(f"run {i + 1}: {runs[-1].seconds / 60:.1f} min, held-out {runs[-1].held_out}: {runs[-1].verdict}",
              file=sys.stderr)
    recorded = " ".join(["python benchmarks/first_run.py", *(argv if argv is not None else sys.argv[1:])])
    publish(report(command, runs, info, current_load(), recorded), section=SECTION, results=args.results,
            write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
