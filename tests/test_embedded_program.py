"""End to end on the embedded SmolLM2-135M model: compile a two-predictor program, optimize a prompt file.

Tiny settings (dev set 3, mini-batch 2, two candidates, one step, short answers) so each
test takes about a minute on 2 CPU cores. The model is weak, so the tests check that the
whole loop runs and records what it did, not that it improves anything.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import dspy
import pytest

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.embedded

from autoevol_dspy import AutoEvolInstruct, LMSpecError, RunResult  # noqa: E402
from autoevol_dspy.cli.prompt import add_prompt_command  # noqa: E402
from autoevol_dspy.lm import make_lm  # noqa: E402
from autoevol_dspy.prompt import PromptResult  # noqa: E402
from autoevol_dspy.tasks.base import get_instructions  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

MESSAGES = [
    ("I was charged twice this month.", "billing"),
    ("My parcel never arrived.", "shipping"),
    ("The app crashes when I log in.", "technical"),
    ("Please refund my last payment.", "billing"),
    ("The courier lost my package.", "shipping"),
    ("The website shows an error 500.", "technical"),
    ("Why is my invoice higher than usual?", "billing"),
]


def embedded_lm(max_tokens: int) -> dspy.LM:
    """The embedded model on one llama.cpp thread (fastest when the cores are shared), no cache."""
    try:
        return make_lm("local", n_ctx=4096, n_threads=1, temperature=0.0, max_tokens=max_tokens, cache=False)
    except LMSpecError as exc:
        pytest.skip(f"embedded model unavailable: {exc}")


class Triage(dspy.Module):
    """Two predictors: a one-line summary, then a label with reasoning."""

    def __init__(self) -> None:
        super().__init__()
        self.summarize = dspy.Predict("message -> summary")
        self.classify = dspy.ChainOfThought("message, summary -> label")

    def forward(self, message: str) -> dspy.Prediction:
        summary = self.summarize(message=message).summary
        return self.classify(message=message, summary=summary)


def label_metric(example: dspy.Example, prediction: dspy.Prediction) -> dspy.Prediction:
    right = example.label in str(prediction.get("label", "")).lower()
    return dspy.Prediction(score=float(right), feedback=None if right else f"the label should be {example.label}")


def test_a_two_predictor_program_compiles_on_the_embedded_model(tmp_path):
    lm, optimizer_lm = embedded_lm(32), embedded_lm(160)
    trainset = [dspy.Example(message=m, label=label).with_inputs("message") for m, label in MESSAGES]
    optimizer = AutoEvolInstruct(metric=label_metric, lm=lm, optimizer_lm=optimizer_lm, num_candidates=2,
                                 batch_sampler=2, dev_size=3, holdout=0, max_steps=1, num_threads=1, run_dir=tmp_path,
                                 progress=False)
    student = Triage()
    with dspy.context(adapter=dspy.JSONAdapter()):
        compiled = optimizer.compile(student, trainset=trainset)
    result = optimizer.result

    assert result.dev_size == 3 and result.train_size == 4
    assert [plan.predictor for plan in result.plans] == ["summarize"]
    assert result.trials[0].kind == "baseline" and result.trials[0].evaluated == 3
    assert 0.0 <= result.best_failure_rate <= result.initial_failure_rate <= 1.0
    assert get_instructions(compiled) == result.best_instructions
    assert result.best_instructions["classify.predict"] == get_instructions(student)["classify.predict"]
    roles = result.usage.by_role
    assert roles["program"].calls >= 2 * 3
    # A local optimizer LM gets the small-model sources: rules from the metric's feedback, signature edits and
    # one LM-written rule from grouped failures (no analysis call); every sample is recorded with its source.
    sources = {row.source: row for row in result.by_source()}
    assert set(sources) <= {"feedback_rules", "edit_library", "lm_amend"} and sum(r.drafted for r in sources.values()) >= 2
    assert "analysis" not in roles
    lm_drafts = sources["lm_amend"].drafted if "lm_amend" in sources else 0
    assert (roles["rewrite"].calls if "rewrite" in roles else 0) >= lm_drafts
    assert all(trial.source in sources for trial in result.trials if trial.kind == "candidate")
    assert RunResult.load(tmp_path / "result.json").best_instructions == result.best_instructions
    compiled.save(tmp_path / "program.json")
    loaded = Triage()
    loaded.load(tmp_path / "program.json")
    assert get_instructions(loaded) == get_instructions(compiled)


def test_the_prompt_example_runs_on_the_embedded_model(tmp_path, capsys):
    embedded_lm(16)  # skips when the embedded model is not installed
    parser = argparse.ArgumentParser(prog="autoevol")
    add_prompt_command(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "out"
    args = parser.parse_args([
        "prompt", str(EXAMPLES / "prompt" / "review_prompt.md"), "--examples", str(EXAMPLES / "prompt" / "reviews.csv"),
        "--out", str(out), "--input", "product", "--input", "review", "--output", "sentiment", "--metric", "exact",
        "--steps", "1", "--candidates", "2", "--batch-size", "2", "--dev-size", "3", "--holdout", "3",
        "--threads", "1", "--max-tokens", "16", "--optimizer-max-tokens", "160", "--local-threads", "1",
        "--no-progress",
    ])
    assert args.handler(args) == 0
    assert "held-out failure rate:" in capsys.readouterr().out
    result = PromptResult.load(out / "prompt_result.json")
    assert result.holdout_size == 3 and result.run.dev_size == 3
    assert (out / "prompt.txt").read_text(encoding="utf-8").strip() == result.prompt
    assert 0.0 <= result.holdout_failure_rate_after <= 1.0
