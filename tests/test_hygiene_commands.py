"""Hygiene where evolved data is written: ``evolve`` and ``shards --merge`` clean their output, the row store keeps all.

In the scripted world an evolution appends one long sentence to its instruction, so round 2 of a
seed repeats its round 1 with that sentence once more (a near duplicate), and a benchmark that
holds one seed's text leaks into every round of that seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoevol_dspy.cli.main import main as cli_main
from autoevol_dspy.data import HygieneOptions, clean_file, export_evolved
from autoevol_dspy.testing import StubServer
from world import World, method, rows_of, run_cli

SEEDS = Path(__file__).parent.parent / "examples" / "seeds.jsonl"
LEAKED = "A train travels 180 km in 2 hours and 30 minutes. What is its average speed in km per hour?"


@pytest.fixture()
def bench(tmp_path) -> Path:
    path = tmp_path / "bench.jsonl"
    path.write_text(json.dumps({"question_id": 7, "question": LEAKED}) + "\n")
    return path


@pytest.fixture()
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "dspy_cache"))
    with StubServer(World().respond) as stub:
        yield stub


def test_evolve_cleans_its_output_and_other_options_need_no_new_evolution(server, bench, tmp_path):
    method_file = tmp_path / "method.txt"
    method_file.write_text(method(30))
    out = tmp_path / "train.parquet"
    evolve = ["evolve", str(SEEDS), "--method", str(method_file), "--out", str(out), "--format", "sft", "--rounds",
              "2", "--lm", "openai/stub", "--api-base", server.base_url, "--no-progress", "-q"]
    done = run_cli(*evolve, "--dedup", "--decontaminate", str(bench))
    assert done.returncode == 0, done.stderr
    assert "hygiene:  " in done.stdout and "train.removed.jsonl" in done.stdout
    store = tmp_path / "train.rows.jsonl"
    passing = [row for row in rows_of(store) if row["failure"] is None]
    import pyarrow.parquet as pq

    kept = pq.read_table(out).to_pylist()
    removed = rows_of(tmp_path / "train.removed.jsonl")
    assert len(kept) + len(removed) == len(passing) and removed
    leaked = {entry["row"]["seed_id"] for entry in removed if entry["reason"] == "contaminated"}
    assert leaked == {"seed-01"} and all(row["seed_id"] != "seed-01" for row in kept)
    near = [entry["row"] for entry in removed if entry["reason"] == "near_duplicate"]
    assert any(row["round"] == 2 for row in near)  # round 2 repeats round 1 with one sentence more
    reference = tmp_path / "reference.jsonl"  # the library, on the same rows, agrees with the command
    export_evolved(store, tmp_path / "exported.jsonl", format="sft")
    clean_file(tmp_path / "exported.jsonl", out=reference, options=HygieneOptions(dedup=True,
                                                                                   decontaminate=(str(bench),)))
    assert kept == rows_of(reference)

    calls = server.stats()["total"]
    again = run_cli(*evolve, "--decontaminate", str(bench))  # other options: the stored rows are cleaned again
    assert again.returncode == 0, again.stderr
    assert server.stats()["total"] == calls
    assert len(pq.read_table(out).to_pylist()) == len(passing) - sum(row["seed_id"] == "seed-01" for row in passing)
    plain = run_cli(*evolve)
    assert plain.returncode == 0 and "hygiene" not in plain.stdout
    assert len(pq.read_table(out).to_pylist()) == len(passing) and server.stats()["total"] == calls


def test_a_lineage_output_keeps_its_store_apart_and_its_failures_unchecked(server, bench, tmp_path):
    method_file = tmp_path / "method.txt"
    method_file.write_text(method(30))
    out = tmp_path / "rows.jsonl"
    evolve = ["evolve", str(SEEDS), "--method", str(method_file), "--out", str(out), "--lm", "openai/stub",
              "--api-base", server.base_url, "--no-progress", "-q"]
    done = run_cli(*evolve, "--dedup")
    assert done.returncode == 0, done.stderr
    store = rows_of(tmp_path / "rows.rows.jsonl")
    kept = rows_of(out)
    failures = [row for row in store if row["failure"] is not None]
    assert failures and all(row in kept for row in failures)  # failed rows are lineage, not training data
    assert len(kept) < len(store)  # short seeds with the same long sentence appended are near duplicates

    plain = tmp_path / "plain.jsonl"
    assert run_cli(*[str(plain) if arg == str(out) else arg for arg in evolve]).returncode == 0
    refused = run_cli(*[str(plain) if arg == str(out) else arg for arg in evolve], "--dedup")
    assert refused.returncode == 2 and "holds the rows of an evolution without hygiene options" in refused.stderr
    assert len(rows_of(plain)) == len(store)  # the earlier evolution is left as it was


def test_shards_merge_cleans_the_merged_dataset(tmp_path, bench, capsys):
    from autoevol_dspy.data import evolve_dataset

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(SEEDS.read_text())
    world = World()
    stores = []
    for index in range(2):
        store = tmp_path / f"part{index}.jsonl"
        evolve_dataset(seeds, out_path=store, method=method(30), rounds=2, evol_lm=world.lm, response_lm=world.lm,
                       num_threads=2, progress=False, shard=(index, 2))
        stores.append(str(store))
    assert cli_main(["shards", str(seeds), *stores, "--rounds", "2", "--decontaminate", str(bench)]) == 2
    assert "apply to the dataset --merge writes" in capsys.readouterr().err
    out = tmp_path / "merged.parquet"
    assert cli_main(["shards", str(seeds), *stores, "--rounds", "2", "--merge", str(out), "--format", "sft",
                     "--decontaminate", str(bench), "--dedup"]) == 0
    shown = capsys.readouterr().out
    assert "hygiene:  " in shown and " 0 contaminated" not in shown
    removed = rows_of(tmp_path / "merged.removed.jsonl")
    assert {entry["row"]["seed_id"] for entry in removed if entry["reason"] == "contaminated"} == {"seed-01"}
    summary = json.loads((tmp_path / "merged.hygiene.json").read_text())
    assert summary["source"] == str(tmp_path / "merged.rows.jsonl")
    assert summary["counts"]["rows_out"] + len(removed) == summary["counts"]["rows_in"]


def test_evolving_with_a_run_directory_shows_the_dataset_in_its_report(server, bench, tmp_path):
    from autoevol_dspy.search.tracking import RunTracker

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    RunTracker.open(storage=f"sqlite:///{(run_dir / 'study.db').as_posix()}", study_name="run",
                    settings={"task": {"type": "EvolutionTask"}, "dev_size": 10}, fingerprints={})
    (run_dir / "method.txt").write_text(method(30))
    out = tmp_path / "train.jsonl"
    done = run_cli("evolve", str(SEEDS), "--method", str(run_dir), "--out", str(out), "--format", "prompt-completion",
                    "--rounds", "2", "--lm", "openai/stub", "--api-base", server.base_url, "--no-progress", "-q",
                    "--dedup", "--decontaminate", str(bench))
    assert done.returncode == 0, done.stderr
    assert f"report:   {run_dir / 'report.html'}" in done.stdout
    recorded = json.loads((run_dir / "evolved.json").read_text())["datasets"]
    assert [entry["out_path"] for entry in recorded] == [str(out)]
    entry = recorded[0]
    store = rows_of(tmp_path / "train.rows.jsonl")
    assert entry["rows"] == len(store) and sum(entry["rows_by_round"].values()) == len(store)
    assert entry["rows_by_round"].keys() == {"1", "2"}
    assert sum(entry["failures_by_category"].values()) == sum(row["failure"] is not None for row in store)
    counts = entry["hygiene"]["counts"]
    assert counts["rows_out"] == len(rows_of(out)) and counts["contaminated"] == {str(bench): 2}
    page = (run_dir / "report.html").read_text()
    section = page[page.index('<section id="evolved">'):]
    section = section[:section.index("</section>")]
    assert str(out) in section and "near duplicate" in section and "benchmark leak" in section
    assert f"leaks of {bench}" in section and "train.removed.jsonl" in section

    again = run_cli("evolve", str(SEEDS), "--method", str(run_dir), "--out", str(out), "--format",
                     "prompt-completion", "--rounds", "2", "--lm", "openai/stub", "--api-base", server.base_url,
                     "--no-progress", "-q")  # the same output again, not cleaned: one entry, replaced
    assert again.returncode == 0, again.stderr
    recorded = json.loads((run_dir / "evolved.json").read_text())["datasets"]
    assert len(recorded) == 1 and recorded[0]["hygiene"] is None
    assert "Not cleaned" in (run_dir / "report.html").read_text()


def test_the_evolved_section_escapes_what_the_data_holds():
    from autoevol_dspy.data import CleanSummary, HygieneCounts
    from autoevol_dspy.data.evolutions import EvolvedDataset
    from autoevol_dspy.report.evolved import evolved_section

    hygiene = CleanSummary(source="<b>s</b>", out_path="o", removed_path="r", columns="c", settings={},
                           counts=HygieneCounts(rows_in=2, exact_duplicates=1, rows_out=1), seconds=0.0,
                           examples=[{"index": 1, "reason": "exact_duplicate", "duplicate_of": 0,
                                      "prompt": "<script>alert(1)</script>"}])
    html = evolved_section([EvolvedDataset(out_path="<i>out</i>", store="s", format="sft", rows=2,
                                           rows_by_round={"1": 2}, passed_by_round={"1": 2},
                                           failures_by_category={}, hygiene=hygiene)])
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;i&gt;out" in html
    assert evolved_section([]) == ""
