"""Instruction data: load seeds, evolve whole datasets with lineage, read and write the rows."""

from autoevol_dspy.data.evolve import EvolutionSummary, evolve_dataset, method_id
from autoevol_dspy.data.export import EXPORT_FORMATS, export_evolved, training_dataset
from autoevol_dspy.data.io import load_evolved, save_evolved
from autoevol_dspy.data.seeds import LoadedInstructions, Seed, load_instructions

__all__ = [
    "EXPORT_FORMATS",
    "EvolutionSummary",
    "LoadedInstructions",
    "Seed",
    "evolve_dataset",
    "export_evolved",
    "load_evolved",
    "load_instructions",
    "method_id",
    "save_evolved",
    "training_dataset",
]
