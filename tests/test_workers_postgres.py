"""One optimization, a driver and three `autoevol worker` processes on a real PostgreSQL server, against the stub LM.

The server is started here on loopback (Debian's postgresql package; under root it runs as
the ``postgres`` user). Where it cannot start, the tests skip with the reason, unless
``AUTOEVOL_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from autoevol_dspy.search.tracking import RunTracker
from autoevol_dspy.testing import StubServer
from autoevol_dspy.testing.postgres import LocalPostgres, postgres_unavailable
from faulty_world import final_state, quality_of, run_cli
from queue_world import QueueWorld, initial_method, optimize_args

STUDY = "autoevol"  # the driver's --out folder: its study is named after it (or "autoevol")
FAST = ["--heartbeat", "1", "--grace", "2"]


@pytest.fixture(scope="module")
def postgres():
    reason = postgres_unavailable()
    if reason is not None:
        if os.environ.get("AUTOEVOL_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here: {reason}")
        pytest.skip(reason)
    with LocalPostgres() as server:
        yield server


@pytest.fixture(scope="module")
def single_process(tmp_path_factory) -> dict:
    """The same optimization in one process on SQLite: what every shared run must select."""
    directory = tmp_path_factory.mktemp("single")
    with StubServer(QueueWorld()) as stub:
        done = run_cli(*optimize_args(stub.base_url, directory / "run", initial_method(directory)),
                       env={"DSPY_CACHEDIR": str(directory / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    state = final_state(directory / "run")
    assert quality_of(state["method"]) == 12  # two accepted steps: 90 -> 30 -> 12
    return state


def _start_workers(url: str, directory: Path, count: int = 3) -> list[subprocess.Popen]:
    env = {key: value for key, value in os.environ.items() if key != "OPENAI_API_KEY"}
    env["DSPY_CACHEDIR"] = str(directory / "worker-cache")
    command = [sys.executable, "-m", "autoevol_dspy.cli", "worker", "--storage", url, "--study", STUDY,
               "--threads", "2", "--no-progress", "--wait", "120"]
    return [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(count)]


def _driver(stub: StubServer, url: str, directory: Path, *extra: str) -> subprocess.Popen:
    args = optimize_args(stub.base_url, directory / STUDY, initial_method(directory), "--storage", url, "--workers",
                         *FAST, *extra)
    env = {key: value for key, value in os.environ.items() if key != "OPENAI_API_KEY"}
    env["DSPY_CACHEDIR"] = str(directory / "driver-cache")
    return subprocess.Popen([sys.executable, "-m", "autoevol_dspy.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def _trials_by_candidate(url: str) -> tuple[RunTracker, dict[tuple[int, str], list[optuna.trial.FrozenTrial]]]:
    study = optuna.load_study(study_name=STUDY, storage=url)
    grouped: dict[tuple[int, str], list] = defaultdict(list)
    for trial in study.trials:
        grouped[(trial.user_attrs["step"], trial.user_attrs["candidate_key"])].append(trial)
    return RunTracker(study), grouped


def final_state_of(run_dir: Path) -> dict:
    """The method and rates of a run whose study is not in its run directory."""
    import json

    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    return {"method": (run_dir / "method.txt").read_text(encoding="utf-8"),
            "rates": run["summary"]["failure_rate_by_step"]}


def test_a_driver_and_three_workers_evaluate_each_candidate_once_and_select_what_one_process_selects(
        postgres, single_process, tmp_path):
    url = postgres.database("three_workers")
    with StubServer(QueueWorld(), latency_s=0.02) as stub:
        workers = _start_workers(url, tmp_path)
        code, out, err = _finish(_driver(stub, url, tmp_path))
        assert code == 0, err[-3000:]
        finished = [_finish(worker, timeout=60) for worker in workers]
    assert all(code == 0 for code, _, _ in finished), [err[-2000:] for _, _, err in finished]
    assert all("the run finished" in out for _, out, _ in finished)

    tracker, grouped = _trials_by_candidate(url)
    expected = {(0, tracker.trials()[0].candidate_key)} | {(plan.step, c.key) for plan in tracker.plans()
                                                           for c in plan.candidates}
    assert set(grouped) == expected and len(expected) == 1 + 4 + 4
    for key, trials in grouped.items():  # exactly one trial per candidate, finished
        assert [t.state for t in trials] in ([TrialState.COMPLETE], [TrialState.PRUNED]), (key, trials)
    assert len({t.user_attrs["worker"] for ts in grouped.values() for t in ts}) >= 2  # the work was shared

    shared = final_state_of(tmp_path / STUDY)
    assert shared["method"] == single_process["method"]
    assert shared["rates"] == single_process["rates"]


def test_a_worker_killed_mid_trial_is_retried_and_the_run_selects_what_one_process_selects(
        postgres, single_process, tmp_path):
    url = postgres.database("killed_worker")
    with StubServer(QueueWorld(), latency_s=0.1) as stub:
        workers = _start_workers(url, tmp_path)
        by_pid = {worker.pid: worker for worker in workers}
        driver = _driver(stub, url, tmp_path, "--coordinate-only")
        killed = _kill_a_worker_mid_candidate(url, by_pid)
        code, out, err = _finish(driver)
        assert code == 0, err[-3000:]
        finished = {pid: _finish(worker, timeout=60) for pid, worker in by_pid.items()}
    assert finished[killed["pid"]][0] == -signal.SIGKILL
    assert all(code == 0 for pid, (code, _, _) in finished.items() if pid != killed["pid"])

    tracker, grouped = _trials_by_candidate(url)
    study = tracker.study
    dead = study.trials[killed["number"]]
    assert dead.state == TrialState.FAIL  # given up once its heartbeat went stale
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed["number"]]
    assert len(retries) == 1 and retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retries[0].user_attrs["worker"] != dead.user_attrs["worker"]
    for key, trials in grouped.items():  # no candidate lost, none evaluated twice
        finished_trials = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert len(finished_trials) == 1, (key, trials)
        failed = [t.number for t in trials if t.state == TrialState.FAIL]
        assert failed == ([killed["number"]] if key == killed["key"] else []), (key, trials)
    assert not study.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))

    shared = final_state_of(tmp_path / STUDY)
    assert shared["method"] == single_process["method"]
    assert shared["rates"] == single_process["rates"]


def _kill_a_worker_mid_trial_once(url: str, by_pid: dict[int, subprocess.Popen]) -> dict | None:
    try:
        study = optuna.load_study(study_name=STUDY, storage=url)
    except KeyError:
        return None
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        holder = trial.user_attrs.get("worker", "")
        pid = int(holder.rsplit(":", 1)[1]) if ":" in holder else None
        if pid in by_pid and trial.user_attrs.get("kind") == "candidate":
            os.kill(pid, signal.SIGKILL)
            return {"pid": pid, "number": trial.number,
                    "key": (trial.user_attrs["step"], trial.user_attrs["candidate_key"])}
    return None


def _kill_a_worker_mid_candidate(url: str, by_pid: dict[int, subprocess.Popen], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        killed = _kill_a_worker_mid_trial_once(url, by_pid)
        if killed is not None:
            return killed
        time.sleep(0.1)
    raise AssertionError("no worker ever ran a candidate")
