"""The benchmarks' ``--smoke`` forms still run end to end and print their tables (no timing checks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
TIMEOUT_S = 300


def run_smoke(script: str, tmp_path: Path) -> str:
    """Run ``script --smoke`` writing to a scratch results file; return its stdout."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Engine throughput (issue 2)\n\nkept as it is\n", encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke", "--results", str(results)],
        capture_output=True, text=True, timeout=TIMEOUT_S, cwd=BENCHMARKS.parent,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    text = results.read_text(encoding="utf-8")
    assert "## Engine throughput (issue 2)\n\nkept as it is" in text
    return completed.stdout


@pytest.mark.parametrize(
    ("script", "header", "section"),
    [
        ("orchestration.py", "| optimizer | L ms | C |", "## Orchestration against the limit"),
        ("lm_calls.py", "| role | ours", "## LM calls against the paper's protocol"),
        ("workers.py", "| run | N |", "## Workers sharing one study (issue 14)"),
        ("evolve_throughput.py", "| code | seeds | answers |", "## Evolve throughput against a server (issue 13)"),
        ("client_cpu.py", "| client | threads |", "## Client CPU per LM call (issue 13)"),
        ("startup.py", "| command |", "## Command start-up (issue 19)"),
        ("patterns.py", "| pattern |", "## Patterns on hostile text (issue 23)"),
        ("hygiene_throughput.py", "| rows | method | rows/s |", "## Training-data hygiene throughput (issue 21)"),
    ],
)
def test_smoke_run_prints_a_table(script: str, header: str, section: str, tmp_path: Path) -> None:
    stdout = run_smoke(script, tmp_path)
    assert header in stdout
    assert "| --- |" in stdout
    assert "smoke" in stdout.lower()
    assert section in (tmp_path / "RESULTS.md").read_text(encoding="utf-8")


def test_acceptance_smoke_prints_tables_and_a_recommendation(tmp_path: Path) -> None:
    stdout = run_smoke("acceptance.py", tmp_path)
    assert "| criterion | n | accepted / step | false acc. / step |" in stdout
    assert "| --- |" in stdout
    assert "smoke" in stdout.lower()
    assert "Recommended default: **" in stdout
    assert "## Acceptance under noise (issue 10)" in (tmp_path / "RESULTS.md").read_text(encoding="utf-8")
