"""A scripted world for optimizer tests: a method's quality decides which instructions it fails.

A method text carries ``QUALITY=q<n>`` (a marker the proposal guard does not read as a number
copied from the cases): the evolution of an instruction whose stable hash
(0-99) is below q comes back unchanged (a copy, which the detectors reject), so the
failures of a method are known in advance and nest by quality. The optimizer's rewrites
come from a script keyed by the incumbent's quality.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections import defaultdict

import dspy

from autoevol_dspy.testing import Call, scripted_lm

_QUALITY = re.compile(r"QUALITY=q?(\d+)")


def method(quality: int, note: str = "") -> str:
    return f"Rewrite the instruction into a harder one, step by step, and give only the rewritten instruction. {note} QUALITY=q{quality}".replace("  ", " ")


_ADDITIONS = (
    "Then show every intermediate step, justify each result in one sentence, and end with a short check that the "
    "final answer is right.",
    "Also state which assumption matters most, and how the result changes without it.",
    "Finally, give the result as a two-row table with units.",
)


def evolved(instruction: str) -> str:
    """What a good method makes of ``instruction`` in this world: each round adds a different requirement."""
    added = sum(1 for addition in _ADDITIONS if addition in instruction)
    return f"{instruction} {_ADDITIONS[added % len(_ADDITIONS)]}"


def bucket(instruction: str) -> int:
    return int(hashlib.sha256(instruction.encode()).hexdigest()[:8], 16) % 100


def seeds(count: int, prefix: str = "Task") -> list[dspy.Example]:
    return [dspy.Example(instruction=f"{prefix} {i}: add {i} and {i + 3}, then explain.") for i in range(count)]


def seed_file(path, count: int):
    """A JSONL seed file at ``path`` holding the instructions of ``seeds(count)``."""
    path.write_text("".join(json.dumps({"instruction": example.instruction}) + "\n" for example in seeds(count)),
                    encoding="utf-8")
    return path


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd=None) -> subprocess.CompletedProcess:
    """``autoevol ARGS`` in a subprocess, without an OpenAI key or a kill point unless ``env`` brings one."""
    base = {key: value for key, value in os.environ.items() if key not in ("OPENAI_API_KEY", "AUTOEVOL_KILL_AT")}
    return subprocess.run([sys.executable, "-m", "autoevol_dspy.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**base, **(env or {})})


def expected_failures(quality: int, instructions: list[str]) -> int:
    return sum(1 for text in instructions if bucket(text) < quality)


class World:
    """Evol, response and optimizer behaviour in one responder; ``script`` maps an incumbent quality to rewrites."""

    def __init__(self, script: dict[int, list[str]] | None = None, *, fail_response_for: str | None = None) -> None:
        self.script = script or {}
        self.counters: dict[int, int] = defaultdict(int)
        self.lock = threading.Lock()
        self.fail_response_for = fail_response_for
        self.lm, self.engine = scripted_lm(self.respond)

    def respond(self, call: Call):
        if call.kind == "evolution":
            quality = int(_QUALITY.search(call.system).group(1))
            instruction = call.inputs["instruction"]
            if bucket(instruction) < quality:
                return {"evolved_instruction": instruction}
            return {"evolved_instruction": evolved(instruction)}
        if call.kind == "response":
            if self.fail_response_for and self.fail_response_for in call.inputs["instruction"]:
                raise ConnectionError("scripted outage")
            return {"response": "Here is a complete worked answer with every step explained in detail and a final result."}
        if call.kind == "analysis":
            failed = call.inputs["trajectory"].count("Detected problem")
            return {"feedback": f"{failed} cases failed: the rewriter answered the instruction instead of rewriting it."}
        if call.kind == "rewrite":
            quality = int(_QUALITY.search(call.inputs["current_instructions"]).group(1))
            with self.lock:
                options = self.script.get(quality, [])
                index = self.counters[quality]
                self.counters[quality] += 1
            if not options:
                return {"improved_instructions": method(quality, "unchanged quality")}
            return {"improved_instructions": options[index % len(options)]}
        raise AssertionError(f"unexpected call {call}")


def kill_after_evolutions(world: World, kill_after: int) -> World:
    """Make ``world`` SIGKILL this process at its ``kill_after``-th evolution call (0: never), for resume tests."""
    calls = {"evolution": 0}
    lock = threading.Lock()

    def respond(call, original=world.engine.responder):
        if call.kind == "evolution" and kill_after:
            with lock:
                calls["evolution"] += 1
                if calls["evolution"] >= kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
        return original(call)

    world.engine.responder = respond
    return world


# Whole-dataset evolution in the scripted world (tests/test_data.py, tests/test_streaming.py) ------------


def evolve(world: World, seeds, out, **settings):
    """``evolve_dataset`` with both LMs scripted by ``world``: 3 rounds, 3 threads, no progress bar by default."""
    from autoevol_dspy.data import evolve_dataset

    settings = {"method": method(30), "rounds": 3, "num_threads": 3, "progress": False, **settings}
    return evolve_dataset(seeds, out_path=out, evol_lm=world.lm, response_lm=world.lm, **settings)


def rows_of(path) -> list[dict]:
    """The JSON rows of a JSONL file."""
    import json
    from pathlib import Path

    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def keyed(rows: list[dict]) -> dict[tuple[str, int], dict]:
    """Rows by (seed, round), refusing a duplicate."""
    result = {(row["seed_id"], row["round"]): row for row in rows}
    assert len(result) == len(rows), "a (seed, round) row is duplicated"
    return result
