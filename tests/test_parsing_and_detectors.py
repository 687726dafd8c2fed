"""The lenient reply parser and every failure detector."""

from __future__ import annotations

import pytest

from autoevol_dspy import EvolInstructRules, EvolutionCase, PaperResponseRules, parse_rewritten_instruction
from autoevol_dspy.evolution.detectors import LLMJudge
from autoevol_dspy.testing import scripted_lm


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Step 1 #Methods List#: a, b\nStep 4 #Finally Rewritten Instruction#: Solve x^2=4 for real x.", "Solve x^2=4 for real x."),
        ("#Finally Rewritten Instruction#:\nWrite a haiku about rain.", "Write a haiku about rain."),
        ("**Final Rewritten Instruction:** Sort the list in O(n log n).", "Sort the list in O(n log n)."),
        ("### Final Instruction\nList three primes above 100.", "List three primes above 100."),
        ("Step 3 #Rewritten Instruction#: draft\nStep 4 #Finally Rewritten Instruction#: final one", "final one"),
        ("Step 1 #Brainstorm#: ideas\nStep 2 #Polished Prompt#: Explain TCP in two paragraphs.", "Explain TCP in two paragraphs."),
        ("final rewritten instruction: \"Quote me.\"", "Quote me."),
    ],
)
def test_parser_finds_renamed_markers(reply, expected):
    assert parse_rewritten_instruction(reply) == expected


@pytest.mark.parametrize("reply", ["", "   ", "The answer is 42.", "#Finally Rewritten Instruction#:   "])
def test_parser_returns_none_without_a_final_instruction(reply):
    assert parse_rewritten_instruction(reply) is None


def case(response=None, evolved="Add 2 and 3, then prove the sum is odd.", instruction="Add 2 and 3."):
    return EvolutionCase(instruction=instruction, evolved=evolved, response=response)


@pytest.mark.parametrize(
    ("response", "category"),
    [
        ("Understood. What would you like me to do?", "stagnant_complexity"),
        ("Thank you for the instruction! How can I help?", "stagnant_complexity"),
        ("Sure, could you tell me which numbers?", "insufficient_qualification"),
        ("To answer, please provide the data set.", "loss_of_key_information"),
        ("The sum is 5, which is odd because 5 = 2*2 + 1.", None),
    ],
)
def test_paper_response_rules(response, category):
    failure = PaperResponseRules().detect(case(response))
    assert (failure.category if failure else None) == category


@pytest.mark.parametrize(
    ("kwargs", "category"),
    [
        (dict(evolved="add 2 and 3"), "unchanged"),
        (dict(evolved="#Rewritten Instruction#: Add 2 and 3 carefully."), "copied_template"),
        (dict(evolved="Rewrite the given prompt to add 2 and 3."), "copied_template"),
        (dict(response="Sorry, I cannot do that."), "short_apology"),
        (dict(response="Sorry for the delay. " + "The sum is five and it is odd. " * 12), None),
        (dict(response="... it is, and the!"), "empty_response"),
        (dict(response="The sum is 5."), None),
        (dict(response=None), None),
    ],
)
def test_evol_instruct_rules(kwargs, category):
    failure = EvolInstructRules().detect(case(**kwargs))
    assert (failure.category if failure else None) == category


def test_llm_judge_flags_no_information_gain():
    lm, engine = scripted_lm(lambda call: {"verdict": "equal" if call.inputs["first"] == "A" else "not equal"})
    judge = LLMJudge(lm=lm)
    assert judge.detect(case(instruction="A")).category == "no_information_gain"
    assert judge.detect(case(instruction="B")) is None
    assert engine.count("judge") == 2
