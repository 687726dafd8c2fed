"""What ``AutoEvolInstruct.compile`` refuses: other optimizers' arguments and misspelled ones, in one line.

A DSPy user swapping MIPROv2 or GEPA for AutoEvolInstruct may pass their ``compile``
arguments; a ``**kwargs`` that swallowed them would run something else than asked (a
misspelled ``valset=`` would draw the dev set from the trainset). Each is refused, naming
what to use instead.
"""

from __future__ import annotations

import difflib
from typing import Any

from autoevol_dspy.errors import ConfigurationError

__all__ = ["COMPILE_ARGUMENTS", "refuse_compile_arguments"]

#: The keyword arguments ``AutoEvolInstruct.compile`` takes.
COMPILE_ARGUMENTS = ("trainset", "valset", "holdoutset", "teacher")

#: Other optimizers' compile arguments, and what AutoEvolInstruct takes instead.
_INSTEAD = {
    "num_trials": "it is MIPROv2's; the search length is AutoEvolInstruct(max_steps=..., num_candidates=...)",
    "eval_kwargs": "it is BootstrapFewShotWithRandomSearch's; set AutoEvolInstruct(num_threads=...) "
                   "or dspy.configure(num_threads=...)",
    "max_bootstrapped_demos": "AutoEvolInstruct rewrites instructions and keeps the program's demos as they are",
    "max_labeled_demos": "AutoEvolInstruct rewrites instructions and keeps the program's demos as they are",
    "seed": "pass it to AutoEvolInstruct(seed=...)",
    "minibatch_size": "pass AutoEvolInstruct(batch_sampler=SIZE)",
    "requires_permission_to_run": "AutoEvolInstruct never asks: it stops at max_steps or a stopper",
}


def refuse_compile_arguments(*, teacher: Any = None, **kwargs: Any) -> None:
    """Raise a one-line :class:`ConfigurationError` for a teacher or any argument ``compile`` does not take."""
    if teacher is not None:
        raise ConfigurationError("compile(teacher=...) is not supported: AutoEvolInstruct rewrites the student's "
                                 "instructions from its own failures; there is no teacher to learn from")
    if not kwargs:
        return
    name = sorted(kwargs)[0]
    if name in _INSTEAD:
        raise ConfigurationError(f"compile() does not take {name}=: {_INSTEAD[name]}")
    close = difflib.get_close_matches(name, COMPILE_ARGUMENTS, n=1)
    hint = f"; did you mean {close[0]}=?" if close else f"; it takes {', '.join(a + '=' for a in COMPILE_ARGUMENTS)}"
    raise ConfigurationError(f"compile() got an unexpected keyword argument {name!r}{hint}")
