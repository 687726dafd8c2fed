"""A proposal that no longer asks for the task: it keeps too few of the task's words and names no output."""

from __future__ import annotations

import enum
import typing
from typing import Any

import dspy

from autoevol_dspy.search.strategies.proposal_guard.base import ProposalContext, Rejection, _positive
from autoevol_dspy.search.strategies.proposal_guard.words import _STOP_WORDS, _key_stems, _lower_words, _mentions, _stem


def _type_words(annotation: Any) -> list[str]:
    """The words an output type spells out: a Literal's or an Enum's values, true/false/yes for a bool, "number"
    for a number, "list" for a list, also inside Optional."""
    if annotation is bool:
        return ["true", "false", "yes"]
    if annotation in (int, float):
        return ["number"]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return [str(value) for value in typing.get_args(annotation)]
    inner = [word for arg in typing.get_args(annotation) for word in _type_words(arg)]
    return ["list", *inner] if origin in (list, tuple, set, frozenset) else inner


def signature_terms(signature: type[dspy.Signature]) -> dict[str, tuple[str, ...]]:
    """Per output field, the words that name it besides its name: its type's words (values) and its description's.

    A sound rewrite may say "positive, negative or mixed" where the incumbent said `sentiment`.
    """
    terms = {}
    for name, info in signature.output_fields.items():
        desc = str((info.json_schema_extra or {}).get("desc", ""))
        words = [] if desc.startswith("${") else [word for word in _lower_words(desc) if word.isalpha()]
        found = [*_type_words(info.annotation), *words]
        terms[name] = tuple(dict.fromkeys(term for term in found if len(term) > 2 and term.lower() not in _STOP_WORDS))
    return terms


#: Names that mean only "the output": a field named so is named by any of them ("reply with the number").
_GENERIC_OUTPUTS = frozenset(_stem(word) for word in
                             "answer answers reply replies respond responds response responses result results "
                             "output outputs".split())
#: The optimizer's own material: a text about these, where the incumbent is not, is about rewriting instructions.
_OPTIMIZER_WORDS = frozenset(_stem(word) for word in "instruction instructions prompt prompts feedback".split())


def _names_field(proposal: ProposalContext, name: str, stems: set[str]) -> bool:
    """Whether the proposal names the output field: by its name, by a word its signature gives about it
    (:func:`signature_terms`), or, for a field named just "answer", "output" and the like, by any such word -
    unless the text is about instructions or feedback where the incumbent is not (the optimizer's own task)."""
    if _mentions(proposal.text, name) or _stem(name) in stems:
        return True
    for term in proposal.output_terms.get(name, ()):
        if (_stem(term) in stems) if term.isalpha() else _mentions(proposal.text, term):
            return True
    about_rewriting = bool((stems - _key_stems(proposal.incumbent)) & _OPTIMIZER_WORDS)
    return _stem(name) in _GENERIC_OUTPUTS and bool(stems & _GENERIC_OUTPUTS) and not about_rewriting


class DropsTask:
    """Refuses a proposal that no longer asks for the incumbent's task.

    It must keep at least ``min_share`` of the incumbent's content words (at least ``min_kept``
    of them). An output field the proposal names counts as one of them, also when it names it
    in other words: by its type's values or its description's words
    (``ProposalContext.output_terms``), "positive, negative or mixed" for `sentiment`.
    """

    def __init__(self, *, min_share: float = 0.2, min_kept: int = 1) -> None:
        self.min_share = _positive("min_share", min_share)
        self.min_kept = int(_positive("min_kept", min_kept))

    def check(self, proposal: ProposalContext) -> Rejection | None:
        stems = _key_stems(proposal.text)
        named = {_stem(name) for name in proposal.output_fields if _names_field(proposal, name, stems)}
        keys = _key_stems(proposal.incumbent)
        if not keys:
            return None
        kept = keys & stems | named
        keys |= named
        needed = min(len(keys), max(self.min_kept, self.min_share * len(keys)))
        if len(kept) < needed:
            lost = ", ".join(sorted(keys - kept)[:6])
            return Rejection(category="drops_task", check="DropsTask",
                             reason=f"it keeps {len(kept)} of the {len(keys)} task words of the current "
                                    f"instructions (lost: {lost})")
        return None

    def describe(self) -> dict[str, Any]:
        return {"type": "DropsTask", "min_share": self.min_share, "min_kept": self.min_kept}
