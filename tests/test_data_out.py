"""Evolved data a data engineer can train on as it is (issue 20): an Alpaca input once in the prompt,
the seed's other columns kept in every format, ``context`` a text column in every file."""

from __future__ import annotations

import json

import datasets

from autoevol_dspy.data import export_evolved
from autoevol_dspy.data.seeds import load_instructions
from world import World, evolve, rows_of

ALPACA = [
    {"instruction": "Summarize the text.", "input": "Cats sleep for most of the day and hunt at night.",
     "output": "Cats sleep by day.", "domain": "summaries", "id": "alp-1"},
    {"instruction": "List three prime numbers above 20.", "input": "", "output": "23, 29, 31", "domain": "math",
     "id": "alp-2"},
]


def _row(seed_id: str, evolved: str, context: str) -> dict:
    return {"seed_id": seed_id, "round": 1, "seed_instruction": "Summarize the text.", "context": context,
            "parent_instruction": "Summarize the text.", "evolved_instruction": evolved, "response": "A summary.",
            "failure": None, "failure_reason": None, "method_id": "m", "seed_output": "gold"}


def test_an_input_the_evolved_instruction_already_quotes_is_not_appended_again(tmp_path):
    text = "Cats sleep for most of the day and hunt at night."
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(row) + "\n" for row in [
        _row("quoted", f"Summarize this text in one sentence:\n\n  cats sleep for most of the day\nand hunt at "
             "night.  Then name its subject.", text),
        _row("apart", "Summarize the text in one sentence, then name its subject.", text),
    ]), encoding="utf-8")
    path, _ = export_evolved(rows, tmp_path / "pc.jsonl", format="prompt-completion")
    prompts = {row["seed_id"]: row["prompt"] for row in rows_of(path)}
    assert prompts["quoted"].casefold().count("hunt at") == 1 and "Then name its subject." in prompts["quoted"]
    assert prompts["apart"].endswith(f"\n\n{text}")  # an instruction that refers to the input gets it


def test_the_seeds_other_columns_reach_both_training_formats(tmp_path):
    evolve(World(), load_instructions(ALPACA), tmp_path / "out.jsonl", rounds=1)
    for fmt, own in (("sft", {"messages"}), ("prompt-completion", {"prompt", "completion"})):
        path, count = export_evolved(tmp_path / "out.jsonl", tmp_path / f"{fmt}.parquet", format=fmt)
        dataset = datasets.load_dataset("parquet", data_files=str(path), split="train")
        assert count == len(dataset) > 0
        assert set(dataset.column_names) == own | {"seed_id", "round", "seed_output", "seed_domain"}, fmt
        by_id = {row["seed_id"]: row for row in dataset}
        assert by_id["alp-1"]["seed_output"] == "Cats sleep by day." and by_id["alp-1"]["seed_domain"] == "summaries"


def test_context_is_a_text_column_in_lineage_jsonl_and_parquet_alike(tmp_path):
    no_inputs = [{**row, "input": ""} for row in ALPACA]  # no seed has an input: the column must still be text
    evolve(World(), load_instructions(no_inputs), tmp_path / "rows.jsonl", rounds=1)
    export_evolved(tmp_path / "rows.jsonl", tmp_path / "rows.parquet", format="lineage")
    from_jsonl = datasets.load_dataset("json", data_files=str(tmp_path / "rows.jsonl"), split="train")
    from_parquet = datasets.load_dataset("parquet", data_files=str(tmp_path / "rows.parquet"), split="train")
    assert from_jsonl.features["context"] == from_parquet.features["context"] == datasets.Value("string")
    assert from_jsonl["context"] == from_parquet["context"] == ["", ""]
