"""Training-data hygiene: duplicates and benchmark leaks planted in hand-written data are removed, nothing else is.

``tests/data/hygiene/instructions.jsonl`` holds 190 distinct hand-written instructions (some with an
Alpaca ``input``, all with extra columns, near relatives among them: two haiku prompts, one
instruction with several inputs); ``benchmark.jsonl`` 30 hand-written benchmark items. The tests
plant exact copies, case/spacing/punctuation variants, variants with a few words appended, and
benchmark items wrapped in other text (in the instruction, the input or the response column),
each after the row it copies, and check what ``clean_file`` keeps and why it removes the rest.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from autoevol_dspy.data import (
    Decontaminator,
    HygieneOptions,
    Normaliser,
    RowHygiene,
    TextColumns,
    clean_file,
    clean_rows,
)
from autoevol_dspy.errors import DataError

DATA = Path(__file__).parent / "data" / "hygiene"
BENCH = DATA / "benchmark.jsonl"
SUFFIXES = ["Thanks!", "Be concise.", "Please answer briefly.", "Explain your reasoning.", "Keep it short.",
            "Answer in English.", "Show your work.", "Use simple words."]
WRAPS = [("My teacher gave us this one: ", " Can you walk me through it?"), ("Question from a forum. ", ""),
         ("", " I have to hand this in tomorrow, please help."), ("Help me with the following task. ", " Thanks!")]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def case_variant(text: str, rng: random.Random) -> str:
    """The same words, other case, spacing and punctuation."""
    cased = rng.choice([str.upper, str.lower, str.title, str.swapcase])(text)
    spaced = "  ".join(cased.split(" ")) if rng.random() < 0.5 else cased.replace(" ", "\n", 2)
    return rng.choice(["  ", "", "\t"]) + spaced.rstrip(".?!") + rng.choice(["", "!!", " ?", "..."])


def planted_rows(seed: int = 7, count: int = 40) -> list[dict]:
    """The clean rows with planted rows of each kind after the row they copy; ``kind`` says which is which.

    Suffixes (one to three words) go on prompts of at least 10 words: a 6-word question with 3 words
    more differs in a third of its words, and is kept (see the test of the threshold)."""
    rng = random.Random(seed)
    clean = [{**row, "kind": "clean"} for row in read_jsonl(DATA / "instructions.jsonl")]
    items = [item for item in read_jsonl(BENCH) if len(item["question"].split()) >= 8]
    long_enough = [i for i, row in enumerate(clean) if len(f"{row['instruction']} {row['input']}".split()) >= 10]
    later: list[tuple[int, dict]] = []
    for kind in ("exact", "case", "suffix"):
        for position in rng.sample(long_enough if kind == "suffix" else range(len(clean)), count):
            row = {**clean[position], "id": f"{kind}-{position}", "kind": kind}
            if kind == "case":
                row["instruction"] = case_variant(row["instruction"], rng)
            elif kind == "suffix":
                row["instruction"] = f"{row['instruction']} {rng.choice(SUFFIXES)}"
            later.append((position, row))
    for number, item in enumerate(items):
        before, after = rng.choice(WRAPS)
        wrapped = before + item["question"] + after
        where = ("instruction", "input", "output")[number % 3]
        row = {"id": f"leak-{item['question_id']}", "category": "mixed", "instruction": "Answer the question below.",
               "input": "", "meta": {"source": "forum"}, "kind": "leak", "leaks": item["question_id"]}
        row[where] = wrapped
        later.append((rng.randrange(len(clean)), row))
    rows = list(clean)
    for position, row in sorted(later, key=lambda pair: -pair[0]):  # each planted row somewhere after its source
        rows.insert(rng.randint(position + 1, len(rows)) if position + 1 < len(rows) else len(rows), row)
    return rows


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture()
def planted(tmp_path) -> tuple[Path, list[dict]]:
    rows = planted_rows()
    return write_jsonl(tmp_path / "planted.jsonl", rows), rows


def test_clean_removes_what_was_planted_and_keeps_the_clean_rows_with_their_columns(planted, tmp_path):
    source, rows = planted
    summary = clean_file(source, out=tmp_path / "clean.jsonl", options=HygieneOptions(dedup=True,
                                                                                      decontaminate=(str(BENCH),)))
    kept = read_jsonl(tmp_path / "clean.jsonl")
    removed = read_jsonl(tmp_path / "clean.removed.jsonl")
    planted_by_kind = Counter(row["kind"] for row in rows)
    kept_by_kind = Counter(row["kind"] for row in kept)
    for kind in ("exact", "case", "suffix", "leak"):
        share = 1 - kept_by_kind[kind] / planted_by_kind[kind]
        assert share >= 0.95, f"{kind}: only {share:.0%} removed"
    assert planted_by_kind["clean"] - kept_by_kind["clean"] <= 0.01 * planted_by_kind["clean"]
    by_id = {row["id"]: row for row in rows}
    assert all(row == by_id[row["id"]] for row in kept)  # every column kept as it was, nested ones too
    assert [row["id"] for row in kept] == [row["id"] for row in rows if row["id"] in {k["id"] for k in kept}]
    reasons = Counter((entry["row"]["kind"], entry["reason"]) for entry in removed)
    assert reasons[("exact", "exact_duplicate")] == planted_by_kind["exact"] - kept_by_kind["exact"]
    assert reasons[("case", "exact_duplicate")] >= 0.95 * planted_by_kind["case"]
    assert reasons[("leak", "contaminated")] == planted_by_kind["leak"] - kept_by_kind["leak"]
    for entry in removed:
        assert entry["row"] == rows[entry["index"]]
        if entry["reason"] == "contaminated":
            assert entry["contaminated_by"]["item"] == entry["row"]["leaks"]
            assert entry["contaminated_by"]["benchmark"] == str(BENCH)
            assert len(entry["contaminated_by"]["ngram"].split()) <= 13
        elif entry["row"]["kind"] != "clean":  # a planted duplicate names the row it was made from
            original = rows[entry["duplicate_of"]]
            assert original["kind"] == "clean" and entry["row"]["id"].endswith(f"-{_position_of(original)}")
    counts = summary.counts
    assert counts.rows_in == len(rows) and counts.rows_out == len(kept) and counts.removed == len(removed)
    assert counts.contaminated == {str(BENCH): reasons[("leak", "contaminated")]}
    stored = json.loads((tmp_path / "clean.hygiene.json").read_text())
    assert stored["counts"] == counts.model_dump() and stored["examples"]


def _position_of(row: dict) -> int:
    clean_ids = [item["id"] for item in read_jsonl(DATA / "instructions.jsonl")]
    return clean_ids.index(row["id"])


def test_the_near_duplicate_threshold_and_the_ngram_are_the_users(planted, tmp_path):
    source, rows = planted
    strict = clean_file(source, out=tmp_path / "strict.jsonl", options=HygieneOptions(dedup=True, near_threshold=1.0))
    default = clean_file(source, out=tmp_path / "default.jsonl", options=HygieneOptions(dedup=True))
    assert strict.counts.near_duplicates < default.counts.near_duplicates
    assert strict.counts.exact_duplicates == default.counts.exact_duplicates
    shared = {"instruction": "Tie a knot: a rope 84 meters long is cut into three pieces by a sailor."}  # 10 words
    source = write_jsonl(tmp_path / "one.jsonl", [shared])
    for ngram, leaks in ((13, 0), (10, 1), (8, 1)):
        summary = clean_file(source, out=tmp_path / "out.jsonl", options=HygieneOptions(decontaminate=(str(BENCH),),
                                                                                       ngram=ngram))
        assert sum(summary.counts.contaminated.values()) == leaks, ngram


def _write_format(path: Path, rows: list[dict]) -> Path:
    """Rows written as the file's suffix says (CSV: flat text cells only)."""
    name = path.name
    if name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    elif ".csv" in name:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "wt", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif name.endswith(".json"):
        path.write_text(json.dumps(rows), encoding="utf-8")
    else:
        text = "".join(json.dumps(row) + "\n" for row in rows)
        path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.json", "rows.csv", "rows.parquet", "rows.jsonl.gz",
                                  "rows.csv.gz"])
@pytest.mark.parametrize("out_name", ["kept.jsonl", "kept.parquet"])
def test_every_input_format_gives_the_same_clean(tmp_path, name, out_name):
    rows = [{"id": row["id"], "kind": row["kind"], "instruction": row["instruction"], "input": row["input"],
             "output": row.get("output", "")} for row in planted_rows(seed=3, count=10)]
    source = _write_format(tmp_path / name, rows)
    options = HygieneOptions(dedup=True, decontaminate=(str(BENCH),))
    summary = clean_file(source, out=tmp_path / out_name, options=options)
    reference = clean_file(write_jsonl(tmp_path / "reference.jsonl", rows), out=tmp_path / "reference-kept.jsonl",
                           options=options)
    assert summary.counts == reference.counts and summary.counts.removed > 40
    if out_name.endswith(".parquet"):
        import pyarrow.parquet as pq

        kept = pq.read_table(tmp_path / out_name).to_pylist()
    else:
        kept = read_jsonl(tmp_path / out_name)
    assert kept == read_jsonl(tmp_path / "reference-kept.jsonl")
    assert read_jsonl(tmp_path / f"{out_name.rsplit('.', 1)[0]}.removed.jsonl") == read_jsonl(
        tmp_path / "reference-kept.removed.jsonl")


@pytest.mark.parametrize("out_name", ["kept.jsonl", "kept.parquet"])
def test_an_empty_file_gives_an_empty_clean(tmp_path, out_name):
    source = tmp_path / "empty.jsonl"
    source.write_text("")
    summary = clean_file(source, out=tmp_path / out_name, options=HygieneOptions(dedup=True,
                                                                                decontaminate=(str(BENCH),)))
    assert summary.counts.rows_in == 0 and summary.counts.rows_out == 0
    assert (tmp_path / out_name).is_file() and (tmp_path / "kept.removed.jsonl").read_text() == ""


def test_a_rerun_gives_the_same_files_byte_for_byte(planted, tmp_path):
    source, _ = planted
    benchmarks = tmp_path / "benchmarks"
    benchmarks.mkdir()
    (benchmarks / "one.jsonl").write_bytes(BENCH.read_bytes())
    (benchmarks / "notes.txt").write_text("not a benchmark")
    options = HygieneOptions(dedup=True, decontaminate=(str(benchmarks),))  # a folder of benchmarks
    outputs = []
    for attempt in range(2):
        for name in ("clean.parquet", "clean.jsonl"):
            clean_file(source, out=tmp_path / name, options=options)
        outputs.append([(tmp_path / name).read_bytes() for name in ("clean.parquet", "clean.jsonl",
                                                                    "clean.removed.jsonl", "clean.hygiene.json")])
    assert outputs[0] == outputs[1]
    assert read_jsonl(tmp_path / "clean.removed.jsonl")


def test_a_rerun_in_another_process_gives_the_same_files(planted, tmp_path):
    """Python's string hashes differ between processes; the result must not."""
    source, _ = planted
    script = ("import sys; from autoevol_dspy.data import clean_file, HygieneOptions; "
              "clean_file(sys.argv[1], out=sys.argv[2], "
              "options=HygieneOptions(dedup=True, decontaminate=(sys.argv[3],)))")
    for name, seed in (("one.jsonl", "1"), ("two.jsonl", "2")):
        done = subprocess.run([sys.executable, "-c", script, str(source), str(tmp_path / name), str(BENCH)],
                              env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()
    assert (tmp_path / "one.removed.jsonl").read_bytes() == (tmp_path / "two.removed.jsonl").read_bytes()


def test_a_benchmark_without_a_question_column_is_one_error(tmp_path):
    bench = write_jsonl(tmp_path / "labels.jsonl", [{"id": 1, "label": "positive", "score": 0.5}])
    source = write_jsonl(tmp_path / "rows.jsonl", [{"instruction": "Why does ice float on water?"}])
    with pytest.raises(DataError, match="none of the question columns .* --bench-column .*id, label, score"):
        clean_file(source, out=tmp_path / "out.jsonl", options=HygieneOptions(decontaminate=(str(bench),)))
    done = subprocess.run([sys.executable, "-m", "autoevol_dspy.cli", "clean", str(source), "--out",
                           str(tmp_path / "out.jsonl"), "--decontaminate", str(bench)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("autoevol: error:")]
    assert len(errors) == 1 and "labels.jsonl has none of the question columns" in errors[0], done.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_short_benchmark_items_are_matched_whole_and_very_short_ones_not_at_all():
    index = Decontaminator.from_files([BENCH])
    normaliser = Normaliser()
    whole = "Quiz night: what is the capital city of Australia and why was it chosen? Go!"
    part = "What is the capital city of Australia?"
    common = "In one word, what is love to a poet, and what is it to a scientist?"
    assert index.find([whole], normaliser).item == 127
    assert index.find([part], normaliser) is None
    assert index.find([common], normaliser) is None  # 'What is love?' is too short to mean a leak
    assert index.too_short == 2


def test_the_checks_read_conversations_and_prompt_completion_rows():
    columns = TextColumns.infer(["messages", "seed_id"], label="sft")
    rows = [{"messages": [{"role": "user", "content": "Why does ice float on water?"},
                          {"role": "assistant", "content": "Ice is less dense than liquid water."}]},
            {"messages": [{"role": "user", "content": "why does ICE float on water"},
                          {"role": "assistant", "content": "Because of hydrogen bonds."}]}]
    verdicts = list(clean_rows(rows, RowHygiene(columns=columns, dedup=True)))
    assert [v.removal.reason if v.removal else None for v in verdicts] == [None, "exact_duplicate"]
    pair = TextColumns.infer(["prompt", "completion"], label="pc")
    assert (pair.instruction, pair.response) == ("prompt", "completion")
    alpaca = TextColumns.infer(["instruction", "input", "output"], label="alpaca")
    assert (alpaca.context, alpaca.response) == ("input", "output")
    with pytest.raises(DataError, match="none of the instruction columns"):
        TextColumns.infer(["id", "label"], label="x")


def test_the_clean_command_prints_one_summary_line(planted, tmp_path):
    source, rows = planted
    out = tmp_path / "clean.parquet"
    done = subprocess.run([sys.executable, "-m", "autoevol_dspy.cli", "clean", str(source), "--out", str(out),
                           "--dedup", "--decontaminate", str(BENCH), "-q"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line, = done.stdout.splitlines()
    assert line.startswith(f"cleaned {source}: {len(rows)} rows in, ") and "near duplicates" in line
    assert "contaminated (" in line and str(out) in line and "clean.removed.jsonl" in line
    nothing = subprocess.run([sys.executable, "-m", "autoevol_dspy.cli", "clean", str(source), "--out", str(out)],
                             capture_output=True, text=True, timeout=120)
    assert nothing.returncode == 2 and "nothing to clean" in nothing.stderr
