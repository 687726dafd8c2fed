"""Helpers for the fault, crash, lock and secrets tests: a world whose answers depend only on what is asked,
and the ``autoevol`` command run in a subprocess against the shared stub server.

Every answer is a function of the request's text (never of call order), so a run interrupted
by an outage and continued against a healthy server can be compared with a run that never
saw a fault: the same requests get the same answers, whichever process asks them.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import optuna

from autoevol_dspy.search.tracking import RunTracker
from autoevol_dspy.testing import Call, generic_answer
from world import bucket, evolved, method, run_cli  # noqa: F401 - run_cli: the tests import it from here too

#: 30 seed instructions (the first example set): small enough for many runs per test.
SEEDS = Path(__file__).resolve().parent / "data" / "seeds30.jsonl"
_QUALITY = re.compile(r"QUALITY=q?(\d+)")
#: Each step's rewrite of a method of quality q (failure share q%): large gaps, so a stray failure flips nothing.
NEXT_QUALITY = {90: 50, 50: 10, 10: 5}
INITIAL_QUALITY = 90


def respond(call: Call) -> dict:
    """Evolution, response, analysis, rewrite and program answers from the request's content alone."""
    if call.kind == "evolution":
        instruction = call.inputs["instruction"]
        quality = int(_QUALITY.search(call.system).group(1))
        return {"evolved_instruction": instruction if bucket(instruction) < quality else evolved(instruction)}
    if call.kind == "response":
        return {"response": "Here is a complete worked answer with every step explained and a final result."}
    if call.kind == "analysis":
        failed = call.inputs["trajectory"].count("Detected problem")
        return {"feedback": f"{failed} cases failed: the rewriter copied the instruction instead of rewriting it."}
    if call.kind == "rewrite":
        current = call.inputs["current_instructions"]
        if not _QUALITY.search(current):  # a prompt, not a method: add a rule
            return {"improved_instructions": f"{current}\n- Answer with the label alone."}
        quality = quality_of(current)
        return {"improved_instructions": method(NEXT_QUALITY.get(quality, quality), "rewritten")}
    if "sentiment" in call.outputs:  # the prompt command's program: right once the rewrite added the rule
        return {"sentiment": "positive" if "label alone" in call.instructions else "I think it is positive."}
    return generic_answer(call)  # any other program's call: a plausible value per field


def write_prompt_files(directory: Path) -> list[str]:
    """A prompt and 30 review examples; the arguments of a small ``autoevol prompt`` run on them."""
    prompt = directory / "prompt.md"
    prompt.write_text("# Role\nYou label reviews.\n\n## Output format\nOne word.\n", encoding="utf-8")
    examples = directory / "reviews.jsonl"
    examples.write_text("".join(json.dumps({"review": f"Review #{i}: fine.", "sentiment": "positive"}) + "\n"
                                for i in range(30)), encoding="utf-8")
    return [str(prompt), "--examples", str(examples), "--input", "review", "--output", "sentiment", "--metric",
            "exact", "--steps", "1", "--candidates", "2", "--batch-size", "4", "--dev-size", "10", "--holdout", "6",
            "--threads", "1", "--no-progress"]


def quality_of(text: str) -> int:
    """The quality marker of a method text."""
    return int(_QUALITY.search(text).group(1))


def initial_method_file(directory: Path) -> Path:
    path = directory / "initial.txt"
    path.write_text(method(INITIAL_QUALITY) + "\n", encoding="utf-8")
    return path


def optimize_args(api_base: str, out: Path, initial: Path, *extra: str) -> list[str]:
    """A small, deterministic optimization (one thread, so requests come in one order)."""
    return ["optimize", str(SEEDS), "--out", str(out), "--lm", "openai/stub", "--api-base", api_base,
            "--initial-method", str(initial), "--steps", "2", "--candidates", "2", "--batch-size", "3",
            "--dev-size", "10", "--threads", "1", "--no-progress", *extra]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("autoevol: error:")]


def assert_one_line_error(done: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """Exit ``code`` (2: bad input, 3: an LM failed), exactly one ``autoevol: error:`` line holding every needle,
    and no traceback."""
    assert done.returncode == code, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = error_lines(done.stderr)
    assert len(lines) == 1, done.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def study_records(run_dir: Path) -> RunTracker:
    """The run's study (the only one in its study.db), read-only."""
    storage = f"sqlite:///{run_dir / 'study.db'}"
    names = optuna.get_all_study_names(storage)
    assert len(names) == 1, names
    return RunTracker(optuna.load_study(study_name=names[0], storage=storage))


def assert_no_outage_saved_as_a_result(run_dir: Path) -> None:
    """No finished trial carries an LM error, no saved plan lost its candidates, no outcome lacks its trials."""
    if not (run_dir / "study.db").is_file():
        return
    tracker = study_records(run_dir)
    for trial in tracker.trials():
        if trial.status in ("complete", "pruned"):
            assert trial.error is None, trial
        else:
            assert trial.status == "failed" and trial.failure_rate is None, trial
    for plan in tracker.plans():
        assert plan.candidates, f"step {plan.step} was saved without candidates: {plan.discarded}"
    for outcome in tracker.outcomes():
        plan = tracker.plan(outcome.step)
        assert plan is not None
        for candidate in plan.candidates:
            assert tracker.find_trial(step=outcome.step, candidate_key=candidate.key) is not None


def final_state(run_dir: Path) -> dict:
    """What a finished run decided: its method, its rates by step, its finished (step, candidate) trials."""
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    tracker = study_records(run_dir)
    finished = sorted((t.step, t.candidate_key, t.status, t.failures) for t in tracker.trials()
                      if t.status in ("complete", "pruned"))
    return {"method": (run_dir / "method.txt").read_text(encoding="utf-8"),
            "rates": run["summary"]["failure_rate_by_step"], "trials": finished}
