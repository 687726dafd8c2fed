"""Worked examples for the rule writer: feedback about failing cases turned into one general rule.

Written for this project, from tasks unlike the ones users optimize here (none from a
benchmark), so they teach the move, not an answer: name what went wrong across cases, and
state the rule that would have prevented it, for every case, without quoting any case. The
rules a run has accepted join them as demos of its own task.
"""

from __future__ import annotations

from collections.abc import Sequence

import dspy

__all__ = ["SHIPPED_AMEND_DEMOS", "amend_demos"]

_INPUTS = ("current_instructions", "feedback", "earlier_attempts")

#: (current instructions, feedback, the rule a careful person would add).
SHIPPED_AMEND_DEMOS: tuple[tuple[str, str, str], ...] = (
    (
        "Translate the text into French.",
        "- 3 case(s): the output starts with 'Here is the translation:' before the French text\n"
        "- 1 case(s): a note about word choice follows the translation",
        "Write only the French translation, with no introduction, note or comment around it.",
    ),
    (
        "Write a subject line for the email.",
        "- 2 case(s): the subject is a whole paragraph of over thirty words\n"
        "- 2 case(s): the subject repeats the greeting of the email",
        "Keep the subject line under ten words and make it say what the email is about.",
    ),
    (
        "Extract the meeting date from the message.",
        "- 4 case(s): the date must be written as YYYY-MM-DD, but the output spelled out the month",
        "Write the date in the form YYYY-MM-DD and nothing else.",
    ),
    (
        "Write an SQL query that answers the question, using the schema.",
        "- 3 case(s): the query uses a column that is not in the schema\n"
        "- 1 case(s): the query is followed by an explanation in prose",
        "Use only tables and columns listed in the schema, and output the query alone.",
    ),
    (
        "Rewrite the instruction so that it is harder to follow.",
        "- 5 case(s): answered_instead: the rewriter solved the instruction instead of rewriting it",
        "Never answer or solve the instruction: output only the new, harder instruction.",
    ),
)


def _demo(current: str, feedback: str, rule: str) -> dspy.Example:
    return dspy.Example(current_instructions=current, feedback=feedback, earlier_attempts="none yet",
                        new_rule=rule).with_inputs(*_INPUTS)


def amend_demos(accepted: Sequence[tuple[str, str, str]] = (), *, shipped: int = len(SHIPPED_AMEND_DEMOS)) -> list[dspy.Example]:
    """``shipped`` shipped demos, then up to two rules this run accepted (``(before, feedback, rule)``)."""
    own = [_demo(before, feedback or "- (an earlier step of this run)", rule) for before, feedback, rule in accepted]
    return [*(_demo(*demo) for demo in SHIPPED_AMEND_DEMOS[:shipped]), *own[-2:]]
