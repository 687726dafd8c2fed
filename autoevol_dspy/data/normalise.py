"""Text as the words hygiene compares, so that case, punctuation and spacing never make two rows differ."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["Normaliser"]

_WORD = re.compile(r"\w+")


class Normaliser:
    """Text as the words hygiene compares: NFKC-normalised, case-folded, punctuation and spacing dropped."""

    def words(self, text: str) -> list[str]:
        """The words of ``text`` (runs of letters, digits and underscores), lower-cased."""
        return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
