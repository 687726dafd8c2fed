"""The command as a person types it (issue 20): defaults that fit the seeds, a dev file, options spelled out,
a misspelled provider or an impossible --holdout refused before any study, calls from the cache told apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoevol_dspy.cli.main import main
from autoevol_dspy.testing import StubServer
from world import World, method

SEEDS = Path(__file__).parent.parent / "examples" / "seeds.jsonl"
FAST = ["--steps", "1", "--candidates", "1", "--threads", "4", "--no-progress"]


@pytest.fixture()
def stub():
    with StubServer(World({60: [method(50)]}).respond) as server:
        yield server


@pytest.fixture()
def initial(tmp_path) -> Path:
    path = tmp_path / "initial.txt"
    path.write_text(method(60), encoding="utf-8")
    return path


def _optimize(stub: StubServer, out: Path, initial: Path, *extra: str) -> int:
    return main(["optimize", str(SEEDS), "--out", str(out), "--lm", "openai/stub", "--api-base", stub.base_url,
                 "--initial-method", str(initial), *FAST, *extra])


def _error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("autoevol: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_the_default_dev_set_shrinks_to_fit_the_seeds_and_says_so(stub, initial, tmp_path, caplog):
    out = tmp_path / "run"
    assert _optimize(stub, out, initial) == 0
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert result["dev_size"] == 60 - 12 - 10  # 60 seeds, 12 held out, one mini-batch of 10
    assert "dev set: 38 seeds" in caplog.text and "--dev-file" in caplog.text
    report = (out / "report.html").read_text(encoding="utf-8")  # the report names the next command, as run
    assert f"<code>autoevol evolve {SEEDS} --method {out} --out train.parquet --format sft</code>" in report


def test_a_dev_file_is_the_dev_set(stub, initial, tmp_path):
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(json.dumps({"instruction": f"Dev task {i}: name {i} colours."}) + "\n" for i in range(9)),
                   encoding="utf-8")
    out = tmp_path / "run"
    assert _optimize(stub, out, initial, "--dev-file", str(dev)) == 0
    result = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert result["dev_size"] == 9 and result["train_size"] == 60 - 12


def test_a_dev_size_that_does_not_fit_names_the_flags(stub, initial, tmp_path, capsys):
    assert _optimize(stub, tmp_path / "run", initial, "--dev-size", "45") == 2
    line = _error(capsys.readouterr().err)
    assert "--dev-size" in line and "--dev-file" in line and "--batch-size" in line
    assert not (tmp_path / "run").exists() and stub.stats()["requests"] == 0


def test_a_holdout_that_is_neither_a_share_nor_a_count_is_refused(stub, initial, tmp_path, capsys):
    assert _optimize(stub, tmp_path / "run", initial, "--holdout", "1.5") == 2
    assert "whole count" in _error(capsys.readouterr().err)


def test_an_abbreviated_option_is_refused_not_guessed(stub, initial, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["optimize", str(SEEDS), "--out", str(tmp_path / "run"), "--step", "1"])
    assert exit_.value.code == 2 and "--step" in capsys.readouterr().err


def test_a_misspelled_provider_is_refused_before_any_study(initial, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["optimize", str(SEEDS), "--out", str(out), "--lm", "opneai/gpt-4o-mini", "--initial-method",
                 str(initial), "--no-progress"])
    line = _error(capsys.readouterr().err)
    assert code == 2 and "'opneai'" in line and "did you mean 'openai/...'" in line
    assert not out.exists()
