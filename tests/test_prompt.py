"""Optimizing one structured prompt: optimize_prompt, held-out rates, built-in metrics, loading, the CLI piece.

A scripted review world: review ``#i`` has the gold sentiment ``SENTIMENTS[i % 3]``. The
prompt answers with the bare label for even ``i`` and with a sentence around it for odd
``i``, unless it carries ``TAG-FORMAT`` (always the bare label); ``TAG-BAD`` makes it
answer ``unsure``. The optimizer's rewrites append tags from a script.
"""

from __future__ import annotations

import argparse
import json
import re
import threading

import dspy
import pytest

from autoevol_dspy import ConfigurationError, DataError, RunResult
from autoevol_dspy.cli.prompt import add_prompt_command
from autoevol_dspy.prompt import PromptProgram, PromptResult, load_examples, load_prompt, optimize_prompt, prompt_examples, split_holdout
from autoevol_dspy.prompt.metrics import Contains, ExactMatch, RegexMatch, RubricJudge, metric_from_name, normalize
from autoevol_dspy.testing import Call, scripted_lm

SENTIMENTS = ("positive", "negative", "mixed")
_INDEX = re.compile(r"#(\d+)")

PROMPT = """# Role
You are a careful assistant who reads product reviews.

## Rules
- Judge the review as a whole.

## Output format
One word: positive, negative or mixed."""


def rows(count: int) -> list[dict[str, str]]:
    return [{"product": f"kettle {i}", "review": f"Review #{i}: it boils water.", "sentiment": SENTIMENTS[i % 3]}
            for i in range(count)]


def index_of(text: str) -> int:
    return int(_INDEX.search(text).group(1))


class ReviewWorld:
    """Program, analysis, rewrite and judge behaviour in one responder."""

    def __init__(self, tags: list[str] | None = None) -> None:
        self.tags = tags if tags is not None else ["TAG-BAD", "TAG-FORMAT"]
        self.count = 0
        self.lock = threading.Lock()
        self.lm, self.engine = scripted_lm(self.respond)

    def respond(self, call: Call) -> dict[str, str]:
        if call.kind == "analysis":
            return {"feedback": f"{call.inputs['trajectory'].count('FAILED')} cases failed: wrapped the label."}
        if call.kind == "rewrite":
            with self.lock:
                tag = self.tags[self.count % len(self.tags)]
                self.count += 1
            return {"improved_instructions": f"{call.inputs['current_instructions']}\n- Follow rule {tag}."}
        if "rubric" in call.inputs:
            passed = call.inputs["candidate"] == call.inputs["reference"]
            return {"meets_rubric": str(passed), "feedback": "none" if passed else "JUDGE-NOTE: not one bare word"}
        return {"label" if "label" in call.outputs else "sentiment": self.answer(call)}  # the field asked for

    @staticmethod
    def answer(call: Call) -> str:
        i = index_of(call.inputs["review"])
        if "TAG-BAD" in call.system:
            return "unsure"
        if "TAG-FORMAT" in call.system or i % 2 == 0:
            return SENTIMENTS[i % 3]
        return f"I think the review is {SENTIMENTS[i % 3]} overall."


def settings(world: ReviewWorld, **overrides):
    values = dict(input_fields=["product", "review"], output_field="sentiment", holdout=6, lm=world.lm,
                  num_candidates=2, batch_size=4, dev_size=10, max_steps=1, num_threads=1, progress=False)
    values.update(overrides)
    return values


def odd_count(examples) -> int:
    return sum(1 for e in examples if index_of(e.review) % 2)


# optimize_prompt ------------------------------------------------------------------------------------


def test_optimize_prompt_improves_the_prompt_and_reports_holdout_rates(tmp_path):
    world = ReviewWorld()
    data = rows(30)
    result = optimize_prompt(PROMPT, data, "exact", run_dir=tmp_path / "run", **settings(world))

    _, held_out = split_holdout(prompt_examples(data, input_fields=["product", "review"], output_field="sentiment"),
                                holdout=6, seed=0)
    assert result.changed and result.prompt.startswith(PROMPT) and result.prompt.endswith("Follow rule TAG-FORMAT.")
    assert result.initial_prompt == PROMPT
    assert result.holdout_size == 6
    assert result.holdout_failures_before == odd_count(held_out) > 0
    assert result.holdout_failure_rate_before == odd_count(held_out) / 6
    assert result.holdout_failures_after == 0 and result.holdout_failure_rate_after == 0.0
    assert result.metric == "exact"
    assert result.holdout_usage.calls == 12  # six held-out answers before and six after
    assert result.run.best_failure_rate == 0.0 < result.run.initial_failure_rate
    assert result.run.train_size + result.run.dev_size == 24  # the held-out examples never reach the run

    held_reviews = {e.review for e in held_out}
    optimized_on = {call.inputs["review"] for call in world.engine.calls if "review" in call.inputs}
    assert held_reviews <= optimized_on  # evaluated on the holdout, but ...
    trajectories = " ".join(call.inputs["trajectory"] for call in world.engine.calls if call.kind == "analysis")
    assert not any(review in trajectories for review in held_reviews)  # ... never shown to the optimizer

    run = tmp_path / "run"
    assert (run / "prompt.txt").read_text(encoding="utf-8") == result.prompt + "\n"
    assert PromptResult.load(run / "prompt_result.json") == result
    assert RunResult.load(run / "result.json").best_instructions == {"respond": result.prompt}
    assert (run / "study.db").is_file()


def test_an_unbeaten_prompt_is_kept_and_not_evaluated_again():
    world = ReviewWorld(["TAG-BAD"])
    result = optimize_prompt(PROMPT, rows(30), "exact", **settings(world))
    assert not result.changed and result.prompt == PROMPT
    assert result.holdout_failures_after == result.holdout_failures_before
    assert result.holdout_usage.calls == 6


def test_holdout_share_and_a_callable_metric():
    world = ReviewWorld()

    def bare_word(example, prediction):
        return prediction.sentiment in SENTIMENTS

    result = optimize_prompt(PROMPT, rows(30), bare_word, **settings(world, holdout=0.2))
    assert result.holdout_size == 6 and result.metric == "bare_word"
    assert result.holdout_failures_after == 0


def test_a_judge_metric_uses_the_optimizer_lm_and_its_feedback_reaches_the_analysis():
    world = ReviewWorld()
    optimizer_lm, optimizer_engine = scripted_lm(world.respond)
    result = optimize_prompt(PROMPT, rows(30), "judge:The answer is one bare sentiment word.",
                             optimizer_lm=optimizer_lm, **settings(world))
    judged = [call for call in optimizer_engine.calls if "rubric" in call.inputs]
    assert judged and not any("rubric" in call.inputs for call in world.engine.calls)
    assert judged[0].inputs["rubric"] == "The answer is one bare sentiment word."
    analysis = next(call for call in optimizer_engine.calls if call.kind == "analysis")
    assert "Feedback: judge: JUDGE-NOTE: not one bare word" in analysis.inputs["trajectory"]
    assert result.holdout_failures_after == 0 < result.holdout_failures_before
    assert result.run.trials[0].usage.by_role["judge"].calls == 10


def test_the_prompt_program_has_named_fields_and_the_prompt_as_instructions(tmp_path):
    program = PromptProgram(PROMPT, input_fields=["product", "review"], output_field="sentiment")
    assert [name for name, _ in program.named_predictors()] == ["respond"]
    signature = program.respond.signature
    assert list(signature.input_fields) == ["product", "review"] and list(signature.output_fields) == ["sentiment"]
    assert program.prompt == PROMPT
    program.respond.signature = signature.with_instructions("New prompt text here.")
    program.save(tmp_path / "prompt.json")
    loaded = PromptProgram(PROMPT, input_fields=["product", "review"], output_field="sentiment")
    loaded.load(tmp_path / "prompt.json")
    assert loaded.prompt == "New prompt text here."


# Held-out split -------------------------------------------------------------------------------------


def test_the_holdout_split_is_deterministic_disjoint_and_in_order():
    examples = prompt_examples(rows(20), input_fields=["review"], output_field="sentiment")
    rest, held = split_holdout(examples, holdout=5, seed=3)
    again_rest, again_held = split_holdout(examples, holdout=5, seed=3)
    assert [e.review for e in held] == [e.review for e in again_held] and len(held) == 5
    assert {e.review for e in rest}.isdisjoint(e.review for e in held) and len(rest) == 15
    assert [index_of(e.review) for e in held] == sorted(index_of(e.review) for e in held)
    _, other = split_holdout(examples, holdout=5, seed=4)
    assert [e.review for e in other] != [e.review for e in held]


# Built-in metrics -----------------------------------------------------------------------------------


def verdict(metric, expected: str, output: str):
    example = dspy.Example(review="Review #1", sentiment=expected).with_inputs("review")
    return metric(example, dspy.Prediction(sentiment=output))


@pytest.mark.parametrize(("name", "output", "passed"), [
    ("exact", "positive", True),
    ("exact", "  Positive. ", True),
    ("exact", "\"POSITIVE\"", True),
    ("exact", "positive overall", False),
    ("contains", "I think it is Positive overall.", True),
    ("contains", "negative", False),
    ("regex:^(positive|negative|mixed)$", "positive", True),
    ("regex:^(positive|negative|mixed)$", "  mixed\n", True),
    ("regex:^(positive|negative|mixed)$", "Positive!", False),
    ("regex:\\d{3}", "code 123", True),
])
def test_built_in_metrics(name, output, passed):
    metric = metric_from_name(name, output_field="sentiment")
    result = verdict(metric, "positive", output)
    assert result.score == (1.0 if passed else 0.0)
    assert (result.feedback is None) == passed
    assert metric.__name__ == name


def test_failed_metrics_explain_why():
    exact = verdict(ExactMatch(output_field="sentiment"), "positive", "meh")
    assert "expected 'positive' exactly, got 'meh'" in exact.feedback
    assert "should contain 'positive'" in verdict(Contains(output_field="sentiment"), "positive", "meh").feedback
    assert "does not match the required pattern '^ok$'" in verdict(
        RegexMatch("^ok$", output_field="sentiment"), "positive", "meh").feedback


def test_normalize():
    assert normalize("  The\u00a0Answer:  42. ") == "the answer: 42"
    assert normalize(None) == ""
    assert normalize(7) == "7"


def test_rubric_judge_scores_with_feedback_and_reads_a_rubric_file(tmp_path):
    lm, engine = scripted_lm(lambda call: {"meets_rubric": "False", "feedback": "It hedges."})
    rubric = tmp_path / "rubric.md"
    rubric.write_text("- One word only\n- Lowercase\n", encoding="utf-8")
    metric = metric_from_name(f"judge:{rubric}", output_field="sentiment", judge_lm=lm)
    assert isinstance(metric, RubricJudge) and metric.rubric == "- One word only\n- Lowercase"
    result = verdict(metric, "positive", "maybe positive")
    assert result.score == 0.0 and result.feedback == "judge: It hedges."
    call = engine.calls[0]
    assert call.inputs["candidate"] == "maybe positive" and call.inputs["reference"] == "positive"
    assert call.inputs["request"] == "review: Review #1"
    assert metric.__name__.startswith("judge:") and not metric.needs_expected


@pytest.mark.parametrize(("name", "message"), [
    ("f1", "unknown metric 'f1'; accepted: 'exact', 'contains', 'regex:PATTERN' or 'judge:RUBRIC_FILE_OR_TEXT'"),
    ("exact:yes", "unknown metric 'exact:yes'"),
    ("regex", "unknown metric 'regex'"),
    ("regex:", "regex: needs a pattern"),
    ("regex:(unclosed", "invalid regex '(unclosed': missing ) at position 9"),
    ("judge:  ", "judge: needs a rubric"),
])
def test_bad_metric_names_get_one_line_errors(name, message):
    with pytest.raises(ConfigurationError) as info:
        metric_from_name(name, output_field="sentiment")
    assert message in str(info.value) and "\n" not in str(info.value)


# Loading and bad input ------------------------------------------------------------------------------


def write_jsonl(path, items) -> None:
    path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")


def test_loads_prompt_and_examples_in_each_format(tmp_path):
    prompt = tmp_path / "prompt.md"
    prompt.write_text(f"\n\n{PROMPT}\n\n", encoding="utf-8")
    assert load_prompt(prompt) == PROMPT
    data = rows(3)
    write_jsonl(tmp_path / "a.jsonl", data)
    (tmp_path / "a.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "b.json").write_text(json.dumps({"examples": data}), encoding="utf-8")
    (tmp_path / "a.csv").write_text("product,review,sentiment\n" + "".join(
        f"{r['product']},\"{r['review']}, really\",{r['sentiment']}\n" for r in data), encoding="utf-8")
    for name in ("a.jsonl", "a.json", "b.json", "a.csv"):
        loaded = load_examples(tmp_path / name, input_fields=["product", "review"], output_field="sentiment")
        assert [e.sentiment for e in loaded] == ["positive", "negative", "mixed"]
        assert set(loaded[0].inputs().keys()) == {"product", "review"}
    first = load_examples(tmp_path / "a.csv", input_fields=["review"], output_field="sentiment")[0]
    assert first.review.endswith(", really")


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.md", "  \n\n", "is empty: write the prompt"),
    ("missing.md", None, "prompt file not found"),
])
def test_bad_prompt_files(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_prompt(path)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("a.jsonl", '{"text": "Review #1", "label": "positive"}\n',
     "example 1 lacks the field(s) review, sentiment (fields present: label, text)"),
    ("a.jsonl", '{"review": "Review #1", "sentiment": "positive"}\n{"review": "Review #2"}\n',
     "example 2 lacks the field(s) sentiment (fields present: review)"),
    ("a.csv", "text,label\nReview #1,positive\n", "lacks the field(s) review, sentiment (fields present: label, text)"),
    ("a.jsonl", '{"review": "Review #1", "sentiment": "positive"}\nnot json\n', "line 2 is not valid JSON"),
    ("a.json", '{"review": "x"}', "holds a JSON object; expected a list of rows"),
    ("a.json", '["just a string"]', "example 1 is a str, not an object with named fields"),
    ("a.jsonl", "\n", "holds no examples"),
    ("a.txt", "review", "a.txt: unsupported file type; give a .jsonl, .json, .csv (each optionally .gz) or .parquet"),
])
def test_bad_examples_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_examples(path, input_fields=["review"], output_field="sentiment")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_regex_metric_needs_no_expected_output(tmp_path):
    path = tmp_path / "a.jsonl"
    write_jsonl(path, [{"review": "Review #1"}])
    loaded = load_examples(path, input_fields=["review"], output_field="sentiment", require_output=False)
    assert loaded[0].review == "Review #1"


@pytest.mark.parametrize(("overrides", "error", "message"), [
    ({"holdout": 30}, DataError, "holdout=30 leaves none of the 30 examples"),
    ({"holdout": 0}, ConfigurationError, "holdout must hold at least 1 example"),
    ({"holdout": 1.5}, ConfigurationError, "a holdout share must be between 0 and 1"),
    ({"holdout": 20}, DataError, "30 examples with 20 held out leave 10, but a mini-batch of 4 plus a dev set of 10 "
     "needs 14; add examples or lower holdout, batch_size or dev_size"),
    ({"input_fields": "review"}, ConfigurationError, "input_fields must be a list"),
    ({"output_field": "review"}, ConfigurationError, "field names must differ"),
    ({"output_field": "the sentiment"}, ConfigurationError, "field names must be Python identifiers"),
    ({"output_field": "label"}, DataError,
     "example 1 lacks the field(s) label (fields present: product, review, sentiment)"),
])
def test_bad_optimize_prompt_input_gets_one_line_errors(overrides, error, message):
    world = ReviewWorld()
    with pytest.raises(error) as info:
        optimize_prompt(PROMPT, rows(30), "exact", **settings(world, **overrides))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not world.engine.calls


def test_an_empty_prompt_is_refused():
    world = ReviewWorld()
    with pytest.raises(DataError, match="the prompt is empty"):
        optimize_prompt("  \n", rows(30), "exact", **settings(world))


# The command line piece -----------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="autoevol")
    add_prompt_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def cli_files(tmp_path):
    prompt = tmp_path / "prompt.md"
    prompt.write_text(PROMPT + "\n", encoding="utf-8")
    examples = tmp_path / "reviews.jsonl"
    write_jsonl(examples, rows(30))
    return prompt, examples


def test_the_prompt_command_writes_its_run_directory_and_prints_the_rates(tmp_path, monkeypatch, capsys):
    world = ReviewWorld()
    monkeypatch.setattr("autoevol_dspy.cli.prompt.build_lms", lambda args: (world.lm, world.lm))
    prompt, examples = cli_files(tmp_path)
    out = tmp_path / "out"
    argv = ["prompt", str(prompt), "--examples", str(examples), "--out", str(out), "--input", "product",
            "--input", "review", "--output", "sentiment", "--metric", "exact", "--steps", "1", "--candidates", "2",
            "--batch-size", "4", "--dev-size", "10", "--holdout", "6", "--threads", "1", "--no-progress"]
    args = parse(argv)
    assert args.handler(args) == 0
    printed = capsys.readouterr().out
    result = PromptResult.load(out / "prompt_result.json")
    assert f"held-out failure rate: {result.holdout_failure_rate_before:.3f} -> 0.000" in printed
    assert result.holdout_failures_before > 0 and result.run.dev_size == 10
    assert (out / "prompt.txt").read_text(encoding="utf-8").strip().endswith("TAG-FORMAT.")
    assert (out / "study.db").is_file() and (out / "result.json").is_file()

    calls = len(world.engine.calls)
    assert args.handler(parse(argv)) == 0  # a rerun reads the finished study, held-out check included
    assert len(world.engine.calls) - calls == 0
    assert f"held-out failure rate: {result.holdout_failure_rate_before:.3f} -> 0.000" in capsys.readouterr().out
    assert args.handler(parse([*argv, "--restart"])) == 0
    assert len(world.engine.calls) - calls > 12 + 24


def test_the_prompt_command_refuses_bad_files_before_any_lm_is_built(tmp_path, monkeypatch):
    def no_lms(args):
        raise AssertionError("no LM should be built")

    monkeypatch.setattr("autoevol_dspy.cli.prompt.build_lms", no_lms)
    prompt, examples = cli_files(tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    base = ["--examples", str(examples), "--out", str(tmp_path / "out"), "--input", "review", "--output"]
    cases = [
        ([str(empty), *base, "sentiment", "--metric", "exact"], DataError, "is empty"),
        ([str(prompt), *base, "label", "--metric", "exact"], DataError, "lacks the field(s) label"),
        ([str(prompt), *base, "sentiment", "--metric", "bleu"], ConfigurationError, "unknown metric 'bleu'"),
    ]
    for argv, error, message in cases:
        args = parse(["prompt", *argv])
        with pytest.raises(error, match=re.escape(message)):
            args.handler(args)


def test_the_prompt_command_help_renders(capsys):
    with pytest.raises(SystemExit) as info:
        parse(["prompt", "--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--holdout N" in help_text and "20% of them" in help_text and "regex:PATTERN" in help_text


def test_in_process_models_answer_in_json():
    from autoevol_dspy.cli.prompt import _adapter

    world = ReviewWorld()
    assert _adapter(world.lm, world.lm) is None
    assert isinstance(_adapter(world.lm, dspy.LM("local/SmolLM2-135M-Instruct.Q4_1")), dspy.JSONAdapter)


def test_the_prompt_command_infers_fields_and_reads_a_config_file(tmp_path, monkeypatch, caplog):
    world = ReviewWorld()
    monkeypatch.setattr("autoevol_dspy.cli.prompt.build_lms", lambda args: (world.lm, world.lm))
    prompt, examples = cli_files(tmp_path)
    labelled = tmp_path / "labelled.jsonl"
    write_jsonl(labelled, [{"id": i, "product": r["product"], "review": r["review"], "label": r["sentiment"]}
                           for i, r in enumerate(rows(30))])
    config = tmp_path / "prompt.toml"
    config.write_text('steps = 1\ncandidates = 2\nbatch-size = 4\ndev_size = 10\nholdout = 6\nthreads = 1\n')
    args = parse(["prompt", str(prompt), "--examples", str(labelled), "--out", str(tmp_path / "out"),
                  "--config", str(config), "--no-progress"])
    with caplog.at_level("WARNING", logger="autoevol_dspy"):
        assert args.handler(args) == 0
    assert args.output == "label" and args.input == ["product", "review"] and args.metric == "exact"
    assert "chose output 'label'; inputs 'product', 'review'; metric 'exact'" in caplog.text
    result = PromptResult.load(tmp_path / "out" / "prompt_result.json")
    assert result.run.dev_size == 10 and result.holdout_size == 6 and result.output_field == "label"


def test_the_prompt_command_says_when_the_output_column_is_not_obvious(tmp_path):
    from autoevol_dspy.errors import DataError

    prompt, examples = cli_files(tmp_path)  # its output column is 'sentiment'
    args = parse(["prompt", str(prompt), "--examples", str(examples), "--out", str(tmp_path / "out")])
    with pytest.raises(DataError, match="cannot tell which column .* is the output .*name it with --output"):
        args.handler(args)
