"""Bad input of every kind a user can give: each ends as exit 2 and one ``autoevol: error:`` line, no traceback.

Files that are not UTF-8, not JSON, not TOML; seed files a hostile user makes (JSON nested
thousands deep, a gzip bomb, numbers and booleans as instructions), read by ``optimize`` (the
whole file) and by ``evolve`` (streamed); config files with a wrong value that an option
overrides; a damaged or foreign study database; an output directory that cannot be written;
impossible options; a URL with credentials. Each case names what its one error line must say,
so a bad input that is silently accepted (the run goes on to call an LM, which is not there)
fails its case. The table runs in-process (fast); the rows marked ``process`` also run as a
real ``autoevol`` process.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from autoevol_dspy.cli.main import main
from autoevol_dspy.data.io import MAX_LINE_BYTES
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


# Seed files a hostile user makes, each read by optimize (whole) and by evolve (streamed) ----------------------


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@functools.cache
def _gzip_bomb(prefix: bytes) -> bytes:
    """A small gzip file whose one line expands past the line limit (and would go on without bound)."""
    return gzip.compress(prefix + b"a" * (MAX_LINE_BYTES + 4096), compresslevel=9)


def _truncated_gzip() -> bytes:
    whole = gzip.compress(b'{"instruction": "a"}\n' * 200)
    return whole[: len(whole) // 2]


@dataclass(frozen=True)
class SeedInput:
    """A bad seed file: its name, its content, and what the error must say (per command where they differ)."""

    name: str
    file: str
    content: Callable[[], bytes | str] | None
    needle: str
    evolve_needle: str | None = None


SEED_INPUTS = [
    SeedInput("JSONL not UTF-8", "s.jsonl", lambda: NOT_UTF8, "not UTF-8"),
    SeedInput("CSV not UTF-8", "s.csv", lambda: b"instruction\n" + NOT_UTF8, "not UTF-8"),
    SeedInput("JSON not UTF-8", "s.json", lambda: b'["' + NOT_UTF8.strip() + b'"]', "not UTF-8"),
    SeedInput("gzipped JSONL not UTF-8", "s.jsonl.gz", lambda: gzip.compress(NOT_UTF8), "not UTF-8"),
    SeedInput("JSONL line not JSON", "s.jsonl", lambda: '{"instruction": "a"}\n{oops\n', "not valid JSON"),
    SeedInput("JSON not JSON", "s.json", lambda: "[{", "not valid JSON"),
    SeedInput("JSONL bad escape", "s.jsonl", lambda: '{"instruction": "a\\x"}\n', "not valid JSON"),
    SeedInput("JSONL number of 5000 digits", "s.jsonl", lambda: '{"instruction": 1' + "0" * 5000 + "}\n",
              "not valid JSON"),
    SeedInput("JSON number of 5000 digits", "s.json", lambda: "[" + "9" * 5000 + "]", "not valid JSON"),
    SeedInput("empty JSONL", "s.jsonl", lambda: "", "no usable rows"),
    SeedInput("JSONL of a byte-order mark only", "s.jsonl", lambda: "\ufeff\n", "no usable rows"),
    SeedInput("empty JSON list", "s.json", lambda: "[]", "no usable rows"),
    SeedInput("JSON scalar", "s.json", lambda: "5", "holds a JSON int"),
    SeedInput("JSON object without a list", "s.json", lambda: '{"a": 1}', "holds a JSON object"),
    SeedInput("JSONL without the column", "s.jsonl", lambda: '{"prompt": "x"}\n', "no column 'instruction'"),
    SeedInput("CSV without the column", "s.csv", lambda: "prompt\nx\n", "no column 'instruction'"),
    SeedInput("JSONL of empty instructions", "s.jsonl",
              lambda: '{"instruction": ""}\n{"instruction": null}\n{"instruction": "  "}\n', "no usable rows"),
    SeedInput("JSONL of NaN instructions", "s.jsonl", lambda: '{"instruction": NaN}\n', "no usable rows"),
    SeedInput("numbers as JSONL lines", "s.jsonl", lambda: "1\n2\n3\n", "holds a number"),
    SeedInput("number instruction", "s.jsonl", lambda: '{"instruction": "a"}\n{"instruction": 42}\n',
              "holds a number"),
    SeedInput("infinite instruction", "s.jsonl", lambda: '{"instruction": 1e999}\n', "holds a number"),
    SeedInput("boolean instruction", "s.jsonl", lambda: '{"instruction": true}\n', "holds a boolean"),
    SeedInput("false instruction in JSON", "s.json", lambda: '[{"instruction": false}]', "holds a boolean"),
    SeedInput("JSON list of numbers", "s.json", lambda: "[1, 2, 3]", "holds a number"),
    SeedInput("list instruction", "s.jsonl", lambda: '{"instruction": ["a", "b"]}\n', "holds a list"),
    SeedInput("JSONL line that is a list", "s.jsonl", lambda: '["a", "b"]\n', "holds a list"),
    SeedInput("object instruction", "s.jsonl", lambda: '{"instruction": {"text": "a"}}\n', "holds an object"),
    SeedInput("JSONL nested 100000 deep", "s.jsonl", lambda: '{"instruction": "a", "x": ' + _deep(100_000) + "}\n",
              "nests JSON"),
    SeedInput("JSON nested 100000 deep", "s.json", lambda: '[{"instruction": "a", "x": ' + _deep(100_000) + "}]",
              "nests JSON"),
    SeedInput("JSONL instruction nested 100000 deep", "s.jsonl", lambda: '{"instruction": ' + _deep(100_000) + "}\n",
              "nests JSON"),
    SeedInput("JSONL nested 40 deep", "s.jsonl", lambda: '{"instruction": "a", "x": ' + _deep(40) + "}\n",
              "nests JSON"),
    SeedInput("JSON row nested 40 deep", "s.json", lambda: '[{"instruction": "a", "x": ' + _deep(40) + "}]",
              "nests JSON"),
    SeedInput("gzip bomb (JSONL)", "s.jsonl.gz", lambda: _gzip_bomb(b'{"instruction": "'), "longer than 16 MiB"),
    SeedInput("gzip bomb of spaces (JSONL)", "s.jsonl.gz", lambda: gzip.compress(b" " * (MAX_LINE_BYTES + 1)),
              "longer than 16 MiB"),
    SeedInput("gzip bomb (CSV)", "s.csv.gz", lambda: _gzip_bomb(b'instruction\n"'), "longer than 16 MiB"),
    SeedInput(".gz that is not gzip", "s.jsonl.gz", lambda: '{"instruction": "a"}\n', "not a readable gzip file"),
    SeedInput("truncated gzip", "s.jsonl.gz", _truncated_gzip, "not a readable gzip file"),
    SeedInput("Parquet full of garbage", "s.parquet", lambda: b"PAR1 not really" * 10, "not a readable Parquet"),
    SeedInput("unsupported file type", "s.txt", lambda: "an instruction\n", "unsupported file type"),
    SeedInput("missing seed file", "none.jsonl", None, "no such file"),
    SeedInput("repeated ids", "s.jsonl", lambda: '{"id": 1, "instruction": "a"}\n{"id": 1, "instruction": "b"}\n',
              "ids must be unique"),
    SeedInput("empty id", "s.jsonl", lambda: '{"id": "", "instruction": "a"}\n', "empty id"),
]


def _seed_file(tmp: Path, seed: SeedInput) -> str:
    if seed.content is None:
        return str(tmp / seed.file)
    return _file(tmp, seed.file, seed.content())


def _seed_named(name: str) -> SeedInput:
    return next(seed for seed in SEED_INPUTS if seed.name == name)


def _seeds_case(seed: SeedInput, command: str) -> Case:
    if command == "optimize":
        return Case(f"seeds: {seed.name} (optimize)",
                    lambda t: ["optimize", _seed_file(t, seed), "--out", str(t / "r"), *LM], seed.needle)
    return Case(f"seeds: {seed.name} (evolve)",
                lambda t: ["evolve", _seed_file(t, seed), "--method", _file(t, "m.txt", method(30)), "--out",
                           str(t / "e.jsonl"), *LM], seed.evolve_needle or seed.needle)


CASES += [_seeds_case(seed, command) for seed in SEED_INPUTS for command in ("optimize", "evolve")]
CASES += [
    Case("seeds: a directory (optimize)", lambda t: ["optimize", str(t), "--out", str(t / "r"), *LM], "is not a file"),
    Case("seeds: a directory (evolve)", lambda t: ["evolve", str(t), "--method", _file(t, "m.txt", method(30)),
                                                   "--out", str(t / "e.jsonl"), *LM], "is not a file"),
    Case("seeds: JSONL nested 100000 deep (process)", lambda t: ["evolve", _seed_file(t, _seed_named("JSONL nested 100000 deep")), "--method",
                                                                  _file(t, "m.txt", method(30)), "--out",
                                                                  str(t / "e.jsonl"), *LM],
         "nests JSON", process=True),
    Case("seeds: gzip bomb (process)", lambda t: ["evolve", _seed_file(t, _seed_named("gzip bomb (JSONL)")), "--method",
                                                  _file(t, "m.txt", method(30)), "--out", str(t / "e.jsonl"), *LM],
         "longer than 16 MiB", process=True),
    Case("seeds: numbers as JSONL lines (process)", lambda t: ["optimize", _seed_file(t, _seed_named("numbers as JSONL lines")), "--out",
                                                               str(t / "r"), *LM], "holds a number", process=True),
]


# Config files whose values are wrong, with and without an option that overrides them -------------------------


@dataclass(frozen=True)
class ConfigInput:
    """A config file's text, the option that overrides its bad value (or none), and what the error must say."""

    name: str
    text: str
    option: tuple[str, ...]
    needle: str


CREDENTIALS = 'api_base = "http://user:hunter2pass@127.0.0.1:9/v1"\n'
CONFIG_INPUTS = [
    ConfigInput("steps not a number, overridden", 'steps = "ten"\n', ("--steps", "1"), "steps"),
    ConfigInput("steps negative, overridden", "steps = -1\n", ("--steps", "1"), "steps"),
    ConfigInput("threads zero, overridden", "threads = 0\n", ("--threads", "2"), "threads"),
    ConfigInput("threads zero", "threads = 0\n", (), "threads"),
    ConfigInput("timeout negative, overridden", "timeout = -5\n", ("--timeout", "30"), "timeout"),
    ConfigInput("retries 99, overridden", "retries = 99\n", ("--retries", "1"), "retries"),
    ConfigInput("max tokens not a number, overridden", 'max_tokens = "many"\n', ("--max-tokens", "64"), "max_tokens"),
    ConfigInput("api base with credentials, overridden", CREDENTIALS, ("--api-base", "http://127.0.0.1:9/v1"),
                "user name or password"),
    ConfigInput("api base with credentials", CREDENTIALS, (), "user name or password"),
    ConfigInput("unknown setting", "stepz = 3\n", (), "stepz"),
]


def _config_case(config: ConfigInput, command: str) -> Case:
    def argv(t: Path) -> list[str]:
        # The command line names the LM (and its server, unless the file's server is under test); the option
        # under test overrides the file.
        options = ["--config", _file(t, "c.toml", config.text), *config.option]
        lm = LM[:2] if "api_base" in config.text and not config.option else LM
        if command == "optimize":
            return ["optimize", str(SEEDS), "--out", str(t / "r"), *lm, *options]
        if command == "evolve":
            return ["evolve", str(SEEDS), "--method", _file(t, "m.txt", method(30)), "--out", str(t / "e.jsonl"),
                    *lm, *options]
        return ["prompt", _prompt(t), "--examples", _examples(t), "--out", str(t / "r"), *PROMPT_FIELDS, *lm,
                *options]

    return Case(f"config: {config.name} ({command})", argv, config.needle)


CASES += [_config_case(config, command) for config in CONFIG_INPUTS for command in ("optimize", "evolve", "prompt")
          if not (command == "evolve" and config.option[:1] == ("--steps",))]
CASES += [
    Case("config: optimize-only steps not a number (evolve)",
         lambda t: ["evolve", str(SEEDS), "--method", _file(t, "m.txt", method(30)), "--out", str(t / "e.jsonl"),
                    *LM, "--config", _file(t, "c.toml", 'steps = "ten"\n')], "steps"),
    Case("config: api base with credentials, overridden (process)",
         lambda t: optimize("--out", str(t / "r"), "--config", _file(t, "c.toml", CREDENTIALS)),
         "user name or password", process=True),
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


def test_the_table_holds_at_least_140_bad_inputs():
    """The count the issue asked for: every one of them ends in one clear line (the tests above)."""
    assert len({case.name for case in CASES}) == len(CASES) >= 140


def test_debug_adds_the_traceback_and_still_ends_in_one_line(tmp_path, capsys):
    code = main(["report", _garbage_db(tmp_path, "r"), "--debug"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" in err
    assert err.rstrip().splitlines()[-1].startswith("autoevol: error:")
