"""Compiling any DSPy program: instructions per predictor, round-robin steps, metric forms, save/load, bad input.

A scripted triage world: message ``#i`` has the gold label ``LABELS[i % 3]``. The topic step
names the right topic when its instructions carry ``TAG-A`` (else only for even ``i``), the
label step copies the topic when its instructions carry ``TAG-B`` (else only when ``3 | i``),
and ``TAG-BAD`` breaks either step. The optimizer's rewrites add tags from a script, so the
failures of every candidate are known in advance.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict

import dspy
import pytest

from autoevol_dspy.search.strategies import NoImprovement
from autoevol_dspy.tasks import ProgramTask
from autoevol_dspy import AutoEvolInstruct, ConfigurationError, DataError
from autoevol_dspy.tasks.base import get_instructions
from autoevol_dspy.testing import Call, scripted_lm

LABELS = ("billing", "shipping", "refund")
_INDEX = re.compile(r"#(\d+)")


class NameTopic(dspy.Signature):
    """Name the topic of the customer message."""

    message: str = dspy.InputField()
    topic: str = dspy.OutputField()


class ChooseLabel(dspy.Signature):
    """Choose the label of the message from its topic."""

    message: str = dspy.InputField()
    topic: str = dspy.InputField()
    label: str = dspy.OutputField()


class Triage(dspy.Module):
    """Two dspy.Predict steps: topic, then label."""

    def __init__(self) -> None:
        super().__init__()
        self.topic = dspy.Predict(NameTopic)
        self.label = dspy.Predict(ChooseLabel)

    def forward(self, message: str) -> dspy.Prediction:
        topic = self.topic(message=message).topic
        return self.label(message=message, topic=topic)


class ReasonedTriage(Triage):
    """The topic step as a ChainOfThought (its predictor is ``topic.predict``)."""

    def __init__(self) -> None:
        super().__init__()
        self.topic = dspy.ChainOfThought(NameTopic)


def gold(i: int) -> str:
    return LABELS[i % 3]


def examples(indices) -> list[dspy.Example]:
    return [dspy.Example(message=f"Customer message #{i} about my order", label=gold(i)).with_inputs("message")
            for i in indices]


TRAIN = examples(range(100, 106))
DEV = examples(range(12))


class TriageWorld:
    """Program, analysis and rewrite behaviour in one responder; ``script`` maps a step name to rewrite tags."""

    def __init__(self, script: dict[str, list[str]] | None = None) -> None:
        self.script = script if script is not None else {"topic": ["TAG-BAD", "TAG-A"], "label": ["TAG-BAD", "TAG-B"]}
        self.counters: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.lm, self.engine = scripted_lm(self.respond)

    def respond(self, call: Call) -> dict[str, str]:
        if call.kind == "analysis":
            return {"feedback": f"{call.inputs['trajectory'].count('FAILED')} cases failed: the step guessed."}
        if call.kind == "rewrite":
            current = call.inputs["current_instructions"]
            step = "topic" if "topic of the customer message" in current else "label"
            with self.lock:
                options = self.script[step]
                tag = options[self.counters[step] % len(options)]
                self.counters[step] += 1
            return {"improved_instructions": f"{current} Follow rule {tag}."}
        return self.run_program_step(call)

    @staticmethod
    def run_program_step(call: Call) -> dict[str, str]:
        i = int(_INDEX.search(call.inputs["message"]).group(1))
        bad = "TAG-BAD" in call.system
        if "topic" in call.inputs:  # the label step
            right = ("TAG-B" in call.system or i % 3 == 0) and not bad
            return {"label": call.inputs["topic"] if right else "other"}
        right = ("TAG-A" in call.system or i % 2 == 0) and not bad
        answer = {"topic": gold(i) if right else "unknown"}
        if "`reasoning`" in call.system:
            answer = {"reasoning": "The message mentions an order.", **answer}
        return answer


def label_matches(example: dspy.Example, prediction: dspy.Prediction) -> bool:
    return prediction.label == example.label


def optimizer(world: TriageWorld, metric=label_matches, **overrides) -> AutoEvolInstruct:
    settings = dict(metric=None if "task" in overrides else metric, lm=world.lm, optimizer_lm=world.lm, num_candidates=2, batch_sampler=4,
                    dev_size=12, max_steps=2, num_threads=1, seed=0, progress=False, holdout=0)
    if "patience" in overrides:
        settings["stopper"] = NoImprovement(patience=overrides.pop("patience"))
    settings.update(overrides)
    return AutoEvolInstruct(**settings)


def failing(indices, passes) -> int:
    return sum(1 for i in indices if not passes(i))


# Rewriting and selection --------------------------------------------------------------------------


@pytest.mark.parametrize(("program_class", "names"), [(Triage, ["topic", "label"]),
                                                      (ReasonedTriage, ["topic.predict", "label"])])
def test_each_step_rewrites_one_predictor_in_turn_and_keeps_the_better_candidate(program_class, names):
    world = TriageWorld()
    student = program_class()
    initial = get_instructions(student)
    opt = optimizer(world)
    compiled = opt.compile(student, trainset=TRAIN, valset=DEV)
    result = opt.result

    assert [plan.predictor for plan in result.plans] == names
    assert [step.accepted for step in result.steps] == [True, True]
    instructions = get_instructions(compiled)
    assert instructions[names[0]].endswith("Follow rule TAG-A.")
    assert instructions[names[1]].endswith("Follow rule TAG-B.")
    assert "TAG-BAD" not in " ".join(instructions.values())
    assert result.initial_failure_rate == failing(range(12), lambda i: i % 6 == 0) / 12
    after_topic = failing(range(12), lambda i: i % 3 == 0) / 12
    assert result.failure_rate_by_step == [result.initial_failure_rate, after_topic, 0.0]
    assert get_instructions(student) == initial  # the student itself is left as it was
    for plan in result.plans:  # every candidate changes only the predictor its step chose
        before = result.trials[plan.incumbent_trial].instructions
        for candidate in plan.candidates:
            assert [name for name in names if candidate.instructions[name] != before[name]] == [plan.predictor]


def test_worse_candidates_never_replace_the_incumbent():
    world = TriageWorld({"topic": ["TAG-BAD"], "label": ["TAG-BAD"]})
    student = Triage()
    opt = optimizer(world, max_steps=2, patience=2)
    compiled = opt.compile(student, trainset=TRAIN, valset=DEV)
    assert get_instructions(compiled) == get_instructions(student)
    assert [step.accepted for step in opt.result.steps] == [False, False]
    assert opt.result.best_failure_rate == opt.result.initial_failure_rate


# Metric forms ---------------------------------------------------------------------------------------


def test_prediction_feedback_reaches_the_analysis_prompt():
    world = TriageWorld()

    def with_feedback(example, prediction, trace=None):
        right = prediction.label == example.label
        return dspy.Prediction(score=float(right), feedback=None if right else
                               f"FEEDBACK-7: expected {example.label!r}, got {prediction.label!r}")

    opt = optimizer(world, metric=with_feedback, max_steps=1)
    opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    analyses = [call for call in world.engine.calls if call.kind == "analysis"]
    assert analyses
    trajectory = analyses[0].inputs["trajectory"]
    assert "Feedback: FEEDBACK-7: expected" in trajectory
    assert "Score: 0" in trajectory and "Score: 1" in trajectory
    rejected = [t for t in opt.result.trials if t.failures_by_category.get("metric_rejected")]
    assert rejected


def test_gepa_five_argument_metric_is_accepted():
    world = TriageWorld()

    def gepa_metric(gold, pred, trace, pred_name, pred_trace):
        return dspy.Prediction(score=1.0 if pred.label == gold.label else 0.0, feedback="checked")

    opt = optimizer(world, metric=gepa_metric, max_steps=1)
    opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    assert opt.result.steps[0].accepted


def test_metric_exceptions_are_failures_with_their_reason_and_the_run_goes_on():
    world = TriageWorld()

    def fragile(example, prediction):
        index = int(_INDEX.search(example.message).group(1))
        if index % 4 == 0:
            raise ValueError(f"no gold label for message {index}")
        return prediction.label == example.label

    opt = optimizer(world, metric=fragile, max_steps=1)
    compiled = opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    baseline = opt.result.trials[0]
    assert baseline.failures_by_category["metric_error"] == 3  # 0, 4 and 8
    assert baseline.failures == 3 + failing([i for i in range(12) if i % 4], lambda i: i % 6 == 0)
    trajectory = next(call for call in world.engine.calls if call.kind == "analysis").inputs["trajectory"]
    assert re.search(r"Problem: metric_error \(ValueError: no gold label for message 10[04]\)", trajectory)
    assert get_instructions(compiled)["topic"].endswith("TAG-A.")


def graded(example, prediction):
    """1 when right, 0.5 when the label step gave up ('other'), 0 for a wrong topic."""
    if prediction.label == example.label:
        return 1.0
    return 0.5 if prediction.label == "other" else 0.0


@pytest.mark.parametrize(("threshold", "passes"), [
    (1.0, lambda i: i % 6 == 0),  # threshold 1.0: only fully right runs pass
    (0.5, lambda i: i % 6 != 3),  # only the runs scored 0 ('unknown' topic copied as label) fail
])
def test_numeric_metric_is_judged_against_a_threshold(threshold, passes):
    world = TriageWorld()
    opt = optimizer(world, task=ProgramTask(metric=graded, threshold=threshold), max_steps=0)
    opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    assert opt.result.initial_failure_rate == failing(range(12), passes) / 12


def test_numeric_metric_without_threshold_is_one_minus_the_mean_score():
    world = TriageWorld()
    opt = optimizer(world, metric=graded, max_steps=0)
    opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    losses = [0.0 if i % 6 == 0 else (1.0 if i % 6 == 3 else 0.5) for i in range(12)]
    assert opt.result.initial_failure_rate == pytest.approx(sum(losses) / 12)


def test_a_metric_scoring_every_case_0_9_gives_failure_rate_0_1():
    world = TriageWorld()
    opt = optimizer(world, metric=lambda example, prediction: 0.9, max_steps=0)
    opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    assert opt.result.initial_failure_rate == pytest.approx(0.1)


# What compile leaves alone, and what it keeps ----------------------------------------------------


def test_demos_and_lms_set_on_predictors_are_left_as_they_are():
    world = TriageWorld()
    label_lm, label_engine = scripted_lm(TriageWorld.run_program_step)
    student = Triage()
    demos = [dspy.Example(message="Customer message #900 about my order", topic="billing")]
    student.topic.demos = list(demos)
    student.label.lm = label_lm
    compiled = optimizer(world, max_steps=1).compile(student, trainset=TRAIN, valset=DEV)

    assert compiled.topic.demos == demos
    assert compiled.label.lm is label_lm
    assert compiled.topic.lm is None
    assert get_instructions(compiled)["topic"].endswith("TAG-A.")
    assert label_engine.calls and all("topic" in call.inputs for call in label_engine.calls)
    assert not any(call.kind == "program" and "topic" in call.inputs for call in world.engine.calls)


def test_compiled_program_saves_and_loads_with_dspy_and_keeps_its_instructions(tmp_path):
    world = TriageWorld()
    student = ReasonedTriage()
    student.label.demos = [dspy.Example(message="Customer message #901 about my order", topic="billing",
                                        label="billing")]
    compiled = optimizer(world).compile(student, trainset=TRAIN, valset=DEV)
    path = tmp_path / "triage.json"
    compiled.save(path)
    loaded = ReasonedTriage()
    loaded.load(path)
    assert get_instructions(loaded) == get_instructions(compiled)
    assert get_instructions(loaded) != get_instructions(ReasonedTriage())
    assert [dict(d) for d in loaded.label.demos] == [dict(d) for d in compiled.label.demos]
    with dspy.context(lm=world.lm):
        assert loaded(message="Customer message #5 about my order").label == gold(5)


# Bad input: one-line errors -----------------------------------------------------------------------


class NoPredictors(dspy.Module):
    def forward(self, message: str) -> dspy.Prediction:
        return dspy.Prediction(label="billing")


def two_args(example, prediction):
    return True


@pytest.mark.parametrize(("student", "trainset", "metric", "error", "message"), [
    (NoPredictors(), TRAIN, two_args, ConfigurationError, "the program has no predictors"),
    (Triage(), [dspy.Example(message="Customer message #1", label="shipping")] * 6, two_args, DataError,
     "trainset[0] has no inputs marked: build examples with dspy.Example(...).with_inputs("),
    (Triage(), [{"message": "Customer message #1", "label": "shipping"}] * 6, two_args, DataError,
     "has no inputs marked"),
    (Triage(), TRAIN, lambda prediction: True, ConfigurationError,
     "accepted forms: metric(example, prediction), metric(example, prediction, trace) or "
     "metric(gold, pred, trace, pred_name, pred_trace)"),
    (Triage(), TRAIN, lambda a, b, c, d: True, ConfigurationError, "takes 4 required argument(s)"),
    (Triage(), TRAIN, "exact", ConfigurationError, "the metric must be callable"),
])
def test_bad_input_gets_a_one_line_error(student, trainset, metric, error, message):
    world = TriageWorld()
    with pytest.raises(error) as info:
        optimizer(world, metric=metric).compile(student, trainset=trainset, valset=DEV)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert not world.engine.calls


# The proposal guard in a run (issue 15) ------------------------------------------------------------


def test_garbage_proposals_are_refused_and_the_step_asks_again_with_the_reasons():
    world = TriageWorld()
    garbage = iter(["The correct answer is 20. The base of the isosceles triangle is 45.",
                    "Improved instruction", "How long is her book? She finished 2 / 3 of a book."])
    seen_history = []

    def rewrite(call, original=world.engine.responder):
        if call.kind == "rewrite":
            seen_history.append(call.inputs.get("earlier_attempts", ""))
            text = next(garbage, None)
            if text is not None:
                return {"improved_instructions": text}
        return original(call)

    world.engine.responder = rewrite
    opt = optimizer(world, num_candidates=2, max_steps=1, num_threads=1)
    compiled = opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    plan = opt.result.plans[0]
    assert len(plan.discarded) == 3
    assert [d.split(":")[1].strip() for d in plan.discarded] == ["answer", "placeholder", "question"]
    assert "were refused" in seen_history[2] and "Improved instruction" in seen_history[2]
    assert [c.samples for c in plan.candidates] == [[3]]  # the retry's second sample made it
    assert "The correct answer" not in get_instructions(compiled)["topic"]


def test_a_step_whose_every_proposal_is_refused_keeps_the_incumbent_and_records_why():
    world = TriageWorld()

    def rewrite(call, original=world.engine.responder):
        if call.kind == "rewrite":
            return {"improved_instructions": "Improved instruction"}
        return original(call)

    world.engine.responder = rewrite
    opt = optimizer(world, num_candidates=2, max_steps=1, num_threads=1)
    compiled = opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    plan = opt.result.plans[0]
    assert plan.candidates == [] and len(plan.discarded) == 2 * 3  # m samples, then two more rounds
    assert all("length" in d or "placeholder" in d for d in plan.discarded)
    assert get_instructions(compiled) == get_instructions(Triage())


def test_amend_proposals_append_one_rule_and_refuse_echoes():
    world = TriageWorld()
    rules = iter(["The rule must be general: it applies to every case, never mentions a specific case",
                  "Always name one of the four teams exactly as written. TAG-A."])

    def amend(call, original=world.engine.responder):
        if "new_rule" in call.outputs:
            return {"new_rule": next(rules, "Keep answers short.")}
        return original(call)

    world.engine.responder = amend
    opt = optimizer(world, num_candidates=2, max_steps=1, num_threads=1, proposal_style="amend")
    compiled = opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    plan = opt.result.plans[0]
    assert [d.split(":")[1].strip() for d in plan.discarded] == ["echoes_prompt"]
    initial = get_instructions(Triage())[plan.predictor]
    assert plan.candidates[0].instructions[plan.predictor] == (
        f"{initial}\nAlways name one of the four teams exactly as written. TAG-A.")
    assert get_instructions(compiled)[plan.predictor].startswith(initial)


def test_a_rule_that_copies_the_guards_retry_message_is_an_echo():
    from autoevol_dspy.search.proposer import _echo

    # Real rules the embedded model appended in benchmarks/head_to_head.py after a refused round.
    assert _echo("Your previous rewrite was refused (not_instructions)").category == "echoes_prompt"
    assert _echo("Your previous rewrite was refused (placeholder): it holds only symbols, not instructions. "
                 "Write general instructions for the same task, not an answer, a questi").category == "echoes_prompt"
    # The embedded model copied a worked example's rule (another task) under a question-answer program.
    copied = _echo("Never answer or solve the instruction: output only the new, harder instruction.")
    assert copied.category == "echoes_prompt" and "worked example" in copied.reason
    # The embedded model described its own reply format (passed the guard in benchmarks/head_to_head.py).
    own = _echo("Your JSON object should have a `new_rule` field with a JSON string with the following format: ```json {")
    assert own.category == "echoes_prompt" and "reply format" in own.reason
    for usable in ["Reply with the final answer only, as a bare number.",
                   "Give the new_price as a bare number.",
                   "Always name one of the four teams exactly as written.",
                   "Keep every number and name of the original instruction."]:
        assert _echo(usable) is None, usable


# What DSPy users expect (issue 11) ------------------------------------------------------------------


def test_with_default_patience_every_predictor_of_a_pipeline_gets_its_turn():
    world = TriageWorld({"topic": ["TAG-BAD"], "label": ["TAG-BAD"]})  # no rewrite ever helps
    opt = AutoEvolInstruct(metric=label_matches, lm=world.lm, optimizer_lm=world.lm, num_candidates=1,
                           batch_sampler=4, dev_size=12, holdout=0, num_threads=1, progress=False)
    opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    assert [plan.predictor for plan in opt.result.plans] == ["topic", "label"]  # patience 1 = one full round
    assert opt.result.stop_reason == "patience"


class AsyncTriage(dspy.Module):
    """The same pipeline with only ``aforward``: DSPy's ``acall`` runs it."""

    def __init__(self) -> None:
        super().__init__()
        self.topic = dspy.Predict(NameTopic)
        self.label = dspy.Predict(ChooseLabel)

    async def aforward(self, message: str) -> dspy.Prediction:
        topic = (await self.topic.acall(message=message)).topic
        return await self.label.acall(message=message, topic=topic)


def test_a_module_with_only_aforward_runs():
    world = TriageWorld()
    sync, run_async = optimizer(world, max_steps=1), optimizer(TriageWorld(), max_steps=1)
    sync.compile(Triage(), trainset=TRAIN, valset=DEV)
    run_async.compile(AsyncTriage(), trainset=TRAIN, valset=DEV)
    assert run_async.result.initial_failure_rate == sync.result.initial_failure_rate
    assert not any(t.failures_by_category.get("program_error") for t in run_async.result.trials)


def test_no_lm_anywhere_is_one_clear_error_before_any_call():
    with pytest.raises(ConfigurationError, match="no LM to run the program with"):
        AutoEvolInstruct(metric=label_matches, progress=False).compile(Triage(), trainset=TRAIN, valset=DEV)


def test_an_outage_of_a_judge_metrics_lm_is_an_outage_not_a_metric_error():
    from autoevol_dspy import AutoEvolError
    from dspy.utils.exceptions import LMServerError

    world = TriageWorld()

    def judge(example, prediction):
        raise LMServerError("the judge's server answered 503", provider="stub")

    with pytest.raises(AutoEvolError, match="an LM call failed: .*503"):
        optimizer(world, metric=judge, max_steps=1).compile(Triage(), trainset=TRAIN, valset=DEV)
