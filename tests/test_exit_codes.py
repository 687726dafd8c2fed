"""Exit codes that tell a pipeline whose move it is, and evolve runs that made nothing usable (issue 20).

2: the input cannot run as given; 3: an LM failed (finished work saved, rerun); 4: the command
ran but nothing usable came out (every evolution failed, a training export without a row).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dspy.utils.exceptions import LMServerError

from autoevol_dspy.cli.errors import EXIT_LM, EXIT_NOTHING_USABLE, EXIT_USER, describe_error
from autoevol_dspy.cli.main import main
from autoevol_dspy.data.export import export_evolved
from autoevol_dspy.errors import (
    ConfigurationError,
    IncompleteRunError,
    LMUnavailableError,
    NothingUsableError,
    RunConflictError,
)
from autoevol_dspy.testing import StubServer
from world import World, method

SEEDS = Path(__file__).parent.parent / "examples" / "seeds.jsonl"


@pytest.mark.parametrize(("error", "code"), [
    (ConfigurationError("--holdout must be ..."), EXIT_USER),
    (RunConflictError("the run differs"), EXIT_USER),
    (LMUnavailableError("an LM call failed: 503"), EXIT_LM),
    (IncompleteRunError("incomplete: 3 seeds stopped on LM errors"), EXIT_LM),
    (LMServerError("503 Service Unavailable"), EXIT_LM),
    (ConnectionError("connection refused"), EXIT_LM),
    (NothingUsableError("every evolution failed"), EXIT_NOTHING_USABLE),
])
def test_a_user_error_an_lm_outage_and_an_empty_result_have_distinct_exit_codes(error, code):
    assert describe_error(error)[1] == code
    assert len({EXIT_USER, EXIT_LM, EXIT_NOTHING_USABLE, 0, 1}) == 5


def _evolve(stub: StubServer, method_file: Path, out: Path, *extra: str) -> int:
    return main(["evolve", str(SEEDS), "--method", str(method_file), "--out", str(out), "--lm", "openai/stub",
                 "--api-base", stub.base_url, "--threads", "2", "--no-progress", *extra])


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("autoevol: error:")]


def test_no_response_with_a_training_format_is_refused_before_any_lm_call(tmp_path, capsys):
    method_file = tmp_path / "method.txt"
    method_file.write_text(method(30), encoding="utf-8")
    with StubServer(World().respond) as stub:
        code = _evolve(stub, method_file, tmp_path / "train.parquet", "--format", "sft", "--no-response")
        assert stub.stats()["requests"] == 0
    lines = _error_lines(capsys.readouterr().err)
    assert code == EXIT_USER and len(lines) == 1 and "--no-response" in lines[0] and "lineage" in lines[0]
    assert not (tmp_path / "train.parquet").exists()


@pytest.mark.parametrize("name,fmt", [("rows.jsonl", "lineage"), ("train.parquet", "sft")])
def test_an_evolve_where_every_row_failed_exits_4_with_one_line(tmp_path, capsys, name, fmt):
    method_file = tmp_path / "method.txt"
    method_file.write_text(method(100), encoding="utf-8")  # in this world, quality 100 copies every instruction
    with StubServer(World().respond) as stub:
        code = _evolve(stub, method_file, tmp_path / name, "--format", fmt)
    lines = _error_lines(capsys.readouterr().err)
    assert code == EXIT_NOTHING_USABLE and len(lines) == 1 and "every one of the" in lines[0], lines
    assert "failed" in lines[0]


def test_an_empty_training_export_says_why(tmp_path, caplog):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({
        "seed_id": f"s{i}", "round": 1, "seed_instruction": f"Do {i}.", "context": None,
        "parent_instruction": f"Do {i}.", "evolved_instruction": f"Do {i} twice.", "response": None,
        "failure": None, "failure_reason": None, "method_id": "m"}) + "\n" for i in range(56)), encoding="utf-8")
    path, count = export_evolved(rows, tmp_path / "train.jsonl", format="sft")
    assert count == 0
    assert "56 row(s) passed but none has a response" in caplog.text
