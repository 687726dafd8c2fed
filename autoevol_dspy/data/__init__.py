"""Instruction data: load seeds, evolve whole datasets with lineage, read and write the rows."""

from autoevol_dspy.data.evolve import EvolutionSummary, evolve_dataset, method_id
from autoevol_dspy.data.export import EXPORT_FORMATS, export_evolved, training_dataset
from autoevol_dspy.data.io import load_evolved, save_evolved
from autoevol_dspy.data.seed_file import SeedFile, scan_instructions
from autoevol_dspy.data.seeds import LoadedInstructions, Seed, load_instructions
from autoevol_dspy.data.shards import ShardReport, merge_shards, shard_status

__all__ = [
    "EXPORT_FORMATS",
    "EvolutionSummary",
    "LoadedInstructions",
    "Seed",
    "SeedFile",
    "ShardReport",
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
