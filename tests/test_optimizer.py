"""The optimization loop on a scripted world: selection, acceptance, patience, budget, early stop."""

from __future__ import annotations

import logging

import dspy
import pytest

from autoevol_dspy import AutoEvolError, AutoEvolInstruct, ConfigurationError, DataError, EvolInstruct
from autoevol_dspy.search.strategies import ExactEarlyStop, FullEvaluation, stop_when
from autoevol_dspy.tasks import EvolutionTask
from world import World, bucket, expected_failures, method, seeds


def optimizer(world: World, *, batch_size: int = 4, patience: int = 1, max_lm_calls: int | None = None,
              early_stop: bool = True, **overrides) -> AutoEvolInstruct:
    settings = dict(
        task=EvolutionTask(lm=world.lm, response_lm=world.lm), lm=world.lm, optimizer_lm=world.lm,
        num_candidates=3, batch_sampler=batch_size, dev_size=20, max_steps=1, num_threads=1, seed=0, progress=False,
        stopper=stop_when(patience=patience, max_lm_calls=max_lm_calls),
        evaluation=ExactEarlyStop() if early_stop else FullEvaluation(),
    )
    settings.update(overrides)
    return AutoEvolInstruct(**settings)


def dev_and_train(count: int = 30):
    data = seeds(count)
    return data[:10], data[10:]


def test_best_candidate_replaces_incumbent():
    world = World({60: [method(50), method(20), method(40)]})
    train, dev = dev_and_train()
    opt = optimizer(world)
    compiled = opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    dev_texts = [e.instruction for e in dev]
    assert compiled.method == method(20)
    result = opt.result
    assert result.initial_failure_rate == expected_failures(60, dev_texts) / 20
    assert result.best_failure_rate == expected_failures(20, dev_texts) / 20
    assert result.steps[0].accepted
    kinds = [t.kind for t in result.trials]
    assert kinds == ["baseline", "candidate", "candidate", "candidate"]
    assert all(t.feedback for t in result.trials[1:])
    assert result.failure_rate_by_step == [result.initial_failure_rate, result.best_failure_rate]


def test_equal_failure_rate_does_not_replace_incumbent():
    world = World({60: [method(60, "reworded")]})
    train, dev = dev_and_train()
    opt = optimizer(world, num_candidates=1, early_stop=False)
    compiled = opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    assert compiled.method == method(60)
    assert not opt.result.steps[0].accepted
    assert opt.result.trials[1].failure_rate == opt.result.trials[0].failure_rate


def test_patience_stops_after_steps_without_improvement():
    world = World({60: [method(60, "same")]})
    train, dev = dev_and_train()
    opt = optimizer(world, num_candidates=1, max_steps=5, patience=2)
    opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    assert opt.result.stop_reason == "patience"
    assert len(opt.result.steps) == 2


def test_patience_resets_after_an_improvement():
    world = World({60: [method(61, "worse")], 61: [], 30: [method(31)]})
    world.script[60] = [method(70), method(30)]
    train, dev = dev_and_train()
    opt = optimizer(world, num_candidates=2, max_steps=4, patience=1)
    opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    accepted = [s.accepted for s in opt.result.steps]
    assert accepted == [True, False]
    assert opt.result.stop_reason == "patience"


def test_budget_stops_the_run():
    world = World({60: [method(50), method(20), method(40)], 20: [method(10)]})
    train, dev = dev_and_train()
    opt = optimizer(world, max_steps=5, max_lm_calls=60, early_stop=False, holdout=0)  # the budget bounds the search
    opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    result = opt.result
    assert result.stop_reason == "budget"
    # The budget is checked between LM calls; one call in flight per thread may overshoot it.
    assert result.usage.calls <= 60 + 1


def test_a_budget_that_stops_a_step_keeps_what_its_finished_candidates_found(tmp_path):
    """The limit falls after the step's second candidate (the best) and inside its third: the finished ones
    decide the step for this run, and a rerun with a higher limit finishes the step and decides it again."""
    world = World({60: [method(50), method(20), method(40)]})
    train, dev = dev_and_train()
    opt = optimizer(world, max_lm_calls=120, early_stop=False, holdout=0, run_dir=tmp_path)
    compiled = opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    result = opt.result
    assert result.stop_reason == "budget"
    assert [t.status for t in result.trials] == ["complete", "complete", "complete", "failed"]
    assert compiled.method == method(20) and result.best_failure_rate < result.initial_failure_rate
    assert [(s.step, s.accepted, s.cut_short) for s in result.steps] == [(1, True, True)]
    import optuna

    study = optuna.load_study(study_name=tmp_path.name, storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert "step:0001:outcome" not in study.user_attrs and "step:0001:cut" in study.user_attrs

    rerun = optimizer(world, early_stop=False, holdout=0, run_dir=tmp_path)
    compiled = rerun.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    assert [t.status for t in rerun.result.trials] == ["complete", "complete", "complete", "failed", "complete"]
    assert [(s.step, s.accepted, s.cut_short) for s in rerun.result.steps] == [(1, True, False)]
    assert compiled.method == method(20)


def test_under_the_paper_protocol_a_cut_step_compares_with_its_own_remeasured_incumbent():
    from autoevol_dspy.search.strategies import PaperProtocol

    world = World({60: [method(50), method(20), method(40)]})
    train, dev = dev_and_train()
    opt = optimizer(world, max_lm_calls=140, evaluation=PaperProtocol(), holdout=0)
    compiled = opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    trials = opt.result.trials
    assert [t.kind for t in trials] == ["baseline", "incumbent", "candidate", "candidate", "candidate"]
    assert trials[-1].status == "failed" and compiled.method == method(20)
    step = opt.result.steps[0]
    assert step.cut_short and step.accepted and step.incumbent_before == trials[1].number


def test_duplicate_candidates_are_evaluated_once():
    world = World({60: [method(40), method(40), method(30)]})
    train, dev = dev_and_train()
    opt = optimizer(world, early_stop=False)
    opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    plan = opt.result.plans[0]
    assert [c.samples for c in plan.candidates] == [[0, 1], [2]]
    assert len(opt.result.trials) == 3
    assert [t.samples for t in opt.result.trials] == [[], [0, 1], [2]]


def test_exact_early_stop_selects_the_same_method_with_fewer_calls():
    script = {60: [method(80), method(40), method(45), method(70)], 40: [method(90), method(35)]}
    train, dev = dev_and_train(40)
    outcomes = {}
    for early_stop in (False, True):
        world = World(dict(script))
        opt = optimizer(world, num_candidates=4, max_steps=2, patience=3, early_stop=early_stop)
        compiled = opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
        evolution_calls = sum(t.usage.by_role["evolution"].calls for t in opt.result.trials)
        statuses = [t.status for t in opt.result.trials]
        outcomes[early_stop] = (compiled.method, evolution_calls, statuses)
    assert outcomes[True][0] == outcomes[False][0] == method(35)
    assert outcomes[True][1] < outcomes[False][1]
    assert "pruned" in outcomes[True][2] and "pruned" not in outcomes[False][2]


def test_optimizer_output_without_a_method_is_discarded(caplog):
    world = World({60: ["", method(30)]})
    train, dev = dev_and_train()
    opt = optimizer(world, num_candidates=2)
    with caplog.at_level(logging.INFO, logger="autoevol_dspy"):
        compiled = opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    assert compiled.method == method(30)
    assert any("discarded" in record.getMessage() for record in caplog.records)
    assert len(opt.result.plans[0].discarded) == 1


def test_an_lm_outage_stops_the_run_and_is_never_saved_as_a_result(tmp_path):
    train, dev = dev_and_train()
    # A candidate whose evolutions all carry "OUTAGE" makes the response LM raise.
    world = World({60: ["Rewrite it harder and mark every rewrite with OUTAGE-MARK please. QUALITY=q10", method(30)]},
                  fail_response_for="OUTAGE-MARK")

    def respond(call, original=world.respond):
        if call.kind == "evolution" and "OUTAGE" in call.system:
            return {"evolved_instruction": f"{call.inputs['instruction']} Then explain each step. OUTAGE-MARK"}
        return original(call)

    world.engine.responder = respond
    opt = optimizer(world, num_candidates=2, run_dir=tmp_path)
    with pytest.raises(AutoEvolError, match="scripted outage.*rerun to continue"):
        opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    import optuna

    study = optuna.load_study(study_name=tmp_path.name, storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]
    assert "step:0001:outcome" not in study.user_attrs  # the step is not decided on an outage

    world.engine.responder = world.respond  # the LM is healthy again: the rerun evaluates the candidate again
    world.fail_response_for = None
    rerun = optimizer(world, num_candidates=2, run_dir=tmp_path)
    compiled = rerun.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    assert compiled.method.endswith("QUALITY=q10")  # the candidate the outage interrupted, now measured and best
    assert [t.status for t in rerun.result.trials] == ["complete", "failed", "complete", "pruned"]


def test_the_dev_set_is_split_from_the_trainset_deterministically_and_disjoint():
    world = World({60: [method(30)]})
    data = seeds(30)
    opt = optimizer(world, dev_size=12, batch_size=5)
    opt.compile(EvolInstruct(method(60)), trainset=data)
    plan = opt.result.plans[0]
    # 20% held out first (6), then the dev set (12), the rest trains (12).
    assert opt.result.holdout_size == 6 and opt.result.dev_size == 12 and opt.result.train_size == 12
    assert len(plan.batch_indices) == 5


def test_compiled_method_survives_save_and_load(tmp_path):
    world = World({60: [method(30)]})
    train, dev = dev_and_train()
    compiled = optimizer(world).compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    compiled.save(tmp_path / "program.json")
    loaded = EvolInstruct()
    loaded.load(tmp_path / "program.json")
    assert loaded.method == method(30)


def test_result_serializes(tmp_path):
    world = World({60: [method(30)]})
    train, dev = dev_and_train()
    opt = optimizer(world, run_dir=tmp_path / "run")
    opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    from autoevol_dspy import RunResult

    loaded = RunResult.load(tmp_path / "run" / "result.json")
    assert loaded.best_method == method(30)
    assert (tmp_path / "run" / "study.db").exists()


@pytest.mark.parametrize(
    ("trainset", "message"),
    [
        ([], "trainset is empty"),
        (seeds(5), "needs 24"),
        ([dspy.Example(question="What is 2+2?")] * 40, "trainset[0] has no non-empty 'instruction' field (it has: question)"),
    ],
)
def test_bad_trainsets_get_one_line_errors(trainset, message):
    world = World()
    with pytest.raises(DataError) as info:
        optimizer(world).compile(EvolInstruct(method(60)), trainset=trainset)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_configuration_is_refused():
    with pytest.raises(ConfigurationError, match="num_candidates"):
        AutoEvolInstruct(num_candidates=0)


def test_the_analysis_sees_the_trajectory_and_the_rewrite_sees_the_feedback():
    world = World({60: [method(30)]})
    train, dev = dev_and_train()
    optimizer(world, num_candidates=1).compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    analysis = next(c for c in world.engine.calls if c.kind == "analysis")
    rewrite = next(c for c in world.engine.calls if c.kind == "rewrite")
    assert "Stage 0:" in analysis.inputs["trajectory"] and "Case 4" in analysis.inputs["trajectory"]
    assert "cases failed" in rewrite.inputs["feedback"]


def test_samples_use_distinct_rollout_ids_above_zero_temperature():
    from autoevol_dspy.search.proposer import InstructionProposer

    proposer = InstructionProposer(task=EvolutionTask(), lm=None, temperature=0.6, seed=0, style="rewrite")
    configs = [proposer.sources[0]._config(1, sample) for sample in range(5)]
    assert len({c["rollout_id"] for c in configs}) == 5
    assert all(c["temperature"] == 0.6 for c in configs)


def test_bucket_is_stable_across_processes_and_spreads_the_seeds():
    # A scripted method of quality q fails the seeds whose bucket is below q: buckets must not change
    # from process to process (no salted hash) and must spread the seeds over 0..99.
    assert bucket("x") == 86 and bucket("Task 0: add 0 and 3, then explain.") == 95
    buckets = [bucket(example.instruction) for example in seeds(60)]
    assert len(set(buckets)) > 40 and min(buckets) < 10 and max(buckets) > 90


def test_paper_protocol_selects_the_same_methods_with_more_calls():
    script = {60: [method(80), method(40), method(40), method(70)], 40: [method(90), method(35)]}
    train, dev = dev_and_train(40)
    runs = {}
    for name in ("autoevol", "paper"):
        world = World(dict(script))
        settings = dict(task=EvolutionTask(lm=world.lm), lm=world.lm, optimizer_lm=world.lm, num_candidates=4,
                        batch_sampler=4, dev_size=20, max_steps=2, stopper=stop_when(patience=3), num_threads=1,
                        progress=False)
        opt = AutoEvolInstruct.paper_protocol(**settings) if name == "paper" else AutoEvolInstruct(**settings)
        compiled = opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
        runs[name] = (compiled.method, opt.result.usage.calls, [s.incumbent_failure_rate for s in opt.result.steps])
    assert runs["paper"][0] == runs["autoevol"][0] == method(35)
    assert runs["paper"][2] == runs["autoevol"][2]
    assert runs["autoevol"][1] < runs["paper"][1]


def test_the_rewrite_remembers_earlier_candidates_with_their_rates_and_problems():
    world = World({60: [method(50), method(20), method(40)], 20: [method(25)]})
    train, dev = dev_and_train()
    opt = optimizer(world, max_steps=2, patience=2)
    opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev)
    rewrites = [c for c in world.engine.calls if c.kind == "rewrite"]
    first, later = rewrites[0].inputs["earlier_attempts"], rewrites[-1].inputs["earlier_attempts"]
    assert first.startswith("none yet")
    step_one = [t for t in opt.result.trials if t.step == 1]
    assert f"The current instructions have dev failure rate {opt.result.steps[0].incumbent_failure_rate:.3f}" in later
    for trial in step_one:
        if trial.number != opt.result.steps[0].incumbent_after:
            assert trial.instructions["evolve"] in later
    assert "main problems: unchanged" in later and "QUALITY=q50" in later
