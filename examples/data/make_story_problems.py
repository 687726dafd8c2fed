"""Write ``story_problems.jsonl``: word problems of a few sentences each, from templates, the same every time.

Written for this project (no benchmark's text). Short one-line problems ("A box holds 6 cards. ...")
leave the embedded 135M model no room to improve: no instruction tried, hand-written ones
included, changed how often it answers with a bare number. On problems of a few sentences it
answers in sentences, as it does on GSM8K, and an instruction about the form does help.

    python examples/data/make_story_problems.py     # rewrites examples/data/story_problems.jsonl
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).parent / "story_problems.jsonl"
COUNT = 160
NAMES = """Amara Bruno Chen Dalia Emeka Farah Goran Hana Ilya Jonas Keiko Lars Mina Nuno Olga Pavel Quinn Rosa
    Samir Tove Umar Vera Wim Xena Yusuf Zofia""".split()

Problem = tuple[str, int]


def bakery(rng: random.Random, name: str) -> Problem:
    trays, per_tray, sold = rng.randint(3, 9), 4 * rng.randint(2, 6), rng.randint(4, 20)
    return (f"{name} runs a small bakery. Every morning {name} bakes {trays} trays of rolls, and each tray holds "
            f"{per_tray} rolls. By noon {sold} rolls have been sold. How many rolls are left at noon?",
            trays * per_tray - sold)


def savings(rng: random.Random, name: str) -> Problem:
    start, weekly, weeks = rng.randint(12, 40), 5 * rng.randint(2, 5), rng.randint(5, 15)
    return (f"{name} is saving for a new bicycle. {name} already has ${start} in a jar. Each week {name} earns "
            f"${weekly} walking dogs and adds it to the jar. After {weeks} weeks, how many dollars are in the jar?",
            start + weekly * weeks)


def school_trip(rng: random.Random, name: str) -> Problem:
    vans, seats = rng.randint(3, 8), 3 * rng.randint(2, 4)
    left = rng.randint(1, vans * seats - 1)
    return (f"A school trip needs {vans} vans. Each van can carry {seats} students, and every seat is taken. On the "
            f"way back, {left} students ride home with their parents instead. How many students ride back in the "
            f"vans?", vans * seats - left)


def garden(rng: random.Random, name: str) -> Problem:
    tomatoes, peppers, fallen = rng.randint(20, 60), rng.randint(10, 30), rng.randint(2, 9)
    return (f"{name} planted tomatoes and peppers in a garden. There are {tomatoes} tomato plants and {peppers} "
            f"pepper plants. A storm knocked over {fallen} of the tomato plants. How many plants are still standing "
            f"in the garden?", tomatoes + peppers - fallen)


def reading(rng: random.Random, name: str) -> Problem:
    weekday, weekend = 5 * rng.randint(2, 6), 2 * rng.randint(3, 8)
    return (f"{name} reads {weekday} pages of a novel on every weekday and {weekend} pages on each day of the "
            f"weekend. How many pages does {name} read in one full week?", 5 * weekday + 2 * weekend)


def orchard(rng: random.Random, name: str) -> Problem:
    rows, per_row = rng.randint(4, 12), 4 * rng.randint(2, 5)
    return (f"A farmer has {rows} rows of apple trees with {per_row} trees in each row. The farmer sells half of the "
            f"trees to a neighbour. How many apple trees does the farmer keep?", rows * per_row // 2)


def driving(rng: random.Random, name: str) -> Problem:
    monday, more, fewer = rng.randint(30, 90), rng.randint(5, 20), rng.randint(5, 20)
    return (f"{name} drove {monday} miles on Monday. On Tuesday {name} drove {more} miles more than on Monday, and on "
            f"Wednesday {fewer} miles fewer than on Monday. How many miles did {name} drive on the three days "
            f"together?", 3 * monday + more - fewer)


def shopping(rng: random.Random, name: str) -> Problem:
    notebooks, price, pens = rng.randint(2, 6), rng.randint(3, 9), rng.randint(2, 5)
    return (f"{name} buys {notebooks} notebooks that cost ${price} each and {pens} pens that cost $2 each. {name} "
            f"pays with a $100 bill. How many dollars of change does {name} get back?",
            100 - notebooks * price - 2 * pens)


TEMPLATES: tuple[Callable[[random.Random, str], Problem], ...] = (
    bakery, savings, school_trip, garden, reading, orchard, driving, shopping)


def problems(count: int = COUNT) -> list[dict[str, str]]:
    """``count`` distinct problems, the templates in turn, numbers and names drawn from one fixed seed (a problem
    drawn twice is drawn again: a copy would stand in both the dev set and the held-out cases)."""
    rng = random.Random("story-problems")
    rows: dict[str, str] = {}
    while len(rows) < count:
        question, answer = TEMPLATES[len(rows) % len(TEMPLATES)](rng, rng.choice(NAMES))
        rows.setdefault(question, str(answer))
    return [{"question": question, "answer": answer} for question, answer in rows.items()]


def main() -> None:
    OUT.write_text("".join(json.dumps(row) + "\n" for row in problems()), encoding="utf-8")
    print(f"wrote {COUNT} problems to {OUT}")


if __name__ == "__main__":
    main()
