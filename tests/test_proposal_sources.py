"""Proposal sources: rules from the metric's feedback, general edits from the signature, the LM's rule with
worked examples, the mix of a step, and the source recorded with every candidate.

The scripted number world: a ``question -> answer`` program answers "The answer is N." unless
its instructions tell it to give the number alone; the metric accepts a bare number only and
says so in its feedback. Its optimizer LM writes only garbage (a question), which the guard
refuses, so any gain must come from the sources that do not need a capable LM.
"""

from __future__ import annotations

import re
import time
from typing import Literal

import dspy
import pytest

from autoevol_dspy import AutoEvolInstruct, ConfigurationError
from autoevol_dspy.search.demos import SHIPPED_AMEND_DEMOS, amend_demos
from autoevol_dspy.search.lm_sources import LMAmend, LMRewrite, OptimizerSettings, grouped_failures
from autoevol_dspy.search.proposer import InstructionProposer, default_sources, small_model_sources
from autoevol_dspy.search.strategies.edit_library import EditLibrary, example_of, framed, signature_edits
from autoevol_dspy.search.strategies.feedback_rules import FeedbackRules, rules_from_feedback
from autoevol_dspy.search.strategies.proposal_source import (
    Draft,
    ProposalRequest,
    ProposalSource,
    fields_of,
    first_unclaimed,
)
from autoevol_dspy.tasks import EvolutionTask, ProgramTask
from autoevol_dspy.testing import Call, scripted_lm

_NUMBER = re.compile(r"#(\d+)")


class Ask(dspy.Signature):
    """Answer the question."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()


class Classify(dspy.Signature):
    """Classify the review."""

    review: str = dspy.InputField()
    sentiment: Literal["positive", "negative", "mixed"] = dspy.OutputField()
    stars: int = dspy.OutputField(desc="the stars the reviewer would give, 1 to 5")


def bare_number(example: dspy.Example, prediction: dspy.Prediction) -> dspy.Prediction:
    answer = str(prediction.answer).strip()
    if answer.isdigit():
        return dspy.Prediction(score=1.0, feedback="Right.")
    return dspy.Prediction(score=0.0, feedback=f"Wrong: the answer {answer!r} is not a bare number; the answer "
                                               "must be the number alone, without words, units or symbols.")


def respond(call: Call) -> dict[str, str]:
    if call.kind == "analysis":
        return {"feedback": "Some cases failed."}
    if call.kind == "rewrite":
        key = "new_rule" if "new_rule" in call.outputs else "improved_instructions"
        return {key: "What is the number of apples?"}  # garbage a 135M optimizer LM writes: the guard refuses it
    number = _NUMBER.search(call.inputs["question"]).group(1)
    alone = re.search(r"number alone|bare number|answer only", call.instructions, re.IGNORECASE)
    return {"answer": number if alone else f"The answer is {number}."}


def questions(indices) -> list[dspy.Example]:
    return [dspy.Example(question=f"How many apples are in basket #{i}?", answer=str(i)).with_inputs("question")
            for i in indices]


def request(**overrides) -> ProposalRequest:
    inputs, outputs = fields_of(Ask)
    settings = dict(step=1, predictor="self", current="Answer the question.", trajectory="",
                    failures=(("metric_rejected", "Wrong: the answer 'The answer is 7.' is not a bare number; the "
                               "answer must be the number alone, without words, units or symbols."),),
                    inputs=inputs, outputs=outputs)
    settings.update(overrides)
    return ProposalRequest(**settings)


# Rules from the metric's feedback -----------------------------------------------------------------


def test_feedback_rules_keep_the_norm_and_drop_what_belongs_to_one_case():
    feedback = [
        "Wrong: the answer 'The answer is 7.' is not a bare number; the answer must be the number alone, "
        "without words, units or symbols.",
        "Wrong: the answer '12 apples' is not a bare number; the answer must be the number alone, without words, "
        "units or symbols.",
        "Expected 'positive' but got 'Positive!'. The label should be one lowercase word.",
        "the metric scored 0",
        "Case 3 needs 14 more items.",  # a number: about one case, no general rule
    ]
    assert rules_from_feedback(feedback) == [
        "The answer must be the number alone, without words, units or symbols.",
        "The label should be one lowercase word.",
    ]
    assert rules_from_feedback(["the metric scored 0", "Right."]) == []
    # a detector's report about one evolution is no norm, though it says "instead of" (a quality.py search
    # adopted it as a rule on HumanEval); the same subject with a modal is one
    assert rules_from_feedback(["it writes the code body instead of asking for it",
                                "This answer uses words instead of digits."]) == []
    assert rules_from_feedback(["Wrong: it must be a bare number, without words."]) == [
        "It must be a bare number, without words."]


@pytest.mark.parametrize("feedback", [
    "Incorrect. Only the final number is expected, with no explanation.",
    "The reply has to be a single number; do not add any words.",
    "You must reply with digits only: no sentence around them.",
])
def test_feedback_rules_read_norms_in_other_wordings(feedback):
    assert rules_from_feedback([feedback])


def test_feedback_rules_draft_appends_the_commonest_rule_once_per_run():
    source = FeedbackRules()
    first = request()
    draft = source.draft(first, sample=0)
    assert draft.text == ("Answer the question.\nThe answer must be the number alone, without words, units or "
                          "symbols.")
    assert source.draft(first, sample=1) is None  # the only rule is claimed by this step already
    later = request(tried=frozenset({" ".join(draft.text.split())}))
    assert source.draft(later, sample=0) is None  # and tried by the run
    assert source.draft(request(failures=(("metric_rejected", "the metric scored 0"),)), sample=0) is None


def test_feedback_rules_show_the_rule_with_a_right_output_first_when_the_run_has_one():
    """The rule with an accepted output shown before the instructions first (the edit library shows it after
    them), then the rule alone; an output the metric never accepted is not shown."""
    source = FeedbackRules()
    step = request(passed_outputs=({"answer": "48 / 2 + 48"},))
    rule = "The answer must be the number alone, without words, units or symbols."
    first, second = (source.draft(step, sample=i).text for i in range(2))
    assert first == f"Example answer: 48 / 2 + 48\nAnswer the question.\n{rule}"
    assert second == f"Answer the question.\n{rule}"
    assert source.draft(step, sample=2) is None
    assert source.draft(request(passed_outputs=({"other": "5"},)), sample=0).text == f"Answer the question.\n{rule}"
    shown = request(current="Answer the question.\nExample answer: 7", passed_outputs=({"answer": "7"},))
    assert source.draft(shown, sample=0).text == f"Answer the question.\nExample answer: 7\n{rule}"  # said already


# General edits ---------------------------------------------------------------------------------------


def test_edits_are_made_from_the_signature_types_and_descriptions():
    inputs, outputs = fields_of(Classify)
    edits = signature_edits(inputs, outputs)
    assert edits[0] == "Give the stars as a bare number: digits only, with no words, units or symbols."
    assert "The stars is the stars the reviewer would give, 1 to 5." in edits
    assert any("review" in edit for edit in edits)
    _, sentiment_only = fields_of(Classify.delete("stars"))
    assert signature_edits(inputs, sentiment_only)[0] == \
        'Give the sentiment as exactly one of "positive", "negative" or "mixed", and nothing else.'


def test_edit_library_puts_the_tasks_edit_for_the_commonest_failure_first_and_never_repeats():
    task = EvolutionTask()
    failures = (("answered_instead", "it works out an equation"), ("answered_instead", "it explains"),
                ("near_copy", "90% of its words"))
    step = request(current="Rewrite the instruction into a harder one.", failures=failures,
                   edit_hints=task.edit_hints, outputs=(), inputs=())
    library = EditLibrary()
    drafts = [library.draft(step, sample=i) for i in range(3)]
    assert drafts[0].text.endswith(task.edit_hints["answered_instead"])
    assert drafts[1].text.endswith(task.edit_hints["near_copy"])
    assert drafts[2] is None  # nothing else is known about a signature without fields


def test_an_evolution_that_repeats_the_request_gets_the_edit_that_asks_about_a_variation():
    task = EvolutionTask()
    failures = (("repeats_itself", "it says the whole parent instruction twice"),) * 2 + (("near_copy", "90%"),)
    step = request(current="Add one requirement to the request.", failures=failures,
                   edit_hints=task.edit_hints, outputs=(), inputs=())
    first = EditLibrary().draft(step, sample=0)
    assert first.text == "Add one requirement to the request.\nAsk what changes if one number or condition of the " \
                         "request changes."


def test_a_text_field_gets_the_form_its_metrics_feedback_asks_for():
    """``answer: str`` says nothing of its form; a metric whose feedback asks for the number alone does."""
    step = request()
    library = EditLibrary()
    first, second = library.draft(step, sample=0), library.draft(step, sample=1)
    assert first.text == ("Solve the problem in the question.\nAnswer the question.\n"
                          "Give the answer as a bare number: digits only, with no words, units or symbols.")
    assert second.text == ("Answer the question.\n"
                           "Give the answer as a bare number: digits only, with no words, units or symbols.")
    other = request(failures=(("metric_rejected", "Wrong: the answer should name the city."),) * 3)
    assert "bare number" not in EditLibrary().draft(other, sample=0).text
    assert "Solve" not in EditLibrary().draft(other, sample=0).text  # a text answer implies no work to name
    bools = request(failures=(("metric_rejected", "Reply true or false only."),) * 2 + (("metric_rejected", "x"),))
    assert EditLibrary().draft(bools, sample=0).text.endswith("Give the answer as true or false, and nothing else.")
    mostly_other = request(failures=(("metric_rejected", "not a bare number"),) + (("metric_rejected", "too long"),) * 2)
    assert "bare number" not in EditLibrary().draft(mostly_other, sample=0).text  # one case in three is no pattern


def test_framed_instructions_name_the_work_the_form_implies_and_keep_the_users_words():
    inputs, outputs = fields_of(Classify.delete("stars"))
    assert framed("Classify the review.", inputs, outputs) == (
        "Read the review and choose the sentiment that fits.\nClassify the review.\n"
        'Give the sentiment as exactly one of "positive", "negative" or "mixed", and nothing else.')
    ask_inputs, ask_outputs = fields_of(Ask)
    assert framed("Answer the question.", ask_inputs, ask_outputs) is None  # a text answer: no work implied
    number = fields_of(Classify.delete("sentiment"))
    once = framed("Rate the review.", *number)
    assert once.startswith("Solve the problem in the review.\nRate the review.")
    assert framed(once, *number) is None  # never framed twice
    assert "\n\n" not in framed("", *number)  # empty instructions leave no empty line
    assert framed("Rate the review. Give the stars as a bare number: digits only, with no words, units or "
                  "symbols.", *number).count("bare number") == 1  # a form already said is not said again


def test_an_example_of_a_right_output_comes_from_the_run_else_from_the_metrics_feedback():
    _, (answer,) = fields_of(Ask)
    passed = ({"answer": "The answer is 7."}, {"answer": "12 apples."})
    assert example_of(answer, passed, ["Give it like '18 cards'."]) == "The answer is 7"  # accepted beats quoted
    assert example_of(answer, (), ["Not in the form: '7'. Write an amount such as $12 or $4.50."]) == "$12"
    assert example_of(answer, (), ["Wrong form: 'x'. Give a count like '18 cards' and nothing more."]) == "18 cards"
    assert example_of(answer, (), ["The reply must be a calculation, with no words."]) is None  # none quoted
    assert example_of(answer, ({"answer": "line one\nline two"}, {"answer": "x" * 200}), []) is None  # no one line
    assert example_of(answer, ({"other": "5"},), []) is None  # another field's output shows nothing of this one
    _, (sentiment, _) = fields_of(Classify)
    assert example_of(sentiment, ({"sentiment": "positive"},), []) is None  # one label shown pulls answers to it


def test_the_edit_library_shows_an_accepted_output_first_when_the_type_says_no_form():
    failures = (("metric_rejected", "Rejected: 'It is 41.' is not a calculation; the reply must be numbers and "
                                    "signs only."),)
    step = request(failures=failures, passed_outputs=({"answer": "48 / 2 + 48"},))
    assert EditLibrary().draft(step, sample=0).text == "Answer the question.\nExample answer: 48 / 2 + 48"
    inputs, outputs = fields_of(Classify.delete("sentiment"))
    assert signature_edits(inputs, outputs, example="4")[:2] == [
        "Give the stars as a bare number: digits only, with no words, units or symbols.", "Example stars: 4"]


def test_the_framed_instructions_come_again_with_an_example_before_the_form_appended_alone():
    """The framed candidate already says the form: the step's next edit adds the example to it, not the form
    appended to the plain instructions."""
    step = request(passed_outputs=({"answer": "18"},))
    library = EditLibrary()
    first, second, third = (library.draft(step, sample=i).text for i in range(3))
    framed_text = ("Solve the problem in the question.\nAnswer the question.\n"
                   "Give the answer as a bare number: digits only, with no words, units or symbols.")
    assert (first, second) == (framed_text, f"{framed_text}\nExample answer: 18")
    assert third == ("Answer the question.\n"
                     "Give the answer as a bare number: digits only, with no words, units or symbols.")
    assert library.draft(request(), sample=0).text == framed_text  # no example known: no twin


class _SlowFirstSample:
    """A source that needs no LM and takes longer on sample 0: with parallel drafting, sample 1 would claim first."""

    name, uses_lm = "slow_first", False

    def draft(self, request: ProposalRequest, *, sample: int, note: str = "") -> Draft | None:
        if sample == 0:
            time.sleep(0.05)
        text = first_unclaimed(request, [request.appended("Be brief."), request.appended("Be exact.")])
        return Draft(text=text) if text else None

    def describe(self) -> dict:
        return {"type": "SlowFirstSample"}


def test_sources_without_an_lm_draft_in_sample_order_whatever_the_threads():
    proposer = InstructionProposer(task=ProgramTask(metric=bare_number), lm=None, temperature=0.6, seed=0,
                                   sources=[_SlowFirstSample()])
    proposals = proposer.propose(request=request(), num_candidates=2, num_threads=2)
    assert [p.instructions for p in proposals] == ["Answer the question.\nBe brief.", "Answer the question.\nBe exact."]


# LM sources -------------------------------------------------------------------------------------------


def test_the_rule_writer_sees_worked_examples_and_the_runs_accepted_rules():
    lm, engine = scripted_lm(lambda call: {"new_rule": "Write the number alone."})
    source = LMAmend(analyse=False, demos=True)
    source.bind(OptimizerSettings(lm=lm, temperature=0.6, seed=0))
    accepted = (("Answer the question.", "- 3 case(s): too long", "Keep the answer short."),)
    draft = source.draft(request(accepted_rules=accepted), sample=0)
    assert draft.rule and draft.text == "Write the number alone."
    assert engine.count("analysis") == 0  # analyse=False: the grouped failures are the feedback
    messages = " ".join(str(m.get("content")) for m in lm.history[-1]["messages"])
    assert SHIPPED_AMEND_DEMOS[0][2] in messages and "Keep the answer short." in messages
    assert "1 case(s): metric_rejected: Wrong" in grouped_failures(request())
    assert len(amend_demos(accepted * 5)) == len(SHIPPED_AMEND_DEMOS) + 2


def test_default_sources_by_optimizer_lm_and_style():
    local = dspy.LM("local/SmolLM2-135M-Instruct")
    remote = dspy.LM("openai/gpt-4o-mini")
    assert [s.name for s in default_sources(local)] == [s.name for s in small_model_sources()]
    assert [type(s) for s in default_sources(remote)] == [LMRewrite]
    assert [type(s) for s in default_sources(local, "rewrite")] == [LMRewrite]
    assert all(isinstance(s, ProposalSource) for s in small_model_sources())
    with pytest.raises(ConfigurationError):
        AutoEvolInstruct(bare_number, proposal_style="mixed", proposal_sources=[EditLibrary()])


# A whole run -------------------------------------------------------------------------------------------


def test_a_run_with_a_garbage_optimizer_lm_finds_the_rule_in_the_metrics_feedback():
    lm, engine = scripted_lm(respond)
    optimizer = AutoEvolInstruct(bare_number, lm=lm, optimizer_lm=lm, proposal_style="mixed", num_candidates=4,
                                 batch_sampler=4, dev_size=8, max_steps=2, num_threads=1, holdout=0, progress=False)
    program = optimizer.compile(dspy.Predict(Ask), trainset=questions(range(20)), valset=questions(range(50, 58)))
    result = optimizer.result
    assert result.best_failure_rate == 0.0 and result.initial_failure_rate == 1.0
    best = next(t for t in result.trials if t.number == result.best_trial)
    assert best.source in ("feedback_rules", "edit_library")
    assert "number alone" in program.signature.instructions or "only" in program.signature.instructions
    plan = result.plans[0]
    assert plan.drafted_by_source.get("lm_amend", 0) >= 1 and plan.refused_by_source.get("lm_amend", 0) >= 1
    assert any("(lm_amend)" in line for line in plan.discarded)
    assert {c.source for c in plan.candidates} <= {"feedback_rules", "edit_library"}


def test_the_result_counts_proposals_by_source_and_names_the_winners():
    lm, _ = scripted_lm(respond)
    optimizer = AutoEvolInstruct(bare_number, lm=lm, optimizer_lm=lm, proposal_style="mixed", num_candidates=4,
                                 batch_sampler=4, dev_size=8, max_steps=1, num_threads=1, holdout=0, progress=False)
    optimizer.compile(dspy.Predict(Ask), trainset=questions(range(20)), valset=questions(range(50, 58)))
    rows = {row.source: row for row in optimizer.result.by_source()}
    assert rows["lm_amend"].refused >= 1 and rows["lm_amend"].accepted == 0
    winners = [row for row in rows.values() if row.accepted]
    assert len(winners) == 1 and winners[0].mean_dev_gain > 0
    assert sum(row.candidates for row in rows.values()) == sum(len(p.candidates) for p in optimizer.result.plans)
    text = optimizer.result.describe()
    assert f"drafted by {winners[0].source}" in text and "proposals by source:" in text


def counted(example: dspy.Example, prediction: dspy.Prediction) -> dspy.Prediction:
    """Right when the answer is the count and its noun ("7 apples"); the feedback quotes no example."""
    if str(prediction.answer).strip() == f"{example.answer} apples":
        return dspy.Prediction(score=1.0, feedback="Right.")
    return dspy.Prediction(score=0.0, feedback="Rejected: the reply must give the count followed by what is "
                                               "counted, with no other words.")


def test_a_run_shows_an_output_the_metric_accepted_as_an_example_and_adopts_it():
    """The task LM gets the form right on one case by itself, and on every case once it is shown that one."""

    def answer(call: Call) -> dict[str, str]:
        if call.kind != "program":
            return respond(call)
        number = _NUMBER.search(call.inputs["question"]).group(1)
        shown = "Example answer: 3 apples" in call.instructions
        return {"answer": f"{number} apples" if shown or number == "3" else f"The answer is {number}."}

    lm, _ = scripted_lm(answer)
    optimizer = AutoEvolInstruct(counted, lm=lm, optimizer_lm=lm, proposal_style="mixed", num_candidates=4,
                                 batch_sampler=4, dev_size=8, max_steps=1, num_threads=1, holdout=0, progress=False)
    program = optimizer.compile(dspy.Predict(Ask), trainset=questions(range(20)),
                                valset=questions([3, *range(50, 57)]))
    result = optimizer.result
    assert program.signature.instructions.endswith("Example answer: 3 apples")
    assert result.best_failure_rate == 0.0 and result.initial_failure_rate == 7 / 8
    assert next(t for t in result.trials if t.number == result.best_trial).source == "edit_library"


def test_the_exact_metric_states_the_norm_that_feedback_rules_can_use():
    from autoevol_dspy.prompt.metrics import ExactMatch

    metric = ExactMatch(output_field="sentiment")
    wrapped = metric(dspy.Example(sentiment="positive"), dspy.Prediction(sentiment="The sentiment is positive."))
    wrong = metric(dspy.Example(sentiment="positive"), dspy.Prediction(sentiment="negative"))
    assert wrapped.score == 0.0 and "must be the answer alone" in wrapped.feedback
    assert "must be" not in wrong.feedback  # a wrong label is no norm about the form
    assert rules_from_feedback([wrapped.feedback]) == ["The sentiment must be the answer alone, with no other words."]


def test_the_report_shows_proposals_by_source(tmp_path):
    from autoevol_dspy.report import write_report

    lm, _ = scripted_lm(respond)
    optimizer = AutoEvolInstruct(bare_number, lm=lm, optimizer_lm=lm, proposal_style="mixed", num_candidates=4,
                                 batch_sampler=4, dev_size=8, max_steps=1, num_threads=1, holdout=0, progress=False,
                                 run_dir=tmp_path / "run")
    optimizer.compile(dspy.Predict(Ask), trainset=questions(range(20)), valset=questions(range(50, 58)))
    html = write_report(tmp_path / "run").read_text(encoding="utf-8")
    section = html.split('<section id="sources">', 1)[1].split("</section>", 1)[0]
    for row in optimizer.result.by_source():
        assert f"<td>{row.source}</td>" in section
    assert "lm_amend" in section and "refused by the guard" in section
