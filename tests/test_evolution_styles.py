"""Typed evolution: the evolved instruction in its own field, the extend style, the marker fallback."""

from __future__ import annotations

import dspy

from autoevol_dspy import EvolInstruct
from autoevol_dspy.evolution.method import EXTEND_DEMOS, INITIAL_EXTEND_METHOD, INITIAL_METHOD, default_style
from autoevol_dspy.evolution.unit import Evolver
from autoevol_dspy.testing.fake_lm import scripted_lm

SEED = "Tina makes $18.00 an hour. How much does she make in a 10-hour shift?"


def evolve_with(answer, program: EvolInstruct, **evolver):
    lm, engine = scripted_lm(lambda call: answer(call))
    result = Evolver(lm=lm, respond=False, **evolver).evolve_round(program, SEED)
    return result, lm


def test_the_typed_field_is_the_evolved_instruction():
    added = f"{SEED} Overtime after 8 hours pays 1.5 times the rate; show each step."
    result, _ = evolve_with(lambda call: {"evolved_instruction": added}, EvolInstruct())
    assert result.evolved == added and result.failure is None


def test_a_paper_format_reply_in_the_field_goes_through_the_marker_parser():
    reply = ("Step 1 #Methods List#: add overtime\nStep 2 #Plan#: add it\n"
             f"Step 4 #Finally Rewritten Instruction#: {SEED} Overtime pays 1.5 times the rate after 8 hours.")
    result, _ = evolve_with(lambda call: {"evolved_instruction": reply}, EvolInstruct("Use the paper's steps."))
    assert result.evolved == f"{SEED} Overtime pays 1.5 times the rate after 8 hours."


def test_a_free_text_reply_that_does_not_parse_falls_back_to_the_marker():
    reply = f"Sure.\n#Finally Rewritten Instruction#: {SEED} Overtime pays 1.5 times the rate after 8 hours."
    result, _ = evolve_with(lambda call: reply, EvolInstruct("Use the paper's steps."))
    assert result.evolved == f"{SEED} Overtime pays 1.5 times the rate after 8 hours." and result.failure is None


def test_an_empty_reply_field_is_a_failure_with_its_reason_not_a_crash():
    result, _ = evolve_with(lambda call: {"evolved_instruction": "  "}, EvolInstruct())
    assert result.evolved is None and result.failure.category == "unparseable_evolution"
    assert "no evolved instruction" in result.failure.reason
    garbage, _ = evolve_with(lambda call: "no fields at all", EvolInstruct())
    assert garbage.failure.category == "unparseable_evolution" and "did not parse" in garbage.failure.reason


def test_the_extend_style_appends_the_addition_and_worked_examples_reach_the_lm_when_attached():
    program = EvolInstruct(style="extend")
    assert program.method == INITIAL_EXTEND_METHOD and program.evolve.demos == []
    addition = "Overtime after 8 hours pays 1.5 times the rate; show each step."
    result, lm = evolve_with(lambda call: {"added_requirement": addition}, program)
    assert result.evolved == f"{SEED} {addition}" and result.reply == addition
    program.evolve.demos = [dspy.Example(**demo) for demo in EXTEND_DEMOS]
    result, lm = evolve_with(lambda call: {"added_requirement": addition}, program)
    assert EXTEND_DEMOS[1]["added_requirement"] in str(lm.history[-1]["messages"])


def test_the_style_follows_the_lm():
    assert default_style(dspy.LM("local/SmolLM2-135M-Instruct")) == "extend"
    assert default_style(dspy.LM("openai/gpt-4o-mini")) == "rewrite"
    with dspy.context(lm=dspy.LM("local/model")):
        assert default_style() == "extend" and EvolInstruct.for_lm().style == "extend"
    strong = EvolInstruct.for_lm(dspy.LM("hosted_vllm/Qwen"), rounds=2)
    assert strong.style == "rewrite" and strong.method == INITIAL_METHOD and strong.rounds == 2


def test_an_empty_addition_is_a_failure(tmp_path):
    result, _ = evolve_with(lambda call: {"added_requirement": ""}, EvolInstruct(style="extend"))
    assert result.failure.category == "unparseable_evolution"


def test_the_style_and_its_demos_survive_save_and_load(tmp_path):
    program = EvolInstruct("Add one constraint.", style="extend")
    program.evolve.demos = [dspy.Example(**demo) for demo in EXTEND_DEMOS]
    program.save(tmp_path / "method.json")
    loaded = EvolInstruct(style="extend")
    loaded.load(tmp_path / "method.json")
    assert loaded.method == "Add one constraint." and len(loaded.evolve.demos) == len(EXTEND_DEMOS)
    assert EvolInstruct().method == INITIAL_METHOD and not EvolInstruct().evolve.demos


def test_the_json_adapter_is_chosen_for_an_in_process_model_and_can_be_overridden():
    from autoevol_dspy.lm.context import adapter_context

    local = dspy.LM("local/model")
    with dspy.context(lm=local), adapter_context(None):
        assert isinstance(dspy.settings.adapter, dspy.JSONAdapter)
    with dspy.context(lm=local), adapter_context(dspy.ChatAdapter()):
        assert type(dspy.settings.adapter) is dspy.ChatAdapter
    with dspy.context(lm=dspy.LM("openai/x"), adapter=None), adapter_context(None):
        assert dspy.settings.adapter is None


def test_an_addition_that_copies_a_worked_example_fails_as_a_copy():
    program = EvolInstruct(style="extend")
    program.evolve.demos = [dspy.Example(**demo) for demo in EXTEND_DEMOS]
    assert program.example_outputs == tuple(demo["added_requirement"] for demo in EXTEND_DEMOS)
    copied = EXTEND_DEMOS[-1]["added_requirement"]
    result, _ = evolve_with(lambda call: {"added_requirement": copied}, program)
    assert result.failure is not None and result.failure.category == "copied_example"
    assert EvolInstruct().example_outputs == ()
