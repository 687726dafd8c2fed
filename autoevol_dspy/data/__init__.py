"""Instruction data: load seeds, evolve whole datasets with lineage, read and write the rows, clean them."""

from autoevol_dspy.data.clean import CleanSummary, HygieneOptions, clean_file
from autoevol_dspy.data.columns import TextColumns
from autoevol_dspy.data.contamination import Contamination, Decontaminator
from autoevol_dspy.data.evolve import EvolutionSummary, evolve_dataset, method_id
from autoevol_dspy.data.export import EXPORT_FORMATS, export_evolved, training_dataset
from autoevol_dspy.data.hygiene import (
    ExactDuplicates,
    HygieneCounts,
    NearDuplicates,
    RowHygiene,
    clean_rows,
)
from autoevol_dspy.data.io import load_evolved, save_evolved
from autoevol_dspy.data.normalise import Normaliser
from autoevol_dspy.data.seed_file import SeedFile, scan_instructions
from autoevol_dspy.data.seeds import LoadedInstructions, Seed, load_instructions
from autoevol_dspy.data.shards import ShardReport, merge_shards, shard_status

__all__ = [
    "EXPORT_FORMATS",
    "CleanSummary",
    "Contamination",
    "Decontaminator",
    "EvolutionSummary",
    "ExactDuplicates",
    "HygieneCounts",
    "HygieneOptions",
    "LoadedInstructions",
    "NearDuplicates",
    "Normaliser",
    "RowHygiene",
    "Seed",
    "SeedFile",
    "ShardReport",
    "TextColumns",
    "clean_file",
    "clean_rows",
    "evolve_dataset",
    "export_evolved",
    "load_evolved",
    "load_instructions",
    "merge_shards",
    "method_id",
    "save_evolved",
    "scan_instructions",
    "shard_status",
    "training_dataset",
]
