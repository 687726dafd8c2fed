"""A canary API key and a ``user:password`` URL through every command with ``--debug``, and a saved program.

Afterwards every file written (run directories, evolved data, the DSPy cache, a
``save_program=True`` pickle), and everything printed, is searched: neither secret may
appear anywhere. The stub server checks that the key really was sent to it.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import dspy
import pytest

from autoevol_dspy import AutoEvolInstruct, EvolInstruct
from autoevol_dspy.lm import make_lm
from autoevol_dspy.testing import StubServer
from faulty_world import SEEDS, initial_method_file, optimize_args, respond, run_cli
from world import method

KEY = f"sk-canary-{secrets.token_hex(12)}"
PASSWORD = f"pw-canary-{secrets.token_hex(8)}"


def _all_bytes(root: Path) -> list[tuple[Path, bytes]]:
    return [(path, path.read_bytes()) for path in sorted(root.rglob("*")) if path.is_file()]


def _leaks(texts: list[str], root: Path) -> list[str]:
    found = [f"output {i}" for i, text in enumerate(texts) if KEY in text or PASSWORD in text]
    found += [str(path) for path, data in _all_bytes(root) if KEY.encode() in data or PASSWORD.encode() in data]
    return found


@pytest.fixture()
def stub():
    with StubServer(respond) as server:
        yield server


def test_no_command_leaks_the_key_or_a_url_password(stub, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = {"OPENAI_API_KEY": KEY, "DSPY_CACHEDIR": str(work / "dspy-cache")}
    run, evolved, prompt_run = work / "run", work / "evolved.jsonl", work / "prompt-run"
    credentialed = stub.base_url.replace("http://", f"http://user:{PASSWORD}@")
    prompt = work / "prompt.md"
    prompt.write_text("# Role\nYou label reviews.\n\n## Output format\nOne word.\n", encoding="utf-8")
    examples = work / "reviews.jsonl"
    examples.write_text("".join(json.dumps({"review": f"Review #{i}: fine.", "sentiment": "positive"}) + "\n"
                                for i in range(30)), encoding="utf-8")
    prompt_args = ["prompt", str(prompt), "--examples", str(examples), "--out", str(prompt_run), "--input", "review",
                   "--output", "sentiment", "--metric", "exact", "--lm", "openai/stub", "--steps", "1",
                   "--candidates", "2", "--batch-size", "4", "--dev-size", "10", "--threads", "1", "--no-progress",
                   "--debug"]
    evolve_args = ["evolve", str(SEEDS), "--method", str(run), "--out", str(evolved), "--lm", "openai/stub",
                   "--threads", "2", "--no-progress", "--debug"]

    succeeded = [
        run_cli(*optimize_args(stub.base_url, run, initial_method_file(work), "--debug"), env=env),
        run_cli("report", str(run), "--debug", env=env),
        run_cli(*evolve_args, "--api-base", stub.base_url, env=env),
        run_cli(*prompt_args, "--api-base", stub.base_url, env=env),
    ]
    for done in succeeded:
        assert done.returncode == 0, done.stderr[-3000:]
    assert "DEBUG" in succeeded[0].stderr  # --debug really logged
    refused = [
        run_cli(*optimize_args(credentialed, work / "other", initial_method_file(work), "--debug"), env=env),
        run_cli(*evolve_args, "--api-base", credentialed, env=env),
        run_cli(*prompt_args, "--api-base", credentialed, env=env),
        run_cli(*optimize_args(stub.base_url, work / "pg", initial_method_file(work), "--debug", "--storage",
                               f"postgresql://user:{PASSWORD}@127.0.0.1:9/runs"), env=env),
    ]
    for done in refused:  # --debug adds a traceback before the one error line
        errors = [line for line in done.stderr.splitlines() if line.startswith("autoevol: error:")]
        assert done.returncode == 2 and len(errors) == 1, done.stderr[-3000:]
    assert all("user name or password" in done.stderr for done in refused[:3])

    assert stub.authorizations()[f"Bearer {KEY}"] > 0, "the key never reached the server"
    outputs = [text for done in succeeded + refused for text in (done.stdout, done.stderr)]
    assert [path for path, _ in _all_bytes(work / "dspy-cache")], "DSPy's cache was not written: nothing searched"
    assert _leaks(outputs, work) == []


def test_a_saved_program_holds_no_key_and_reads_it_again_when_loaded(stub, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "dspy-cache"))
    lm = make_lm("openai/stub", api_base=stub.base_url, cache=False)
    explicit = make_lm("openai/stub", api_base=stub.base_url, api_key=f"{KEY}-explicit", cache=False)
    optimizer = AutoEvolInstruct(lm=lm, optimizer_lm=explicit, num_candidates=2, batch_sampler=3, dev_size=8,
                                 max_steps=1, num_threads=1, progress=False, run_dir=tmp_path / "run")
    compiled = optimizer.compile(EvolInstruct(method(90)), trainset=[dspy.Example(instruction=f"Task {i}: add {i} "
                                                                                   f"and {i + 1}.")
                                                                      for i in range(30)])
    compiled.evolve.lm = lm  # an LM set on a predictor travels with the pickled program
    saved = tmp_path / "saved"
    compiled.save(str(saved), save_program=True)
    assert (saved / "program.pkl").is_file()
    assert _leaks([], tmp_path) == []

    loaded = dspy.load(str(saved), allow_pickle=True)
    sent = stub.authorizations()[f"Bearer {KEY}"]
    loaded.evolve.lm("Rewrite: add 2 and 3.")
    assert stub.authorizations()[f"Bearer {KEY}"] == sent + 1  # the loaded LM read the key from the environment


@pytest.mark.parametrize("spec", ["anthropic/claude-3-5-haiku-latest", "gemini/gemini-2.0-flash", "openai/gpt-4o-mini",
                                  "openai/served"])
def test_an_explicit_key_for_any_provider_stays_in_the_engine(spec):
    import pickle

    from autoevol_dspy.lm import make_lm

    key = "sk-explicit-provider-key-0042"
    lm = make_lm(spec, api_key=key, **({"api_base": "http://127.0.0.1:9/v1"} if spec == "openai/served" else {}))
    assert key not in repr(lm.kwargs) and key not in json.dumps(lm.dump_state(), default=str)
    assert key.encode() not in pickle.dumps(lm)
    assert lm._engine_spec._settings.key() == key  # the engine still sends it
