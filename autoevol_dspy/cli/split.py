"""A dev set that fits the seeds: the command's default shrinks to what the seeds leave, or the flags are named.

The library asks for exactly what it is given (``dev_size=50``, a mini-batch of 10). On the
command line a seed file of 60 with the default held-out share leaves 48, too few for both:
unless ``--dev-size`` was given, the dev set is then what remains after one mini-batch (at
least :data:`MIN_DEFAULT_DEV`), said in one log line; otherwise the error names the flags.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from autoevol_dspy.errors import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    from autoevol_dspy.cli.config import OptimizeConfig

__all__ = ["MIN_DEFAULT_DEV", "fit_split"]

logger = logging.getLogger("autoevol_dspy.cli")

#: The smallest dev set the command draws on its own; below it, it asks for options instead.
MIN_DEFAULT_DEV = 8


def fit_split(config: "OptimizeConfig", *, seeds: int, dev_file: bool, explicit: set[str]) -> "OptimizeConfig":
    """``config``, with a default dev size lowered to fit ``seeds``; a one-line error naming the flags otherwise.

    ``dev_file``: the dev set comes from its own file (the seeds need only hold out and fill a
    mini-batch); ``explicit``: the settings the user gave (options or config file).
    """
    from autoevol_dspy.data.splits import holdout_count

    holdout = int(config.holdout) if config.holdout >= 1 else config.holdout
    held = min(holdout_count(holdout, seeds), seeds)
    left = seeds - held
    dev = 0 if dev_file else config.dev_size
    if left >= config.batch_size + dev:
        return config
    fitted = left - config.batch_size
    if not dev_file and "dev_size" not in explicit and fitted >= MIN_DEFAULT_DEV:
        logger.info("dev set: %d seeds (the default %d and a mini-batch of %d do not fit the %d seeds left after "
                    "%d held out); --dev-size or --dev-file to choose", fitted, config.dev_size, config.batch_size,
                    left, held)
        return config.model_copy(update={"dev_size": fitted})
    wanted = f"a mini-batch of {config.batch_size}" + ("" if dev_file else f" plus a dev set of {config.dev_size}")
    raise ConfigurationError(f"{seeds} seeds, {held} of them held out, leave {left}: too few for {wanted}; lower "
                             "--batch-size, --dev-size or --holdout, add seeds, or give the dev set with --dev-file")
