"""A run killed with SIGKILL mid-step and resumed ends like an uninterrupted run, with no trial lost or duplicated."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from autoevol_dspy import AutoEvolInstruct, EvolInstruct, RunConflictError
from world import World, method, seeds

SCRIPT = Path(__file__).parent / "resume_script.py"


def run(run_dir: Path, out: Path, kill_after: int = 0) -> subprocess.CompletedProcess:
    args = [sys.executable, str(SCRIPT), str(run_dir), str(out)] + ([str(kill_after)] if kill_after else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path):
    done = run(tmp_path / "straight", tmp_path / "straight.json")
    assert done.returncode == 0, done.stderr
    straight = json.loads((tmp_path / "straight.json").read_text())

    # 20 dev + 4 trajectory evolutions come before the first candidate: kill inside step 1's candidates.
    killed = run(tmp_path / "resumed", tmp_path / "killed.json", kill_after=45)
    assert killed.returncode == -signal.SIGKILL
    resumed = run(tmp_path / "resumed", tmp_path / "resumed.json")
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads((tmp_path / "resumed.json").read_text())

    assert result["method"] == straight["method"] == method(10)
    assert result["rates"] == straight["rates"]
    finished = [(step, key) for step, key, status in result["trials"] if status != "failed"]
    assert len(finished) == len(set(finished)), "a trial was duplicated"
    assert set(finished) == {(step, key) for step, key, status in straight["trials"]}, "a trial was lost"
    # The resumed process did not redo the baseline or the finished candidate.
    assert result["evolution_calls_this_process"] < straight["evolution_calls_this_process"]


def test_rerunning_a_finished_run_recomputes_nothing(tmp_path):
    assert run(tmp_path / "run", tmp_path / "first.json").returncode == 0
    assert run(tmp_path / "run", tmp_path / "second.json").returncode == 0
    second = json.loads((tmp_path / "second.json").read_text())
    first = json.loads((tmp_path / "first.json").read_text())
    assert second["evolution_calls_this_process"] == 0
    assert second["trials"] == first["trials"]


def test_a_study_made_with_other_settings_is_refused(tmp_path):
    world = World({60: [method(30)]})
    data = seeds(30)
    common = dict(lm=world.lm, optimizer_lm=world.lm, batch_sampler=4, dev_size=20,
                  max_steps=1, num_threads=1, progress=False, run_dir=tmp_path)
    AutoEvolInstruct(num_candidates=1, **common).compile(EvolInstruct(method(60)), trainset=data)
    with pytest.raises(RunConflictError, match="num_candidates"):
        AutoEvolInstruct(num_candidates=2, **common).compile(EvolInstruct(method(60)), trainset=data)


@pytest.mark.parametrize("shared", [False, True])
def test_reopening_fails_exactly_the_trials_a_dead_process_left_and_keeps_the_queue(tmp_path, shared):
    import optuna
    from optuna.trial import TrialState

    from autoevol_dspy.search.records import TrialSpec
    from autoevol_dspy.search.tracking import RunTracker

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    settings = {"predictors": ["evolve"]}

    def reopen() -> RunTracker:
        return RunTracker.open(storage=storage, study_name="run", settings=settings, fingerprints={},
                               shared=shared)

    tracker = reopen()
    tracker.start(step=1, kind="candidate", candidate_key="running", instructions={"evolve": "m"})  # trial 0
    spec = TrialSpec(step=1, kind="candidate", candidate_key="queued", instructions={"evolve": "m"},
                     predictor="evolve", samples=[0], label="queued")
    tracker.enqueue(spec)  # trial 1: queued work
    tracker.study.enqueue_trial({}, user_attrs={"note": "a dead process's own"})  # trial 2: not queued work
    reopen()
    states = [t.state for t in optuna.load_study(study_name="run", storage=storage).trials]
    queued = TrialState.WAITING if shared else TrialState.FAIL  # a shared study's queue belongs to its workers
    assert states == [TrialState.FAIL, queued, TrialState.FAIL]
