"""Hand-written evolving methods for the benchmarks: an Evol-Instruct style in-depth method.

The in-depth method is the project's own wording of the classic hand-written mutations
(add a constraint, deepen, concretize, increase the reasoning steps), in the two styles of
:class:`autoevol_dspy.EvolInstruct`: the whole rewritten instruction, or only the addition.
"""

from __future__ import annotations

__all__ = ["IN_DEPTH_METHOD", "IN_DEPTH_EXTEND_METHOD", "METHODS", "in_depth_method"]

_MOVES = """\
Make it harder with exactly one of these in-depth moves:
- Add one constraint or requirement the answer must satisfy.
- Deepen the question: ask about a cause, a consequence or a trade-off of what it asks.
- Replace a general concept with a more specific, concrete one.
- If it can be solved in a few simple steps, ask for more explicit reasoning steps."""

#: An Evol-Instruct style in-depth mutation prompt, written for this project (rewrite style).
IN_DEPTH_METHOD = f"""\
You are a Prompt Deepener. You receive an instruction written by a user and must turn \
it into a harder instruction that a strong assistant could still answer completely. \
Never answer, solve or explain the instruction yourself; only rewrite it. Keep every \
number, name, code fragment and fact of the original, keep its language, and keep it \
realistic and self-contained.

{_MOVES}

Add only 10 to 20 words. Do not write phrases such as "given prompt" or "rewritten \
instruction" inside the new instruction. Give only the complete new instruction."""

#: The same method for the extend style: the model writes only what is appended.
IN_DEPTH_EXTEND_METHOD = f"""\
You are a Prompt Deepener. You receive an instruction written by a user and write what \
to add to it so that it becomes harder while a strong assistant could still answer it \
completely. Never answer, solve or explain the instruction yourself.

{_MOVES}

Write the addition as one or two sentences, 10 to 20 words, that make sense appended to \
the instruction."""

#: The named methods the quality benchmark can compare, besides the optimized one.
METHODS: dict[str, str] = {"in_depth": IN_DEPTH_METHOD, "in_depth_extend": IN_DEPTH_EXTEND_METHOD}


def in_depth_method(style: str) -> str:
    """The hand-written in-depth method in ``style`` (``rewrite`` or ``extend``)."""
    return IN_DEPTH_EXTEND_METHOD if style == "extend" else IN_DEPTH_METHOD
