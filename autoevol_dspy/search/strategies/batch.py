"""Which training examples form a step's mini-batch (the trajectory the optimizer LM reads)."""

from __future__ import annotations

import random
from typing import Any, Protocol, runtime_checkable

from autoevol_dspy.errors import at_least

__all__ = ["BatchSampler", "EpochBatches", "RandomBatches"]


@runtime_checkable
class BatchSampler(Protocol):
    """Picks the training indexes of step ``step``; the same arguments must give the same batch (resume)."""

    size: int

    def sample(self, *, step: int, train_size: int, seed: int) -> list[int]: ...

    def describe(self) -> dict[str, Any]: ...


class RandomBatches:
    """An independent seeded sample each step, as in the paper (a seed may recur in later steps)."""

    def __init__(self, size: int = 10) -> None:
        self.size = at_least("batch size", size)

    def sample(self, *, step: int, train_size: int, seed: int) -> list[int]:
        rng = random.Random(f"autoevol-batch:{seed}:{step}")
        return sorted(rng.sample(range(train_size), min(self.size, train_size)))

    def describe(self) -> dict[str, Any]:
        return {"type": "RandomBatches", "size": self.size}


class EpochBatches:
    """Consecutive slices of a seeded shuffle: every training example is seen once before any repeats."""

    def __init__(self, size: int = 10) -> None:
        self.size = at_least("batch size", size)

    def sample(self, *, step: int, train_size: int, seed: int) -> list[int]:
        size = min(self.size, train_size)
        start = (step - 1) * size
        picked: list[int] = []
        while len(picked) < size:
            epoch, offset = divmod(start + len(picked), train_size)
            order = list(range(train_size))
            random.Random(f"autoevol-epoch:{seed}:{epoch}").shuffle(order)
            picked.append(order[offset])
        return sorted(set(picked))  # an epoch boundary may repeat an index: kept once

    def describe(self) -> dict[str, Any]:
        return {"type": "EpochBatches", "size": self.size}
