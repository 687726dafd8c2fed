"""A whole-dataset evolution split into shards: which are done, and one dataset with every (seed, round) once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autoevol_dspy import DataError
from autoevol_dspy.cli.main import main as cli_main
from autoevol_dspy.data import evolve_dataset
from autoevol_dspy.data.shards import merge_shards, shard_status
from world import World, method, seed_file

SEEDS = 25


def _evolve(world: World, seeds: Path, out: Path, **settings):
    settings = {"method": method(30), "rounds": 3, "num_threads": 3, "progress": False, **settings}
    return evolve_dataset(seeds, out_path=out, evol_lm=world.lm, response_lm=world.lm, **settings)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture()
def split(tmp_path):
    """Seeds, and three shard stores of a 3-round evolution, each from its own 'machine'."""
    world, seeds = World(), seed_file(tmp_path / "seeds.jsonl", SEEDS)
    stores = []
    for index in range(3):
        store = tmp_path / f"machine{index}" / f"part{index}.jsonl"
        _evolve(world, seeds, store, shard=(index, 3))
        stores.append(store)
    return seeds, stores, world


def test_the_merge_is_the_unsharded_evolution_and_evolve_finds_nothing_left_to_do(split, tmp_path):
    seeds, stores, world = split
    whole = tmp_path / "whole.jsonl"
    _evolve(world, seeds, whole)
    report = merge_shards(seeds, stores, out_path=tmp_path / "merged.jsonl", rounds=3)
    assert report.complete and [s.complete for s in report.shards] == [True] * 3
    merged = _rows(tmp_path / "merged.jsonl")
    key = lambda row: (int(row["seed_id"]), row["round"])  # noqa: E731
    assert merged == sorted(_rows(whole), key=key)  # same rows, seed order then round
    assert json.loads((tmp_path / "merged.meta.json").read_text()) == json.loads((tmp_path / "whole.meta.json")
                                                                                  .read_text())
    calls = len(world.engine.calls)
    again = _evolve(world, seeds, tmp_path / "merged.jsonl")  # the merge is a finished unsharded evolution
    assert again.new_rows == 0 and again.complete and len(world.engine.calls) == calls


def test_status_names_the_shards_still_running_and_what_they_lack(split):
    seeds, stores, _ = split
    report = shard_status(seeds, stores[:2], rounds=3)
    assert report.absent == [2] and not report.complete
    assert {(s.index, s.complete) for s in report.shards} == {(0, True), (1, True)}
    assert report.missing and all(int(seed) % 3 == 2 for seed, _ in report.missing)
    # A shard cut short: its last rows are gone (a machine still working on it).
    rows = stores[1].read_text(encoding="utf-8").splitlines()
    stores[1].write_text("\n".join(rows[:-4]) + "\n", encoding="utf-8")
    removed = {(row["seed_id"], row["round"]) for row in map(json.loads, rows[-4:])}
    report = shard_status(seeds, stores, rounds=3)
    partial = next(s for s in report.shards if s.index == 1)
    assert not partial.complete and partial.done < partial.seeds
    assert removed <= set(report.missing) and {seed for seed, _ in report.missing} == {s for s, _ in removed}
    assert "shard 1/3: in progress" in report.describe()


def test_a_shard_given_twice_or_an_incomplete_split_is_not_merged(split, tmp_path):
    seeds, stores, _ = split
    copy = tmp_path / "copy" / "part0.jsonl"
    copy.parent.mkdir()
    shutil.copy(stores[0], copy)
    shutil.copy(stores[0].with_name("part0.meta.json"), copy.with_name("part0.meta.json"))
    with pytest.raises(DataError, match=r"more than one store for shard\(s\) 0.*duplicated: 0#1") as error:
        merge_shards(seeds, [*stores, copy], out_path=tmp_path / "merged.jsonl", rounds=3)
    assert "\n" not in str(error.value)
    with pytest.raises(DataError, match=r"no store for shard\(s\) 1 of 3.*missing: 1#1"):
        merge_shards(seeds, [stores[0], stores[2]], out_path=tmp_path / "merged.jsonl", rounds=3)
    with pytest.raises(DataError, match=r"missing"):
        merge_shards(seeds, stores, out_path=tmp_path / "merged.jsonl", rounds=4)  # a round never evolved
    assert not (tmp_path / "merged.jsonl").exists()


def test_shards_of_another_method_or_other_seeds_are_refused(split, tmp_path):
    seeds, stores, world = split
    other = tmp_path / "other" / "part1.jsonl"
    _evolve(world, seeds, other, shard=(1, 3), method=method(60))
    with pytest.raises(DataError, match=r"other settings .*method_id"):
        shard_status(seeds, [stores[0], other, stores[2]], rounds=3)
    fewer = tmp_path / "fewer.jsonl"
    fewer.write_text("".join(seeds.read_text().splitlines(keepends=True)[:-1]), encoding="utf-8")
    with pytest.raises(DataError, match=r"other seeds"):
        shard_status(fewer, stores, rounds=3)


def test_the_command_line_shows_the_split_and_merges_it(split, tmp_path, capsys):
    seeds, stores, _ = split
    assert cli_main(["shards", str(seeds), str(stores[0]), str(stores[1]), "--rounds", "3"]) == 1
    shown = capsys.readouterr().out
    assert "shard 0/3: done" in shown and "no store for shard(s) 2 of 3" in shown
    out = tmp_path / "train.jsonl"
    assert cli_main(["shards", str(seeds), *map(str, stores), "--rounds", "3", "--merge", str(out),
                     "--format", "sft"]) == 0
    assert "3 of 3 shard(s) done" in capsys.readouterr().out
    assert all("messages" in row for row in _rows(out))
    assert (tmp_path / "train.rows.jsonl").is_file()  # every row with its lineage, as evolve keeps it
