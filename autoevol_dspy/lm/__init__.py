"""LMs: spec strings to ``dspy.LM``, the embedded llama.cpp engine, call accounting by role."""

from autoevol_dspy.lm.spec import make_lm

__all__ = ["make_lm"]
