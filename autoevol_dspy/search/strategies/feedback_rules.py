"""Rules read from the metric's feedback: what the failing cases were told, grouped, becomes the rule.

A metric that returns ``dspy.Prediction(score=..., feedback=...)`` says what a right output
looks like ("the answer must be the number alone, without words"). That sentence, stripped
of what belongs to one case (quoted outputs, numbers), is already a general rule; the more
failing cases it was said to, the more it is worth trying. When the run knows a right output
(:func:`~autoevol_dspy.search.strategies.edit_library.example_of`), the rule comes first with
that output shown before the instructions, while the edit library tries the example after
them: where a small model best takes an example differs by task, and the dev set picks (on the
head-to-head calculation task this draft won, 25% held out against 5% for the example after;
benchmarks/RESULTS.md). No LM writes anything here, so a 135M optimizer LM cannot garble it,
and the guard still checks every draft.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import regex

from autoevol_dspy.search.strategies.edit_library import example_edit, example_of
from autoevol_dspy.search.strategies.proposal_source import Draft, ProposalRequest, first_unclaimed
from autoevol_dspy.text import bounded

__all__ = ["FeedbackRules", "rules_from_feedback"]

_QUOTED = regex.compile(r"'[^'\n]{0,300}+'|\"[^\"\n]{0,300}+\"|“[^”\n]{0,300}+”|`[^`\n]{0,300}+`")
_CLAUSE_END = regex.compile(r"(?<=[.!?])\s++|[;\n]++|:\s++(?=[A-Z])")
_LEAD = regex.compile(r"^(?:wrong|incorrect|failed|fail|error|no|bad|note|hint|expected|reason)\b\W*+",
                      regex.IGNORECASE)
# Words that make a clause a norm about the output, not a report about one case.
_NORM = regex.compile(
    r"\b(?:must|should|shall|needs? to|has to|have to|is expected|are expected|is required|are required|"
    r"only|always|never|do not|don't|avoid|without|instead of|no more than|at most|at least|exactly)\b",
    regex.IGNORECASE,
)
# A clause about what one output did ("it writes the code body instead of asking for it": a detector's report)
# is no norm, though "instead of" is in it; "it must be a number" is one.
_REPORT = regex.compile(r"^(?:it|this|that)\s++(?!must\b|should\b|shall\b|needs?\s++to\b|has\s++to\b|"
                        r"is\s++(?:expected|required)\b)", regex.IGNORECASE)
_DIGIT = regex.compile(r"\d")
_WORDS = regex.compile(r"[A-Za-z']+")


def _clauses(feedback: str) -> list[str]:
    text = _QUOTED.sub("", bounded(feedback, 2_000))
    return [part.strip(" ,;:-") for part in _CLAUSE_END.split(text) if part.strip(" ,;:-")]


def _as_rule(clause: str) -> str | None:
    """``clause`` as a sentence of instructions, or ``None`` when it is no general norm."""
    clause = _LEAD.sub("", clause).strip(" ,;:-")
    words = _WORDS.findall(clause)
    if not 4 <= len(words) <= 40 or not _NORM.search(clause) or _DIGIT.search(clause) or _REPORT.match(clause):
        return None  # a number belongs to one case; a norm needs a few words and is no report about one output
    clause = clause[0].upper() + clause[1:]
    return clause if clause.endswith((".", "!")) else f"{clause}."


def rules_from_feedback(feedback: list[str], *, limit: int = 5) -> list[str]:
    """The general rules in ``feedback`` (one text per failing case), most often said first."""
    counts: Counter[str] = Counter()
    texts: dict[str, str] = {}  # first wording of each rule, in the order first said
    for text in feedback:
        for rule in dict.fromkeys(filter(None, map(_as_rule, _clauses(text)))):
            counts[rule.lower()] += 1
            texts.setdefault(rule.lower(), rule)
    ranked = sorted(texts, key=lambda key: -counts[key])  # stable: ties keep the order first said
    return [texts[key] for key in ranked[:limit]]


class FeedbackRules:
    """Appends the rule the metric's feedback states most often (then the next, then the two most common);
    each first with an example of a right output shown before the instructions, when the run has one.

    It drafts nothing when the feedback states no general norm (a bare score, a detector's
    report about one case), and the step's other sources fill the sample.
    """

    name = "feedback_rules"
    uses_lm = False

    def __init__(self, *, max_rules: int = 3) -> None:
        self.max_rules = max_rules

    def draft(self, request: ProposalRequest, *, sample: int, note: str = "") -> Draft | None:
        feedback = [reason for _, reason in request.failures]
        rules = rules_from_feedback(feedback, limit=self.max_rules)
        rules = [rule for rule in rules if rule.lower() not in request.current.lower()]
        appended = [request.appended(rule) for rule in rules]
        if len(rules) >= 2:
            appended.append(request.appended(" ".join(rules[:2])))
        output = request.outputs[-1] if request.outputs else None
        shown = example_edit(output, example_of(output, request.passed_outputs, feedback)) if output else None
        texts: list[str] = []
        for text in appended:
            if shown and shown.lower() not in text.lower():
                texts.append(f"{shown}\n{text}")  # the rule with a right output shown: two ideas at once
            texts.append(text)
        chosen = first_unclaimed(request, texts)
        if chosen is None:
            return None
        grouped = "; ".join(f"{sum(1 for _, r in request.failures if rule[:-1].lower() in r.lower())} case(s): {rule}"
                            for rule in rules)
        return Draft(text=chosen, feedback=f"Rules stated by the metric's feedback on failing cases: {grouped}")

    def describe(self) -> dict[str, Any]:
        return {"type": "FeedbackRules", "max_rules": self.max_rules}
