"""``autoevol clean``, and the hygiene options ``evolve`` and ``shards --merge`` share with it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from autoevol_dspy.cli.options import add_output_options

__all__ = ["add_clean_command", "add_hygiene_options", "hygiene_options", "record_in_run", "run_clean",
           "training_output_paths", "write_training_output"]


def add_hygiene_options(parser: argparse.ArgumentParser) -> None:
    """--dedup, --decontaminate BENCH, --ngram N, --near-threshold T, --bench-column C."""
    group = parser.add_argument_group("training-data hygiene (removed rows go to OUT's <stem>.removed.jsonl)")
    group.add_argument("--dedup", action="store_true", help="remove exact duplicates (ignoring case, punctuation "
                       "and spacing) and near duplicates (MinHash LSH over word 3-grams) of the instruction and "
                       "its context; the first row is kept")
    group.add_argument("--near-threshold", type=float, help="estimated Jaccard similarity of word 3-grams from "
                       "which a row is a near duplicate (default 0.65)")
    group.add_argument("--decontaminate", action="append", metavar="BENCH", help="remove rows that share an "
                       "n-gram with an item of this benchmark (a JSONL, JSON, CSV or Parquet file, or a folder of "
                       "them); repeatable")
    group.add_argument("--ngram", type=int, help="words in a shared n-gram that mark a leak (default 13, as "
                       "lm-evaluation-harness)")
    group.add_argument("--bench-column", help="the benchmarks' question column (default: the first of question, "
                       "prompt, instruction, problem, turns, input, query, text, content)")


def hygiene_options(args: argparse.Namespace) -> Any:
    """The :class:`HygieneOptions` the options ask for, or None when they ask for no check."""
    from autoevol_dspy.data.clean import HygieneOptions
    from autoevol_dspy.errors import ConfigurationError

    given = {"dedup": bool(getattr(args, "dedup", False)),
             "decontaminate": tuple(getattr(args, "decontaminate", None) or ())}
    for name in ("near_threshold", "ngram", "bench_column"):
        if getattr(args, name, None) is not None:
            given[name] = getattr(args, name)
    options = HygieneOptions(**given)
    if not options.active:
        tuning = [f"--{name.replace('_', '-')}" for name in ("near_threshold", "ngram", "bench_column")
                  if name in given]
        if tuning:
            raise ConfigurationError(f"{', '.join(tuning)} only apply with --dedup or --decontaminate")
        return None
    return options


def add_clean_command(commands: Any) -> None:
    clean = commands.add_parser(
        "clean", help="remove duplicates and benchmark leaks from instruction data",
        description="Write the rows of an instruction file that are neither duplicates (--dedup) nor leaks of a "
        "benchmark (--decontaminate BENCH), every column kept; each removed row goes to OUT's "
        "<stem>.removed.jsonl with why, and the counts to <stem>.hygiene.json.",
    )
    clean.add_argument("data", help="instruction data: a JSONL, JSON, CSV (each optionally .gz) or Parquet file")
    clean.add_argument("--out", required=True, help="the kept rows: a .jsonl or .parquet file")
    clean.add_argument("--column", help="the instruction column (default: the first of evolved_instruction, "
                       "instruction, prompt, messages, question, problem, query, text)")
    add_hygiene_options(clean)
    add_output_options(clean)
    clean.set_defaults(handler=run_clean)


def run_clean(args: argparse.Namespace) -> int:
    """``autoevol clean``: one summary line, the files beside OUT."""
    from autoevol_dspy.data.clean import clean_file
    from autoevol_dspy.errors import ConfigurationError

    options = hygiene_options(args)
    if options is None:
        raise ConfigurationError("nothing to clean: give --dedup and/or --decontaminate BENCH")
    summary = clean_file(args.data, out=args.out, options=options, column=args.column)
    print(summary.describe())
    return 0


def training_output_paths(out: str, *, format: str, hygiene: Any, option: str = "--out") -> tuple[Path, Path]:
    """(the output, the evolution's row store): as ``evolve_output_paths``, but the store always lies beside a
    cleaned output, since the output holds only the rows that pass (the store keeps every row, so other
    hygiene options need no new evolution)."""
    from autoevol_dspy.data.io import evolve_output_paths, row_store_beside
    from autoevol_dspy.errors import ConfigurationError

    path, store = evolve_output_paths(out, format=format, option=option)
    if hygiene is None or path != store:
        return path, store
    if path.with_name(f"{path.name.rsplit('.', 1)[0]}.meta.json").is_file():
        raise ConfigurationError(f"{path} holds the rows of an evolution without hygiene options; clean them "
                                 f"with `autoevol clean {path} --out OTHER.jsonl ...` or pick another {option}")
    return path, row_store_beside(path)


def write_training_output(store: Path, out: Path, *, format: str, hygiene: Any) -> tuple[str, Any]:
    """Write ``out`` from an evolution's row store (exported to ``format``, then cleaned when ``hygiene``
    asks); returns the lines that say what was written, and the clean's summary (None when not cleaned)."""
    from autoevol_dspy.data.clean import clean_file
    from autoevol_dspy.data.export import export_evolved

    if hygiene is None:
        path, count = export_evolved(store, out, format=format)
        _refuse_empty(path, count, format=format, store=store)
        return f"output:   {path} ({count} {format} rows; every row with its lineage in {store})", None
    if format == "lineage":  # failed rows stay in the lineage as they are, unchecked
        summary = clean_file(store, out=out, options=hygiene, column="evolved_instruction",
                             passes=lambda row: isinstance(row, dict) and row.get("failure") is not None)
    else:
        exported = out.with_name(f".{out.name}.unclean{out.suffix}")
        try:
            export_evolved(store, exported, format=format)
            summary = clean_file(exported, out=out, options=hygiene, source_label=str(store))
        finally:
            exported.unlink(missing_ok=True)
    _refuse_empty(out, summary.counts.rows_out, format=format, store=store)
    return (f"output:   {out} ({summary.counts.rows_out} {format} rows; every row with its lineage in {store})\n"
            f"hygiene:  {summary.counts.describe()}; removed rows: {summary.removed_path}"), summary


def record_in_run(run_dir: Path, *, store: Path, out: Path, format: str, summary: Any) -> str:
    """Note the evolution in the run directory its method came from and rewrite that run's report; returns a line."""
    from autoevol_dspy.data.evolutions import describe_store, record_evolution
    from autoevol_dspy.errors import AutoEvolError
    from autoevol_dspy.report.html import write_report

    record_evolution(run_dir, describe_store(store, out=out, format=format, hygiene=summary))
    try:
        return f"report:   {write_report(run_dir)} (its evolved-datasets section)"
    except AutoEvolError as exc:  # e.g. a run on a shared storage: `autoevol report RUN_DIR --storage URL`
        return f"report:   not rewritten ({exc}); run `autoevol report {run_dir}` to show this dataset"


def _refuse_empty(path: Path, count: int, *, format: str, store: Path) -> None:
    """A training output without a row ends the command with exit code 4, not with an empty file and 0."""
    if count or format == "lineage":
        return
    from autoevol_dspy.errors import NothingUsableError

    raise NothingUsableError(f"{path} holds no {format} example: no row passed with a response (every row with "
                             f"its failure is in {store})")
