"""The proposal guard on real proposals of the embedded SmolLM2-135M optimizer, and rule by rule.

tests/data/embedded_proposals.jsonl holds proposals drawn from the embedded model with the
product's signatures and trajectories, each labelled by hand, plus hand-written usable
rewrites of the same incumbents (``source: reference``); tests/data/PROPOSALS.md says how
they were collected and what the guard measured on them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Literal

import dspy
import pytest
from dspy.utils import DummyLM

from autoevol_dspy.errors import ConfigurationError
from autoevol_dspy.evolution.method import INITIAL_METHOD
from autoevol_dspy.evolution.signatures import EvolveInstruction
from autoevol_dspy.search.strategies import proposal_guard
from autoevol_dspy.search.strategies.proposal_guard import (
    CopiesTrajectory,
    DropsTask,
    JudgeCheck,
    LengthOutOfRange,
    NamesPromptFormat,
    NotAnInstruction,
    ProposalCheck,
    ProposalContext,
    ProposalGuard,
    Rejection,
    RepeatsItself,
    RestatesInstructions,
    default_checks,
    retry_feedback,
)

DATA = Path(__file__).parent / "data" / "embedded_proposals.jsonl"
BENCHMARK = Path(__file__).parent.parent / "benchmarks" / "guard.py"
LABELS = {"usable", "answer", "question", "copies_case", "placeholder", "drops_task", "length", "other"}
ANSWER_THE_QUESTION = "Answer the question."
REVIEW_PROMPT = (Path(__file__).parent.parent / "examples" / "prompt" / "review_prompt.md").read_text()

# Trajectory cases of the kind that produced the garbage quoted in issue 15.
ISSUE_CASES = (
    "An isosceles triangle has two equal sides of 20 cm and a perimeter of 85 cm. How long is its base?",
    "The base of the isosceles triangle is 45.",
    "Sue read 120 pages. She finished 2/3 of a book. How long is her book?",
    "Her book is 180 pages.",
)
ISSUE_GARBAGE = (
    "The correct answer is 20. The base of the isosceles triangle is 45.",
    "How long is her book? She finished 2/3 of a book.",
    "Improved instruction",
)


def rows() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]


def context(row: dict) -> ProposalContext:
    return ProposalContext(text=row["proposal"], incumbent=row["incumbent"], trajectory=row["trajectory"],
                           cases=row["cases"], feedback=row["feedback"], output_fields=row["output_fields"])


def qa(text: str, *, cases: tuple[str, ...] = ISSUE_CASES, feedback: str = "") -> ProposalContext:
    return ProposalContext(text=text, incumbent=ANSWER_THE_QUESTION, cases=cases, feedback=feedback,
                           output_fields=("answer",))


# --- the real data ------------------------------------------------------------------------


def test_data_is_labelled_and_covers_the_three_kinds():
    data = rows()
    assert {row["label"] for row in data} <= LABELS
    embedded = [row for row in data if row["source"] == "embedded"]
    assert {row["kind"] for row in embedded} == {"program", "prompt", "evolution"}
    for kind in ("program", "prompt", "evolution"):
        assert sum(row["kind"] == kind for row in embedded) >= 25
    assert all(row["proposal"].strip() and row["incumbent"].strip() and row["cases"] for row in data)


@pytest.mark.parametrize("text", ISSUE_GARBAGE)
def test_the_garbage_quoted_in_the_issue_is_rejected(text):
    assert ProposalGuard().check(qa(text)) is not None
    assert ProposalGuard().check(qa(text, cases=())) is not None  # even without the cases to compare with


def test_garbage_from_the_embedded_model_is_rejected():
    garbage = [row for row in rows() if row["label"] != "usable"]
    rejected = sum(ProposalGuard().check(context(row)) is not None for row in garbage)
    assert len(garbage) >= 100
    assert rejected / len(garbage) >= 0.97  # measured: 0.99 (one garbled 'other' passes)


def test_every_kind_of_garbage_is_mostly_rejected():
    by_label: dict[str, list[bool]] = {}
    for row in rows():
        if row["label"] != "usable":
            by_label.setdefault(row["label"], []).append(ProposalGuard().check(context(row)) is not None)
    for label, verdicts in by_label.items():
        assert sum(verdicts) / len(verdicts) >= 0.9, label


def test_usable_rewrites_are_rarely_rejected():
    usable = [row for row in rows() if row["label"] == "usable"]
    wrongly = [row["proposal"][:80] for row in usable if ProposalGuard().check(context(row)) is not None]
    assert len(usable) >= 25
    assert len(wrongly) <= 1, wrongly  # measured: 0


def test_usable_rewrites_pass_against_every_real_trajectory_of_their_incumbent():
    data = rows()
    guard = ProposalGuard()
    pairs = wrongly = 0
    for usable in (row for row in data if row["label"] == "usable"):
        for seen in (row for row in data if row["source"] == "embedded" and row["incumbent"] == usable["incumbent"]):
            pairs += 1
            wrongly += guard.check(context({**seen, "proposal": usable["proposal"]})) is not None
    assert pairs >= 900
    assert wrongly <= pairs // 100  # measured: 0 of 1007


#: This data holds whole rewrites only: none keeps its incumbent whole, so RestatesInstructions has nothing to
#: catch here (its garbage, the amend that says the instructions again, is in its own tests below). Talk of the
#: prompt's JSON format is mostly caught by the earlier checks already; NamesPromptFormat alone catches 7.
_LEAST_CAUGHT = {"RestatesInstructions": 0, "NamesPromptFormat": 6}


@pytest.mark.parametrize("rule", default_checks(), ids=lambda rule: type(rule).__name__)
def test_each_rule_alone_rejects_garbage_and_spares_usable_rewrites(rule):
    data = rows()
    caught = sum(rule.check(context(row)) is not None for row in data if row["label"] != "usable")
    spared = sum(rule.check(context(row)) is None for row in data if row["label"] == "usable")
    assert caught >= _LEAST_CAUGHT.get(type(rule).__name__, 15)  # least: RepeatsItself, 16; most: DropsTask, 107
    assert spared == sum(row["label"] == "usable" for row in data)


# --- normal rewrites pass -----------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "Answer the question with only the final number, no units or words.",
    "Answer the question. Give only the final number, e.g. 7 or 2.5, with no explanation.",
    "Read the question carefully and answer it with a single number. Do not repeat the question.",
    "What does the question ask for? Work it out, then answer with that number only.",
    "Answer the question; the answer must be a bare number without a dollar sign or units.",
    "You are a careful solver. Answer the question in the answer field with one number and nothing else.",
])
def test_normal_rewrites_of_answer_the_question_pass(text):
    assert ProposalGuard().check(qa(text)) is None


def test_an_evolving_method_rewrite_that_keeps_its_steps_passes():
    rewrite = INITIAL_METHOD.replace(
        "Step 2:", "Never make it longer by adding unrelated topics.\nStep 2:"
    ) + "\nThe final rewritten instruction must be a request a user would send, never its answer."
    assert rewrite != INITIAL_METHOD
    cases = ("Mia has three times as many stamps as Leo. Together they have 64 stamps. How many does Leo have?",
             "This is a JSON object with the following fields: ")
    proposal = ProposalContext(text=rewrite, incumbent=INITIAL_METHOD, cases=cases,
                               output_fields=("evolved_instruction",))
    assert ProposalGuard().check(proposal) is None


def test_a_structured_prompt_with_one_more_rule_passes():
    rewrite = REVIEW_PROMPT.replace(
        "## Output format", "- A complaint dressed as praise is still a complaint.\n\n## Output format")
    cases = ("phone case", "Oh great, it cracked the first time I dropped it. Really protective.", "positive")
    proposal = ProposalContext(text=rewrite, incumbent=REVIEW_PROMPT, cases=cases, output_fields=("sentiment",))
    assert ProposalGuard().check(proposal) is None


# --- a strong optimizer's rewrites pass (issues 18 and 20) -----------------------------------


class ReviewSentiment(dspy.Signature):
    """Classify the sentiment of a product review."""

    review: str = dspy.InputField()
    sentiment: Literal["positive", "negative", "mixed"] = dspy.OutputField()


class Category(dspy.Signature):
    """Read the user's question and name its category."""

    question: str = dspy.InputField()
    category: Literal["math", "coding", "roleplay", "writing"] = dspy.OutputField()


class IsMath(dspy.Signature):
    text: str = dspy.InputField()
    is_math_problem: bool = dspy.OutputField()


REVIEW_CASES = ("Lovely warm light, but the base is so light that it tips over easily.", "negative")
#: The rewrite quoted in issues 18 and 20, refused as drops_task because it does not spell `sentiment`.
ISSUE_REWRITE = ("Decide whether the customer is positive, negative or mixed about the product. "
                 "Read the whole review carefully...")


def seen_with(signature: type[dspy.Signature], text: str, *, incumbent: str | None = None,
              cases: tuple[str, ...] = REVIEW_CASES) -> ProposalContext:
    """The proposal as the search shows it to the guard: with the predictor's output fields and their words."""
    return ProposalContext(text=text, incumbent=signature.instructions if incumbent is None else incumbent,
                           cases=cases, output_fields=tuple(signature.output_fields),
                           output_terms=proposal_guard.signature_terms(signature))


def test_signature_terms_are_the_outputs_values_and_description_words():
    assert proposal_guard.signature_terms(ReviewSentiment) == {"sentiment": ("positive", "negative", "mixed")}
    assert proposal_guard.signature_terms(IsMath) == {"is_math_problem": ("true", "false", "yes")}
    method = proposal_guard.signature_terms(EvolveInstruction)["evolved_instruction"]
    assert {"final", "rewritten", "instruction", "request"} <= set(method) and "the" not in method
    assert proposal_guard.signature_terms(dspy.Signature("question -> answer")) == {"answer": ()}


@pytest.mark.parametrize("incumbent", [ReviewSentiment.instructions,
                                       "Given the fields `review`, produce the fields `sentiment`."])
def test_the_sentiment_rewrite_of_the_issue_passes(incumbent):
    assert ProposalGuard().check(seen_with(ReviewSentiment, ISSUE_REWRITE, incumbent=incumbent)) is None


@pytest.mark.parametrize(("signature", "text"), [
    (ReviewSentiment, "Tell how the shopper feels about the item: positive, negative or mixed."),
    (ReviewSentiment, "Carefully read what the shopper wrote and determine whether it is positive, negative or mixed."),
    (Category, "Say whether the request is math, coding, roleplay or writing."),
    (IsMath, "Return true when the text asks for a number to be computed from its quantities, false otherwise."),
    (dspy.Signature("question -> answer", "Answer the question."),
     "Work the problem out and reply with the final number only."),
    (dspy.Signature("document -> summary", "Summarize the document."),
     "Condense the document into two sentences that keep its main point."),
])
def test_rewrites_that_name_the_output_in_other_words_pass(signature, text):
    assert ProposalGuard().check(seen_with(signature, text, cases=())) is None


def test_a_method_that_says_its_output_by_its_description_passes():
    rewrite = INITIAL_METHOD.replace("in `evolved_instruction`", "as the reply")
    assert rewrite != INITIAL_METHOD
    assert ProposalGuard().check(seen_with(EvolveInstruction, rewrite, incumbent=INITIAL_METHOD, cases=())) is None


def test_a_page_of_rules_for_a_short_incumbent_passes():
    rules = """You are given a grade-school math word problem. Compute the single number it asks for.

How to solve it:
1. List every quantity the problem gives and what it measures: items, money, time, distance or a rate.
2. Translate each relation the text states into an operation: "twice as many" doubles, "half of" halves,
   "per hour" multiplies by the hours, "percent of" takes that share, "more than" adds and "fewer than"
   subtracts.
3. Work in the order the story tells, and convert units before combining them: minutes to hours, cents to
   dollars, dozens to single items.
4. Check that the result is what the question asks for - the total, the remainder, the difference, or one
   person's share - and not a value from the middle of the working.
5. Round only at the end, and only when the question asks for whole items or cents.
6. When a rate changes part of the way through, split the time into its parts and add them up.

Reply with the final number only: digits with a decimal point where needed, no words, units, currency
signs or thousands separators, and none of the working."""
    assert 150 < len(rules.split()) < 500
    assert ProposalGuard().check(qa(rules, cases=())) is None


@pytest.mark.parametrize("text", [
    "Improve the instructions so the output fixes the problems in the feedback.",
    "I provided an assistant with instructions to perform a task. You are given those instructions, along with "
    "examples of different task inputs provided to the assistant, the assistant's response for each of them",
    "def improve_instructions(current_instructions, feedback):\n    # Output the improved instructions\n    return",
])
def test_a_word_for_the_output_does_not_save_a_text_about_rewriting_instructions(text):
    rejection = ProposalGuard().check(seen_with(dspy.Signature("question -> answer", "Answer the question."), text,
                                                cases=()))
    assert rejection is not None


def test_the_embedded_models_garbage_is_still_refused_with_the_signatures_words():
    terms = {"program": {"answer": ()}, "prompt": {"sentiment": ()},
             "evolution": proposal_guard.signature_terms(EvolveInstruction)}
    garbage = [row for row in rows() if row["label"] != "usable"]
    refused = sum(ProposalGuard().check(ProposalContext(
        text=row["proposal"], incumbent=row["incumbent"], trajectory=row["trajectory"], cases=row["cases"],
        feedback=row["feedback"], output_fields=row["output_fields"], output_terms=terms[row["kind"]])) is not None
        for row in garbage)
    assert refused / len(garbage) >= 0.97  # measured: 158 of 159


def test_the_guard_benchmark_sets_meet_the_goal():
    """benchmarks/guard.py's sets: <= 5% of 80 good instructions refused, >= 95% of 178 garbage caught."""
    spec = importlib.util.spec_from_file_location("guard_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCHMARK.parent))
    try:
        spec.loader.exec_module(module)
        verdicts = module.measure()["verdicts"]
    finally:
        sys.path.remove(str(BENCHMARK.parent))
    good = [v for v in verdicts if v["set"] == "good"]
    garbage = [v for v in verdicts if v["set"] == "garbage"]
    assert len(good) >= 80 and len(garbage) >= 170
    refused = [v["id"] for v in good if v["first"] is not None]
    assert len(refused) <= 0.05 * len(good), refused  # measured: 1 of 80
    assert sum(v["first"] is not None for v in garbage) >= 0.95 * len(garbage)  # measured: 175 of 178


# --- rule by rule -------------------------------------------------------------------------


def test_length_refuses_fragments_and_sprawl_unless_the_feedback_asks():
    rule = LengthOutOfRange()
    review = ProposalContext(text="Classify the review.", incumbent=REVIEW_PROMPT)
    assert rule.check(review).category == "length"
    asked = ProposalContext(text="Classify the review as positive, negative or mixed; one word, no punctuation.",
                            incumbent=REVIEW_PROMPT, feedback="The prompt is too long; make it shorter.")
    assert rule.check(asked) is None
    sprawl = " ".join(["Answer the question with one number."] * 100)  # 600 words: beyond a page of rules
    assert rule.check(qa(sprawl)).category == "length"
    assert rule.check(qa(sprawl, feedback="The instructions are too vague; add more detail.")) is None
    rules = "Answer the question. " + " ".join(f"Rule {i}: give one number only." for i in range(12))
    assert rule.check(qa(rules)) is None  # a short incumbent may grow by a paragraph of rules


def test_repeats_itself_refuses_loops_but_not_a_repeated_term():
    rule = RepeatsItself()
    loop = "The feedback is very good. " + "The improvements are very good. " * 12
    assert rule.check(qa(loop)).category == "repetition"
    numbered = " ".join(f"{i}. You're not happy." for i in range(1, 40))
    assert rule.check(qa(numbered)) is not None
    assert rule.check(ProposalContext(text=INITIAL_METHOD, incumbent=INITIAL_METHOD)) is None


def test_repeats_itself_refuses_a_loop_that_a_long_text_around_it_dilutes():
    # the embedded optimizer's amendment in a quality.py search (benchmarks/guard_sets/garbage.jsonl, g19)
    steps = " ".join(f"- Step {i}: Add a new requirement to the original instructions. Add a new requirement to "
                     "the instructions to make them more challenging." for i in range(2, 8))
    text = f"{INITIAL_METHOD}\n{INITIAL_METHOD}\n{steps}"
    rejection = RepeatsItself().check(ProposalContext(text=text, incumbent=INITIAL_METHOD))
    assert rejection is not None and "12 times" in rejection.reason
    assert RepeatsItself(loop_repeats=13).check(ProposalContext(text=text, incumbent=INITIAL_METHOD)) is None


def test_names_prompt_format_refuses_talk_of_json_that_neither_incumbent_nor_fields_bring():
    rule = NamesPromptFormat()
    for addition in ("The request is harder to follow, so I will give you a JSON object. Please provide the request.",
                     "Follow the schema of the reply."):
        rejection = rule.check(qa(f"{ANSWER_THE_QUESTION} {addition}"))
        assert rejection is not None and rejection.category == "format_talk", addition
    assert rule.check(qa("Answer the question. Give the answer as a bare number, and show no working.")) is None
    told = ProposalContext(text="Return the record as JSON with every key filled.", incumbent="Return the record as JSON.")
    assert rule.check(told) is None  # the incumbent asks for it
    typed = ProposalContext(text="Write the settings as a JSON object.", incumbent="Write the settings.",
                            output_fields=("settings_json",), output_terms={"settings_json": ("object",)})
    assert rule.check(typed) is None  # the output field is named for it


def test_repeats_itself_refuses_one_number_run_on_but_not_real_numbers():
    rule = RepeatsItself()
    loop = "Answer the question.\nOutput JSON object: {1.1.2.1.1.1.1.1.2.1.2.2.2.2.2.2.2.2.2.2.2.2.2.2.2"  # head_to_head
    rejection = rule.check(qa(loop))
    assert rejection is not None and rejection.category == "repetition" and "on and on" in rejection.reason
    fine = "Answer the question. Round to 2 decimals (e.g. 1,234,567.89), dates as 12/31/2024, times as 10:30."
    assert rule.check(qa(fine)) is None


FRAMED = ("Solve the problem in the question.\nAnswer the question.\n"
          "Give the answer as a bare number: digits only, with no words, units or symbols.")


@pytest.mark.parametrize("addition", [
    "A new rule has been implemented: Solve the problem in the question. Answer the question. Give the answer as "
    "a bare number: digits only, with no words, units or symbols.",  # the embedded model's amend, examples/
    "Remember: give the answer as a bare number.",
    "Solve the problem in the question.",
])
def test_restates_instructions_refuses_an_addition_that_says_them_again(addition):
    rule = RestatesInstructions()
    rejection = rule.check(ProposalContext(text=f"{FRAMED}\n{addition}", incumbent=FRAMED))
    assert rejection is not None and rejection.category == "restates"
    assert ProposalGuard().check(ProposalContext(text=f"{FRAMED} {addition}", incumbent=FRAMED,
                                                 output_fields=("answer",))).category == "restates"


@pytest.mark.parametrize("addition", [
    "Example answer: 2.5",  # a form shown: its number is what it adds
    "Reply with the answer only: no explanation, no working, no extra words.",
    "Read the question carefully and make sure the answer gives exactly what is asked for.",
    "Never round: a fraction of a dollar stays in the answer.",
])
def test_restates_instructions_lets_a_new_rule_through(addition):
    rule = RestatesInstructions()
    assert rule.check(ProposalContext(text=f"{FRAMED}\n{addition}", incumbent=FRAMED)) is None
    assert rule.check(ProposalContext(text=f"{addition} {FRAMED}", incumbent=FRAMED)) is None


def test_restates_instructions_leaves_a_rewrite_and_an_unchanged_text_to_the_other_checks():
    rule = RestatesInstructions()
    assert rule.check(ProposalContext(text="Work out the answer, then give it as a number.",
                                      incumbent=ANSWER_THE_QUESTION)) is None  # not the incumbent kept whole
    assert rule.check(ProposalContext(text=FRAMED, incumbent=" ".join(FRAMED.split()))) is None  # nothing added
    with pytest.raises(ConfigurationError):
        RestatesInstructions(min_new_share=0)


@pytest.mark.parametrize(("text", "category"), [
    ("{improved_instructions}", "placeholder"),
    ("improved_instructions", "placeholder"),
    ("[## current_instructions ## ]", "placeholder"),
    ("This is the improved instructions.", "placeholder"),
    ("][", "placeholder"),
    ("100", "answer"),
    ("The total income in June is $35.55", "not_instructions"),
    ("40x2 = 80 + 40 = 120", "answer"),
    ("The answer is 12 apples.", "answer"),
    ("Can you tell me more about the product?", "question"),
    ("The product is excellent, but has a few issues with the strap.", "not_instructions"),
    ("The instructions have been improved to fix the problems in the feedback.", "not_instructions"),
    # What the 135M optimizer wrote as a "rule" in a quality run (RESULTS.md): a report of an edit, no order.
    ("Added a new requirement to the instruction. The instruction is now more challenging.", "not_instructions"),
    ("Made the task harder.", "not_instructions"),
])
def test_not_an_instruction_names_what_it_is(text, category):
    rejection = NotAnInstruction().check(qa(text, cases=()))
    assert rejection is not None and rejection.category == category


def test_a_stated_value_is_an_answer_when_it_comes_from_the_cases():
    rule = NotAnInstruction()
    cases = ("Weng earns $12 an hour. How much did she earn in June?", "$35.55")
    assert rule.check(qa("The total income in June is $35.55", cases=cases)).category == "answer"
    limit = "Rewrite the instruction. The limit is 20 words.\nThe added text is at most 20 words."
    assert rule.check(ProposalContext(text=limit, incumbent="Rewrite the instruction.", cases=cases)) is None
    example = "Answer the question with the number only. Good: '18'. Bad: 'The answer is 18 dollars'."
    assert rule.check(qa(example, cases=cases)) is None


def test_not_an_instruction_accepts_imperatives_and_addressed_text():
    rule = NotAnInstruction()
    for text in ("Answer the question with one number.", "You are a math tutor; the reply is one number.",
                 "- Use digits only.\n- Never add units.", "Step 1: Read the problem. Step 2: Reply with the number.",
                 "If the review is sarcastic, treat it as negative.", "Embed the link in the answer.",
                 "Proceed step by step, then reply with the number.", "Reply with the number alone.",
                 "Apply the discount first, then multiply."):
        assert rule.check(qa(text)) is None, text


def test_drops_task_refuses_the_optimizers_own_task_and_another_task():
    rule = DropsTask()
    meta = rule.check(qa("Improve the instructions so they fix the problems in the feedback."))
    assert meta is not None and meta.category == "drops_task"
    review = ProposalContext(text="Write a friendly reply to the customer and thank them for the review.",
                             incumbent=REVIEW_PROMPT, output_fields=("sentiment",))
    assert rule.check(review) is not None
    assert rule.check(qa("Answer each question with the final number only.")) is None


def test_copies_trajectory_finds_numbers_names_and_sentences_of_the_cases():
    rule = CopiesTrajectory()
    cases = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
             "How many clips did Natalia sell altogether in April and May?", "72")
    assert "48" in rule.check(qa("Answer the question. Remember that 48 clips were sold.", cases=cases)).reason
    assert "Natalia" in rule.check(qa("Answer the question the way Natalia would.", cases=cases)).reason
    copied = rule.check(qa("Answer the question: she sold half as many clips in may.", cases=cases))
    assert copied is not None and "she sold half as many" in copied.reason
    assert rule.check(qa("Answer the question with one number, in 2 steps at most.", cases=cases)) is None
    assert rule.check(qa("Answer the question. Remember that 48 clips were sold.", cases=())) is None
    assert rule.check(qa("Answer the question with one number, e.g. 48 or 2.5.", cases=cases)) is None
    assert rule.check(qa("Answer the question.\nExample answer: 72", cases=cases)) is None  # a form shown by example
    assert rule.check(qa("Answer the question. An example: 72 is right.", cases=cases)) is not None  # not on its own line
    assert "Natalia" in rule.check(qa("Answer the question.\nExample answer: Natalia", cases=cases)).reason
    sarcasm = ("phone case", "Oh great, it cracked the first time I dropped it. Really protective.")
    assert rule.check(qa("Answer the question; sarcasm such as 'Oh great' or 'Really?' is a complaint.",
                         cases=sarcasm)) is None  # sentence-initial capitals are no names
    incumbent = "Rewrite the instruction. Add only 10 to 20 words."
    known = ProposalContext(text="Rewrite the instruction into a harder one. Add only 10 to 20 words.",
                            incumbent=incumbent, cases=("List the 20 largest files in a folder.",))
    assert rule.check(known) is None  # the incumbent's own numbers are no copy


# --- the guard ----------------------------------------------------------------------------


def test_guard_runs_cheap_rules_first_and_reports_the_first_rejection():
    guard = ProposalGuard()
    assert [type(rule).__name__ for rule in guard.checks] == [
        "LengthOutOfRange", "RepeatsItself", "RestatesInstructions", "NotAnInstruction", "NamesPromptFormat",
        "DropsTask", "CopiesTrajectory"]
    rejection = guard.check(qa("The correct answer is 20."))
    assert rejection.check == "NotAnInstruction"
    assert [r.check for r in guard.check_all(qa("The correct answer is 20."))] == [
        "NotAnInstruction", "CopiesTrajectory"]


def test_rejections_serialize_and_become_one_line_of_feedback():
    rejection = ProposalGuard().check(qa("{improved_instructions}"))
    assert Rejection.model_validate_json(rejection.model_dump_json()) == rejection
    line = retry_feedback(rejection)
    assert "\n" not in line and rejection.reason in line


def test_settings_are_keyword_only_described_and_validated():
    guard = ProposalGuard(checks=[LengthOutOfRange(min_ratio=0.5, max_ratio=3, slack_words=20),
                                  CopiesTrajectory(ngram=6, min_number=100)])
    assert guard.describe() == {"type": "ProposalGuard", "retries": 2, "checks": [
        {"type": "LengthOutOfRange", "min_ratio": 0.5, "max_ratio": 3, "slack_words": 20},
        {"type": "CopiesTrajectory", "ngram": 6, "min_number": 100}]}
    assert ProposalGuard().describe() != guard.describe()
    with pytest.raises(TypeError):
        LengthOutOfRange(0.5)  # type: ignore[misc]
    with pytest.raises(ConfigurationError):
        LengthOutOfRange(min_ratio=2, max_ratio=1)
    with pytest.raises(ConfigurationError):
        DropsTask(min_share=0)
    with pytest.raises(ConfigurationError):
        ProposalGuard(checks=[object()])  # type: ignore[list-item]


def test_checks_are_protocol_members_and_the_context_is_frozen():
    assert all(isinstance(rule, ProposalCheck) for rule in [*default_checks(), JudgeCheck()])
    proposal = ProposalContext(text="x", incumbent="y", cases=["a", "b"], output_fields=["answer"])
    assert proposal.cases == ("a", "b") and proposal.output_fields == ("answer",)
    with pytest.raises(AttributeError):
        proposal.text = "z"  # type: ignore[misc]


def test_judge_check_is_off_by_default_and_asks_its_lm():
    assert not any(isinstance(rule, JudgeCheck) for rule in ProposalGuard().checks)
    lm = DummyLM([{"usable": False, "reason": "it answers one case"}, {"usable": True, "reason": "fine"}])
    judge = JudgeCheck(lm=lm)
    rejection = judge.check(qa("The answer is 5."))
    assert rejection.category == "judged_unusable" and "answers one case" in rejection.reason
    assert judge.check(qa("Answer the question with one number.")) is None
    assert judge.describe() == {"type": "JudgeCheck", "lm": "dummy"}
