"""The --smoke forms of the quality and head-to-head benchmarks still run and print their tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="the public data sets in ../shared/data are not here")


def _run(script: str, results: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--smoke", "--data-dir", str(DATA), "--results",
         str(results)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
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


def test_head_to_head_smoke_prints_a_table_and_writes_its_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    completed = _run("head_to_head.py", results)
    _assert_table(completed)
    assert "AutoEvolInstruct" in completed.stdout
    assert "## Head to head on a DSPy program" in results.read_text()


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
