"""Checking the examples a run gets and splitting them into training seeds and one dev set.

The dev set is fixed for the whole run and disjoint from the training seeds, so failure
rates of different steps are comparable (the official script drew a new, overlapping
dev batch each step).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from typing import Any

import dspy

from autoevol_dspy.errors import ConfigurationError, DataError

__all__ = ["as_examples", "fingerprint", "holdout_count", "split_holdout", "split_train_dev"]


def as_examples(items: Sequence[Any], *, input_field: str | None, name: str) -> list[dspy.Example]:
    """Turn strings, dicts or Examples into Examples with inputs marked; one-line errors otherwise.

    With ``input_field`` (instruction data) each item needs that field; without it (any
    program) each Example must have its inputs marked with ``with_inputs``.
    """
    if items is None or len(items) == 0:
        raise DataError(f"{name} is empty: give at least one example")
    examples = []
    for index, item in enumerate(items):
        if isinstance(item, str) and input_field is not None:
            item = dspy.Example(**{input_field: item})
        elif isinstance(item, dict):
            item = dspy.Example(**item)
        if not isinstance(item, dspy.Example):
            raise DataError(f"{name}[{index}] is a {type(item).__name__}, expected a dspy.Example, a dict or a str")
        if input_field is not None:
            value = item.get(input_field)
            if not isinstance(value, str) or not value.strip():
                fields = ", ".join(sorted(item.keys())) or "no fields"
                raise DataError(
                    f"{name}[{index}] has no non-empty {input_field!r} field (it has: {fields}); "
                    f"every example needs the instruction in {input_field!r}"
                )
            item = item.with_inputs(input_field)
        elif item._input_keys is None:
            raise DataError(
                f"{name}[{index}] has no inputs marked: build examples with dspy.Example(...).with_inputs('field', ...)"
            )
        examples.append(item)
    return examples


def split_train_dev(
    examples: list[dspy.Example], *, dev_size: int, batch_size: int, seed: int
) -> tuple[list[dspy.Example], list[dspy.Example]]:
    """A deterministic, disjoint split: ``dev_size`` examples for the dev set, the rest for training."""
    needed = dev_size + batch_size
    if len(examples) < needed:
        raise DataError(
            f"the trainset has {len(examples)} examples but a mini-batch of {batch_size} plus a dev set of "
            f"{dev_size} needs {needed}; add examples, pass a valset, or lower batch_size/dev_size"
        )
    order = list(range(len(examples)))
    random.Random(f"autoevol-split:{seed}").shuffle(order)
    dev = [examples[i] for i in sorted(order[:dev_size])]
    train = [examples[i] for i in sorted(order[dev_size:])]
    return train, dev


def holdout_count(holdout: int | float, total: int) -> int:
    """How many of ``total`` examples a ``holdout`` (a count, or a share in (0, 1)) keeps out."""
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)):
        raise ConfigurationError(f"holdout must be a count (int) or a share (float in (0, 1)), got {holdout!r}")
    if holdout == 0:
        return 0
    if isinstance(holdout, float):
        if not 0.0 < holdout < 1.0:
            raise ConfigurationError(f"a holdout share must be between 0 and 1, got {holdout}")
        return max(1, round(total * holdout))
    if holdout < 0:
        raise ConfigurationError(f"holdout must be 0 (none) or more examples, got {holdout}")
    return holdout


def split_holdout(
    examples: Sequence[dspy.Example], *, holdout: int | float, seed: int
) -> tuple[list[dspy.Example], list[dspy.Example]]:
    """A deterministic split into (examples to optimize on, held-out examples), each in the original order.

    ``holdout`` is a count or a share in (0, 1); 0 keeps nothing out.
    """
    count = holdout_count(holdout, len(examples))
    if count >= len(examples):
        raise DataError(f"holdout={count} leaves none of the {len(examples)} examples to optimize on")
    order = list(range(len(examples)))
    random.Random(f"autoevol-holdout:{seed}").shuffle(order)
    held = set(order[:count])
    rest = [example for i, example in enumerate(examples) if i not in held]
    return rest, [examples[i] for i in sorted(held)]


def _canonical(example: dspy.Example) -> dict[str, Any]:
    return {key: str(value) for key, value in sorted(example.items())}


def fingerprint(examples: Sequence[dspy.Example]) -> str:
    """A short, order-sensitive hash of the examples' fields, to recognize the same data on resume."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps(_canonical(example), sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]
