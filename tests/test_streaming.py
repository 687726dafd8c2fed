"""Streamed whole-dataset evolution: a seed file read row by row keeps exactly the seeds that loading keeps,
a streamed run resumes exactly, the pool draws items only as threads free up, and no LM call stays in memory."""

from __future__ import annotations

import csv
import gzip
import json
import threading
from pathlib import Path

import dspy
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from world import World, evolve, keyed, rows_of, seed_file

from autoevol_dspy import DataError
from autoevol_dspy.data.seed_file import SeedFile, scan_instructions
from autoevol_dspy.data.seeds import load_instructions
from autoevol_dspy.parallel import run_parallel

RECORDS = [
    {"id": "a1", "instruction": "Write a poem about rain.", "input": "", "lang": "en"},
    {"id": "a2", "instruction": "   ", "input": "", "lang": "en"},
    {"id": "a3", "instruction": "Sum 2 and 3.", "input": "show steps", "lang": "en"},
    {"id": "a4", "instruction": "Write a  poem about rain.", "input": "", "lang": "fr"},
    {"id": "a5", "instruction": "Sum 2 and 3.", "input": "no steps", "lang": "de"},
]


def _write(path: Path, records: list[dict]) -> Path:
    name = path.name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(records), path)
    elif ".csv" in name:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "wt", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    elif name.endswith(".json"):
        path.write_text(json.dumps(records), encoding="utf-8")
    else:
        text = "".join(json.dumps(r) + "\n" for r in records)
        path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path




# The seed file ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.gz", "s.json", "s.csv", "s.csv.gz", "s.parquet"])
def test_a_scanned_file_keeps_the_seeds_counts_and_fingerprint_of_a_loaded_one(tmp_path, name):
    path = _write(tmp_path / name, RECORDS)
    loaded, scanned = load_instructions(path), scan_instructions(path)
    assert [(s.seed_id, s.instruction, s.context, s.extra) for s in scanned] == \
        [(s.seed_id, s.instruction, s.context, s.extra) for s in loaded]
    assert [s.seed_id for s in scanned] == ["a1", "a3", "a5"]  # a2 empty, a4 a repeat once spaces are folded
    assert (scanned.rows, scanned.skipped_empty, scanned.duplicates, len(scanned)) == \
        (loaded.rows, loaded.skipped_empty, loaded.duplicates, len(loaded)) == (5, 1, 1, 3)
    assert scanned.fingerprint() == loaded.fingerprint() and scanned.source == loaded.source
    assert list(scanned) == list(scanned)  # every pass reads the file again, the same way


@pytest.mark.parametrize(
    ("make_source", "kwargs", "pattern"),
    [
        (lambda d: d / "missing.jsonl", {}, r"missing\.jsonl: no such file"),
        (lambda d: _write(d / "s.jsonl", RECORDS), {"column": "prompt"}, r"no column 'prompt'"),
        (lambda d: (d / "latin.jsonl").write_bytes(b'{"instruction": "ok"}\n{"instruction": "caf\xe9"}\n')
         and d / "latin.jsonl", {}, r"latin\.jsonl is not UTF-8 text: byte 0xe9 on line 2"),
        (lambda d: (d / "bad.jsonl").write_text('{"instruction": "a"}\n{oops\n') and d / "bad.jsonl", {},
         r"bad\.jsonl line 2 is not valid JSON"),
        (lambda d: _write(d / "e.jsonl", [{"instruction": " "}, {"instruction": None}]), {},
         r"no usable rows .*2 rows, 2 empty"),
        (lambda d: _write(d / "ids.csv", [{"id": "1", "instruction": "a"}, {"id": "1", "instruction": "b"}]), {},
         r"id '1' is used by rows 0 and 1"),
        (lambda d: (d / "cut.jsonl.gz").write_bytes(gzip.compress(b'{"instruction": "a"}\n' * 50)[:-12])
         and d / "cut.jsonl.gz", {}, r"not a readable gzip file"),
    ],
)
def test_a_bad_file_is_the_same_one_line_error_as_loading_it(tmp_path, make_source, kwargs, pattern):
    source = make_source(tmp_path)
    with pytest.raises(DataError, match=pattern) as scanned:
        scan_instructions(source, **kwargs)
    with pytest.raises(DataError, match=pattern):
        load_instructions(source, **kwargs)
    assert "\n" not in str(scanned.value)


# Evolving a stream --------------------------------------------------------------------------------


def test_a_streamed_evolution_is_the_loaded_one(tmp_path):
    world, path = World(), seed_file(tmp_path / "seeds.jsonl", 24)
    streamed = evolve(world, path, tmp_path / "streamed.jsonl")
    loaded = evolve(world, load_instructions(path), tmp_path / "loaded.jsonl")
    assert keyed(rows_of(tmp_path / "streamed.jsonl")) == keyed(rows_of(tmp_path / "loaded.jsonl"))
    assert (streamed.seeds, streamed.rows, streamed.failures) == (loaded.seeds, loaded.rows, loaded.failures)
    assert streamed.failures > 0 and streamed.complete
    # Same seeds, same fingerprint: the loaded run may resume the streamed one's file, and finds nothing to do.
    calls = len(world.engine.calls)
    assert evolve(world, load_instructions(path), tmp_path / "streamed.jsonl").new_rows == 0
    assert len(world.engine.calls) == calls


@pytest.mark.parametrize("kept", [1, 17, 40])
def test_a_streamed_run_cut_after_any_row_resumes_to_the_same_rows(tmp_path, kept):
    world, path = World(), seed_file(tmp_path / "seeds.jsonl", 20)
    evolve(world, scan_instructions(path), tmp_path / "full.jsonl")
    full = rows_of(tmp_path / "full.jsonl")
    assert len(full) > 40
    cut = tmp_path / "cut.jsonl"  # what a kill after `kept` finished rows leaves (chains cut mid-way included)
    cut.write_text("".join(json.dumps(row) + "\n" for row in full[:kept]), encoding="utf-8")
    (tmp_path / "cut.meta.json").write_text((tmp_path / "full.meta.json").read_text(), encoding="utf-8")

    before = world.engine.count("evolution")
    resumed = evolve(world, scan_instructions(path), cut)
    assert keyed(rows_of(cut)) == keyed(full)
    assert world.engine.count("evolution") - before == len(full) - kept  # nothing evolved twice
    assert (resumed.resumed_rows, resumed.rows, resumed.complete) == (kept, len(full), True)


def test_a_streamed_shard_evolves_every_count_th_seed(tmp_path):
    world, path = World(), seed_file(tmp_path / "seeds.jsonl", 11)
    summary = evolve(world, path, tmp_path / "part.jsonl", shard=(1, 3), rounds=1)
    assert summary.seeds == 4 and {row["seed_id"] for row in rows_of(tmp_path / "part.jsonl")} == {"1", "4", "7", "10"}


def test_rows_of_a_seed_outside_the_stream_are_refused(tmp_path):
    world = World()
    evolve(world, seed_file(tmp_path / "seeds.jsonl", 6), tmp_path / "out.jsonl", rounds=1)
    fewer = seed_file(tmp_path / "fewer.jsonl", 4)
    (tmp_path / "out.meta.json").write_text(
        json.dumps({**json.loads((tmp_path / "out.meta.json").read_text()),
                    "seeds": scan_instructions(fewer).fingerprint()}), encoding="utf-8")
    with pytest.raises(DataError, match=r"holds a row for seed '[45]', which is not among this run's seeds"):
        evolve(world, fewer, tmp_path / "out.jsonl", rounds=1)


def test_an_evolution_leaves_no_lm_call_in_dspys_history(tmp_path):
    world, trace = World(), []
    before = len(dspy.clients.base_lm.GLOBAL_HISTORY)
    with dspy.context(trace=trace):  # a caller's trace: evolve must not fill it
        evolve(world, seed_file(tmp_path / "seeds.jsonl", 8), tmp_path / "out.jsonl", rounds=2)
    assert world.engine.calls, "the scripted LM was never called"
    assert len(dspy.clients.base_lm.GLOBAL_HISTORY) == before and world.lm.history == [] and trace == []


def test_a_scanned_file_is_a_seed_file_and_is_never_loaded(tmp_path, monkeypatch):
    path = seed_file(tmp_path / "seeds.jsonl", 5)
    monkeypatch.setattr("autoevol_dspy.data.evolve.load_instructions",
                        lambda *a, **k: pytest.fail("a path was loaded whole"))
    assert isinstance(scan_instructions(path), SeedFile)
    assert evolve(World(), path, tmp_path / "out.jsonl", rounds=1).seeds == 5


# The pool -----------------------------------------------------------------------------------------


def test_the_pool_draws_an_item_only_when_a_thread_is_free():
    drawn, gate = [], threading.Event()

    def items():
        for index in range(1000):
            drawn.append(index)
            yield index

    def work(item: int) -> int:
        if item in (1, 2, 3):
            gate.wait(5)
        return item * 2

    results = run_parallel(work, items(), num_threads=4)
    try:
        assert next(results) == (0, 0) and len(drawn) == 4  # three threads still busy: nothing more drawn
        assert next(results) == (4, 8) and len(drawn) == 5
    finally:
        gate.set()
    assert sorted(results) == [(i, i * 2) for i in range(1, 1000) if i != 4]


def test_the_pool_stops_drawing_once_told_to_stop():
    drawn, done = [], []

    def items():
        for index in range(10_000):
            drawn.append(index)
            yield index

    for index, _ in run_parallel(lambda item: item, items(), num_threads=8, should_stop=lambda: len(done) >= 20):
        done.append(index)
    assert 20 <= len(done) <= 28 and len(drawn) <= len(done) + 8


def test_an_error_in_a_task_stops_new_starts_and_is_raised_after_the_running_ones_end():
    started, finished = [], []

    def work(item: int) -> int:
        started.append(item)
        if item == 5:
            raise ValueError("boom")
        finished.append(item)
        return item

    with pytest.raises(ValueError, match="boom"):
        list(run_parallel(work, iter(range(10_000)), num_threads=4))
    assert len(started) < 100 and 5 in started and 5 not in finished
