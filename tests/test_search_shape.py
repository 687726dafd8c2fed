"""The loop's shape: tasks and search rules as objects, one evolution unit, live trials, events."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dspy
import optuna
import pytest

from autoevol_dspy import AutoEvolInstruct, EvolInstruct, RunConflictError
from autoevol_dspy.data import evolve_dataset
from autoevol_dspy.search.events import CaseJudged, EvaluationStarted, RunEnded, StepDecided, StepPlanned, TrialFinished
from autoevol_dspy.search.strategies.acceptance import sign_test_p
from autoevol_dspy.search.strategies import (
    EpochBatches,
    FullEvaluation,
    MarginAcceptance,
    NoImprovement,
    PairedTestAcceptance,
    RandomBatches,
    SearchState,
    StrictImprovement,
)
from autoevol_dspy.tasks import EvolutionTask
from world import World, method, seeds


def optimizer(world: World, **overrides) -> AutoEvolInstruct:
    settings = dict(task=EvolutionTask(lm=world.lm), lm=world.lm, optimizer_lm=world.lm, num_candidates=3,
                    batch_sampler=4, dev_size=20, max_steps=3, num_threads=1, progress=False)
    settings.update(overrides)
    return AutoEvolInstruct(**settings)


SCRIPT = {60: [method(50), method(20), method(40)], 20: [method(25), method(10)], 10: [method(12)]}


def test_the_optimizer_and_dataset_evolution_give_the_same_failure_labels(tmp_path):
    world = World(dict(SCRIPT))
    data = seeds(40)
    opt = optimizer(world, evaluation=FullEvaluation(), max_steps=0)
    opt.compile(EvolInstruct(method(40)), trainset=data[20:], valset=data[:20])
    baseline = opt.result.trials[0]
    summary = evolve_dataset([e.instruction for e in data[:20]], method=method(40), out_path=tmp_path / "out.jsonl",
                             evol_lm=world.lm, response_lm=world.lm, num_threads=1, progress=False)
    import json

    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    failed_in_data = sorted(int(row["seed_id"]) for row in rows if row["failure"])
    assert sorted(baseline.losses) == failed_in_data  # the same cases fail, for the same reasons
    assert baseline.failures_by_category == summary.failures_by_category
    assert 0 < len(failed_in_data) < 20


class StopAfterOneAcceptance:
    """A custom stopper: stop as soon as one step has improved the incumbent."""

    def __init__(self) -> None:
        self.seen: list[SearchState] = []

    def stop_reason(self, state: SearchState) -> str | None:
        self.seen.append(state)
        return "one improvement" if state.steps_done >= 1 and state.steps_without_improvement == 0 else None

    def describe(self) -> dict:
        return {"type": "StopAfterOneAcceptance"}


def test_a_custom_stopper_plugs_in_and_is_honoured():
    world = World(dict(SCRIPT))
    stopper = StopAfterOneAcceptance()
    opt = optimizer(world, stopper=stopper, max_steps=5)
    opt.compile(EvolInstruct(method(60)), trainset=seeds(40))
    assert opt.result.stop_reason == "one improvement"
    assert len(opt.result.steps) == 1 and opt.result.steps[0].accepted
    assert stopper.seen and stopper.seen[0].steps_done <= 0


@pytest.mark.parametrize(("change", "setting"), [
    ({"acceptance": MarginAcceptance(min_fewer=3)}, "acceptance"),
    ({"batch_sampler": EpochBatches(4)}, "batch_sampler.type"),
    ({"batch_sampler": 5}, "batch_sampler.size"),
    ({"evaluation": FullEvaluation()}, "evaluation.type"),
    ({"task": EvolutionTask(rounds=2)}, "task.rounds"),
])
def test_changing_a_strategy_setting_is_refused_on_resume_naming_it(tmp_path, change, setting):
    world = World(dict(SCRIPT))
    optimizer(world, run_dir=tmp_path, max_steps=1).compile(EvolInstruct(method(60)), trainset=seeds(40))
    with pytest.raises(RunConflictError, match=rf"different settings \([^)]*{setting}"):
        optimizer(world, run_dir=tmp_path, max_steps=1, **change).compile(EvolInstruct(method(60)), trainset=seeds(40))


def test_the_dashboard_gets_a_named_objective_intermediate_values_and_no_noise_params(tmp_path):
    world = World(dict(SCRIPT))
    opt = optimizer(world, run_dir=tmp_path)
    opt.compile(EvolInstruct(method(60)), trainset=seeds(40))
    study = optuna.load_study(study_name=tmp_path.name, storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) == len(opt.result.trials) >= 4
    assert study.metric_names == ["dev failure rate"]
    records = {t.number: t for t in opt.result.trials}
    for trial in study.trials:
        assert trial.duration is not None and trial.duration.total_seconds() > 0
        assert trial.params == {}  # step and sample numbers are no hyperparameters: no importance plot of noise
        assert trial.user_attrs["step"] >= 0 and "parent_trial" in trial.user_attrs
        record = records[trial.number]
        if not record.evaluated:  # a candidate that could not win before its first case
            assert not trial.intermediate_values
            continue
        steps = sorted(trial.intermediate_values)
        assert steps and steps[-1] == record.evaluated and len(steps) >= min(record.evaluated, 2)
        values = [trial.intermediate_values[step] for step in steps]
        assert values == sorted(values)  # failures so far over the dev set only rise
        assert values[-1] == pytest.approx(record.failures / record.dev_size)
        if record.status == "complete":
            assert trial.value == pytest.approx(values[-1])
    candidates = [t for t in study.trials if t.user_attrs["kind"] == "candidate"]
    assert {t.user_attrs["predictor"] for t in candidates} == {"evolve"}
    assert sorted(t.number for t in study.trials) == [t.number for t in opt.result.trials]


def test_a_running_evaluation_is_visible_from_another_process(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    marker = tmp_path / "evaluating"
    script = tmp_path / "slow_run.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from autoevol_dspy import AutoEvolInstruct, EvolInstruct
        from autoevol_dspy.tasks import EvolutionTask
        from world import World, method, seeds
        world = World({{60: [method(30)]}})
        original = world.engine.responder
        def slow(call):
            if call.kind == "evolution":
                Path({str(marker)!r}).touch()
                time.sleep(0.2)
            return original(call)
        world.engine.responder = slow
        AutoEvolInstruct(task=EvolutionTask(lm=world.lm), lm=world.lm, optimizer_lm=world.lm, num_candidates=1,
                         batch_sampler=4, dev_size=20, max_steps=1, num_threads=1, progress=False,
                         run_dir={str(tmp_path)!r}).compile(EvolInstruct(method(60)), trainset=seeds(40))
    """))
    process = subprocess.Popen([sys.executable, str(script)])
    try:
        running, deadline = [], time.monotonic() + 120  # generous: a loaded machine starts Python slowly
        while time.monotonic() < deadline and process.poll() is None:
            if marker.exists():
                study = optuna.load_study(study_name=tmp_path.name, storage=storage)
                running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
                if running:
                    break
            subprocess.run(["sleep", "0.05"])
        assert running and running[0].user_attrs["kind"] in ("baseline", "candidate")
        assert "method" in running[0].user_attrs and running[0].user_attrs["predictor"] in ("(all)", "evolve")
    finally:
        process.kill()
        process.wait()


def test_a_killed_runs_running_trial_is_failed_on_resume_and_evaluated_again(tmp_path):
    world = World(dict(SCRIPT))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name=tmp_path.name, storage=storage)
    opt = optimizer(world, run_dir=tmp_path, max_steps=1)
    opt.compile(EvolInstruct(method(60)), trainset=seeds(40))
    first = len(study.trials)
    # A process killed mid-evaluation leaves a RUNNING trial behind.
    orphan = study.ask()
    optimizer(world, run_dir=tmp_path, max_steps=1).compile(EvolInstruct(method(60)), trainset=seeds(40))
    study = optuna.load_study(study_name=tmp_path.name, storage=storage)
    assert study.trials[orphan.number].state == optuna.trial.TrialState.FAIL
    assert len(study.trials) == first + 1


def test_events_arrive_in_order_for_a_user_callback():
    class Recorder:
        def __init__(self) -> None:
            self.kinds: list[str] = []

        def on_event(self, event) -> None:
            if not isinstance(event, CaseJudged):
                self.kinds.append(type(event).__name__)

    class Broken:
        def on_event(self, event) -> None:
            raise RuntimeError("observer bug")

    recorder = Recorder()
    world = World(dict(SCRIPT))
    opt = optimizer(world, callbacks=[Broken(), recorder], max_steps=1)
    opt.compile(EvolInstruct(method(60)), trainset=seeds(40))
    kinds = recorder.kinds
    assert kinds[0] == "RunStarted" and kinds[-1] == RunEnded.__name__
    assert kinds[1:3] == [EvaluationStarted.__name__, TrialFinished.__name__]
    assert kinds.index(StepPlanned.__name__) < kinds.index(StepDecided.__name__)
    assert kinds.count(TrialFinished.__name__) == len(opt.result.trials)


def test_acceptance_criteria_on_case_losses():
    incumbent = {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}
    one_fewer = {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}
    assert StrictImprovement().accepts(candidate=one_fewer, incumbent=incumbent, dev_size=20)
    assert not MarginAcceptance(min_fewer=2).accepts(candidate=one_fewer, incumbent=incumbent, dev_size=20)
    assert MarginAcceptance(min_fewer=2).accepts(candidate={0: 1.0, 1: 1.0, 2: 1.0}, incumbent=incumbent, dev_size=20)
    assert not PairedTestAcceptance(alpha=0.1).accepts(candidate=one_fewer, incumbent=incumbent, dev_size=20)
    # Fixes 5 cases and breaks none: p = 1/32 < 0.1.
    assert PairedTestAcceptance(alpha=0.1).accepts(candidate={}, incumbent=incumbent, dev_size=20)
    # Fixes 5, breaks 4 (one fewer in total): not significant.
    churn = {10: 1.0, 11: 1.0, 12: 1.0, 13: 1.0}
    assert not PairedTestAcceptance(alpha=0.1).accepts(candidate=churn, incumbent=incumbent, dev_size=20)
    assert sign_test_p(5, 0) == pytest.approx(1 / 32) and sign_test_p(0, 0) == 1.0


def test_margin_acceptance_keeps_a_one_failure_gain_out_and_early_stop_stays_exact():
    world_a, world_b = World(dict(SCRIPT)), World(dict(SCRIPT))
    exact = optimizer(world_a, acceptance=MarginAcceptance(min_fewer=25), max_steps=1)
    full = optimizer(world_b, acceptance=MarginAcceptance(min_fewer=25), evaluation=FullEvaluation(), max_steps=1)
    exact.compile(EvolInstruct(method(60)), trainset=seeds(40))
    full.compile(EvolInstruct(method(60)), trainset=seeds(40))
    assert [s.accepted for s in exact.result.steps] == [s.accepted for s in full.result.steps] == [False]
    assert sum(t.evaluated for t in exact.result.trials) < sum(t.evaluated for t in full.result.trials)


def test_batch_samplers_are_deterministic_and_epochs_cover_every_example():
    random_batches = RandomBatches(4)
    assert random_batches.sample(step=3, train_size=20, seed=1) == random_batches.sample(step=3, train_size=20, seed=1)
    epochs = EpochBatches(4)
    covered = [i for step in range(1, 6) for i in epochs.sample(step=step, train_size=20, seed=0)]
    assert sorted(covered) == list(range(20))


def test_patience_counts_full_rounds_over_the_predictors():
    stopper = NoImprovement(patience=1)
    assert stopper.stop_reason(SearchState(steps_done=1, steps_without_improvement=1, num_predictors=2,
                                           lm_calls=0)) is None
    assert stopper.stop_reason(SearchState(steps_done=2, steps_without_improvement=2, num_predictors=2,
                                           lm_calls=0)) == "patience"


def test_track_usage_around_compile_sees_the_runs_calls():
    world = World(dict(SCRIPT))
    with dspy.track_usage() as usage:
        opt = optimizer(world, max_steps=1)
        opt.compile(EvolInstruct(method(60)), trainset=seeds(40))
    recorded = sum(len(entries) for entries in usage.usage_data.values())
    assert recorded == opt.result.usage.calls > 0


def test_dspy_evaluate_callbacks_fire_for_every_evaluation():
    class Seen(dspy.utils.callback.BaseCallback):
        def __init__(self) -> None:
            self.starts, self.ends = [], []

        def on_evaluate_start(self, call_id, instance, inputs):
            self.starts.append((call_id, inputs["callback_metadata"]["label"]))

        def on_evaluate_end(self, call_id, outputs, exception=None):
            self.ends.append((call_id, outputs.score if outputs is not None else None))

    seen = Seen()
    world = World(dict(SCRIPT))
    with dspy.context(callbacks=[seen]):
        opt = optimizer(world, max_steps=1)
        opt.compile(EvolInstruct(method(60)), trainset=seeds(60))
    evaluations = len(opt.result.trials) + (1 if opt.result.holdout.verdict == "unchanged" else 2)
    assert len(seen.starts) == len(seen.ends) == evaluations
    assert [c for c, _ in seen.starts] == [c for c, _ in seen.ends]
    baseline_score = seen.ends[0][1]
    assert baseline_score == pytest.approx(100 * (1 - opt.result.initial_failure_rate))


def test_the_python_api_writes_the_report_like_the_command_line(tmp_path):
    world = World(dict(SCRIPT))
    optimizer(world, run_dir=tmp_path, max_steps=1).compile(EvolInstruct(method(60)), trainset=seeds(60))
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<section id="holdout">' in page and '<section id="evidence">' in page


@pytest.mark.parametrize("threads", [2, 5])
def test_candidates_in_one_pool_select_what_sequential_evaluation_selects(threads):
    # Which sample gets which rewrite depends on thread timing in this scripted world, so the
    # qualities are far apart and the step-2 script does not depend on which tied winner won.
    script = {60: [method(80), method(40), method(75), method(40, "tie"), method(90)],
              40: [method(95), method(15), method(15, "tie"), method(70)]}
    rates = {}
    for name, settings in {"sequential": dict(num_threads=1), "pool": dict(num_threads=threads),
                           "full": dict(num_threads=1, evaluation=FullEvaluation())}.items():
        world = World(dict(script))
        opt = optimizer(world, num_candidates=5, max_steps=2, stopper=NoImprovement(patience=3), **settings)
        opt.compile(EvolInstruct(method(60)), trainset=seeds(60))
        result = opt.result
        rates[name] = [s.incumbent_failure_rate for s in result.steps]
        for plan, outcome in zip(result.plans, result.steps):
            # The winner has the fewest failures, and no candidate before it in the plan has as few.
            by_key = {t.candidate_key: t for t in result.trials if t.step == plan.step}
            ordered = [by_key[c.key] for c in plan.candidates]
            winner = next(t for t in ordered if t.number == outcome.best_candidate_trial)
            assert winner.failures == min(t.failures for t in ordered if t.status == "complete")
            assert all(t.failures > winner.failures or t.status == "pruned" for t in ordered[:ordered.index(winner)])
    assert rates["pool"] == rates["sequential"] == rates["full"]


def test_a_prompt_too_long_for_the_model_is_that_cases_failure_not_a_crash():
    from autoevol_dspy.lm.local_engine import PromptTooLongError

    world = World(dict(SCRIPT))
    original = world.engine.responder

    def overflow(call):  # what the embedded engine raises; DSPy reports it as ContextWindowExceededError
        if call.kind == "evolution" and "Task 3:" in call.inputs.get("instruction", ""):
            raise PromptTooLongError(prompt_tokens=5000, n_ctx=4096, model="scripted")
        return original(call)

    world.engine.responder = overflow
    opt = optimizer(world, max_steps=0, holdout=0)
    opt.compile(EvolInstruct(method(60)), trainset=seeds(40))
    categories = opt.result.trials[0].failures_by_category
    assert categories.get("context_overflow") == 1


def test_a_bug_in_a_case_fails_the_started_trials_and_raises(tmp_path):
    class Buggy:
        name, needs_response = "buggy", False

        def detect(self, case):
            if "Task 3:" in case.instruction:
                raise RuntimeError("a bug in a detector")
            return None

    world = World(dict(SCRIPT))
    task = EvolutionTask(lm=world.lm, detectors=[Buggy()])
    with pytest.raises(RuntimeError, match="a bug"):
        optimizer(world, task=task, run_dir=tmp_path, max_steps=1, num_threads=2).compile(
            EvolInstruct(method(60)), trainset=seeds(40))
    study = optuna.load_study(study_name=tmp_path.name, storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert study.trials and not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
