"""A proposal far shorter or longer than the instructions it would replace."""

from __future__ import annotations

import re
from typing import Any

from autoevol_dspy.errors import ConfigurationError
from autoevol_dspy.search.strategies.proposal_guard.base import ProposalContext, Rejection, _positive


class LengthOutOfRange:
    """Refuses a proposal far shorter or longer than the incumbent, unless the feedback asks for that.

    A short incumbent may grow by ``slack_words``: a strong optimizer LM turns "Answer the
    question." into a page of rules (GEPA's proposals run to hundreds of words).
    """

    _LONGER = re.compile(r"more (detail|specific|explicit|precise)|too (vague|short|brief)|elaborat|expand",
                         re.IGNORECASE)
    _SHORTER = re.compile(r"too (long|verbose|wordy)|shorter|more concise|be concise|simplif|brevity", re.IGNORECASE)

    def __init__(self, *, min_ratio: float = 0.2, max_ratio: float = 4.0, slack_words: int = 500) -> None:
        self.min_ratio = _positive("min_ratio", min_ratio)
        self.max_ratio = _positive("max_ratio", max_ratio)
        self.slack_words = int(_positive("slack_words", slack_words))
        if self.min_ratio >= self.max_ratio:
            raise ConfigurationError(f"min_ratio ({min_ratio}) must be below max_ratio ({max_ratio})")

    def check(self, proposal: ProposalContext) -> Rejection | None:
        size, base = len(proposal.text.split()), max(1, len(proposal.incumbent.split()))
        shortest = self.min_ratio * base
        longest = max(self.max_ratio * base, base + self.slack_words)
        if size < shortest and not self._SHORTER.search(proposal.feedback):
            return Rejection(category="length", check="LengthOutOfRange",
                             reason=f"it has {size} words where the current instructions have {base}")
        if size > longest and not self._LONGER.search(proposal.feedback):
            return Rejection(category="length", check="LengthOutOfRange",
                             reason=f"it has {size} words where the current instructions have {base}")
        return None

    def describe(self) -> dict[str, Any]:
        return {"type": "LengthOutOfRange", "min_ratio": self.min_ratio, "max_ratio": self.max_ratio,
                "slack_words": self.slack_words}
