"""Bad input of every kind a user can give: each ends as exit 2 and one ``autoevol: error:`` line, no traceback.

Files that are not UTF-8, not JSON, not TOML; a damaged or foreign study database; an output
directory that cannot be written; impossible options; a URL with credentials. The table runs
in-process (fast); the rows marked ``process`` also run as a real ``autoevol`` process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from autoevol_dspy.cli.main import main
from faulty_world import SEEDS, assert_one_line_error, run_cli
from world import method

NOT_UTF8 = "caf\u00e9 r\u00e9sum\u00e9\n".encode("latin-1")  # a Latin-1 file: 0xe9 is no UTF-8 sequence
LM = ["--lm", "openai/stub", "--api-base", "http://127.0.0.1:9/v1"]  # nothing listens: no row may reach an LM
PROMPT_FIELDS = ["--input", "review", "--output", "sentiment", "--metric", "exact"]


def _unwritable(tmp: Path) -> Path:
    """A directory that exists but this process cannot write (root may write anywhere but sysfs)."""
    if os.geteuid() == 0:
        for candidate in (Path("/sys/kernel"), Path("/sys")):
            if candidate.is_dir() and not os.access(candidate, os.W_OK | os.X_OK) or _write_fails(candidate):
                return candidate
        pytest.skip("no directory that root cannot write")
    folder = tmp / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


def _write_fails(folder: Path) -> bool:
    try:
        (folder / ".autoevol-probe").open("a").close()
    except OSError:
        return True
    (folder / ".autoevol-probe").unlink()
    return False


def _file(tmp: Path, name: str, content: bytes | str) -> str:
    path = tmp / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def _garbage_db(tmp: Path, folder: str) -> str:
    run = tmp / folder
    run.mkdir()
    (run / "study.db").write_bytes(b"this is not an SQLite database\n" * 64)
    return str(run)


def _prompt(tmp: Path) -> str:
    return _file(tmp, "prompt.md", "# Role\nYou label reviews.\n\n## Output format\nOne word.\n")


def _examples(tmp: Path) -> str:
    rows = [{"review": f"Review #{i}: fine.", "sentiment": "positive"} for i in range(30)]
    return _file(tmp, "reviews.jsonl", "".join(json.dumps(row) + "\n" for row in rows))


def _evolve_meta_damaged(tmp: Path) -> list[str]:
    out = tmp / "evolved.jsonl"
    out.write_text("", encoding="utf-8")
    (tmp / "evolved.meta.json").write_text('{"format": 1, "method', encoding="utf-8")
    return ["evolve", str(SEEDS), "--method", _file(tmp, "m.txt", method(30)), "--out", str(out), *LM]


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[Path], list[str]]
    needle: str
    process: bool = False


def optimize(*extra: str) -> list[str]:
    return ["optimize", str(SEEDS), *LM, "--batch-size", "3", "--dev-size", "10", *extra]


CASES = [
    # Files that are not UTF-8.
    Case("config not UTF-8", lambda t: optimize("--out", str(t / "r"), "--config", _file(t, "c.toml", NOT_UTF8)),
         "not UTF-8", process=True),
    Case("initial method not UTF-8", lambda t: optimize("--out", str(t / "r"), "--initial-method",
                                                        _file(t, "m.txt", NOT_UTF8)), "not UTF-8"),
    Case("method not UTF-8", lambda t: ["evolve", str(SEEDS), "--method", _file(t, "m.txt", NOT_UTF8), "--out",
                                        str(t / "e.jsonl"), *LM], "not UTF-8", process=True),
    Case("prompt file not UTF-8", lambda t: ["prompt", _file(t, "p.md", NOT_UTF8), "--examples", _examples(t),
                                             "--out", str(t / "r"), *PROMPT_FIELDS, *LM], "not UTF-8"),
    Case("examples JSONL not UTF-8", lambda t: ["prompt", _prompt(t), "--examples", _file(t, "x.jsonl", NOT_UTF8),
                                                "--out", str(t / "r"), *PROMPT_FIELDS, *LM], "not UTF-8",
         process=True),
    Case("examples CSV not UTF-8", lambda t: ["prompt", _prompt(t), "--examples", _file(t, "x.csv", NOT_UTF8),
                                              "--out", str(t / "r"), *PROMPT_FIELDS, *LM], "not UTF-8"),
    Case("seeds not UTF-8", lambda t: ["optimize", _file(t, "s.jsonl", NOT_UTF8), "--out", str(t / "r"), *LM],
         "not UTF-8"),
    # Files that are not JSON, TOML or YAML.
    Case("config not TOML", lambda t: optimize("--out", str(t / "r"), "--config", _file(t, "c.toml", "lm = ")),
         "not valid TOML"),
    Case("config a YAML list", lambda t: optimize("--out", str(t / "r"), "--config", _file(t, "c.yaml", "- 1\n")),
         "table of settings"),
    Case("seeds line not JSON", lambda t: ["optimize", _file(t, "s.jsonl", '{"instruction": "a"}\n{oops\n'),
                                           "--out", str(t / "r"), *LM], "not valid JSON"),
    Case("examples not JSON", lambda t: ["prompt", _prompt(t), "--examples", _file(t, "x.json", "[{"), "--out",
                                         str(t / "r"), *PROMPT_FIELDS, *LM], "not valid JSON"),
    Case("evolve meta file damaged", _evolve_meta_damaged, "--restart"),
    # Damaged or foreign databases.
    Case("study.db full of garbage (optimize)", lambda t: optimize("--out", _garbage_db(t, "r")), "--restart",
         process=True),
    Case("study.db full of garbage (report)", lambda t: ["report", _garbage_db(t, "r")], "study storage"),
    Case("study.db full of garbage (prompt)", lambda t: ["prompt", _prompt(t), "--examples", _examples(t), "--out",
                                                        _garbage_db(t, "r"), *PROMPT_FIELDS, *LM], "study storage"),
    Case("storage in a missing directory", lambda t: optimize("--out", str(t / "r"), "--storage",
                                                              f"sqlite:///{t}/no/such/dir/x.db"), "study storage"),
    Case("storage that cannot be reached", lambda t: optimize("--out", str(t / "r"), "--storage",
                                                              "postgresql://user:hunter2pass@127.0.0.1:9/db"),
         "error"),
    # Directories.
    Case("out directory not writable (optimize)", lambda t: optimize("--out", str(_unwritable(t))),
         "permission denied", process=True),
    Case("out directory not writable (prompt)", lambda t: ["prompt", _prompt(t), "--examples", _examples(t),
                                                           "--out", str(_unwritable(t)), *PROMPT_FIELDS, *LM],
         "permission denied"),
    Case("out is a file", lambda t: optimize("--out", _file(t, "taken", "x")), "exists"),
    Case("report of a missing run", lambda t: ["report", str(t / "nothing")], "run directory not found"),
    Case("report without a study", lambda t: ["report", str(t)], "holds no study.db"),
    # Options.
    Case("api base with credentials", lambda t: ["optimize", str(SEEDS), "--out", str(t / "r"), "--lm",
                                                 "openai/stub", "--api-base", "http://user:hunter2pass@127.0.0.1:9/v1"],
         "user name or password"),
    Case("api base not a URL", lambda t: ["optimize", str(SEEDS), "--out", str(t / "r"), "--lm", "openai/stub",
                                          "--api-base", "127.0.0.1:9/v1"], "http(s) URL"),
    Case("timeout zero", lambda t: optimize("--out", str(t / "r"), "--timeout", "0"), "timeout"),
    Case("retries negative", lambda t: ["evolve", str(SEEDS), "--method", _file(t, "m.txt", method(30)), "--out",
                                        str(t / "e.jsonl"), *LM, "--retries", "-1"], "retries"),
    Case("prompt timeout negative", lambda t: ["prompt", _prompt(t), "--examples", _examples(t), "--out",
                                               str(t / "r"), *PROMPT_FIELDS, *LM, "--timeout", "-5"], "timeout"),
    Case("unknown LM spec", lambda t: ["optimize", str(SEEDS), "--out", str(t / "r"), "--lm", "nonsense"],
         "accepted"),
    Case("evolve output not JSONL", lambda t: ["evolve", str(SEEDS), "--method", _file(t, "m.txt", method(30)),
                                               "--out", str(t / "e.csv"), *LM], ".jsonl"),
    Case("bad shard", lambda t: ["evolve", str(SEEDS), "--method", _file(t, "m.txt", method(30)), "--out",
                                 str(t / "e.jsonl"), "--shard", "4/2", *LM], "--shard"),
    Case("missing method", lambda t: ["evolve", str(SEEDS), "--method", str(t / "none.txt"), "--out",
                                      str(t / "e.jsonl"), *LM], "method not found"),
]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "dspy-cache"))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_ends_in_one_line(case: Case, tmp_path, capsys):
    argv = case.argv(tmp_path)
    code = main([*argv, "--no-progress"] if argv[0] != "report" else argv)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert "Traceback" not in captured.err
    lines = [line for line in captured.err.splitlines() if line.startswith("autoevol: error:")]
    assert len(lines) == 1, captured.err
    assert case.needle.lower() in lines[0].lower(), lines[0]
    assert "hunter2pass" not in captured.err + captured.out


@pytest.mark.parametrize("case", [c for c in CASES if c.process], ids=[c.name for c in CASES if c.process])
def test_bad_input_ends_in_one_line_in_a_real_process(case: Case, tmp_path):
    argv = case.argv(tmp_path)
    done = run_cli(*argv, env={"DSPY_CACHEDIR": str(tmp_path / "dspy-cache")})
    line = assert_one_line_error(done)
    assert case.needle.lower() in line.lower(), line


def test_debug_adds_the_traceback_and_still_ends_in_one_line(tmp_path, capsys):
    code = main(["report", _garbage_db(tmp_path, "r"), "--debug"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" in err
    assert err.rstrip().splitlines()[-1].startswith("autoevol: error:")
