"""What a person reads in the report (issue 20): a task tile that is not cut, a stop reason that fits
what happened, the text of every refused proposal, the run's time, and the command to run next."""

from __future__ import annotations

import re

from test_program_compile import DEV, TRAIN, Triage, TriageWorld, optimizer
from world import World, method, seeds

from autoevol_dspy.evolution.method import EvolInstruct
from autoevol_dspy.search.strategies import NoImprovement
from autoevol_dspy.teleprompter import AutoEvolInstruct


def _evolution_run(tmp_path, script: dict[int, list[str]]) -> str:
    world = World(script)
    opt = AutoEvolInstruct(lm=world.lm, optimizer_lm=world.lm, num_candidates=2, batch_sampler=4, dev_size=10,
                           max_steps=3, num_threads=2, holdout=0, progress=False, run_dir=tmp_path / "run",
                           stopper=NoImprovement(patience=1))
    opt.compile(EvolInstruct(method(60)), trainset=seeds(40))
    return (tmp_path / "run" / "report.html").read_text(encoding="utf-8")


def _status(page: str) -> str:
    return re.search(r'<p class="status [a-z]+">(.*?)</p>', page).group(1)


def test_a_run_that_never_improved_does_not_say_the_rate_stopped_decreasing(tmp_path):
    page = _evolution_run(tmp_path, {60: [method(80), method(70)]})  # every rewrite is worse
    assert _status(page) == "finished: no candidate lowered the failure rate (patience)"
    assert "stopped decreasing" not in page


def test_a_run_that_improved_then_plateaued_says_so(tmp_path):
    page = _evolution_run(tmp_path, {60: [method(20), method(30)], 20: [method(40), method(50)]})
    assert _status(page) == "finished: the failure rate stopped decreasing (patience)"


def test_the_task_tile_wraps_instead_of_being_cut(tmp_path):
    page = _evolution_run(tmp_path, {60: [method(80)]})
    tile = re.search(r'<div class="tile"><div class="label">Task</div><div class="([^"]+)">([^<]+)</div>', page)
    assert tile.group(1) == "value text" and tile.group(2) == "instruction evolution"
    assert re.search(r"\.tile \.value\.text \{[^}]*white-space: normal", page)


def test_the_header_gives_the_run_time_and_the_next_command(tmp_path):
    page = _evolution_run(tmp_path, {60: [method(80)]})
    assert re.search(r'<div class="label">Run time</div><div class="value">\d+(\.\d)? s</div>', page)
    command = re.search(r'<p class="next">.*?<code>(.*?)</code>', page).group(1)
    assert command == f"autoevol evolve SEEDS --method {tmp_path / 'run'} --out train.parquet --format sft"


def test_a_refused_proposal_shows_its_text_beside_the_reason(tmp_path):
    world = TriageWorld()
    garbage = iter(["The correct answer is 20. The base of the isosceles triangle is 45."])

    def rewrite(call, original=world.engine.responder):
        if call.kind == "rewrite":
            text = next(garbage, None)
            if text is not None:
                return {"improved_instructions": text}
        return original(call)

    world.engine.responder = rewrite
    opt = optimizer(world, num_candidates=2, max_steps=1, num_threads=1, run_dir=tmp_path / "run")
    opt.compile(Triage(), trainset=TRAIN, valset=DEV)
    plan = opt.result.plans[0]
    assert plan.discarded and plan.discarded_texts[0].startswith("The correct answer is 20.")
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    discarded = re.search(r'<ul class="discarded">(.*?)</ul>', page, re.DOTALL).group(1)
    assert '<blockquote class="refused">The correct answer is 20. The base of the isosceles' in discarded
