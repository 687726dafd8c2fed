"""The docs are code: every Python example in the README files and every example script runs as written.

Each example runs in a fresh process, in a scratch folder holding a copy of ``examples/``,
on the embedded model (the examples are sized for it), with DSPy's cache in the scratch
folder so nothing from an earlier run answers for it.
"""

from __future__ import annotations

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


def autoevol_commands() -> list[str]:
    """The ``autoevol ...`` commands of the README's shell blocks (after ``&&`` when a block installs first)."""
    commands = []
    for block in _SHELL.findall((REPO / "README.md").read_text(encoding="utf-8")):
        for line in block.splitlines():
            command = line.split("&&")[-1].strip()
            if command.startswith("autoevol "):
                commands.append(command)
    return commands


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


@pytest.mark.parametrize("script", ["compile_program.py", "answer_format.py"])
def test_example_script_runs_as_written(tmp_path, script):
    cwd, env = scratch(tmp_path)
    done = subprocess.run([sys.executable, str(cwd / "examples" / script), "--out", str(cwd / "run")],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    if script == "answer_format.py":
        assert "dev failure rate:" in done.stdout and "held-out" in done.stdout


def test_readme_commands_run_as_written(tmp_path):
    """The README's commands, in order, in one folder: a later command reads what an earlier one wrote."""
    cwd, env = scratch(tmp_path)
    commands = autoevol_commands()
    assert commands, "the README shows no autoevol command"
    for command in commands:
        done = subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        if command.startswith("autoevol optimize"):
            assert "dev failure rate:" in done.stdout and "held-out" in done.stdout
