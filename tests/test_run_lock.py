"""One process per run directory: a second ``optimize`` or ``prompt`` is refused in one line naming the first's pid.

Two ``optimize`` processes started together on one directory: one runs, the other is
refused, and the study holds exactly one trial per (step, candidate).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

from autoevol_dspy.runlock import PID_NAME, RunDirLock
from autoevol_dspy.testing import StubServer
from faulty_world import (
    assert_one_line_error,
    error_lines,
    initial_method_file,
    optimize_args,
    quality_of,
    respond,
    run_cli,
    study_records,
)


def test_a_held_run_directory_refuses_optimize_and_prompt(tmp_path):
    out = tmp_path / "run"
    prompt = tmp_path / "prompt.md"
    prompt.write_text("# Role\nYou label reviews.\n", encoding="utf-8")
    examples = tmp_path / "reviews.jsonl"
    examples.write_text("".join(json.dumps({"review": f"r{i}", "sentiment": "positive"}) + "\n" for i in range(30)),
                        encoding="utf-8")
    with RunDirLock(out):
        optimize = run_cli(*optimize_args("http://127.0.0.1:9/v1", out, initial_method_file(tmp_path)))
        prompt_run = run_cli("prompt", str(prompt), "--examples", str(examples), "--out", str(out), "--input",
                             "review", "--output", "sentiment", "--metric", "exact", "--lm", "openai/stub",
                             "--api-base", "http://127.0.0.1:9/v1")
    for done in (optimize, prompt_run):
        assert_one_line_error(done, "in use by another autoevol process", f"pid {os.getpid()}")
    assert not (out / "study.db").exists()
    again = RunDirLock(out).acquire()  # released with its holder
    again.release()


def test_two_optimize_processes_on_one_directory(tmp_path):
    out = tmp_path / "run"
    base = {key: value for key, value in os.environ.items() if key not in ("OPENAI_API_KEY", "AUTOEVOL_KILL_AT")}
    env = {**base, "DSPY_CACHEDIR": str(tmp_path / "cache")}
    with StubServer(respond, latency_s=0.02) as stub:
        args = [sys.executable, "-m", "autoevol_dspy.cli",
                *optimize_args(stub.base_url, out, initial_method_file(tmp_path), "--threads", "2")]
        processes = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                     for _ in range(2)]
        results = [(process.pid, *process.communicate(timeout=300), process.returncode) for process in processes]
    codes = sorted(code for _, _, _, code in results)
    assert codes == [0, 2], [(code, err[-2000:]) for _, _, err, code in results]
    (winner, *_), (_, _, refused_err, _) = sorted(results, key=lambda r: r[3])
    lines = error_lines(refused_err)
    assert len(lines) == 1 and f"pid {winner}" in lines[0] and "Traceback" not in refused_err, refused_err

    trials = study_records(out).trials()
    per_candidate = Counter((trial.step, trial.candidate_key) for trial in trials)
    assert per_candidate and set(per_candidate.values()) == {1}, per_candidate  # exactly one per (step, candidate)
    assert all(trial.status in ("complete", "pruned") for trial in trials)
    assert quality_of((out / "method.txt").read_text(encoding="utf-8")) == 10


def test_a_second_optimize_started_while_the_first_runs_is_refused(tmp_path):
    out = tmp_path / "run"
    base = {key: value for key, value in os.environ.items() if key not in ("OPENAI_API_KEY", "AUTOEVOL_KILL_AT")}
    env = {**base, "DSPY_CACHEDIR": str(tmp_path / "cache")}
    with StubServer(respond, latency_s=0.05) as stub:
        args = optimize_args(stub.base_url, out, initial_method_file(tmp_path))
        first = subprocess.Popen([sys.executable, "-m", "autoevol_dspy.cli", *args], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 60
        while not (out / PID_NAME).is_file() or not (out / PID_NAME).read_text().strip():
            assert time.monotonic() < deadline and first.poll() is None, "the first process never took the lock"
            time.sleep(0.05)
        second = run_cli(*args, env={"DSPY_CACHEDIR": str(tmp_path / "cache")})
        first.communicate(timeout=300)
    assert_one_line_error(second, f"pid {first.pid}")
    assert first.returncode == 0
