"""The --smoke forms of the quality and head-to-head benchmarks still run and print their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="the public data sets in ../shared/data are not here")


def _run(script: str, results: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--smoke", "--data-dir", str(DATA), "--results",
         str(results), *extra],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )


def _assert_table(completed: subprocess.CompletedProcess) -> None:
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "| --- |" in completed.stdout


def test_quality_smoke_prints_tables_and_writes_its_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Someone else's section\n\nkeep me\n")
    completed = _run("quality.py", results)
    _assert_table(completed)
    assert "(c) optimized, search seed 0" in completed.stdout and "Goal (optimized below initial" in completed.stdout
    text = results.read_text()
    assert "## Quality on real seed instructions" in text
    assert "## Someone else's section\n\nkeep me" in text


def test_evol_pilot_smoke_counts_failures_per_variant() -> None:
    completed = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "evol_pilot.py"), "--smoke", "--data-dir", str(DATA),
         "--variants", "previous_extend", "sentence_extend", "extend", "extend_demos", "rewrite"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = [line for line in completed.stdout.splitlines() if "answered_instead" in line]
    assert len(lines) == 10 and all("/4" in line for line in lines)


def test_head_to_head_smoke_prints_a_table_and_writes_its_section(tmp_path: Path) -> None:
    results, raw = tmp_path / "RESULTS.md", tmp_path / "raw.json"
    completed = _run("head_to_head.py", results, "--raw", str(raw))
    _assert_table(completed)
    assert "### Pilot" in completed.stdout and "Chosen for the comparison" in completed.stdout
    # Every task that passes the pilot is compared (the stub passes several), each under its own heading.
    assert "### Comparison at an equal metric-call budget on `gsm8k-number`" in completed.stdout
    assert "### Comparison at an equal metric-call budget on `gsm8k-expression`" in completed.stdout
    assert "AutoEvolInstruct" in completed.stdout and "### Adopted instructions" in completed.stdout
    assert "ProposalGuard verdict" in completed.stdout
    # The pilot's hand-written instruction is measured on the test split beside the optimizers, never ranked.
    assert "| hand-written instruction (reference, no optimizer) |" in completed.stdout
    assert "measured on the same test split as a reference" in completed.stdout
    assert "### The pilot's other tasks" in completed.stdout and "the plain instruction" in completed.stdout
    assert "## Head to head on a DSPy program" in results.read_text()
    assert str(tmp_path) not in completed.stdout  # the recorded command leaves out where files go


def test_head_to_head_renders_a_saved_run_again_without_the_lm(tmp_path: Path) -> None:
    raw = tmp_path / "raw.json"
    measured = _run("head_to_head.py", tmp_path / "first.md", "--raw", str(raw))
    _assert_table(measured)
    rendered = _run("head_to_head.py", tmp_path / "second.md", "--render", str(raw))
    _assert_table(rendered)
    assert rendered.stdout == measured.stdout


def test_rerun_replaces_the_section_instead_of_appending(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import common
    finally:
        sys.path.pop(0)
    results = tmp_path / "RESULTS.md"
    results.write_text("# Results\n\n## A\n\nold a\n\n## B\n\nold b\n")
    common.write_section(results, "A", "new a")
    common.write_section(results, "C", "new c")
    assert results.read_text() == "# Results\n\n## A\n\nnew a\n\n## B\n\nold b\n\n## C\n\nnew c\n"


def test_method_ceiling_smoke_measures_library_edits_and_names_the_oracle(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    completed = _run("method_ceiling.py", results, "--domains", "mt_bench")
    _assert_table(completed)
    assert "| edit 1 | `" in completed.stdout and "| edit 3 | `" in completed.stdout
    assert "The oracle (lowest p of 3 candidates" in completed.stdout
    assert "## How far the method's words move the evolver" in results.read_text()


def test_method_ceiling_lists_each_library_edit_of_the_initial_method_once() -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import method_ceiling
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from autoevol_dspy.evolution.method import INITIAL_EXTEND_METHOD
    from autoevol_dspy.tasks import EvolutionTask

    candidates = method_ceiling.library_candidates(INITIAL_EXTEND_METHOD)
    added = [method_ceiling.added_line(INITIAL_EXTEND_METHOD, text) for text in candidates]
    assert all(text.startswith(INITIAL_EXTEND_METHOD) for text in candidates)
    assert len(set(added)) == len(added) and all(line and "\n" not in line for line in added)
    assert set(EvolutionTask.edit_hints.values()) <= set(added)  # every failure category's edit is measured
    assert any(line.startswith("Reply with the added requirement only") for line in added)  # and the signature's
