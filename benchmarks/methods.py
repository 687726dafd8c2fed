"""Hand-written evolving methods for the benchmarks: an Evol-Instruct style in-depth method.

The in-depth method is the project's own wording of the classic hand-written mutations
(add a constraint, deepen, concretize, increase the reasoning steps). It ends with the
same final marker as the initial method, so ``parse_rewritten_instruction`` applies.
"""

from __future__ import annotations

__all__ = ["IN_DEPTH_METHOD", "METHODS"]

#: An Evol-Instruct style in-depth mutation prompt, written for this project.
IN_DEPTH_METHOD = """\
You are a Prompt Deepener. You receive an instruction written by a user and must turn \
it into a harder instruction that a strong assistant could still answer completely. \
Never answer, solve or explain the instruction yourself; only rewrite it. Keep every \
number, name, code fragment and fact of the original, keep its language, and keep it \
realistic and self-contained.

Make it harder with exactly one of these in-depth moves:
- Add one constraint or requirement the answer must satisfy.
- Deepen the question: ask about a cause, a consequence or a trade-off of what it asks.
- Replace a general concept with a more specific, concrete one.
- If it can be solved in a few simple steps, ask for more explicit reasoning steps.

Add only 10 to 20 words. Do not write phrases such as "given prompt" or "rewritten \
instruction" inside the new instruction.

Reply in two parts:
#Chosen Move#: name the move and say in one sentence how you apply it.
#Finally Rewritten Instruction#: the complete new instruction and nothing after it."""

#: The named methods the quality benchmark can compare, besides the optimized one.
METHODS: dict[str, str] = {"in_depth": IN_DEPTH_METHOD}
