"""``autoevol shards``: which shards of an ``evolve --shard i/N`` split are done, and one dataset from them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from autoevol_dspy.cli.clean import add_hygiene_options, hygiene_options, training_output_paths, write_training_output
from autoevol_dspy.cli.options import add_output_options

__all__ = ["add_shards_command", "run_shards"]


def add_shards_command(commands: Any) -> None:
    shards = commands.add_parser(
        "shards", help="status of an evolve --shard split, and its merge",
        description="Read the row stores that `autoevol evolve --shard i/N` wrote (one per shard, from any "
        "machine) against the seeds: print how far each shard got, and with --merge write one dataset once "
        "every (seed, round) is present exactly once (exit 1 while the split is incomplete).",
    )
    shards.add_argument("seeds", help="the seed file every shard evolved")
    shards.add_argument("stores", nargs="+", help="the shards' row stores: each evolve --out (lineage .jsonl) "
                        "or the NAME.rows.jsonl beside a training-format output")
    shards.add_argument("--rounds", type=int, default=1, help="the --rounds the shards were evolved with (default 1)")
    shards.add_argument("--column", default="instruction", help="the seed file's instruction column "
                        "(default: instruction)")
    shards.add_argument("--merge", metavar="OUT", help="write the merged dataset here (.jsonl or .parquet)")
    shards.add_argument("--format", choices=["lineage", "sft", "prompt-completion"], default="lineage",
                        help="what --merge writes, as evolve --format (default lineage)")
    add_output_options(shards)
    add_hygiene_options(shards)
    shards.set_defaults(handler=run_shards)


def run_shards(args: argparse.Namespace) -> int:
    from autoevol_dspy.data.shards import merge_shards, shard_status

    stores = [_row_store(Path(path)) for path in args.stores]
    hygiene = hygiene_options(args)
    if hygiene is not None and not args.merge:
        from autoevol_dspy.errors import ConfigurationError

        raise ConfigurationError("--dedup and --decontaminate apply to the dataset --merge writes; add --merge OUT")
    if not args.merge:
        report = shard_status(args.seeds, stores, rounds=args.rounds, column=args.column)
        print(report.describe())
        return 0 if report.complete else 1
    out, store = training_output_paths(args.merge, format=args.format, hygiene=hygiene, option="--merge")
    if hygiene is not None:
        hygiene.check()
    report = merge_shards(args.seeds, stores, out_path=store, rounds=args.rounds, column=args.column)
    print(report.describe())
    print(write_training_output(store, out, format=args.format, hygiene=hygiene)[0] if out != store
          else f"output:   {store}")
    return 0


def _row_store(path: Path) -> Path:
    """The row store of an evolve output: the file itself, or the NAME.rows.jsonl beside a training file."""
    from autoevol_dspy.data.io import row_store_beside

    beside = row_store_beside(path)
    if not path.with_name(f"{path.name.rsplit('.', 1)[0]}.meta.json").is_file() and beside.is_file():
        return beside
    return path
