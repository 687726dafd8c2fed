"""End to end on the real embedded SmolLM2-135M model: structure, not quality."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from autoevol_dspy import AutoEvolInstruct, EvolInstruct

pytestmark = pytest.mark.embedded

SEEDS = Path(__file__).parent.parent / "examples" / "seeds.jsonl"


def test_a_tiny_optimization_on_the_embedded_model(tmp_path):
    from autoevol_dspy.lm import make_lm

    seeds = [json.loads(line)["instruction"] for line in SEEDS.read_text().splitlines()][:8]
    evol = make_lm("local", temperature=0.0, max_tokens=128, n_ctx=4096, cache=False)
    optimizer_lm = make_lm("local", temperature=0.6, max_tokens=160, n_ctx=4096, cache=False)
    optimizer = AutoEvolInstruct(
        lm=evol, optimizer_lm=optimizer_lm,
        num_candidates=2, batch_sampler=2, dev_size=3, max_steps=1, num_threads=2, run_dir=tmp_path, progress=False,
    )
    compiled = optimizer.compile(EvolInstruct(), trainset=seeds)

    result = optimizer.result
    assert compiled.method.strip()
    assert all(0.0 <= rate <= 1.0 for rate in result.failure_rate_by_step)
    study = optuna.load_study(study_name=tmp_path.name, storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.trials) == len(result.trials) >= 1
    baseline = study.trials[0]
    assert baseline.user_attrs["kind"] == "baseline" and 0.0 <= baseline.value <= 1.0
    assert result.usage.by_role["evolution"].calls >= 3
    assert result.usage.by_role["analysis"].calls >= 1
