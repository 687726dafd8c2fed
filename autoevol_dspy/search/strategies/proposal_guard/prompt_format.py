"""A proposal that talks about the prompt's format, which the adapter sets."""

from __future__ import annotations

from typing import Any

from autoevol_dspy.search.strategies.proposal_guard.base import ProposalContext, Rejection
from autoevol_dspy.search.strategies.proposal_guard.words import _lower_words


#: Words of the prompt's own format, which the adapter sets: a small optimizer LM copies them from its prompt.
_FORMAT_WORDS = frozenset({"json", "schema"})


class NamesPromptFormat:
    """Refuses a proposal that brings up the prompt's format ("so I will give you a JSON object") where neither
    the incumbent nor the words of the output fields do: in DSPy the adapter sets the format, and instructions
    that ask for another one fight it. The 135M optimizer LM copies the word from its own JSON prompt."""

    def check(self, proposal: ProposalContext) -> Rejection | None:
        known = set(_lower_words(proposal.incumbent))
        known |= {word for name, terms in proposal.output_terms.items() for word in (*name.lower().split("_"),
                                                                                     *map(str.lower, terms))}
        known |= {word for name in proposal.output_fields for word in name.lower().split("_")}
        named = next((word for word in _lower_words(proposal.text) if word in _FORMAT_WORDS and word not in known),
                     None)
        if named is None:
            return None
        return Rejection(category="format_talk", check="NamesPromptFormat",
                         reason=f"it brings up the prompt's format ({named!r}), which the adapter sets, "
                                "instead of saying what to do")

    def describe(self) -> dict[str, Any]:
        return {"type": "NamesPromptFormat"}
