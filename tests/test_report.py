"""The HTML report of a run: what it shows for a finished or a killed run, and that LM text stays text."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from autoevol_dspy import AutoEvolError, AutoEvolInstruct, EvolInstruct, RunResult
from autoevol_dspy.report.plot import PlotPoint, failure_rate_svg, format_rate
from autoevol_dspy.search.records import CandidatePlan, StepOutcome, StepPlan, TrialRecord
from autoevol_dspy.report.html import load_run, write_report
from autoevol_dspy.search.tracking import RunTracker
from autoevol_dspy.lm.usage import RoleUsage, UsageReport
from world import World, bucket, method, seeds

INJECTION = "Keep <b>bold</b> & <script>alert('method')</script> out."
FEEDBACK_INJECTION = "<script>alert('feedback')</script> <img src=x onerror=alert(1)>"
SVG_NS = "{http://www.w3.org/2000/svg}"


class Killed(BaseException):
    """Stands for the process dying mid-run: not an ``Exception``, so nothing in the loop catches it."""


def scripted_world(*, kill_on: str | None = None) -> World:
    """Two steps that improve; responses fall into three failure categories; LM text carries markup."""
    script = {60: [method(20, INJECTION), method(50), method(40)],
              20: [method(10, "Also never answer it."), method(30)]}
    world = World(script)

    def respond(call, original=world.respond):
        if kill_on and call.kind == "evolution" and kill_on in call.system:
            raise Killed()
        if call.kind == "analysis":
            return {"feedback": f"{original(call)['feedback']}\n{FEEDBACK_INJECTION}"}
        if call.kind == "response" and bucket(call.inputs["instruction"]) % 4 == 0:
            return {"response": "Sure, could you tell me which numbers?"}
        if call.kind == "response" and bucket(call.inputs["instruction"]) % 4 == 1:
            return {"response": "To do this, please provide the numbers."}
        return original(call)

    world.engine.responder = respond
    return world


def run_optimizer(world: World, run_dir: Path) -> AutoEvolInstruct:
    data = seeds(40)
    optimizer = AutoEvolInstruct(
        lm=world.lm, optimizer_lm=world.lm, num_candidates=3, batch_sampler=4,
        dev_size=20, max_steps=2, num_threads=1, progress=False, run_dir=run_dir,
    )
    optimizer.compile(EvolInstruct(method(60)), trainset=data[20:], valset=data[:20])
    return optimizer


def make_finished_run(run_dir: Path) -> RunResult:
    """A real two-step run on the scripted world, with its report written; returns the run's result."""
    optimizer = run_optimizer(scripted_world(), run_dir)
    write_report(run_dir)
    return optimizer.result


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[RunResult, str]:
    run_dir = tmp_path_factory.mktemp("finished")
    result = make_finished_run(run_dir)
    return result, (run_dir / "report.html").read_text(encoding="utf-8")


def section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.DOTALL)
    assert match, f"no section {anchor!r}"
    return match.group(1)


def svg_of(page: str) -> ET.Element:
    match = re.search(r"<svg.*?</svg>", page, re.DOTALL)
    assert match, "no inline SVG"
    return ET.fromstring(match.group(0))


def test_the_scripted_run_has_what_the_report_must_show(finished):
    result, _ = finished
    statuses = [t.status for t in result.trials]
    assert [t.step for t in result.trials] == [0, 1, 1, 1, 2, 2]
    assert statuses.count("pruned") >= 1 and result.steps[0].accepted and result.steps[1].accepted
    assert len(result.trials[0].failures_by_category) == 3


def test_header_shows_the_run_at_a_glance(finished):
    result, page = finished
    header = re.search(r"<header>(.*?)</header>", page, re.DOTALL).group(1)
    assert f"<code>{result.study_name}</code>" in header and "evolution" in header
    assert "finished: reached the step limit" in header
    assert f"{format_rate(result.initial_failure_rate)} → {format_rate(result.best_failure_rate)}" in header
    assert f"{result.usage.calls:,}" in header
    assert f"trial {result.best_trial}" in header and ">20<" in header


def test_every_trial_is_a_row_with_its_rate_categories_and_calls(finished):
    result, page = finished
    table = section(page, "trials")
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.DOTALL)[1:]
    assert len(rows) == len(result.trials)
    for row, trial in zip(rows, result.trials):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
        assert cells[0] == str(trial.number) and cells[2] == trial.kind and trial.status in cells[3]
        if trial.status == "pruned":
            assert f"≥ {format_rate(trial.failures / trial.dev_size)}" in cells[4]
        else:
            assert format_rate(trial.failure_rate) in cells[4]
        for category, count in trial.failures_by_category.items():
            assert f"{category}&nbsp;<b>{count}</b>" in cells[6]
        assert cells[7] == f"{trial.usage.calls:,}"
    assert re.search(rf'<tr class="best"><td class="num">{result.best_trial}</td>', table)


def test_failures_by_category_compare_baseline_and_best(finished):
    result, page = finished
    categories = section(page, "categories")
    baseline, best = result.trials[0], next(t for t in result.trials if t.number == result.best_trial)
    names = set(baseline.failures_by_category) | set(best.failures_by_category)
    assert len(names) >= 3  # the scripted run fails in three categories: the rows below are checked
    for name in names:
        row = re.search(rf"<tr><td>{name}</td>(.*?)</tr>", categories, re.DOTALL).group(1)
        before, after = baseline.failures_by_category.get(name, 0), best.failures_by_category.get(name, 0)
        assert f"<b>{before}</b>" in row and f"<b>{after}</b>" in row and f"{after - before:+d}" in row
    total = re.search(r"<tr><td><b>all failures</b></td>(.*?)</tr>", categories, re.DOTALL).group(1)
    assert f"<b>{baseline.failures:g}</b>" in total and f"<b>{best.failures:g}</b>" in total


def test_analyses_show_feedback_predictor_outcome_and_candidates(finished):
    result, page = finished
    steps = section(page, "steps")
    for plan in result.plans:
        assert f"Step {plan.step}: rewrote <code>{plan.predictor}</code>" in steps
    assert steps.count('class="candidate"') == sum(len(p.candidates) for p in result.plans)
    assert "cases failed: the rewriter answered the instruction instead of rewriting it." in steps
    assert steps.count("Accepted trial") == 2


def test_diff_marks_removed_and_added_instruction_text(finished):
    _, page = finished
    diff = section(page, "diff")
    assert '<div class="dl del">' in diff and '<div class="dl ins">' in diff
    assert re.search(r'<span class="wd">[^<]*QUALITY=q60</span>', diff)
    assert re.search(r'<span class="wi">Also never answer it\. QUALITY=q10</span>', diff)


def test_usage_by_role_sums_trials_and_plans(finished):
    result, page = finished
    usage = section(page, "usage")
    for role, spent in result.usage.by_role.items():
        assert f"<td>{role}</td><td class=\"num\">{spent.calls:,}</td>" in usage
    assert f"<b>{result.usage.calls:,}</b>" in usage


def test_chart_is_inline_svg_with_a_point_per_candidate_and_a_legend(finished):
    result, page = finished
    svg = svg_of(page)
    candidates = [t for t in result.trials if t.kind == "candidate"]
    circles = [c for c in svg.iter(f"{SVG_NS}circle") if c.find(f"{SVG_NS}title") is not None]
    triangles = [p for p in svg.iter(f"{SVG_NS}polygon") if p.find(f"{SVG_NS}title") is not None]
    assert len(circles) == sum(t.status == "complete" for t in candidates) + 1  # + the legend's marker
    assert len(triangles) == sum(t.status == "pruned" for t in candidates) + 1
    texts = {"".join(t.itertext()) for t in svg.iter(f"{SVG_NS}text")}
    assert {"optimization step", "failure rate on the dev set", "incumbent (best so far)"} <= texts
    assert {f"#{t.number}" for t in candidates} <= texts


def test_the_page_is_self_contained(finished):
    _, page = finished
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(script|link|iframe|img)\b", page, re.IGNORECASE)
    assert "Content-Security-Policy" in page


def test_lm_output_is_escaped(finished):
    _, page = finished
    assert "<script" not in page.lower() and "<b>bold</b>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#x27;method&#x27;)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(&#x27;feedback&#x27;)&lt;/script&gt; &lt;img src=x onerror=alert(1)&gt;" in page


def test_a_run_killed_in_its_first_step_still_renders(tmp_path):
    # The first candidate's first evolution kills the process: the study holds the baseline and step 1's plan.
    with pytest.raises(Killed):
        run_optimizer(scripted_world(kill_on="QUALITY=q20"), tmp_path)
    assert not (tmp_path / "result.json").exists()
    view = load_run(tmp_path)
    assert [t.kind for t in view.trials] == ["baseline"] and len(view.plans) == 1 and not view.outcomes

    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert "unfinished: step 1 interrupted or running (0 of 3 candidates evaluated)" in page
    assert "Step not finished: no decision recorded." in page
    assert page.count("not evaluated") == 3
    assert any("step 1 not decided yet" in (t.text or "") for t in svg_of(page).iter(f"{SVG_NS}title"))
    assert '<section id="diff">' in page and "unchanged" in section(page, "diff")


def test_a_study_without_trials_renders(tmp_path):
    storage = f"sqlite:///{(tmp_path / 'study.db').as_posix()}"
    RunTracker.open(storage=storage, study_name="autoevol", settings={"task": {"type": "EvolutionTask"},
                    "dev_size": 50}, fingerprints={})
    page = write_report(tmp_path).read_text(encoding="utf-8")
    assert "not started: no trial recorded yet" in page and "<svg" in page and "No trial has been recorded yet." in page


def test_missing_run_or_study_is_a_one_line_error(tmp_path):
    with pytest.raises(AutoEvolError, match="no study database"):
        write_report(tmp_path)
    storage = f"sqlite:///{(tmp_path / 'study.db').as_posix()}"
    RunTracker.open(storage=storage, study_name="first", settings={}, fingerprints={})
    with pytest.raises(AutoEvolError, match=r"no study 'autoevol' in the storage \(it holds: first\)"):
        write_report(tmp_path, study_name="autoevol")
    assert write_report(tmp_path).is_file()  # the storage's only study is the run's
    RunTracker.open(storage=storage, study_name="second", settings={}, fingerprints={})
    with pytest.raises(AutoEvolError, match=rf"no study '{tmp_path.name}' in the storage \(it holds: first, second\)"):
        write_report(tmp_path)  # two studies, none named after the folder: say which exist


def hand_made_run(tmp_path: Path) -> tuple[str, str]:
    """A two-predictor program run written straight into a study: one failed and one accepted candidate."""
    storage = f"sqlite:///{(tmp_path / 'other.db').as_posix()}"
    tracker = RunTracker.open(storage=storage, study_name="exp", settings={"task": {"type": "ProgramTask"},
                              "dev_size": 4}, fingerprints={})
    usage = UsageReport(by_role={"program": RoleUsage(calls=4, input_tokens=40, output_tokens=8)})
    initial = {"draft": "Write a draft.\nKeep it short.", "check": "Check the draft."}
    better = {**initial, "draft": "Write a draft.\nKeep it short and cite sources.\nEnd with a summary."}
    common = dict(dev_size=4, usage=usage, instructions=initial)
    tracker.record(TrialRecord(step=0, kind="baseline", status="complete", candidate_key="a", failure_rate=0.75,
                                     failures=3, evaluated=4, failures_by_category={"metric": 3}, **common))
    tracker.record(TrialRecord(step=1, kind="candidate", status="failed", candidate_key="b", parent_trial=0,
                                     error="TimeoutError: <server> did not answer", **common))
    tracker.record(TrialRecord(step=1, kind="candidate", status="complete", candidate_key="c", parent_trial=0,
                                     failure_rate=0.25, failures=1, evaluated=4, failures_by_category={"metric": 1},
                                     **{**common, "instructions": better}))
    plan = StepPlan(step=1, predictor="draft", incumbent_trial=0, batch_indices=[0, 1], trajectory_failures=2,
                    trajectory_size=2, discarded=["sample 2: the proposed <method> is empty"], candidates=[
                        CandidatePlan(key="b", instructions=initial, feedback="Too vague.", samples=[0]),
                        CandidatePlan(key="c", instructions=better, feedback="No sources.", samples=[1]),
                    ])
    tracker.save_plan(plan)
    tracker.save_outcome(StepOutcome(step=1, incumbent_before=0, incumbent_after=2, best_candidate_trial=2,
                                     accepted=True, incumbent_failure_rate=0.25, steps_without_improvement=0))
    return storage, "exp"


def test_a_program_run_shows_a_diff_per_predictor_failed_trials_and_discarded_samples(tmp_path):
    storage, name = hand_made_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"settings": {"api_key": "sk-do-not-show", "model": "openai/x"}}))
    page = write_report(tmp_path, storage=storage, study_name=name).read_text(encoding="utf-8")
    diff = section(page, "diff")
    assert "<h3><code>check</code></h3><p class=\"muted\">unchanged</p>" in diff
    assert '<div class="dl same"><span class="sign"> </span>Write a draft.</div>' in diff
    assert '<span class="wd">short.</span>' in diff and '<span class="wi">short and cite sources.</span>' in diff
    assert '<div class="dl ins"><span class="sign">+</span>End with a summary.</div>' in diff
    assert "TimeoutError: &lt;server&gt; did not answer" in section(page, "trials")
    assert "sample 2: the proposed &lt;method&gt; is empty" in section(page, "steps")
    assert "75.0% → 25.0%" in page and "unfinished: running or stopped after step 1" in page
    assert "sk-do-not-show" not in page and "api_key" not in page and "cli.model" in page
    svg = svg_of(page)
    assert any("failed" in (t.text or "") for t in svg.iter(f"{SVG_NS}text"))


def test_plot_scales_to_round_numbers_and_escapes_labels():
    point = PlotPoint(step=1, value=0.04, status="complete", label="<x>", tag="#1")
    svg = failure_rate_svg([(0, 0.08), (1, 0.04)], [point])
    root = ET.fromstring(svg)
    ticks = [t.text for t in root.iter(f"{SVG_NS}text") if t.text and t.text.endswith("%")]
    assert ticks == ["0%", "2%", "4%", "6%", "8%"]
    assert "&lt;x&gt;" in svg and "<x>" not in svg
