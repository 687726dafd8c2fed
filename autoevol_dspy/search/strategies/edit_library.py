"""General edits of instructions, made from the predictor's signature and the failures of the trajectory.

In the spirit of MIPROv2's proposal tips and PromptBreeder's mutation prompts, but written
out: say the output's form (from its type: a number, one of the allowed labels, true or
false; for a text field, the form the metric's feedback asks for), ask for the output alone,
keep it short, define it from its description, read the inputs carefully, and the task's
own edit for each failure category it names (an evolution that answers instead of rewriting
gets "never answer the instruction"). Each edit is one sentence appended to the current
instructions; the dev set decides which helps. One candidate also names the work the form
implies before the user's own words (a number is worked out: "Solve the problem in the
question."; a label is chosen) and appends the form: a small task LM follows a task it is
told to do far better than an output it is told to give. For a free-text or number output,
one edit shows an example of a right output ("Example answer: ..."): an output the metric
accepted earlier in the run, else one the metric's feedback quotes; a small model copies a
form it is shown far more readily than one it is told.
Nothing here comes from a benchmark: every sentence is built from the user's own field
names, types and descriptions.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import regex

from autoevol_dspy.search.strategies.proposal_source import Draft, FieldView, ProposalRequest, first_unclaimed
from autoevol_dspy.text import bounded

__all__ = ["EditLibrary", "example_edit", "example_of", "form_from_feedback", "framed", "signature_edits"]


def _listed(values: tuple[str, ...]) -> str:
    quoted = [f'"{value}"' for value in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


# What a metric's feedback says when it wants a number, or true/false, in a text field.
_ASKS_NUMBER = regex.compile(r"\b(?:bare|single|plain|whole|one)\s++number\b|\bnumber\s++(?:alone|only)\b|"
                             r"\bnumeric\b|\bdigits\b", regex.IGNORECASE)
_ASKS_BOOL = regex.compile(r"\btrue\s++or\s++false\b|\byes\s++or\s++no\b", regex.IGNORECASE)


def form_from_feedback(output: FieldView, feedback: list[str]) -> FieldView:
    """``output``, typed by what the metric's feedback asks for when its own type says only "text": a field
    the feedback wants as a bare number is a number here (most failing cases must say so)."""
    if output.type_name != "str" or not feedback:
        return output
    for kind, pattern in (("number", _ASKS_NUMBER), ("bool", _ASKS_BOOL)):
        if 2 * sum(1 for text in feedback if pattern.search(bounded(text, 2_000))) > len(feedback):
            return replace(output, type_name=kind)
    return output


# An example the metric's feedback gives of a right output: "such as $12", "like '18 cards'", "e.g. 3 + 4".
_FEEDBACK_EXAMPLE = regex.compile(
    r"\b(?:such\s++as|like|for\s++example|for\s++instance|e\.g\.)[\s,:]++"
    r"(?:'([^'\n]{1,60}+)'|\"([^\"\n]{1,60}+)\"|`([^`\n]{1,60}+)`|([^\s\d,;]*+\d[^\s,;]*+))", regex.IGNORECASE)
_EXAMPLE_CHARS = 80


def _example_text(value: str) -> str | None:
    """``value`` as an example to show: one short line, without a closing period; ``None`` when it is not."""
    text = " ".join(str(value).split()).rstrip(".")
    return text if text and len(text) <= _EXAMPLE_CHARS and "\n" not in str(value).strip() else None


def example_of(output: FieldView, passed: tuple[dict[str, str], ...] | list[dict[str, str]],
               feedback: list[str]) -> str | None:
    """An example of a right ``output``: the first short one the metric accepted in ``passed``, else the first
    the metric's ``feedback`` quotes; ``None`` for a label or true/false (one label shown would pull every
    answer to it) and when there is none."""
    if output.type_name in ("choice", "bool"):
        return None
    for outputs in passed:
        text = _example_text(outputs.get(output.name, "")) if output.name in outputs else None
        if text:
            return text
    for reason in feedback:
        for match in _FEEDBACK_EXAMPLE.finditer(bounded(reason, 2_000)):
            text = _example_text(next(group for group in match.groups() if group))
            if text:
                return text
    return None


def _form(output: FieldView) -> str | None:
    """How the output must be written, from its type alone."""
    if output.type_name == "number":
        return f"Give the {output.words} as a bare number: digits only, with no words, units or symbols."
    if output.type_name == "choice" and output.choices:
        return f"Give the {output.words} as exactly one of {_listed(output.choices)}, and nothing else."
    if output.type_name == "bool":
        return f"Give the {output.words} as true or false, and nothing else."
    if output.type_name == "list":
        return f"Give the {output.words} as a list of short items, with nothing around it."
    return None


def example_edit(output: FieldView, example: str | None) -> str | None:
    """The edit that shows ``example`` as a right ``output``."""
    return f"Example {output.words}: {example}" if example else None


def _sources(inputs: tuple[FieldView, ...]) -> str:
    """The input fields as words ("question and context"), for instructions."""
    return " and ".join(field.words for field in inputs) or "input"


def _framing(inputs: tuple[FieldView, ...], output: FieldView) -> str | None:
    """The work the output's form implies, said as the task: what a bare number or a label is made by."""
    sources = _sources(inputs)
    if output.type_name == "number":
        return f"Solve the problem in the {sources}."
    if output.type_name == "choice" and output.choices:
        return f"Read the {sources} and choose the {output.words} that fits."
    return None


def framed(current: str, inputs: tuple[FieldView, ...], outputs: tuple[FieldView, ...]) -> str | None:
    """``current`` with the work its last output's form implies said first and the form said last; ``None``
    when the form implies no work or ``current`` says it already."""
    if not outputs:
        return None
    framing, form = _framing(inputs, outputs[-1]), _form(outputs[-1])
    if framing is None or framing.lower() in current.lower():
        return None
    parts = [framing, current.strip(), form if form and form.lower() not in current.lower() else ""]
    return "\n".join(part for part in parts if part)


def signature_edits(inputs: tuple[FieldView, ...], outputs: tuple[FieldView, ...], *,
                    example: str | None = None) -> list[str]:
    """The general edits for a predictor with these fields, most often useful first; ``example``: a right
    output to show (:func:`example_of`)."""
    if not outputs:
        return []
    main = outputs[-1]  # the last output is the answer; earlier ones (reasoning) lead up to it
    sources = _sources(inputs)
    edits = [
        _form(main),
        example_edit(main, example),
        f"Reply with the {main.words} only: no explanation, no working, no extra words.",
        f"Write the {main.words} in as few words as it needs, on one line.",
        f"The {main.words} is {main.desc.rstrip('.')}." if main.desc else None,
        f"Read the {sources} carefully and make sure the {main.words} gives exactly what is asked for.",
        f"Work out the {main.words} step by step in your head, then write only the final {main.words}.",
    ]
    return [edit for edit in edits if edit]


class EditLibrary:
    """One general edit per sample: the task's edits for the trajectory's commonest failure categories
    first, then the framed instructions (:func:`framed`) and the same with the example of a right output
    (:func:`example_of`) after them, then each edit made from the signature appended; each only once per run.

    The framed candidate already says the form, so its example-bearing twin comes before the form appended
    alone: the step's second edit tries something the first did not."""

    name = "edit_library"
    uses_lm = False

    def draft(self, request: ProposalRequest, *, sample: int, note: str = "") -> Draft | None:
        by_category = Counter(category for category, _ in request.failures)
        hints = [request.edit_hints[category] for category, _ in by_category.most_common()
                 if category in request.edit_hints]
        outputs, feedback = request.outputs, [reason for _, reason in request.failures]
        example = example_of(outputs[-1], request.passed_outputs, feedback) if outputs else None
        if outputs:  # a text field whose metric asks for a number (or true/false) gets that form's edit
            outputs = (*outputs[:-1], form_from_feedback(outputs[-1], feedback))
        edits = [edit for edit in dict.fromkeys([*hints, *signature_edits(request.inputs, outputs, example=example)])
                 if edit.lower() not in request.current.lower()]
        whole = framed(request.current, request.inputs, outputs)
        wholes = [whole] if whole else []
        shown = example_edit(outputs[-1], example) if outputs else None
        if whole and shown and shown.lower() not in whole.lower():
            wholes.append(f"{whole}\n{shown}")  # the framed instructions and a right output: two ideas at once
        texts = [*(request.appended(edit) for edit in edits if edit in hints), *wholes,
                 *(request.appended(edit) for edit in edits if edit not in hints)]
        chosen = first_unclaimed(request, texts)
        if chosen is None:
            return None
        counts = ", ".join(f"{name} {count}" for name, count in by_category.most_common(3)) or "none"
        return Draft(text=chosen, feedback=f"A general edit of the instructions (trajectory failures: {counts}).")

    def describe(self) -> dict[str, Any]:
        return {"type": "EditLibrary"}
