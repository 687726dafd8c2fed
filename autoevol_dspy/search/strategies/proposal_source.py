"""Where candidate instructions come from: the protocol every proposal source follows, and what it is shown.

A step asks for m candidates. Each of the m samples is dealt to one source of the run's
list, in turn: the optimizer LM rewriting the instructions (the paper), the optimizer LM
adding one rule, rules read from the metric's feedback, or general edits made from the
predictor's signature. A weak optimizer LM writes few usable rules from a free-form
prompt, but the search does not need it to: it needs a pool that contains good
candidates, and the dev set and the held-out check to pick among them honestly. Every
draft still passes the proposal guard, and every candidate records the source that made it.
"""

from __future__ import annotations

import threading
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import dspy

__all__ = ["Draft", "FieldView", "ProposalRequest", "ProposalSource", "fields_of", "first_unclaimed", "normalized"]


def normalized(text: str) -> str:
    """``text`` with its whitespace collapsed: two drafts that differ only in spacing are one candidate."""
    return " ".join(text.split())


@dataclass(frozen=True)
class FieldView:
    """One field of the predictor's signature as a source may use it: name, type, description, allowed values."""

    name: str
    type_name: str = "str"
    desc: str = ""
    choices: tuple[str, ...] = ()

    @property
    def words(self) -> str:
        """The name as words ("final_answer" -> "final answer"), for instructions."""
        return self.name.replace("_", " ").strip()


def _type_name(annotation: Any) -> tuple[str, tuple[str, ...]]:
    if typing.get_origin(annotation) is typing.Literal:
        return "choice", tuple(str(value) for value in typing.get_args(annotation))
    if annotation is bool:
        return "bool", ()
    if annotation in (int, float):
        return "number", ()
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set) or annotation in (list, tuple, set):
        return "list", ()
    if annotation in (dict,) or origin is dict:
        return "mapping", ()
    return getattr(annotation, "__name__", "str"), ()


def fields_of(signature: type[dspy.Signature]) -> tuple[tuple[FieldView, ...], tuple[FieldView, ...]]:
    """The input and output fields of ``signature`` as :class:`FieldView` s (a description equal to the
    DSPy default ``${name}`` counts as none)."""

    def view(name: str, info: Any) -> FieldView:
        kind, choices = _type_name(info.annotation)
        desc = str((info.json_schema_extra or {}).get("desc", "") or "")
        if desc.strip() == f"${{{name}}}":
            desc = ""
        return FieldView(name=name, type_name=kind, desc=desc, choices=choices)

    inputs = tuple(view(name, info) for name, info in signature.input_fields.items())
    outputs = tuple(view(name, info) for name, info in signature.output_fields.items())
    return inputs, outputs


@dataclass(frozen=True)
class Draft:
    """A source's proposal: whole new instructions, or (``rule=True``) one rule to append to the current ones."""

    text: str
    feedback: str = ""
    rule: bool = False


@dataclass
class ProposalRequest:
    """What one step shows its sources: the incumbent, the trajectory and its failures, the signature.

    ``failures`` holds, per trajectory case that failed, its category and the reason or the
    metric's feedback. ``tried``: texts this run already evaluated or refused for the predictor
    (whitespace collapsed, :func:`normalized`); a source that lists candidates skips them and
    the ones another sample of the step claimed. ``edit_hints``: the task's edit for each
    failure category it knows. ``passed_outputs``: outputs of cases the metric accepted in this run
    (the trajectory's first, then the dev evaluations' evidence), each as field -> text: what a
    right output looks like, in the task model's own words.
    """

    step: int
    predictor: str
    current: str
    trajectory: str
    failures: tuple[tuple[str, str], ...] = ()
    inputs: tuple[FieldView, ...] = ()
    outputs: tuple[FieldView, ...] = ()
    history: str = ""
    tried: frozenset[str] = frozenset()
    edit_hints: dict[str, str] = field(default_factory=dict)
    accepted_rules: tuple[tuple[str, str, str], ...] = ()  # (instructions before, feedback, rule) of accepted steps
    passed_outputs: tuple[dict[str, str], ...] = ()
    _claimed: set[str] = field(default_factory=set, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def claim(self, text: str) -> bool:
        """Take ``text`` for this step's sample, unless it was tried before or another sample took it."""
        key = normalized(text)
        with self._lock:
            if key in self._claimed or key in self.tried:
                return False
            self._claimed.add(key)
            return True

    def appended(self, rule: str) -> str:
        """The current instructions with ``rule`` added as their last line."""
        return f"{self.current.rstrip()}\n{rule.strip()}"


@runtime_checkable
class ProposalSource(Protocol):
    """Makes one draft for one sample of a step, or ``None`` when it has nothing new to offer.

    ``name`` is recorded with every candidate the source made; ``describe()`` goes into the
    run's identity; ``uses_lm`` says whether a draft costs optimizer-LM calls.
    """

    name: str
    uses_lm: bool

    def draft(self, request: ProposalRequest, *, sample: int, note: str = "") -> Draft | None: ...

    def describe(self) -> dict[str, Any]: ...


def first_unclaimed(request: ProposalRequest, texts: Sequence[str]) -> str | None:
    """The first of ``texts`` that this step may still propose (see :meth:`ProposalRequest.claim`)."""
    return next((text for text in texts if request.claim(text)), None)
