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
        proposal_style="rewrite",  # the paper's analyse-then-rewrite (a local optimizer LM defaults to "mixed")
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
    assert {row.source for row in result.by_source()} == {"lm_rewrite"}


def test_the_embedded_models_failures_stay_results_when_replies_are_watched(tmp_path):
    """Its replies are decoded under a JSON grammar, so even cut short by a tiny max_tokens they parse: whatever
    it gets wrong is a row with its failure, and the watch for a server answering garbage never stops it."""
    from autoevol_dspy.data import evolve_dataset
    from autoevol_dspy.lm import make_lm

    seeds = [json.loads(line)["instruction"] for line in SEEDS.read_text().splitlines()][:6]
    lm = make_lm("local", temperature=0.0, max_tokens=24, n_ctx=4096, cache=False)
    summary = evolve_dataset(seeds, method="Rewrite the instruction to be harder.", out_path=tmp_path / "rows.jsonl",
                             evol_lm=lm, response_lm=lm, num_threads=2, progress=False)
    assert summary.complete and summary.rows == len(seeds)  # every seed has its row: nothing held back or stopped
    assert summary.failures >= 1  # a 135M model cut at 24 tokens fails some: those failures are results
