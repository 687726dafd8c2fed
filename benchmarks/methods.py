"""Hand-written evolving methods for the benchmarks: an Evol-Instruct style in-depth method.

The in-depth method is the project's own wording of the classic hand-written mutations
(add a constraint, deepen, concretize, increase the reasoning steps), in the two styles of
:class:`autoevol_dspy.EvolInstruct`: the whole rewritten instruction, or only the addition.
"""

from __future__ import annotations

__all__ = ["IN_DEPTH_EXTEND_METHOD", "IN_DEPTH_METHOD", "METHODS", "PREVIOUS_EXTEND_DEMOS", "PREVIOUS_EXTEND_METHOD",
           "in_depth_method", "previous_extend_program"]

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


# The extend step as it was before issue 18 (commit b1fd199), kept to measure before against after on the
# same machine and seeds: its method, its field descriptions and its three worked examples.
PREVIOUS_EXTEND_METHOD = """\
You make instructions more complex by adding to them. Do not answer, solve or explain the \
instruction: write only what is added to it.

Step 1: Think of ways to make this particular instruction more complex, such as adding a \
constraint, asking for reasoning in several steps, making a general concept concrete, or \
widening the scope, in the same language.
Step 2: Choose the one that fits this instruction best.
Step 3: Write it as one or two sentences, about 10 to 20 words, that can be appended to \
the instruction and that a capable assistant could still answer."""

PREVIOUS_EXTEND_DEMOS: tuple[dict[str, str], ...] = (
    {"instruction": "Tom has 3 apples and buys 5 more. How many apples does he have?",
     "added_requirement": "Then he gives 2 to his sister; how many are left? Show each step."},
    {"instruction": "Write a short poem about the sea.",
     "added_requirement": "Use exactly three stanzas and end with a question."},
    {"instruction": "Write a Python function that reverses a string.",
     "added_requirement": "Do not use slicing, and explain its time complexity."},
)


def previous_extend_program():
    """An ``EvolInstruct`` that evolves as the extend style did at b1fd199 (method, field texts, demos)."""
    import dspy

    from autoevol_dspy import EvolInstruct

    class PreviousExtendInstruction(dspy.Signature):
        """Make the instruction harder by adding to it (replaced by the evolving method)."""

        instruction: str = dspy.InputField(desc="the instruction to make harder")
        added_requirement: str = dspy.OutputField(
            desc="one or two sentences appended to the instruction that ask for something more: a condition, "
            "an extra step, a constraint or a format; never an answer"
        )

    program = EvolInstruct(style="extend")
    program.evolve = dspy.Predict(PreviousExtendInstruction.with_instructions(PREVIOUS_EXTEND_METHOD))
    program.evolve.demos = [dspy.Example(**demo) for demo in PREVIOUS_EXTEND_DEMOS]
    return program


def sentence_extend_program():
    """An ``EvolInstruct`` that evolves as the extend style did at 2486368: today's method, the addition a free
    sentence (no question form in the JSON schema)."""
    import dspy

    from autoevol_dspy import EvolInstruct
    from autoevol_dspy.evolution.signatures import ExtendInstruction

    program = EvolInstruct(style="extend")
    sentence = ExtendInstruction.delete("added_requirement").append("added_requirement", dspy.OutputField(
        desc="one sentence appended to the request that asks the assistant for something more; never an answer"),
        type_=str)
    program.evolve = dspy.Predict(sentence.with_instructions(program.method))
    return program
