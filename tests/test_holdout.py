"""The held-out check: initial vs best on cases the search never saw, with intervals and a paired test."""

from __future__ import annotations

import pytest

from autoevol_dspy import AutoEvolInstruct, EvolInstruct
from autoevol_dspy.search.holdout import compare_on_holdout, measure, rate_interval
from autoevol_dspy.tasks import EvolutionTask
from world import World, expected_failures, method, seeds


def optimizer(world: World, **overrides) -> AutoEvolInstruct:
    settings = dict(task=EvolutionTask(lm=world.lm), lm=world.lm, optimizer_lm=world.lm, num_candidates=2,
                    batch_sampler=4, dev_size=20, max_steps=1, num_threads=1, progress=False)
    settings.update(overrides)
    return AutoEvolInstruct(**settings)


def test_the_run_measures_initial_and_best_on_the_held_out_cases():
    world = World({60: [method(10), method(40)]})
    data = seeds(90)
    train, dev, held = data[:20], data[20:40], data[40:]
    opt = optimizer(world)
    opt.compile(EvolInstruct(method(60)), trainset=train, valset=dev, holdoutset=held)
    check = opt.result.holdout
    texts = [e.instruction for e in held]
    assert check.size == 50 == opt.result.holdout_size
    assert check.initial.failures == expected_failures(60, texts)
    assert check.best.failures == expected_failures(10, texts)
    assert check.initial.interval[0] < check.initial.failure_rate < check.initial.interval[1]
    assert check.verdict == "confirmed" and check.p_value < 0.05 and check.losses == 0
    assert "the gain holds" in check.describe()
    assert opt.result.usage.by_role["evolution"].calls >= sum(t.evaluated for t in opt.result.trials) + 100


def test_a_rerun_reads_the_held_out_check_back(tmp_path):
    world = World({60: [method(10)]})
    data = seeds(60)
    optimizer(world, run_dir=tmp_path).compile(EvolInstruct(method(60)), trainset=data)
    calls = len(world.engine.calls)
    again = optimizer(world, run_dir=tmp_path)
    again.compile(EvolInstruct(method(60)), trainset=data)
    assert len(world.engine.calls) == calls
    assert again.result.holdout.size == 12 and again.result.holdout.verdict in ("confirmed", "not confirmed")


def test_a_held_out_set_under_ten_cases_is_reported_too_small():
    world = World({60: [method(10)]})
    data = seeds(40)
    opt = optimizer(world)
    opt.compile(EvolInstruct(method(60)), trainset=data[:20], valset=data[20:], holdoutset=seeds(6, "Other"))
    assert opt.result.holdout.verdict == "too small" and "too small" in opt.result.holdout.describe()


def test_kept_instructions_are_measured_once_and_reported_unchanged():
    world = World({60: [method(70)]})
    data = seeds(60)
    opt = optimizer(world)
    opt.compile(EvolInstruct(method(60)), trainset=data)
    check = opt.result.holdout
    assert check.verdict == "unchanged" and check.initial == check.best
    assert opt.result.holdout_size == 12


def test_holdout_zero_keeps_nothing_out():
    world = World({60: [method(10)]})
    opt = optimizer(world, holdout=0)
    opt.compile(EvolInstruct(method(60)), trainset=seeds(40))
    assert opt.result.holdout is None and opt.result.holdout_size == 0 and opt.result.train_size == 20


def test_a_gain_that_does_not_hold_is_reported_as_such():
    initial = measure("a", {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}, 20)
    churned = measure("b", {4: 1.0, 5: 1.0, 6: 1.0}, 20)
    comparison = compare_on_holdout(initial, churned)
    assert comparison.verdict == "not confirmed" and comparison.wins == 4 and comparison.losses == 3
    assert "does not hold" in comparison.describe()


@pytest.mark.parametrize(("losses", "size", "expected"), [
    ({i: 1.0 for i in range(10)}, 50, (0.1124, 0.3304)),   # Wilson's interval for 10/50
    ({}, 20, (0.0, 0.1611)),                               # 0/20 still has an upper bound
])
def test_wilson_intervals(losses, size, expected):
    low, high = rate_interval(losses, size)
    assert low == pytest.approx(expected[0], abs=1e-3) and high == pytest.approx(expected[1], abs=1e-3)
