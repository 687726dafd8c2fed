"""Whole-dataset evolution: loading seeds, lineage, failures, resume after a kill, shards, file round trips."""

from __future__ import annotations

import csv
import gzip
import json
import logging
import signal
import subprocess
import sys
from pathlib import Path

import datasets
import dspy
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autoevol_dspy import AutoEvolError, ConfigurationError, DataError, EvolInstruct, RunConflictError
from autoevol_dspy.data import evolve_dataset, method_id
from autoevol_dspy.data.io import evolve_output_paths, load_evolved, row_store_beside, save_evolved
from autoevol_dspy.data.seeds import load_instructions
import evolve_script
from world import World, bucket, evolve, evolved, keyed, method, rows_of

SCRIPT = Path(__file__).parent / "evolve_script.py"
RECORDS = [
    {"id": "a1", "instruction": "Write a poem about rain."},
    {"id": "a2", "instruction": "   "},
    {"id": "a3", "instruction": "Sum 2 and 3."},
    {"id": "a4", "instruction": "Write a poem about rain."},
]


def texts(count: int, prefix: str = "Task") -> list[str]:
    return [f"{prefix} {i}: add {i} and {i + 3}, then explain." for i in range(count)]


# Loading seeds ---------------------------------------------------------------------------------


def _write(path: Path, records: list[dict]) -> Path:
    name = path.name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(records), path)
    elif name.endswith(".csv"):
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    elif name.endswith(".json"):
        path.write_text(json.dumps(records), encoding="utf-8")
    else:
        text = "".join(json.dumps(r) + "\n" for r in records)
        path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


@pytest.mark.parametrize("name", ["seeds.jsonl", "seeds.json", "seeds.csv", "seeds.parquet", "seeds.jsonl.gz"])
def test_loads_each_file_format(tmp_path, name):
    loaded = load_instructions(_write(tmp_path / name, RECORDS), column="instruction")
    assert [(s.seed_id, s.instruction) for s in loaded] == [("a1", "Write a poem about rain."), ("a3", "Sum 2 and 3.")]
    assert (loaded.rows, loaded.skipped_empty, loaded.duplicates) == (4, 1, 1)
    assert loaded.source == str(tmp_path / name)


def test_loads_a_dataset_a_list_of_strings_dicts_and_examples():
    dataset = datasets.Dataset.from_dict({"question": ["Q one?", "", "Q two?"], "answer": ["1", "", "2"]})
    loaded = load_instructions(dataset, column="question")
    assert [(s.seed_id, s.instruction) for s in loaded] == [("0", "Q one?"), ("2", "Q two?")]
    assert [s.seed_id for s in load_instructions(["x", "y"])] == ["0", "1"]
    from_dicts = load_instructions([{"prompt": "p1", "n": 1}, {"prompt": "p2"}], column="prompt")
    assert from_dicts.instructions == ["p1", "p2"]
    from_examples = load_instructions([dspy.Example(instruction="e1"), dspy.Example(instruction="e2")])
    assert from_examples.instructions == ["e1", "e2"]
    examples = from_examples.examples()
    assert examples[1].inputs().toDict() == {"instruction": "e2"} and examples[1].seed_id == "1"


def test_ids_come_from_an_id_column_when_asked_or_present():
    rows = [{"qid": 7, "id": "x", "text": "t1"}, {"qid": 9, "id": "y", "text": "t2"}]
    assert [s.seed_id for s in load_instructions(rows, column="text")] == ["x", "y"]
    assert [s.seed_id for s in load_instructions(rows, column="text", id_column="qid")] == ["7", "9"]


def test_empty_rows_are_skipped_and_duplicates_dropped_with_counts_logged(caplog):
    caplog.set_level(logging.INFO, logger="autoevol_dspy.data")
    loaded = load_instructions(["a  b", "", None, "  ", "c", "a b", " c "], column="instruction")
    assert [(s.seed_id, s.instruction) for s in loaded] == [("0", "a  b"), ("4", "c")]
    assert (loaded.rows, loaded.skipped_empty, loaded.duplicates) == (7, 3, 2)
    assert "3 empty rows skipped, 2 duplicates dropped" in caplog.text


def _not_utf8(tmp_path: Path) -> Path:
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"instruction": "ok"}\n{"instruction": "caf\xe9"}\n')
    return path


@pytest.mark.parametrize(
    ("make_source", "kwargs", "pattern"),
    [
        (lambda d: d / "missing.jsonl", {}, r"missing\.jsonl: no such file"),
        (lambda d: _write(d / "s.jsonl", RECORDS), {"column": "prompt"},
         r"no column 'prompt'; it has: id, instruction"),
        (_not_utf8, {}, r"latin\.jsonl is not UTF-8 text: byte 0xe9 on line 2"),
        (lambda d: _write(d / "e.jsonl", [{"instruction": " "}, {"instruction": None}]), {},
         r"no usable rows .*2 rows, 2 empty"),
        (lambda d: (d / "bad.jsonl").write_text('{"instruction": "a"}\n{oops\n') and d / "bad.jsonl", {},
         r"bad\.jsonl line 2 is not valid JSON"),
        (lambda d: (d / "s.txt").write_text("x") and d / "s.txt", {}, r"unsupported file type"),
        (lambda d: [{"turns": ["a", "b"]}], {"column": "turns"}, r"column 'turns' holds a list in row 0"),
        (lambda d: [{"id": 1, "instruction": "a"}, {"id": 1, "instruction": "b"}], {},
         r"id '1' is used by rows 0 and 1"),
        (lambda d: datasets.DatasetDict({"train": datasets.Dataset.from_dict({"a": ["x"]})}), {}, r"pick one split"),
        (lambda d: 42, {}, r"cannot read seeds from a int"),
    ],
)
def test_bad_input_is_one_line_data_error(tmp_path, make_source, kwargs, pattern):
    with pytest.raises(DataError, match=pattern) as caught:
        load_instructions(make_source(tmp_path), **kwargs)
    assert "\n" not in str(caught.value)


# Evolving --------------------------------------------------------------------------------------


def test_lineage_over_three_rounds(tmp_path):
    world, seeds = World(), texts(8)
    summary = evolve(world, load_instructions(seeds), tmp_path / "out.jsonl", method=method(0))
    rows = keyed(rows_of(tmp_path / "out.jsonl"))
    assert set(rows) == {(str(i), r) for i in range(8) for r in (1, 2, 3)}
    for i, seed in enumerate(seeds):
        first, second, third = (rows[(str(i), r)] for r in (1, 2, 3))
        assert first["parent_instruction"] == seed and first["evolved_instruction"].startswith(seed)
        assert second["parent_instruction"] == first["evolved_instruction"]
        assert third["parent_instruction"] == second["evolved_instruction"]
        assert {row["seed_instruction"] for row in (first, second, third)} == {seed}
        assert all(row["response"] and row["failure"] is None for row in (first, second, third))
    assert {row["method_id"] for row in rows.values()} == {method_id(method(0))}
    assert set(rows_of(tmp_path / "out.jsonl")[0]) == {
        "seed_id", "round", "seed_instruction", "context", "parent_instruction", "evolved_instruction", "response",
        "failure", "failure_reason", "method_id",
    }
    assert (summary.rows, summary.kept, summary.failures, summary.complete) == (24, 24, 0, True)
    assert summary.usage.by_role["evolution"].calls == 24 and summary.usage.by_role["response"].calls == 24


def _expected_chains(seeds: list[str], quality: int, rounds: int) -> dict[str, int]:
    """How many rows each seed gets: its chain ends at the first round whose parent the world fails."""
    lengths = {}
    for i, text in enumerate(seeds):
        current, length = text, 0
        for _ in range(rounds):
            length += 1
            if bucket(current) < quality:
                break
            current = evolved(current)
        lengths[str(i)] = length
    return lengths


def test_a_failure_is_marked_and_ends_its_chain(tmp_path):
    world, seeds = World(), texts(30)
    summary = evolve(world, load_instructions(seeds), tmp_path / "out.jsonl")
    rows = keyed(rows_of(tmp_path / "out.jsonl"))
    lengths = _expected_chains(seeds, 30, 3)
    assert {seed: max(r for s, r in rows if s == seed) for seed in lengths} == lengths
    failed = [row for row in rows.values() if row["failure"]]
    assert failed and all(row["failure"] == "unchanged" for row in failed)
    assert all(row["evolved_instruction"] == row["parent_instruction"] and row["response"] is None for row in failed)
    assert all(rows[(row["seed_id"], row["round"])]["round"] == lengths[row["seed_id"]] for row in failed)
    assert summary.failures == len(failed) and summary.failures_by_category == {"unchanged": len(failed)}
    assert summary.rows == summary.kept == len(rows) and summary.dropped == 0
    assert summary.failure_rate == pytest.approx(len(failed) / len(rows))
    assert len(load_evolved(tmp_path / "out.jsonl", include_failures=False)) == len(rows) - len(failed)
    text = summary.describe()
    assert f"unchanged {len(failed)}" in text and "incomplete" not in text


def test_dropped_failures_are_counted_not_written_and_not_redone(tmp_path):
    world, seeds = World(), load_instructions(texts(30))
    marked = evolve(world, seeds, tmp_path / "marked.jsonl")
    dropped = evolve(world, seeds, tmp_path / "dropped.jsonl", drop_failures=True)
    written = rows_of(tmp_path / "dropped.jsonl")
    assert all(row["failure"] is None for row in written)
    successes = [row for row in rows_of(tmp_path / "marked.jsonl") if row["failure"] is None]
    assert keyed(written) == keyed(successes)
    assert dropped.dropped == dropped.failures == marked.failures > 0
    assert dropped.kept == len(written) and dropped.rows == marked.rows
    assert dropped.dropped_path and len(rows_of(Path(dropped.dropped_path))) == dropped.dropped
    assert len(load_evolved(tmp_path / "dropped.jsonl")) == len(written)

    before = world.engine.count("evolution")
    again = evolve(world, seeds, tmp_path / "dropped.jsonl", drop_failures=True)
    assert world.engine.count("evolution") == before, "a dropped row was evolved again"
    assert (again.new_rows, again.rows, again.dropped) == (0, dropped.rows, dropped.dropped)


def test_without_response_no_answer_is_asked(tmp_path):
    world = World()
    evolve(world, load_instructions(texts(6)), tmp_path / "out.jsonl", method=method(0), rounds=1, with_response=False)
    assert world.engine.count("response") == 0
    assert all(row["response"] is None for row in rows_of(tmp_path / "out.jsonl"))


def test_threads_see_the_lm_from_dspy_context_and_usage_is_counted(tmp_path):
    world = World()
    with dspy.context(lm=world.lm):
        summary = evolve_dataset(texts(12), method=method(30), out_path=tmp_path / "out.jsonl", rounds=2,
                                 num_threads=4, progress=False)
    assert summary.rows == len(rows_of(tmp_path / "out.jsonl")) > 12
    assert summary.usage.calls == len(world.engine.calls)


def test_a_compiled_evolinstruct_is_accepted_as_the_method(tmp_path):
    summary = evolve(World(), texts(3), tmp_path / "out.jsonl", method=EvolInstruct(method(0)), rounds=1)
    assert summary.method_id == method_id(method(0))


def test_raising_rounds_extends_finished_chains(tmp_path):
    world, seeds = World(), load_instructions(texts(20))
    evolve(world, seeds, tmp_path / "grown.jsonl", rounds=1)
    grown = evolve(world, seeds, tmp_path / "grown.jsonl", rounds=3)
    evolve(world, seeds, tmp_path / "direct.jsonl", rounds=3)
    assert keyed(rows_of(tmp_path / "grown.jsonl")) == keyed(rows_of(tmp_path / "direct.jsonl"))
    assert 0 < grown.resumed_rows < grown.rows


# Resume ----------------------------------------------------------------------------------------


def _script(out: Path, kill_after: int = 0) -> subprocess.CompletedProcess:
    args = [sys.executable, str(SCRIPT), str(out)] + (["--kill-after", str(kill_after)] if kill_after else [])
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def test_kill_and_resume_matches_an_uninterrupted_run(tmp_path):
    world = World()
    full = evolve_dataset(
        load_instructions(evolve_script.seed_texts(30)), method=evolve_script.METHOD,
        out_path=tmp_path / "straight.jsonl", rounds=3, evol_lm=world.lm, response_lm=world.lm,
        num_threads=3, progress=False,
    )
    expected = keyed(rows_of(tmp_path / "straight.jsonl"))

    out = tmp_path / "resumed.jsonl"
    killed = _script(out, kill_after=25)  # of about 60 evolutions
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done_before = len(keyed(rows_of(out)))
    assert 0 < done_before < len(expected)
    resumed = _script(out)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)

    assert keyed(rows_of(out)) == expected, "rows were lost, duplicated or differ"
    assert report["resumed_rows"] == done_before and report["rows"] == full.rows == len(expected)
    assert report["failures_by_category"] == full.failures_by_category
    assert report["evolution_calls_this_process"] == world.engine.count("evolution") - done_before


def test_a_partial_last_line_is_repaired(tmp_path):
    world, seeds, out = World(), load_instructions(texts(10)), tmp_path / "out.jsonl"
    evolve(world, seeds, out, rounds=1)
    expected = keyed(rows_of(out))
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text("".join(lines[:-1]) + lines[-1][:25], encoding="utf-8")  # a kill mid-write

    summary = evolve(world, seeds, out, rounds=1)
    assert summary.new_rows == 1 and keyed(rows_of(out)) == expected
    assert out.read_text(encoding="utf-8").endswith("\n")
    # A complete last row whose line end was lost is kept, not redone.
    out.write_text(out.read_text(encoding="utf-8").rstrip("\n"), encoding="utf-8")
    assert evolve(world, seeds, out, rounds=1).new_rows == 0 and keyed(rows_of(out)) == expected


def test_another_method_is_refused_unless_overwrite(tmp_path):
    world, seeds, out = World(), load_instructions(texts(6)), tmp_path / "out.jsonl"
    evolve(world, seeds, out, rounds=1)
    with pytest.raises(RunConflictError, match="different method id") as caught:
        evolve(world, seeds, out, rounds=1, method=method(0))
    assert "\n" not in str(caught.value) and "overwrite=True" in str(caught.value)
    with pytest.raises(RunConflictError, match="different drop failures"):
        evolve(world, seeds, out, rounds=1, drop_failures=True)
    summary = evolve(world, seeds, out, rounds=1, method=method(0), overwrite=True)
    assert summary.resumed_rows == 0 and {row["method_id"] for row in rows_of(out)} == {method_id(method(0))}


def test_a_file_not_written_by_evolve_dataset_is_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"something": "else"}\n')
    with pytest.raises(RunConflictError, match="not written by evolve_dataset"):
        evolve(World(), texts(3), out, rounds=1)


def test_lm_errors_leave_seeds_for_a_rerun(tmp_path):
    seeds, out = load_instructions(texts(8)), tmp_path / "out.jsonl"
    broken = World(fail_response_for="Task 3:")
    summary = evolve(broken, seeds, out, method=method(0), rounds=2)
    assert (summary.errors, summary.complete) == (1, False)
    assert not any(row["seed_id"] == "3" for row in rows_of(out))
    fixed = evolve(World(), seeds, out, method=method(0), rounds=2)
    assert (fixed.errors, fixed.complete, fixed.new_rows) == (0, True, 2)
    assert set(keyed(rows_of(out))) == {(str(i), r) for i in range(8) for r in (1, 2)}


def test_too_many_lm_errors_stop_the_run(tmp_path):
    world = World(fail_response_for="Task")
    with pytest.raises(AutoEvolError, match="stopped after 2 seeds hit LM errors"):
        evolve(world, texts(20), tmp_path / "out.jsonl", method=method(0), num_threads=1, max_errors=1)
    assert world.engine.count("response") == 2


def test_a_bug_in_a_detector_is_raised_not_counted_as_an_lm_error(tmp_path):
    class Broken:
        needs_response = False

        def detect(self, case):
            raise KeyError("a bug")

        def describe(self):
            return {"type": "Broken"}

    out = tmp_path / "out.jsonl"
    with pytest.raises(KeyError, match="a bug"):  # not "4 seeds hit LM errors; rerun to retry them"
        evolve(World(), texts(4), out, detectors=[Broken()], rounds=1, num_threads=1)
    assert not out.exists() or rows_of(out) == []  # nothing the broken detector judged was stored


def test_options_are_checked(tmp_path):
    with pytest.raises(ConfigurationError, match="shard"):
        evolve(World(), texts(3), tmp_path / "out.jsonl", shard=(2, 2))
    with pytest.raises(ConfigurationError, match=r"\.jsonl"):
        evolve(World(), texts(3), tmp_path / "out.parquet")
    with pytest.raises(ConfigurationError, match="no LM to evolve with"):
        evolve_dataset(texts(3), method=method(0), out_path=tmp_path / "x.jsonl", progress=False)


# Shards and files ------------------------------------------------------------------------------


def test_two_shards_together_are_the_whole(tmp_path):
    world, seeds = World(), load_instructions(texts(25))
    evolve(world, seeds, tmp_path / "whole.jsonl")
    first = evolve(world, seeds, tmp_path / "shard0.jsonl", shard=(0, 2))
    second = evolve(world, seeds, tmp_path / "shard1.jsonl", shard=(1, 2))
    rows0, rows1 = keyed(rows_of(tmp_path / "shard0.jsonl")), keyed(rows_of(tmp_path / "shard1.jsonl"))
    assert {s for s, _ in rows0} == {str(i) for i in range(0, 25, 2)}
    assert {s for s, _ in rows1} == {str(i) for i in range(1, 25, 2)}
    assert {**rows0, **rows1} == keyed(rows_of(tmp_path / "whole.jsonl"))
    assert (first.seeds, second.seeds) == (13, 12)
    with pytest.raises(RunConflictError, match="different shard"):
        evolve(world, seeds, tmp_path / "shard0.jsonl", shard=(1, 2))


def test_jsonl_and_parquet_round_trip(tmp_path):
    evolve(World(), texts(12), tmp_path / "out.jsonl")
    original = load_evolved(tmp_path / "out.jsonl")
    assert original.features == datasets.Features(original.features) and len(original) > 12
    parquet = save_evolved(tmp_path / "out.jsonl", tmp_path / "copy.parquet")
    from_parquet = load_evolved(parquet)
    assert from_parquet.to_list() == original.to_list()
    back = save_evolved(from_parquet, tmp_path / "again.jsonl")
    assert rows_of(back) == rows_of(tmp_path / "out.jsonl")
    assert save_evolved(original, tmp_path / "forced.bin", format="parquet").exists()
    only_successes = load_evolved(parquet, include_failures=False)
    assert all(row["failure"] is None for row in only_successes) and len(only_successes) < len(original)


def test_a_failed_save_leaves_the_old_file_whole(tmp_path, monkeypatch):
    evolve(World(), texts(6), tmp_path / "out.jsonl")
    target = save_evolved(tmp_path / "out.jsonl", tmp_path / "copy.jsonl")
    before = target.read_bytes()

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(datasets.Dataset, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        save_evolved(tmp_path / "out.jsonl", target, format="parquet")
    assert target.read_bytes() == before and not list(tmp_path.glob(".*"))  # no temporary left behind


@pytest.mark.parametrize(("out", "store"), [
    ("train.parquet", "train.rows.jsonl"),
    ("train.v2.parquet", "train.v2.rows.jsonl"),  # versions of one name keep stores of their own
    ("data.sft.jsonl", "data.sft.rows.jsonl"),
    ("x.PQ", "x.rows.jsonl"),
])
def test_the_row_store_sits_beside_a_training_file_under_its_own_name(out, store):
    assert row_store_beside(Path("runs") / out) == Path("runs") / store
    assert evolve_output_paths(Path(out), format="sft") == (Path(out), Path(store))


def test_a_lineage_jsonl_output_is_its_own_row_store_and_other_suffixes_are_refused():
    assert evolve_output_paths("rows.jsonl", format="lineage") == (Path("rows.jsonl"), Path("rows.jsonl"))
    with pytest.raises(ConfigurationError, match="--merge must end in .jsonl or .parquet"):
        evolve_output_paths("rows.csv", format="sft", option="--merge")


def test_two_writers_cannot_share_an_output(tmp_path):
    from autoevol_dspy.data.io import RowStore

    with RowStore(tmp_path / "out.jsonl").open(overwrite=False):
        with pytest.raises(RunConflictError, match="being written by another process"):
            RowStore(tmp_path / "out.jsonl").open(overwrite=False)


def test_evolved_data_keeps_extra_columns_and_empty_files_load(tmp_path):
    evolve(World(), texts(4), tmp_path / "out.jsonl", rounds=1)
    tagged = load_evolved(tmp_path / "out.jsonl").add_column("split", ["train"] * 4)
    again = load_evolved(save_evolved(tagged, tmp_path / "tagged.parquet"))
    assert again["split"] == ["train"] * 4 and again.features["response"] == datasets.Value("string")
    (tmp_path / "empty.jsonl").write_text("")
    assert len(load_evolved(tmp_path / "empty.jsonl")) == 0
    with pytest.raises(DataError, match="not evolved data"):
        load_evolved(_write(tmp_path / "seeds.parquet", RECORDS))


# Data out, ready to train on (issue 11) ----------------------------------------------------------


ALPACA = [
    {"instruction": "Summarize the text.", "input": "Cats sleep for most of the day and hunt at night.",
     "output": "Cats sleep by day.", "domain": "summaries", "id": "alp-1"},
    {"instruction": "Summarize the text.", "input": "Dogs bark at strangers to warn their owners.",
     "output": "Dogs warn by barking.", "domain": "summaries", "id": "alp-2"},
    {"instruction": "List three prime numbers above 20.", "input": "", "domain": "math", "id": "alp-3"},
]


def test_an_alpaca_input_goes_with_its_instruction_and_other_columns_are_carried(tmp_path):
    world = World()
    loaded = load_instructions(ALPACA)
    assert [s.context for s in loaded] == [ALPACA[0]["input"], ALPACA[1]["input"], None]
    evolve(world, loaded, tmp_path / "out.jsonl", rounds=1)
    rows = {row["seed_id"]: row for row in rows_of(tmp_path / "out.jsonl")}
    assert rows["alp-1"]["context"] == ALPACA[0]["input"] and rows["alp-3"]["context"] == ""
    assert rows["alp-1"]["seed_output"] == "Cats sleep by day." and rows["alp-3"]["seed_domain"] == "math"
    evolutions = [c for c in world.engine.calls if c.kind == "evolution"]
    assert any(ALPACA[1]["input"] in c.inputs["instruction"] for c in evolutions)  # the LM saw the text
    responses = [c for c in world.engine.calls if c.kind == "response"]
    assert any(ALPACA[0]["input"] in c.inputs["instruction"] for c in responses)  # and answered with it


@pytest.mark.parametrize("name", ["train.jsonl", "train.parquet"])
def test_the_sft_export_has_the_columns_trl_reads_and_leaves_failures_out(tmp_path, name):
    from autoevol_dspy.data import export_evolved

    world, seeds = World(), texts(30)
    summary = evolve(world, load_instructions(seeds), tmp_path / "out.jsonl", method=method(30))
    path, count = export_evolved(tmp_path / "out.jsonl", tmp_path / name, format="sft")
    dataset = datasets.load_dataset("json" if name.endswith("jsonl") else "parquet", data_files=str(path),
                                    split="train")
    assert count == len(dataset) == summary.rows - summary.failures > 0
    assert set(dataset.column_names) == {"messages", "seed_id", "round"}  # TRL: conversational language modeling
    first = dataset[0]["messages"]
    assert [m["role"] for m in first] == ["user", "assistant"] and all(m["content"] for m in first)
    assert sorted({r for r in dataset["round"]}) == [1, 2, 3]  # rounds mixed, as in the paper
    completion, _ = export_evolved(tmp_path / "out.jsonl", tmp_path / f"pc-{name}", format="prompt-completion")
    loaded = datasets.load_dataset("json" if name.endswith("jsonl") else "parquet", data_files=str(completion),
                                   split="train")
    assert {"prompt", "completion"} <= set(loaded.column_names)  # TRL: standard prompt-completion


def test_the_sft_prompt_carries_the_input_the_instruction_refers_to(tmp_path):
    from autoevol_dspy.data import export_evolved

    world = World()
    evolve(world, load_instructions(ALPACA), tmp_path / "out.jsonl", rounds=1)
    path, _ = export_evolved(tmp_path / "out.jsonl", tmp_path / "pc.jsonl", format="prompt-completion")
    prompts = {row["seed_id"]: row["prompt"] for row in rows_of(path)}
    assert prompts["alp-1"].endswith(ALPACA[0]["input"]) and "Summarize the text." in prompts["alp-1"]


# Bounds on what one row of a seed file may be ------------------------------------------------------------------


class _Endless:
    """A stream of one line that never ends (what a gzip bomb unzips to), counting the bytes handed out."""

    def __init__(self) -> None:
        self.served = 0

    def readline(self, size: int = -1) -> bytes:
        if size < 0:
            raise AssertionError("a whole line was asked for: it never ends")
        self.served += size
        return b"a" * size


def test_a_line_without_end_is_refused_after_reading_one_limit_of_it(tmp_path):
    from autoevol_dspy.data.io import bounded_lines

    stream = _Endless()
    with pytest.raises(DataError, match=r"x\.jsonl line 1 is longer than 1000 bytes, the most one row may be"):
        list(bounded_lines(stream, tmp_path / "x.jsonl", limit=1000))
    assert stream.served == 1001


def test_a_file_read_whole_is_bounded_once_unzipped(tmp_path, monkeypatch):
    import autoevol_dspy.data.io as io_module

    path = tmp_path / "seeds.json.gz"
    path.write_bytes(gzip.compress(json.dumps([{"instruction": "x" * 100}] * 100).encode()))
    monkeypatch.setattr(io_module, "MAX_WHOLE_FILE_BYTES", 4096)
    with pytest.raises(DataError, match=r"seeds\.json\.gz holds more than 4096 bytes \(unzipped\), the most a JSON "
                                        r"file read whole may hold; give the rows as JSONL"):
        load_instructions(path)
    monkeypatch.setattr(io_module, "MAX_WHOLE_FILE_BYTES", 2**20)
    assert len(load_instructions(path)) == 1  # one distinct instruction, under the bound


@pytest.mark.parametrize("depth, refused", [(32, False), (33, True)])
def test_a_json_row_nests_at_most_32_levels(tmp_path, depth, refused):
    nested = "[" * (depth - 1) + "]" * (depth - 1)  # the row's object is the first level
    path = tmp_path / "seeds.jsonl"
    path.write_text(f'{{"instruction": "a", "x": {nested}}}\n', encoding="utf-8")
    if refused:
        with pytest.raises(DataError, match="line 1 nests JSON more than 32 levels deep"):
            load_instructions(path)
    else:
        assert load_instructions(path).seeds[0].extra["x"] is not None


def test_a_number_as_context_is_still_text_but_not_as_instruction(tmp_path):
    path = tmp_path / "seeds.jsonl"
    path.write_text('{"instruction": "Add ten to it.", "input": 5}\n', encoding="utf-8")
    assert load_instructions(path).seeds[0].context == "5"
    path.write_text('{"instruction": 5, "input": "x"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"column 'instruction' holds a number \(5\) in row 0, not text"):
        load_instructions(path)
