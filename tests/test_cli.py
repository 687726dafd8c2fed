"""End-to-end tests of the `autoevol` command, against a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoevol_dspy.testing import StubServer
from world import World, method, run_cli

SEEDS = Path(__file__).parent.parent / "examples" / "seeds.jsonl"


@pytest.fixture(autouse=True)
def fresh_dspy_cache(tmp_path, monkeypatch):
    """Each test gets its own DSPy disk cache, so replies cached by another test never hide LM calls."""
    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "dspy_cache"))


@pytest.fixture()
def server():
    world = World({60: [method(50), method(20)], 20: [method(30)]})
    with StubServer(world.respond) as stub:
        yield stub.base_url, stub


@pytest.fixture()
def initial_method(tmp_path) -> Path:
    path = tmp_path / "initial.txt"
    path.write_text(method(60))
    return path


def optimize_args(api_base: str, out: Path, initial: Path, *extra: str) -> list[str]:
    return ["optimize", str(SEEDS), "--out", str(out), "--lm", "openai/stub", "--api-base", api_base,
            "--initial-method", str(initial), "--steps", "2", "--candidates", "2", "--batch-size", "3",
            "--dev-size", "10", "--threads", "2", "--no-progress", *extra]


def test_optimize_writes_the_run_and_resumes(server, initial_method, tmp_path):
    api_base, counter = server
    out = tmp_path / "run"
    done = run_cli(*optimize_args(api_base, out, initial_method))
    assert done.returncode == 0, done.stderr
    assert "dev failure rate:" in done.stdout and "held-out" in done.stdout
    for name in ("study.db", "method.txt", "run.json", "report.html", "result.json"):
        assert (out / name).is_file(), name
    assert "QUALITY=q20" in (out / "method.txt").read_text()
    report = (out / "report.html").read_text(encoding="utf-8")  # settings from the real CLI run, not a fixture
    assert "<td>cli.candidates</td>" in report and "<td>cli.dev_size</td>" in report
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["best_failure_rate"] <= run["summary"]["initial_failure_rate"]
    assert run["settings"]["style"] == "rewrite"  # no --style: the paper's step for a server (extend is for local)

    calls = counter.stats()["requests"]
    assert calls > 0
    again = run_cli(*optimize_args(api_base, out, initial_method))
    assert again.returncode == 0, again.stderr
    assert counter.stats()["requests"] == calls, "a finished run was recomputed"


def test_optimize_refuses_a_run_dir_made_with_other_settings(server, initial_method, tmp_path):
    api_base, _ = server
    out = tmp_path / "run"
    assert run_cli(*optimize_args(api_base, out, initial_method)).returncode == 0
    changed = optimize_args(api_base, out, initial_method)
    changed[changed.index("--candidates") + 1] = "3"
    refused = run_cli(*changed)
    assert refused.returncode == 2
    assert "candidates: 2 -> 3" in refused.stderr and "--restart" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert run_cli(*changed, "--restart").returncode == 0


def test_config_file_with_option_override(server, initial_method, tmp_path):
    api_base, _ = server
    config = tmp_path / "run.toml"
    config.write_text(f'lm = "openai/stub"\napi_base = "{api_base}"\nsteps = 1\ncandidates = 2\n'
                      'batch_size = 3\ndev_size = 10\nthreads = 2\n')
    out = tmp_path / "run"
    done = run_cli("optimize", str(SEEDS), "--out", str(out), "--config", str(config), "--initial-method",
                    str(initial_method), "--dev-size", "8", "--no-progress")
    assert done.returncode == 0, done.stderr
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["dev_size"] == 8 and run["settings"]["steps"] == 1


def test_evolve_and_report(server, initial_method, tmp_path):
    api_base, _ = server
    out = tmp_path / "run"
    assert run_cli(*optimize_args(api_base, out, initial_method)).returncode == 0
    (out / "report.html").unlink()
    report = run_cli("report", str(out))
    assert report.returncode == 0, report.stderr
    assert (out / "report.html").is_file()

    evolved = tmp_path / "evolved.jsonl"
    done = run_cli("evolve", str(SEEDS), "--method", str(out), "--out", str(evolved), "--rounds", "2",
                    "--lm", "openai/stub", "--api-base", api_base, "--threads", "2", "--no-progress")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in evolved.read_text().splitlines()]
    assert {row["round"] for row in rows} <= {1, 2}
    assert len({(row["seed_id"], row["round"]) for row in rows}) == len(rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["optimize", "missing.jsonl", "--out", "x"], "missing.jsonl"),
        (["optimize", str(SEEDS), "--out", "x", "--column", "prompt"], "instruction"),
        (["optimize", str(SEEDS), "--out", "x", "--lm", "nonsense"], "accepted"),
        (["optimize", str(SEEDS), "--out", "x", "--lm", "openai/gpt-4o-mini"], "OPENAI_API_KEY"),
        (["optimize", str(SEEDS), "--out", "x", "--candidates", "0"], "candidates"),
        (["report", "no-such-run"], "run directory not found"),
    ],
)
def test_bad_input_is_one_line(args, message, tmp_path):
    done = run_cli(*args, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("autoevol: error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr


def test_help_explains_every_option():
    done = run_cli("optimize", "--help", timeout=60)
    assert done.returncode == 0
    for option in ("--column", "--candidates", "--storage", "--initial-method", "--api-base", "--max-lm-calls"):
        assert option in done.stdout


@pytest.mark.parametrize(("name", "fmt", "columns"), [
    ("train.parquet", "sft", {"messages", "seed_id", "round"}),
    ("train.jsonl", "prompt-completion", {"prompt", "completion", "seed_id", "round"}),
    ("rows.parquet", "lineage", {"seed_instruction", "parent_instruction", "evolved_instruction", "failure"}),
])
def test_evolve_writes_training_data_in_the_format_asked(server, initial_method, tmp_path, name, fmt, columns):
    import datasets

    api_base, _ = server
    out = tmp_path / name
    done = run_cli("evolve", str(SEEDS), "--method", str(initial_method), "--out", str(out), "--format", fmt,
                    "--rounds", "2", "--lm", "openai/stub", "--api-base", api_base, "--no-progress")
    assert done.returncode == 0, done.stderr
    kind = "parquet" if name.endswith("parquet") else "json"
    dataset = datasets.load_dataset(kind, data_files=str(out), split="train")
    assert columns <= set(dataset.column_names) and len(dataset) > 0
    if fmt != "lineage":
        assert (tmp_path / f"{name.rsplit('.', 1)[0]}.rows.jsonl").is_file()  # the resumable row store
        assert set(dataset["round"]) <= {1, 2}


def test_two_runs_in_one_storage_do_not_collide_and_restart_leaves_the_other_alone(server, initial_method, tmp_path):
    import optuna

    api_base, _ = server
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        done = run_cli(*optimize_args(api_base, out, initial_method, "--storage", storage))
        assert done.returncode == 0, done.stderr
    assert sorted(optuna.get_all_study_names(storage)) == ["first", "second"]
    done = run_cli(*optimize_args(api_base, second, initial_method, "--storage", storage, "--restart"))
    assert done.returncode == 0, done.stderr
    assert sorted(optuna.get_all_study_names(storage)) == ["first", "second"]
    kept = optuna.load_study(study_name="first", storage=storage)
    assert kept.user_attrs["autoevol"]["run_dir"] == "first" and len(kept.trials) > 1
    refused = run_cli(*optimize_args(api_base, second, initial_method, "--storage", storage, "--restart",
                                      "--study-name", "first"))
    assert refused.returncode == 2 and "belongs to the run directory 'first'" in refused.stderr
    assert len(optuna.load_study(study_name="first", storage=storage).trials) == len(kept.trials)
    report = run_cli("report", str(first), "--storage", storage)
    assert report.returncode == 0, report.stderr


def test_cli_habits_version_quiet_and_one_config_for_optimize_and_evolve(server, initial_method, tmp_path):
    from autoevol_dspy import __version__

    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"autoevol-dspy {__version__}"
    api_base, _ = server
    config = tmp_path / "run.toml"
    config.write_text('steps = 1\ncandidates = 2\nbatch_size = 4\ndev_size = 20\nthreads = 2\nrounds = 1\n')
    out = tmp_path / "run"
    quiet = run_cli("optimize", str(SEEDS), "--out", str(out), "--config", str(config), "--initial-method",
                     str(initial_method), "--lm", "openai/stub", "--api-base", api_base, "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert " INFO " not in quiet.stderr and "dev failure rate:" in quiet.stdout
    evolved = run_cli("evolve", str(SEEDS), "--method", str(out), "--out", str(tmp_path / "rows.jsonl"),
                       "--config", str(config), "--lm", "openai/stub", "--api-base", api_base)
    assert evolved.returncode == 0, evolved.stderr
    assert "ignoring settings that only optimize uses: batch_size, candidates, dev_size, steps" in evolved.stderr
    assert "\x1b[" not in evolved.stderr and "it/s" not in evolved.stderr  # no progress bars off a terminal


def test_evolve_with_a_run_directory_reuses_its_lms_and_reply_lengths_unless_told_otherwise(server, initial_method,
                                                                                          tmp_path):
    api_base, stub = server
    out = tmp_path / "run"
    done = run_cli(*optimize_args(api_base, out, initial_method, "--steps", "0", "--max-tokens", "77",
                                   "--response-max-tokens", "55"))
    assert done.returncode == 0, done.stderr
    # No --lm or --api-base: the run's stub server answers (the embedded model is never loaded).
    evolved = run_cli("evolve", str(SEEDS), "--method", str(out), "--out", str(tmp_path / "rows.jsonl"),
                       "--response-max-tokens", "66", "--no-progress")
    assert evolved.returncode == 0, evolved.stderr
    used = next(line for line in evolved.stderr.splitlines() if "using the settings of run" in line)
    assert "lm=openai/stub" in used and f"api_base={api_base}" in used and "max_tokens=77" in used
    assert "failures:" in evolved.stdout
