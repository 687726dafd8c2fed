"""What a DSPy user swapping MIPROv2 or GEPA for AutoEvolInstruct expects (issue 20).

The metric comes first, as in ``dspy.MIPROv2(metric)``; ``compile()`` refuses what it would
otherwise ignore; the LM ``dspy.configure`` set is part of the run's identity; DSPy's thread
setting and evaluate callbacks work as with ``dspy.Evaluate``; an ``aforward``-only program
runs from inside a running event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading

import dspy
import pytest
from test_program_compile import DEV, TRAIN, AsyncTriage, Triage, TriageWorld, label_matches, optimizer

from autoevol_dspy import AutoEvolInstruct, ConfigurationError, RunConflictError
from autoevol_dspy.testing import scripted_lm
from autoevol_dspy.testing.fake_lm import AsyncScriptedEngine

# The metric first, as the peers take it ---------------------------------------------------------


def test_the_metric_is_the_first_positional_argument_as_in_mipro_and_gepa():
    world = TriageWorld()
    opt = AutoEvolInstruct(label_matches, lm=world.lm, optimizer_lm=world.lm, num_candidates=1, batch_sampler=4,
                           dev_size=12, max_steps=1, num_threads=1, holdout=0, progress=False)
    opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    assert opt.task.metric is label_matches and opt.result.trials


# compile() refuses what it would ignore ----------------------------------------------------------


@pytest.mark.parametrize(("arguments", "message"), [
    ({"valsett": DEV}, "unexpected keyword argument 'valsett'; did you mean valset=?"),
    ({"holdout_set": DEV}, "did you mean holdoutset=?"),
    ({"teacher": Triage()}, "teacher=...) is not supported"),
    ({"num_trials": 10}, "max_steps="),
    ({"eval_kwargs": {"num_threads": 2}}, "num_threads="),
    ({"requires_permission_to_run": False}, "does not take requires_permission_to_run="),
])
def test_compile_refuses_typos_and_other_optimizers_arguments_before_any_call(arguments, message):
    world = TriageWorld()
    with pytest.raises(ConfigurationError) as info:
        optimizer(world).compile(Triage(), trainset=TRAIN, **arguments)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not world.engine.calls


def test_compile_takes_teacher_none_as_generic_harnesses_pass_it():
    world = TriageWorld()
    opt = optimizer(world, max_steps=1)
    opt.compile(Triage(), trainset=TRAIN, valset=DEV, teacher=None)
    assert opt.result.dev_size == len(DEV)


# The run's identity holds the LM that really runs -------------------------------------------------


def _configured_run(tmp_path, lm: dspy.LM) -> AutoEvolInstruct:
    opt = AutoEvolInstruct(label_matches, num_candidates=1, batch_sampler=4, dev_size=12, max_steps=1, num_threads=1,
                           holdout=0, progress=False, run_dir=tmp_path / "run")
    with dspy.context(lm=lm):
        opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    return opt


def test_a_resume_under_another_configured_temperature_is_refused(tmp_path):
    world = TriageWorld()
    first, _ = scripted_lm(world.respond, temperature=0.0)
    _configured_run(tmp_path, first)
    again, _ = scripted_lm(world.respond, temperature=0.0)
    assert _configured_run(tmp_path, again).result.trials  # the same LM resumes
    hotter, engine = scripted_lm(world.respond, temperature=0.9)
    with pytest.raises(RunConflictError, match="temperature"):
        _configured_run(tmp_path, hotter)
    assert not engine.calls


def test_a_resume_under_another_configured_model_is_refused(tmp_path):
    world = TriageWorld()
    first, engine = scripted_lm(world.respond)
    _configured_run(tmp_path, first)
    other = dspy.LM("openai/other-model", engine=engine, async_engine=AsyncScriptedEngine(engine), cache=False)
    with pytest.raises(RunConflictError, match=r"\(lm, optimizer_lm\)"):
        _configured_run(tmp_path, other)


# DSPy's settings and callbacks ----------------------------------------------------------------------


def test_dspy_configure_num_threads_is_honoured():
    world = TriageWorld()
    threads: set[str] = set()

    def respond(call, original=world.respond):
        if call.kind == "program":
            threads.add(threading.current_thread().name)
        return original(call)

    world.engine.responder = respond
    opt = AutoEvolInstruct(label_matches, lm=world.lm, optimizer_lm=world.lm, num_candidates=2, batch_sampler=4,
                           dev_size=12, max_steps=1, holdout=0, progress=False)
    with dspy.context(num_threads=1):
        opt.compile(Triage(), trainset=TRAIN, valset=DEV)
        assert opt.threads() == 1
    assert len({name for name in threads if name.startswith("autoevol-eval")}) == 1  # one evaluation thread
    assert AutoEvolInstruct(label_matches, num_threads=3).threads() == 3  # an explicit setting wins


class EvaluateLikeCallback(dspy.utils.callback.BaseCallback):
    """A callback written for dspy.Evaluate: it reads the instance, the program and the per-case results."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, dspy.Evaluate, dict]] = []
        self.ends: dict[str, object] = {}

    def on_evaluate_start(self, call_id, instance, inputs):
        self.starts.append((call_id, instance, inputs))

    def on_evaluate_end(self, call_id, outputs, exception=None):
        self.ends[call_id] = outputs


def test_dspy_evaluate_callbacks_get_what_dspy_evaluate_gives():
    seen = EvaluateLikeCallback()
    world = TriageWorld()
    with dspy.context(callbacks=[seen]):
        opt = optimizer(world, max_steps=1)
        opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    expected_inputs = set(inspect.signature(dspy.Evaluate.__call__).parameters) - {"self"}
    assert seen.starts
    for call_id, instance, inputs in seen.starts:
        assert isinstance(instance, dspy.Evaluate) and instance.metric is label_matches
        assert set(inputs) == expected_inputs
        assert isinstance(inputs["program"], Triage) and inputs["devset"] == DEV == instance.devset
        outputs = seen.ends[call_id]
        trial = next(t for t in opt.result.trials if t.number == inputs["callback_metadata"]["trial_number"])
        assert len(outputs.results) == trial.evaluated
        for example, prediction, score in outputs.results:
            assert example in DEV and score == float(label_matches(example, prediction))
        assert outputs.score == pytest.approx(100 * sum(s for _, _, s in outputs.results) / len(outputs.results), abs=0.01)


# Async programs and the retry log -------------------------------------------------------------------


def test_an_aforward_only_module_compiles_from_inside_a_running_event_loop():
    sync = optimizer(TriageWorld(), max_steps=1)
    sync.compile(Triage(), trainset=TRAIN, valset=DEV)
    world = TriageWorld()
    run_async = optimizer(world, max_steps=1, num_threads=1)

    async def main() -> dspy.Module:
        return run_async.compile(AsyncTriage(), trainset=TRAIN, valset=DEV)

    asyncio.run(main())
    assert not any(t.failures_by_category.get("program_error") for t in run_async.result.trials)
    assert run_async.result.initial_failure_rate == sync.result.initial_failure_rate
    trajectories = [call.inputs["trajectory"] for call in world.engine.calls if call.kind == "analysis"]
    assert trajectories and not any("event loop" in text for text in trajectories)  # the LM analyses real runs
    assert run_async.result.plans[0].trajectory_failures == sync.result.plans[0].trajectory_failures


def test_the_retry_log_counts_to_the_number_of_retries_and_no_further(caplog):
    world = TriageWorld()

    def rewrite(call, original=world.engine.responder):
        if call.kind == "rewrite":
            return {"improved_instructions": "Improved instruction"}
        return original(call)

    world.engine.responder = rewrite
    with caplog.at_level(logging.INFO, logger="autoevol_dspy"):
        optimizer(world, num_candidates=2, max_steps=1, num_threads=1).compile(Triage(), trainset=TRAIN, valset=DEV)
    lines = [r.getMessage() for r in caplog.records if "every sample was refused" in r.getMessage()]
    assert lines == ["step 1: every sample was refused; asking again (1 of 2)",
                     "step 1: every sample was refused; asking again (2 of 2)",
                     "step 1: every sample was refused, after 2 retries; the step has no candidate"]


# Calls sent vs answered from DSPy's cache -----------------------------------------------------------


def test_a_rerun_answered_from_dspys_cache_says_so_instead_of_zero_calls(monkeypatch):
    from dspy.clients.cache import Cache

    monkeypatch.setattr(dspy, "cache", Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None))
    world = TriageWorld()
    lm, engine = scripted_lm(world.respond, cache=True)
    runs = []
    for _ in range(2):
        opt = optimizer(world, lm=lm, optimizer_lm=lm, max_steps=1)
        opt.compile(Triage(), trainset=TRAIN, valset=DEV)
        runs.append(opt.result)
    first, rerun = runs
    assert first.usage.calls == len(engine.calls) > 0
    assert rerun.usage.calls == 0 and rerun.cached_calls == first.usage.calls + first.cached_calls
    assert f"0 LM calls sent, {rerun.cached_calls} answered from DSPy's cache" in rerun.describe()
