"""The docs are code: every Python example in the README files and every example script runs as written.

Each example runs in a fresh process, in a scratch folder holding a copy of ``examples/``,
on the embedded model (the examples are sized for it), with DSPy's cache in the scratch
folder so nothing from an earlier run answers for it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", REPO / "examples" / "prompt" / "README.md"]
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
_SHELL = re.compile(r"```bash\n(.*?)```", re.DOTALL)

pytestmark = pytest.mark.embedded


def python_blocks() -> list[tuple[str, int, str]]:
    """(file, block number, code) for every ```python block of the docs."""
    return [(doc.relative_to(REPO).as_posix(), number, code)
            for doc in DOCS for number, code in enumerate(_BLOCK.findall(doc.read_text(encoding="utf-8")), start=1)]


def readme_commands() -> list[str]:
    """The ``autoevol ...`` and ``python examples/...`` commands of the README's shell blocks (after ``&&`` when a
    block installs first)."""
    commands = []
    for block in _SHELL.findall((REPO / "README.md").read_text(encoding="utf-8")):
        for line in block.splitlines():
            command = line.split("&&")[-1].strip()
            if command.startswith(("autoevol ", "python examples/")):
                commands.append(command)
    return commands


def scripts_outside_the_readme() -> list[str]:
    """The example scripts no README command runs (those the README runs are tested with its commands)."""
    run = " ".join(readme_commands())
    return sorted(path.name for path in (REPO / "examples").glob("*.py") if f"examples/{path.name}" not in run)


def scratch(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working folder with the examples, and an environment whose DSPy cache lives there."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    env = {**os.environ, "DSPY_CACHEDIR": str(tmp_path / "dspy-cache"), "PYTHONUNBUFFERED": "1"}
    return tmp_path, env


@pytest.mark.parametrize(("doc", "number", "code"), python_blocks(), ids=lambda v: str(v)[:30])
def test_python_examples_run_as_written(tmp_path, doc, number, code):
    cwd, env = scratch(tmp_path)
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, f"{doc} python block {number} failed:\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("script", scripts_outside_the_readme())
def test_example_script_runs_as_written(tmp_path, script):
    cwd, env = scratch(tmp_path)
    done = subprocess.run([sys.executable, str(cwd / "examples" / script), "--out", str(cwd / "run")],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]


def _first_run_benchmark():
    """benchmarks/first_run.py as a module (it finds its helpers beside it)."""
    spec = importlib.util.spec_from_file_location("first_run_benchmark", REPO / "benchmarks" / "first_run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_readme_commands_run_as_written(tmp_path):
    """The README's commands, in order, in one folder: a later command reads what an earlier one wrote."""
    first_run = _first_run_benchmark()
    cwd, env = scratch(tmp_path)
    commands = readme_commands()
    assert commands, "the README shows no command"
    for command in commands:
        done = subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        if command.startswith(("autoevol optimize", "python examples/answer_format.py")):
            assert "dev failure rate:" in done.stdout and "held-out" in done.stdout
        if command == first_run.first_command():  # what benchmarks/first_run.py reads from it is there
            summary = first_run.read_summary(done.stdout, 0.0)
            assert summary.cases > 0 and summary.instruction and "drafted by" in summary.best


def test_story_problems_are_what_their_script_writes(tmp_path):
    """examples/data/story_problems.jsonl is reproducible: its script, run as written, writes the same bytes."""
    cwd, env = scratch(tmp_path)
    written = cwd / "examples" / "data" / "story_problems.jsonl"
    written.unlink()
    done = subprocess.run([sys.executable, str(cwd / "examples" / "data" / "make_story_problems.py")], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert written.read_bytes() == (REPO / "examples" / "data" / "story_problems.jsonl").read_bytes()
    rows = [line for line in written.read_text(encoding="utf-8").splitlines() if line]
    assert len(rows) == 160 and len(set(rows)) == 160
