"""LMs: spec strings to ``dspy.LM``, the embedded llama.cpp engine, call accounting by role."""

from autoevol_dspy.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {"make_lm": "autoevol_dspy.lm.spec"})

__all__ = ["make_lm"]
