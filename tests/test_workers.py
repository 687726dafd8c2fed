"""Shared studies without a database server: the queue's pop, heartbeat and retry, and workers on SQLite.

Workers here are threads of the test process (each with its own storage connection), which
exercises the same queue as separate processes; the PostgreSQL tests run real processes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dspy
import optuna
import pytest
from optuna.trial import TrialState

from autoevol_dspy import AutoEvolError, AutoEvolInstruct, EvolInstruct, RunConflictError, SharedStudy, run_worker
from autoevol_dspy.cli.main import main as cli_main
from autoevol_dspy.lm.usage import UsageMeter
from autoevol_dspy.search.events import EventBus
from autoevol_dspy.search.queue import TrialQueue, shared_storage
from autoevol_dspy.search.records import TrialSpec
from autoevol_dspy.search.evaluators import TrialJobs
from autoevol_dspy.search.queue_worker import QueueWorker
from autoevol_dspy.search.strategies import (
    ExactEarlyStop,
    FullEvaluation,
    LMCallBudget,
    NoImprovement,
    StrictImprovement,
)
from autoevol_dspy.search.tracking import RunTracker
from autoevol_dspy.tasks import EvolutionTask, ProgramTask
from autoevol_dspy.testing import ScriptedEngine, scripted_lm
from world import World, method, seeds

SCRIPT = {60: [method(50), method(20), method(40)], 20: [method(25), method(10)], 10: [method(12)]}
FAST = SharedStudy(heartbeat_s=1, grace_s=2, poll_s=0.05)
SHARED_SCRIPT = Path(__file__).parent / "shared_resume_script.py"


def _url(tmp_path, name: str = "study.db") -> str:
    return f"sqlite:///{tmp_path / name}"


def _optimizer(world: World, **overrides) -> AutoEvolInstruct:
    settings = dict(task=EvolutionTask(lm=world.lm), lm=world.lm, optimizer_lm=world.lm, num_candidates=3,
                    batch_sampler=4, dev_size=20, max_steps=3, num_threads=1, progress=False)
    settings.update(overrides)
    return AutoEvolInstruct(**settings)


def _workers(world: World, url: str, count: int = 1) -> tuple[list[threading.Thread], list]:
    """``count`` run_worker threads for the scripted evolving method of ``world`` (their summaries or errors)."""
    return _in_threads(count, lambda: run_worker(EvolInstruct(method(60)), EvolutionTask(lm=world.lm), storage=url,
                                                 lm=world.lm, num_threads=2, wait_s=60))


def _in_threads(count: int, target) -> tuple[list[threading.Thread], list]:
    results: list = []

    def run() -> None:
        try:
            results.append(target())
        except Exception as exc:  # noqa: BLE001 - the test asserts on it
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def test_workers_on_sqlite_select_what_one_process_selects(tmp_path):
    url = _url(tmp_path)
    world = World(dict(SCRIPT))
    threads, summaries = _workers(world, url, 2)
    shared = _optimizer(world, storage=url, workers=FAST)
    shared.compile(EvolInstruct(method(60)), trainset=seeds(40))
    for thread in threads:
        thread.join(timeout=60)
    assert all(s.reason == "the run finished" for s in summaries), summaries

    alone = _optimizer(World(dict(SCRIPT)))
    alone.compile(EvolInstruct(method(60)), trainset=seeds(40))
    assert shared.result.best_instructions == alone.result.best_instructions
    assert shared.result.failure_rate_by_step == alone.result.failure_rate_by_step
    study = optuna.load_study(study_name="autoevol", storage=url)
    keys = [(t.user_attrs["step"], t.user_attrs["candidate_key"]) for t in study.trials]
    assert len(keys) == len(set(keys)) == len(shared.result.trials)  # each evaluation once
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)


def test_a_pop_takes_each_trial_once_and_never_creates_one(tmp_path):
    url = _url(tmp_path)
    study = optuna.create_study(study_name="q", storage=shared_storage(url, FAST))
    tracker = RunTracker(study)
    queue = TrialQueue(study, FAST)
    assert queue.pop() is None and len(study.trials) == 0  # an empty queue creates nothing
    for position in range(8):
        spec = TrialSpec(step=1, kind="candidate", candidate_key=f"k{position}", instructions={"evolve": "m"},
                         predictor="evolve", samples=[position % 4], position=position, label=f"c{position}")
        tracker.enqueue(spec)

    def drain() -> list[str]:
        mine = TrialQueue(optuna.load_study(study_name="q", storage=shared_storage(url, FAST)), FAST)
        taken = []
        while (popped := mine.pop()) is not None:
            taken.append(popped[1].candidate_key)
            mine.release(popped[0])
        return taken

    threads, results = _in_threads(4, drain)
    for thread in threads:
        thread.join(timeout=60)
    taken = [key for keys in results for key in keys]
    assert sorted(taken) == [f"k{i}" for i in range(8)]  # every trial once, none twice
    assert len(optuna.load_study(study_name="q", storage=url).trials) == 8


def test_a_trial_whose_process_stops_beating_is_failed_and_enqueued_again(tmp_path):
    url = _url(tmp_path)
    study = optuna.create_study(study_name="q", storage=shared_storage(url, FAST))
    tracker = RunTracker(study)
    spec = TrialSpec(step=1, kind="candidate", candidate_key="k", instructions={"evolve": "m"}, predictor="evolve",
                     samples=[0], label="c")
    tracker.enqueue(spec)
    dead = TrialQueue(study, FAST)
    trial, _ = dead.pop()
    dead.release(trial)  # the process dies: no more beats, no tell
    time.sleep(FAST.grace_s + 1.5)
    TrialQueue(optuna.load_study(study_name="q", storage=shared_storage(url, FAST)), FAST).fail_stale(force=True)
    trials = optuna.load_study(study_name="q", storage=url).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].system_attrs["failed_trial"] == trial.number
    assert trials[1].user_attrs["spec"] == trials[0].user_attrs["spec"]  # the copy carries the candidate


def test_a_record_written_before_a_kill_is_not_a_result(tmp_path):
    # A process killed between writing a trial's record and telling Optuna leaves a RUNNING trial with a
    # "complete" record (and a retried copy inherits it): neither is a finished evaluation.
    study = optuna.create_study(study_name="q", storage=_url(tmp_path))
    trial = study.ask()
    trial.set_user_attr("record", {"step": 1, "kind": "candidate", "status": "complete", "candidate_key": "k",
                                   "instructions": {"evolve": "m"}, "failures": 0})
    assert RunTracker(study).find_trial(step=1, candidate_key="k") is None
    study.tell(trial, state=TrialState.FAIL)
    assert RunTracker(study).find_trial(step=1, candidate_key="k") is None


def test_a_worker_with_other_settings_or_data_refuses_in_one_line(tmp_path):
    url = _url(tmp_path)
    world = World(dict(SCRIPT))
    _optimizer(world, storage=url, workers=FAST, max_steps=1).compile(EvolInstruct(method(60)), trainset=seeds(40))
    student = EvolInstruct(method(60))
    with pytest.raises(RunConflictError, match=r"differs from the run .*task\.rounds") as error:
        run_worker(student, EvolutionTask(lm=world.lm, rounds=2), storage=url, lm=world.lm, wait_s=0)
    assert "\n" not in str(error.value)
    with pytest.raises(RunConflictError, match=r"dev set differs"):
        run_worker(student, EvolutionTask(lm=world.lm), storage=url, lm=world.lm, devset=seeds(20, "Other"),
                   wait_s=0)
    other_lm = dspy.LM("openai/other", engine=ScriptedEngine(world.respond), cache=False)
    with pytest.raises(RunConflictError, match=r"lm \(openai/scripted in the run, openai/other here\)"):
        run_worker(student, EvolutionTask(lm=world.lm), storage=url, lm=other_lm, wait_s=0)
    with pytest.raises(RunConflictError, match=r"does not exist"):
        run_worker(student, EvolutionTask(lm=world.lm), storage=url, study_name="nobody", wait_s=0)


def test_the_command_line_worker_refuses_a_run_started_from_python_in_one_line(tmp_path, capsys):
    url = _url(tmp_path)
    world = World(dict(SCRIPT))
    _optimizer(world, storage=url, workers=FAST, max_steps=0).compile(EvolInstruct(method(60)), trainset=seeds(40))
    assert cli_main(["worker", "--storage", url, "--study", "autoevol", "--wait", "0"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("autoevol: error:")]
    assert len(lines) == 1 and "started from Python" in lines[0] and "run_worker" in lines[0]


def test_workers_need_a_database_storage():
    world = World(dict(SCRIPT))
    with pytest.raises(Exception, match=r"database"):
        _optimizer(world, workers=True).compile(EvolInstruct(method(60)), trainset=seeds(40))


class Classify(dspy.Module):
    def __init__(self) -> None:
        super().__init__()
        self.label = dspy.Predict("text -> label")

    def forward(self, text: str) -> dspy.Prediction:
        return self.label(text=text)


def _program_world():
    """A program's LM: right once its instructions ask for the label alone (the second rewrite's rule)."""

    def respond(call):
        if call.kind == "analysis":
            return {"feedback": "The label came with extra words; ask for the label alone."}
        if call.kind == "rewrite":
            current = call.inputs["current_instructions"]
            return {"improved_instructions": current + " Answer with the label alone, in lower case."}
        text = call.inputs.get("text", "")
        good = "label alone" in call.instructions or text.endswith("0")
        return {"label": ("even" if int(text.split()[-1]) % 2 == 0 else "odd") if good else "I think so"}

    return scripted_lm(respond)[0]


def test_a_program_compiles_with_run_worker_threads_like_in_one_process(tmp_path):
    url = _url(tmp_path)
    data = [dspy.Example(text=f"number {i}", label="even" if i % 2 == 0 else "odd").with_inputs("text")
            for i in range(40)]

    def metric(example, prediction, trace=None):
        return prediction.label == example.label

    def compile_with(lm, **extra):
        optimizer = AutoEvolInstruct(metric=metric, lm=lm, num_candidates=2, batch_sampler=4, dev_size=16,
                                     max_steps=1, num_threads=2, progress=False, evaluation=FullEvaluation(),
                                     stopper=NoImprovement(patience=2), **extra)
        optimizer.compile(Classify(), trainset=data)
        return optimizer.result

    lm = _program_world()
    threads, summaries = _in_threads(1, lambda: run_worker(Classify(), metric, storage=url, lm=lm, num_threads=2,
                                                           wait_s=60))
    shared = compile_with(lm, storage=url, workers=SharedStudy(heartbeat_s=1, grace_s=2, poll_s=0.05,
                                                              evaluate=False))
    for thread in threads:
        thread.join(timeout=60)
    alone = compile_with(_program_world())
    assert summaries[0].trials == len(shared.trials) >= 2  # the driver only coordinated: the worker did them all
    assert shared.best_instructions == alone.best_instructions
    assert shared.failure_rate_by_step == alone.failure_rate_by_step
    assert shared.failure_rate_by_step[-1] < shared.failure_rate_by_step[0]


def test_an_lm_outage_in_a_worker_stops_the_run_in_one_line_and_the_rerun_ends_like_one_process(tmp_path):
    url = _url(tmp_path)
    broken = World(dict(SCRIPT), fail_response_for="Task")  # every answer this worker asks for fails
    threads, outcomes = _workers(broken, url)
    coordinator = SharedStudy(heartbeat_s=1, grace_s=2, poll_s=0.05, evaluate=False)
    driver = World(dict(SCRIPT))
    with pytest.raises(AutoEvolError, match=r"an LM call failed: .*scripted outage") as error:
        _optimizer(driver, storage=url, workers=coordinator).compile(EvolInstruct(method(60)), trainset=seeds(40))
    assert "\n" not in str(error.value)
    threads[0].join(timeout=60)
    assert isinstance(outcomes[0], AutoEvolError) and "fix this worker's LM" in str(outcomes[0])
    study = optuna.load_study(study_name="autoevol", storage=url)
    assert study.user_attrs["autoevol:driver"]["state"] == "stopped"
    assert [t.state for t in study.trials] == [TrialState.FAIL]  # the outage is never a result

    healthy = World(dict(SCRIPT))
    threads, _ = _workers(healthy, url)
    rerun = _optimizer(World(dict(SCRIPT)), storage=url, workers=coordinator)
    rerun.compile(EvolInstruct(method(60)), trainset=seeds(40))
    threads[0].join(timeout=60)
    alone = _optimizer(World(dict(SCRIPT)))
    alone.compile(EvolInstruct(method(60)), trainset=seeds(40))
    assert rerun.result.best_instructions == alone.result.best_instructions
    assert rerun.result.failure_rate_by_step == alone.result.failure_rate_by_step


def test_a_driver_killed_mid_step_leaves_its_queue_to_the_rerun_which_ends_like_one_process(tmp_path):
    # Killed while evaluating step 1's candidates itself: queued trials wait, its own RUNNING one goes stale.
    url = _url(tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(SHARED_SCRIPT), *args], capture_output=True, text=True,
                              timeout=240)

    killed = run(url, str(tmp_path / "killed.json"), "30")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    study = optuna.load_study(study_name="autoevol", storage=url)
    running = [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]
    assert running and study.get_trials(states=(TrialState.WAITING,))  # it held one, others were queued
    resumed = run(url, str(tmp_path / "resumed.json"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    alone = run("none", str(tmp_path / "alone.json"))
    assert alone.returncode == 0, alone.stderr[-2000:]
    result, reference = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("resumed", "alone"))
    assert (result["method"], result["rates"]) == (reference["method"], reference["rates"])
    trials = optuna.load_study(study_name="autoevol", storage=url).trials
    assert [trials[n].state for n in running] == [TrialState.FAIL]  # failed once stale, then retried
    finished = [(t.user_attrs["step"], t.user_attrs["candidate_key"]) for t in trials
                if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == len(set(finished))  # no candidate evaluated twice
    assert not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]


def test_a_driver_that_only_coordinates_plans_step_1_while_a_worker_evaluates_the_baseline(tmp_path):
    url = _url(tmp_path)
    driver, worker = World(dict(SCRIPT)), World(dict(SCRIPT))
    proposing, lock, overlapped = threading.Event(), threading.Lock(), []

    def driver_respond(call, original=driver.engine.responder):
        if call.kind in ("analysis", "rewrite"):
            proposing.set()
        return original(call)

    def worker_respond(call, original=worker.engine.responder):
        with lock:  # the baseline's first case waits until the driver proposes step 1's rewrites
            if not overlapped:
                overlapped.append(proposing.wait(timeout=20))
        return original(call)

    driver.engine.responder, worker.engine.responder = driver_respond, worker_respond
    threads, summaries = _workers(worker, url)
    shared = _optimizer(driver, storage=url, workers=SharedStudy(heartbeat_s=1, grace_s=2, poll_s=0.05,
                                                                 evaluate=False))
    shared.compile(EvolInstruct(method(60)), trainset=seeds(40))
    threads[0].join(timeout=60)
    assert overlapped == [True]  # one process in turn would have left the worker waiting 20 s, then False
    assert summaries[0].trials == len(shared.result.trials)

    alone = _optimizer(World(dict(SCRIPT)))
    alone.compile(EvolInstruct(method(60)), trainset=seeds(40))
    baseline = next(t.number for t in shared.result.trials if t.kind == "baseline")
    assert shared.result.plans[0].incumbent_trial == baseline
    assert [[c.key for c in p.candidates] for p in shared.result.plans] == \
        [[c.key for c in p.candidates] for p in alone.result.plans]
    assert shared.result.best_instructions == alone.result.best_instructions
    assert shared.result.failure_rate_by_step == alone.result.failure_rate_by_step


def test_a_driver_with_an_lm_call_budget_plans_nothing_before_the_baseline_is_measured(tmp_path):
    url = _url(tmp_path)
    driver, worker = World(dict(SCRIPT)), World(dict(SCRIPT))
    kinds: list[str] = []

    def driver_respond(call, original=driver.engine.responder):
        kinds.append(call.kind)
        return original(call)

    driver.engine.responder = driver_respond
    threads, _ = _workers(worker, url)
    shared = _optimizer(driver, storage=url, stopper=LMCallBudget(max_calls=10), holdout=0,
                        workers=SharedStudy(heartbeat_s=1, grace_s=2, poll_s=0.05, evaluate=False))
    shared.compile(EvolInstruct(method(60)), trainset=seeds(40))
    threads[0].join(timeout=60)
    assert shared.result.stop_reason == "budget" and shared.result.plans == []
    assert kinds == []  # the baseline spent the budget: step 1 was never planned, as in one process


def _queue_worker(url: str, world: World, evaluation) -> QueueWorker:
    study = optuna.load_study(study_name="q", storage=shared_storage(url, FAST))
    task = EvolutionTask(lm=world.lm)
    jobs = TrialJobs(task=task, student=EvolInstruct(method(60)), devset=task.examples(seeds(20), name="devset"),
                     policy=evaluation, acceptance=StrictImprovement(), events=EventBus([]))
    return QueueWorker(queue=TrialQueue(study, FAST), tracker=RunTracker(study), jobs=jobs, num_threads=1,
                       meter=UsageMeter())


@pytest.mark.parametrize("evaluation", [ExactEarlyStop(), FullEvaluation()], ids=lambda e: type(e).__name__)
def test_a_candidate_stops_on_a_rival_told_by_another_process_and_only_a_policy_that_can_stop_reads_it(
        tmp_path, monkeypatch, evaluation):
    url = _url(tmp_path)
    study = optuna.create_study(study_name="q", storage=shared_storage(url, FAST))
    tracker = RunTracker(study)
    world = World()

    def enqueue(position: int, quality: int) -> None:
        spec = TrialSpec(step=1, kind="candidate", candidate_key=f"k{position}", instructions={"evolve": method(quality)},
                         predictor="evolve", samples=[0], position=position, label=f"c{position}",
                         incumbent_failures=20)
        tracker.enqueue(spec)

    enqueue(0, 0)  # fails nothing: evaluated in full by the first process
    with dspy.context(lm=world.lm):
        assert _queue_worker(url, world, FullEvaluation()).drain() == 1
    reads = []
    original = TrialQueue.rivals
    monkeypatch.setattr(TrialQueue, "rivals", lambda self, *a, **k: reads.append(1) or original(self, *a, **k))
    enqueue(1, 100)  # fails every case: a second process, which finished nothing itself, evaluates it
    with dspy.context(lm=world.lm):
        assert _queue_worker(url, world, evaluation).drain() == 1
    record = RunTracker(optuna.load_study(study_name="q", storage=url)).find_trial(step=1, candidate_key="k1")
    if isinstance(evaluation, ExactEarlyStop):  # the bound came from the storage: stopped after its first failure
        assert reads and record.status == "pruned" and record.failures < 3
    else:  # the policy never stops: the storage is not read for rivals, and the candidate runs in full
        assert not reads and record.status == "complete" and record.failures == 20


def test_a_candidate_abandoned_more_than_max_retry_times_stops_the_run_and_the_rerun_ends_like_one_process(tmp_path):
    url = _url(tmp_path)
    settings = SharedStudy(heartbeat_s=1, grace_s=2, poll_s=0.05, max_retry=0, evaluate=False)
    taken: list[int] = []

    def take_and_die() -> None:  # a worker that takes the first trial, then stops beating without a word
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                queue = TrialQueue(optuna.load_study(study_name="autoevol", storage=shared_storage(url, settings)),
                                   settings)
            except KeyError:
                time.sleep(0.05)
                continue
            if (popped := queue.pop()) is not None:
                queue.release(popped[0])
                taken.append(popped[0].number)
                return
            time.sleep(0.05)

    dead, _ = _in_threads(1, take_and_die)
    with pytest.raises(AutoEvolError, match=r"initial instructions: its evaluation was abandoned 1 times.*rerun"):
        _optimizer(World(dict(SCRIPT)), storage=url, workers=settings).compile(EvolInstruct(method(60)),
                                                                               trainset=seeds(40))
    dead[0].join(timeout=60)
    study = optuna.load_study(study_name="autoevol", storage=url)
    assert taken == [0] and [t.state for t in study.trials] == [TrialState.FAIL]  # failed once stale, not retried
    assert study.user_attrs["autoevol:driver"]["state"] == "stopped"

    world = World(dict(SCRIPT))
    threads, _ = _workers(world, url)
    rerun = _optimizer(World(dict(SCRIPT)), storage=url, workers=settings)
    rerun.compile(EvolInstruct(method(60)), trainset=seeds(40))
    threads[0].join(timeout=60)
    alone = _optimizer(World(dict(SCRIPT)))
    alone.compile(EvolInstruct(method(60)), trainset=seeds(40))
    assert rerun.result.best_instructions == alone.result.best_instructions
    assert rerun.result.failure_rate_by_step == alone.result.failure_rate_by_step
