"""The rule detectors measured on real embedded-model evolutions, plus hand-written cases for each."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from autoevol_dspy.evolution import (
    AnsweredInstead,
    AsksNothingNew,
    CopiedExample,
    EchoesMethod,
    EvolInstructRules,
    EvolutionCase,
    LostKeyContent,
    NearCopy,
    PaperResponseRules,
    Repetition,
    default_detectors,
)
from autoevol_dspy.evolution.method import EXTEND_DEMOS, INITIAL_EXTEND_METHOD, INITIAL_METHOD

DATA = Path(__file__).parent / "data" / "embedded_evolutions.jsonl"
ROWS = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]


def flagged(detector, labels: set[str], *, method: str = "") -> tuple[int, int]:
    """How many rows with one of ``labels`` the detector flags, out of how many (``method``: the evolving method)."""
    rows = [row for row in ROWS if row["label"] in labels]
    hits = sum(detector.detect(EvolutionCase(row["seed"], row["evolved_instruction"], method=method)) is not None
               for row in rows)
    return hits, len(rows)


def test_data_is_the_labelled_sample():
    counts = Counter((row["source"], row["split"], row["label"]) for row in ROWS)
    assert sum(n for (source, split, _), n in counts.items() if (source, split) == ("embedded", "dev")) == 120
    assert sum(n for (source, split, _), n in counts.items() if (source, split) == ("embedded", "holdout")) == 60
    assert counts[("hand_written", "dev", "ok")] == 39 and sum(n for key, n in counts.items() if key[2] == "ok") == 39
    assert {row["label"] for row in ROWS} == {"ok", "answered", "exact_copy", "near_copy", "lost_key_content", "other"}
    assert all(row["seed"] and row["evolved_instruction"] and row["note"] for row in ROWS)


# Floors and ceilings sit just under / over what tests/data/README.md reports (dev + holdout rows):
# a regression fails.
@pytest.mark.parametrize(
    ("detector", "positives", "min_hits"),
    [
        (AnsweredInstead(), {"answered"}, 113),  # measured 116/117
        (NearCopy(), {"near_copy", "exact_copy"}, 7),  # measured 8/8
        (LostKeyContent(), {"lost_key_content"}, 40),  # measured 42/43
        (Repetition(), {"other"}, 6),  # measured 7/12: the loops and runs; unrelated prose and meta text stay
    ],
    ids=["answered", "near_copy", "lost_key_content", "repetition"],
)
def test_recall_on_real_failures(detector, positives, min_hits):
    hits, total = flagged(detector, positives)
    assert hits >= min_hits, f"{detector.name}: {hits}/{total}"


@pytest.mark.parametrize("detector", [AnsweredInstead(), NearCopy(), LostKeyContent(), Repetition()],
                         ids=lambda d: d.name)
def test_false_positives_on_ok_rewrites(detector):
    hits, total = flagged(detector, {"ok"})
    assert total == 39 and hits <= 1, f"{detector.name}: {hits}/{total}"  # measured 0/39 each


def test_real_instructions_are_not_answers():
    seeds = sorted({row["seed"] for row in ROWS})
    assert [seed for seed in seeds if AnsweredInstead().detect(EvolutionCase(seed, seed))] == []


def test_default_detectors_run_cheap_rules_first():
    kinds = [type(detector) for detector in default_detectors()]
    assert kinds == [EvolInstructRules, AnsweredInstead, NearCopy, LostKeyContent, Repetition, CopiedExample,
                     EchoesMethod, AsksNothingNew, PaperResponseRules]
    assert not any(detector.needs_response for detector in default_detectors()[1:8])


ALANI = (
    "Alani earned $45 for 3 hours of baby-sitting. "
    "At the same rate, for how many hours would she need to baby-sit to earn $75?"
)


@pytest.mark.parametrize(
    ("parent", "evolved", "reason"),
    [
        ("What is 6 times 7?", "The answer is 42.", "announces an answer"),
        (ALANI, "Alani earned $45 for 3 hours, so her rate is 45 / 3 = 15 and she needs 5 hours.", "equation"),
        ("Explain how probability works.", "Let me explain: probability measures how likely it is.", "first person"),
        (ALANI, ALANI + " She earns $15 per hour, so to earn $75 she would need to baby-sit for five hours in total, "
                        "which is two hours more than before.",
         "goes on to state"),
        ('def add(a, b):\n    """Return the sum of a and b."""\n',
         'def add(a, b):\n    """Return the sum of a and b, for ints only."""\n    return a + b\n', "code body"),
        ("Write a haiku about rain.", "Rain taps on the roof, the garden drinks.", "asks for nothing"),
        ('def add(a, b):\n    """Return the sum of a and b."""\n',
         'def add(a, b):\n    """Return the sum of a and b.""" Can you finish it?\n    return a + b', "code body"),
        # the extend style's bare answers, which near_copy used to count
        (ALANI, ALANI + " 5 hours", "bare result"),
        (SOCCER_SHORT := "How many goals did the other players score?", SOCCER_SHORT + " $2.30.", "bare result"),
        ("Name a prime number.", "Name a prime number. 7", "bare result"),
    ],
)
def test_answered_instead_flags(parent, evolved, reason):
    failure = AnsweredInstead().detect(EvolutionCase(parent, evolved))
    assert failure is not None and failure.category == "answered_instead" and reason in failure.reason


@pytest.mark.parametrize(
    ("parent", "evolved"),
    [
        (ALANI, ("Alani earned $45 for 3 hours of baby-sitting. At the same rate, how many hours must she baby-sit "
                 "to earn $75? Check whether the answer is a whole number and explain each step.")),
        ("Solve 3x + 5 = 20.", "If 3x + 5 = 20 and y = 2x, find x and y, and explain each step."),
        (ALANI, "Given that 45 / 3 = 15, how many hours would Alani need to baby-sit to earn $75 and then $120?"),
        ("Write a haiku about rain.", "Compose a haiku about autumn rain that mentions a river and a heron."),
        ("Which of these should be reported? a) a fight b) a game",
         ("Which of these should the aides report, and why? a) two boys fighting near the slide b) a girl reading "
          "alone on a bench while the others play c) a group of children playing a loud game of tag near the gate")),
        ('def add(a, b):\n    """Return the sum of a and b."""\n',
         'def add(a, b):\n    """Return the sum of a and b; raise TypeError unless both are ints."""\n'),
        (ALANI, ALANI + " Answer in 2 sentences."),
        ("Write a poem about 15 cats.", "Write a poem about 15 cats. 15 cats"),  # the parent's own words
        # the extend style on a code stub: the question lands on the docstring's last, indented line
        ('def add(a, b):\n    """Return the sum of a and b."""\n',
         'def add(a, b):\n    """Return the sum of a and b.""" What should it return for two strings?'),
    ],
)
def test_answered_instead_passes_real_requests(parent, evolved):
    assert AnsweredInstead().detect(EvolutionCase(parent, evolved)) is None


SOCCER = ("A soccer team has 24 players. They have scored 150 goals on the season. There have been 15 games played. "
          "1/3 of the players have averaged 1 goal each per game. How many total goals have the other players scored?")


@pytest.mark.parametrize(
    ("evolved", "category"),
    [
        ("  " + SOCCER.upper() + " ", "unchanged"),
        (SOCCER.replace("players. They", "players, and they"), "near_copy"),
        (SOCCER + " 1. 2. 3. 4. 5. 6. 7. 8.", "near_copy"),
        (SOCCER.replace("total goals", "goals in total"), "near_copy"),
    ],
)
def test_near_copy_flags(evolved, category):
    failure = NearCopy().detect(EvolutionCase(SOCCER, evolved))
    assert failure is not None and failure.category == category


def test_near_copy_passes_real_additions_and_honours_its_settings():
    added = SOCCER[:-1] + ", and what is their average per game if 2 of the games were cancelled before kickoff?"
    assert NearCopy().detect(EvolutionCase(SOCCER, added)) is None
    assert NearCopy().detect(EvolutionCase(SOCCER, "Write a short poem about a soccer season.")) is None
    assert NearCopy(min_similarity=0.8, max_new_words=10).detect(EvolutionCase(SOCCER, added)).category == "near_copy"
    one_word = SOCCER.replace("How many", "Exactly how many")
    assert NearCopy().detect(EvolutionCase(SOCCER, one_word)).category == "near_copy"
    assert NearCopy(max_new_words=0).detect(EvolutionCase(SOCCER, one_word)) is None


MIKE = (
    "Mike can type 65 words per minute. Due to a minor accident, Mike cannot use his right hand for a while so that "
    "his typing speed is now 20 words less per minute. If he is supposed to type a document with 1,000 words, how "
    "many minutes will it take him to finish typing the document?"
)


def test_lost_key_content_passes_a_gsm8k_rewrite_that_keeps_its_numbers():
    kept = (
        "Mike can type 65 words per minute, but after a minor accident he cannot use his right hand, so Mike now "
        "types 20 words less per minute. How many minutes will he need for a 1000-word document if he also takes "
        "a two-minute break after every 10 minutes of typing?"
    )
    assert LostKeyContent().detect(EvolutionCase(MIKE, kept)) is None


def test_lost_key_content_flags_a_gsm8k_rewrite_that_drops_a_number():
    dropped = (
        "Mike can type 65 words per minute, but after a minor accident he cannot use his right hand, so Mike now "
        "types more slowly. How many minutes will he need for a 1000-word document, breaks included?"
    )
    failure = LostKeyContent().detect(EvolutionCase(MIKE, dropped))
    assert failure is not None and failure.category == "lost_key_content" and "20" in failure.reason
    assert LostKeyContent(max_missing=1).detect(EvolutionCase(MIKE, dropped)) is None


HAS_CLOSE = ('def has_close_elements(numbers: List[float], threshold: float) -> bool:\n'
             '    """ Check if in given list of numbers, are any two numbers closer to each other than\n'
             '    given threshold.\n    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)\n    False\n    """\n')


@pytest.mark.parametrize(
    ("parent", "evolved", "missing"),
    [
        ("Marvin sold 35 bars and Tina sold three times as many. How many more did Tina sell?",
         "Marvin sold 35 bars and his friend sold 3 times as many. How many more did the friend sell?", "Tina"),
        ('Correct the sentence "He go to school." and explain the rule.',
         "Correct the grammar of a short sentence and explain the rule in two steps.", "he go to school"),
        (HAS_CLOSE, "Write a function that checks whether two numbers in a list are closer than a threshold, in O(n).",
         "has_close_elements"),
        ("Write a function to find the majority element using the Boyer-Moore Voting Algorithm.",
         "Write a function to find the majority element in linear time and constant extra memory.", "Boyer-Moore"),
    ],
)
def test_lost_key_content_flags_dropped_names_quotes_and_identifiers(parent, evolved, missing):
    failure = LostKeyContent().detect(EvolutionCase(parent, evolved))
    assert failure is not None and missing in failure.reason


@pytest.mark.parametrize(
    ("parent", "evolved"),
    [
        ("Marvin sold 35 bars and Tina sold three times as many. How many more did Tina sell?",
         "Marvin sold 35 bars and Tina sold 3 times as many. How many more did Tina sell, as a share of Marvin's?"),
        ("Salem has 58940 people and Leesburg has $1,500.50 in the bank. How much is that per person?",
         "Salem has 58,940 people and Leesburg has 1500.5 dollars in the bank. Compute the amount per person."),
        (HAS_CLOSE, ("Write has_close_elements(numbers, threshold) that returns True if any two numbers are closer "
                     "than threshold, and make it run in O(n log n) by sorting a copy of the list.")),
    ],
)
def test_lost_key_content_tolerates_formatting_and_dropped_examples(parent, evolved):
    assert LostKeyContent().detect(EvolutionCase(parent, evolved)) is None


def test_lost_key_content_flags_a_dropped_request():
    premises = "Benjamin bought 5 copies of a novel at $20 each and 3 history books at $30 each."
    case = EvolutionCase(premises + " What was the total cost?", premises)
    failure = LostKeyContent().detect(case)
    assert failure is not None and "request" in failure.reason
    assert LostKeyContent(require_request=False).detect(case) is None


def first_failure(case: EvolutionCase):
    """The failure the default detectors report before any answer is asked for (None: the case passes them)."""
    for detector in default_detectors():
        if not detector.needs_response and (failure := detector.detect(case)) is not None:
            return failure
    return None


PLATES = ("Matt needs to buy new plates for his home. He only wants to do dishes once a week. Three days a week it "
          "is only him and his son eating and they use 1 plate each. How many plates does he need to buy?")


DICE = "Two dice are rolled. What is the probability that the sum is 7?"
WEEK = "How many minutes are there in a week?"


@pytest.mark.parametrize(("evolved", "answered"), [
    # The embedded model's extend step in the README's first command (2026-12-03): it passed every rule.
    (f"{DICE} The probability of the sum being 7 is 1/6", True),
    (f"{WEEK} The total is 10080 minutes.", True),
    # Facts and conditions that make the request harder are no answer.
    (f"{DICE} Each die is 6-sided.", False),
    (f"{WEEK} There are 7 days in a week.", False),
    (f"{DICE} Also give the probability that the sum is 12.", False),
])
def test_a_result_stated_after_the_request_is_an_answer(evolved, answered):
    parent = DICE if evolved.startswith(DICE) else WEEK
    failure = AnsweredInstead().detect(EvolutionCase(parent, evolved))
    assert (failure is not None and failure.category == "answered_instead") == answered, failure


@pytest.mark.parametrize(
    ("parent", "evolved"),
    [
        # benchmarks/RESULTS.md listed this one as passed
        ("Ich verstehe nur Bahnhof", "Ich verstehe nur Bahnhof Ich verstehe nur Bahnhof"),
        (SOCCER, f"{SOCCER} Also find their average per game. {SOCCER}"),
        # embedded-model replies of the extend style that every earlier rule let through
        (PLATES, PLATES + " How many plates does he need to buy?" * 8),
        ("Reverse the string.", "Reverse the string. The original string is reversed, with a length of 10. "
                                + "The original string is reversed with a length of 10. " * 4),
        ("Make the JSON object shorter.", "Make the JSON object shorter. The top-2. The top-1. The top-3. The top-4."),
        ("Explain the process.", "Explain the process. Answer ik ik ik ik ik ik ik ik ik ik ik"),
        ("Find the product.", "Find the product. Add xtr 2000000000000000000000000000000000000000000000"),
    ],
)
def test_a_repetition_of_the_parent_or_of_itself_fails(parent, evolved):
    case = EvolutionCase(parent, evolved)
    assert Repetition().detect(case).category == "repeats_itself"
    assert first_failure(case) is not None


@pytest.mark.parametrize(
    ("parent", "evolved"),
    [
        ("Write a poem about cats.", "Write a poem about cats, then a poem about dogs, and a poem about birds."),
        ("Say hi.", "Say hi, and say it very very very politely."),
        ("Sing the chorus: la la la la la.", "Sing the chorus: la la la la la, then hum it twice as slowly."),
        (SOCCER, SOCCER[:-1] + ", and how many did the other players score per game? Show each step."),
        ("Ich verstehe nur Bahnhof", "Erkläre, was 'Ich verstehe nur Bahnhof' bedeutet, und gib zwei Beispiele."),
        (HAS_CLOSE, HAS_CLOSE + "Also handle an empty list, and add a doctest for it."),
    ],
)
def test_real_requests_do_not_repeat_themselves(parent, evolved):
    assert Repetition().detect(EvolutionCase(parent, evolved)) is None


def test_real_seeds_with_an_addition_do_not_repeat_themselves():
    seeds = sorted({row["seed"] for row in ROWS})
    flagged_seeds = [seed for seed in seeds
                     if Repetition().detect(EvolutionCase(seed, seed + " Explain each step and keep it short."))]
    assert flagged_seeds == []


EXAMPLES = ("Use a LEFT JOIN instead of a subquery, and sort the result by the customer's last name.",
            "Keep it under 80 words.")


def test_a_copied_worked_example_fails_and_an_own_addition_passes():
    copied = EvolutionCase(SOCCER, f"{SOCCER} Use a LEFT JOIN instead of a subquery, and sort the result by goals.",
                           examples=EXAMPLES)
    failure = CopiedExample().detect(copied)
    assert failure.category == "copied_example" and "LEFT JOIN" in failure.reason
    assert first_failure(copied).category == "copied_example"
    short = EvolutionCase("Write a limerick.", "Write a limerick. Keep it under 80 words.", examples=EXAMPLES)
    assert CopiedExample().detect(short).category == "copied_example"
    own = EvolutionCase(SOCCER, f"{SOCCER} Then give the average per game, and keep it under 40 words.",
                        examples=EXAMPLES)
    assert CopiedExample().detect(own) is None
    assert CopiedExample().detect(EvolutionCase(SOCCER, copied.evolved)) is None  # no examples shown, nothing to copy
    quoted = EvolutionCase("Edit: 'Keep it under 80 words.'", "Edit: 'Keep it under 80 words.' Then translate it.",
                           examples=EXAMPLES)
    assert CopiedExample().detect(quoted) is None  # the parent's own words


def test_the_adapter_field_names_are_copied_template_words():
    case = EvolutionCase("Write a limerick.", "Write a limerick. Provide the JSON object with `added_requirement`.")
    assert EvolInstructRules().detect(case).category == "copied_template"


# The evolving method's own words, written back as the evolution (embedded model, benchmarks/RESULTS.md).
ECHOES = ["Added requirement to the request", "Added a new requirement to the instruction.",
          "What can you do to make this request harder?", "The added requirement is to make the request harder.",
          "How to add a new requirement to a request, such as a constraint, a format, or a related case to handle as "
          "well as the JSON schema?"]
# Real additions, some in the method's words, each with a word of its own; and a short generic one.
OWN = ["Use exactly three stanzas and end with a question.", "Also handle the related case of an empty list.",
       "Explain each step.", "Return the value as a JSON object.", "How much does she spend on it in a year?",
       "Keep it under 80 words and add a friendly question at the end."]


@pytest.mark.parametrize("addition", ECHOES)
def test_an_evolution_in_the_methods_own_words_echoes_it(addition):
    parent = "Can a process involve both reactions? List one."
    failure = EchoesMethod().detect(EvolutionCase(parent, f"{parent} {addition}", method=INITIAL_EXTEND_METHOD))
    assert failure is not None and failure.category == "echoes_method" and "from the evolving method" in failure.reason


@pytest.mark.parametrize("addition", OWN)
def test_an_addition_with_a_word_of_its_own_passes(addition):
    parent = "Write a function that sorts a list."
    assert EchoesMethod().detect(EvolutionCase(parent, f"{parent} {addition}", method=INITIAL_EXTEND_METHOD)) is None


def test_echoes_method_needs_the_method_and_passes_the_real_ok_rewrites():
    parent = "Can a process involve both reactions? List one."
    assert EchoesMethod().detect(EvolutionCase(parent, f"{parent} {ECHOES[0]}")) is None  # no method known
    for method in (INITIAL_METHOD, INITIAL_EXTEND_METHOD):
        assert flagged(EchoesMethod(), {"ok"}, method=method) == (0, 39)  # measured 0/39 with both initial methods


# Additions the embedded model appended under the extend method with no word of their own
# (benchmarks/evol_pilot.py's MT-Bench and GSM8K search seeds, all passed by the other rules).
ASKS_NOTHING = [
    ("Ich verstehe nur Bahnhof", "What is the answer to this question?"),
    ("Take your previous response and rephrase it as a limerick.",
     "What is it that you ask for, and how can I help you?"),
    ("Ich verstehe nur Bahnhof", "What is the Bahnhof?"),
    ("Vivian needs 2 bananas to make 1 yogurt. If she makes 5 yogurts, how many bananas does she need to buy?",
     "How many bananas does Vivian need to buy?"),
    ("If we select a student liked green, what's the probability that he or she would dislike both colors?",
     "What is the probability that he or she would dislike both colors?"),
    ("What are the differences between Riemannian geometry and euclidean geometry?",
     "What is the difference between Riemannian geometry and euclidean geometry?"),
]
# Additions with a word of their own, short ones among them.
ASKS_SOMETHING = [
    ("Ich verstehe nur Bahnhof", "Can you answer in French?"),
    ("Ich verstehe nur Bahnhof", "How many trees can you cut down?"),
    ("Vivian needs 2 bananas to make 1 yogurt. If she makes 5 yogurts, how many bananas does she need to buy?",
     "How much does she pay if each banana costs $0.25?"),
    ("What are the differences between Riemannian geometry and euclidean geometry?", "Explain each step."),
    ("What are the differences between Riemannian geometry and euclidean geometry?",
     "Which one describes the surface of the Earth?"),
]


@pytest.mark.parametrize(("parent", "addition"), ASKS_NOTHING)
def test_an_addition_without_a_word_of_its_own_asks_nothing_new(parent, addition):
    failure = AsksNothingNew().detect(EvolutionCase(parent, f"{parent} {addition}"))
    assert failure is not None and failure.category == "asks_nothing_new" and "asks for nothing new" in failure.reason


@pytest.mark.parametrize(("parent", "addition"), ASKS_SOMETHING)
def test_an_addition_with_a_word_of_its_own_asks_something(parent, addition):
    assert AsksNothingNew().detect(EvolutionCase(parent, f"{parent} {addition}")) is None


def test_asks_nothing_new_judges_appended_evolutions_only_and_passes_every_good_one():
    assert flagged(AsksNothingNew(), {"ok"}) == (0, 39)  # whole rewrites: not judged
    demos = [AsksNothingNew().detect(EvolutionCase(demo["instruction"], f"{demo['instruction']} "
                                                   f"{demo['added_requirement']}")) for demo in EXTEND_DEMOS]
    assert demos == [None] * len(EXTEND_DEMOS)
    parent = "Write a function that sorts a list."
    assert not [addition for addition in OWN
                if AsksNothingNew().detect(EvolutionCase(parent, f"{parent} {addition}"))]
    # a rewrite that does not keep its parent is another detector's business
    assert AsksNothingNew().detect(EvolutionCase("Sort a list.", "What is the answer to this question?")) is None
