"""Texts that make a badly written regular expression backtrack for ever, and a fuzzer that makes more.

The checks of this package read text that nobody controls: model replies (a small model
loops: "240 files / 12 hours / 240 files / ..."), seed files and a judge's words. Tests and
``benchmarks/patterns.py`` feed these texts to every pattern the package compiles
(:func:`package_patterns`) and to every check, so a pattern that is not linear shows up
before a user's run hangs on it.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
import re
from collections.abc import Iterator

import regex

__all__ = ["adversarial_texts", "fuzz_texts", "package_patterns"]

#: The reply that hung a run (issue 23): a small model's loop with no closing "=".
LOOPING_REPLY = "240 files / 12 hours / 4 hours" + " / 240 files" * 40

_FRAGMENTS = (
    " ", "  ", "\n", "\t", "/", " / ", "=", " = ", "+", "-", "*", "x", "×", "1", "12", "240", "3.5", "1,000", "$",
    "%", "(", ")", "[", "]", "{", "}", "[[", "]]", "#", "##", "**", "__", ":", ";", ",", ".", "...", "?", "!", "'",
    '"', "`", '"""', "e.g.", "i.e.", "Step 1", "step", "files", "hours", "kg", "The answer is", "Final Answer",
    "Rewritten Instruction", "def f(", "please", "you", "Mr.", "Natalia", "http://", "user:pw@", "a_b", "é", "…",
)


def adversarial_texts(size: int = 100_000) -> dict[str, str]:
    """Named hostile inputs of about ``size`` characters each (and the short reply that hung a run)."""

    def repeat(unit: str) -> str:
        return unit * max(1, size // len(unit))

    nested = max(1, size // 4)
    return {
        "looping_reply": LOOPING_REPLY,
        "looping_reply_long": repeat("240 files / 12 hours / "),
        "separators_slash": repeat(" / "),
        "separators_mixed": repeat(" /  - * "),
        "numbers_with_units": repeat("1,234.5 kg / "),
        "numbers_and_operators": repeat("1 x 2 + "),
        "dollars_percent": repeat("$30 + 20% "),
        "digits": repeat("1"),
        "digit_dots": repeat("1."),
        "digit_commas": repeat("1,"),
        "fractions": repeat("1/"),
        "open_brackets": "(" * nested + "1" + ")" * nested,
        "open_brackets_unclosed": repeat("( 1 + "),
        "square_brackets": repeat("[[#"),
        "braces": repeat("{ a"),
        "spaces": repeat(" "),
        "newlines": repeat("\n"),
        "space_newline": repeat(" \n"),
        "hashes": repeat("#"),
        "hashes_then_word": repeat("#") + "x",
        "spaces_then_word": repeat(" ") + "x",
        "dots": repeat("."),
        "ellipses_then_word": repeat("...") + "x",
        "dotted_words": repeat("a."),
        "stars": repeat("*"),
        "underscores": repeat("_"),
        "letters": repeat("a"),
        "words": repeat("word "),
        "capitals": repeat("Aa "),
        "quotes_double": repeat('"a '),
        "quotes_single": repeat("'a "),
        "backticks": repeat("`a"),
        "triple_quotes": repeat('"""a'),
        "step_headings": repeat("Step 1 "),
        "step_headings_lines": repeat("\n Step 1 ** "),
        "final_markers": repeat("#Final Rewritten Instruction# "),
        "markers_no_newline": repeat("## ** __ "),
        "examples": repeat("e.g. such as "),
        "sentences": repeat("a. "),
        "colons": repeat(": "),
        "equals": repeat("= "),
        "urls": repeat("http://a:"),
        "userinfo": repeat("ab://c:"),
        "code_stub": repeat("def f(\n"),
        "answer_phrases": repeat("the answer is "),
        "is_numbers": repeat("is 1 "),
        "identifiers": repeat("a_"),
        "please": repeat("please "),
        "unicode": repeat("é… "),
    }


def fuzz_texts(*, seed: int = 23, count: int = 200, length: int = 3_000) -> Iterator[tuple[str, str]]:
    """``count`` random texts of about ``length`` characters built from risky fragments (fixed ``seed``)."""
    rng = random.Random(seed)
    for number in range(count):
        pieces: list[str] = []
        total = 0
        run = rng.sample(_FRAGMENTS, k=rng.randint(2, 6))  # few fragments repeated: what loops look like
        while total < length:
            piece = rng.choice(run) if rng.random() < 0.85 else rng.choice(_FRAGMENTS)
            pieces.append(piece)
            total += len(piece)
        yield f"fuzz-{seed}-{number}", "".join(pieces)


def package_patterns(package: str = "autoevol_dspy") -> dict[str, re.Pattern | regex.Pattern]:
    """Every compiled pattern held by a module of ``package`` or by one of its classes, by dotted name."""
    root = importlib.import_module(package)
    found: dict[str, re.Pattern | regex.Pattern] = {}
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            owners = [(name, value)]
            if isinstance(value, type) and value.__module__ == module.__name__:
                owners = [(f"{name}.{attr}", inner) for attr, inner in vars(value).items()]
            for dotted, candidate in owners:
                if isinstance(candidate, (re.Pattern, regex.Pattern)):
                    found[f"{info.name}.{dotted}"] = candidate
                elif isinstance(candidate, tuple) and candidate and all(
                        isinstance(item, (re.Pattern, regex.Pattern)) for item in candidate):
                    for index, item in enumerate(candidate):
                        found[f"{info.name}.{dotted}[{index}]"] = item
    return found
