"""Every pattern and check that reads model output, seed text or a judge's reply ends promptly on hostile text.

A pattern that backtracks exponentially hung a run for minutes on a small model's loop
("240 files / 12 hours / 240 files / ..."): these tests feed 100 KB of repeated separators,
numbers with units, nested brackets and the like, plus fixed-seed fuzz texts, to every
pattern the package compiles (module and class attributes, and pattern literals written
inline in calls), and to every built-in check. A linear pattern takes milliseconds on these
inputs; a measurement is cut by a timer at ``LIMIT`` seconds, so a regression fails here
instead of hanging the suite.
"""

from __future__ import annotations

import ast
import contextvars
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dspy
import pytest
import regex

import autoevol_dspy
from autoevol_dspy.evolution.detectors import AnsweredInstead, EvolutionCase, Failure, default_detectors
from autoevol_dspy.evolution.parsing import final_instruction, parse_rewritten_instruction
from autoevol_dspy.evolution.unit import Evolver
from autoevol_dspy.prompt.metrics import RegexMatch
from autoevol_dspy.redact import redact_text, scrub
from autoevol_dspy.search.strategies.proposal_guard import ProposalContext, ProposalGuard, Rejection
from autoevol_dspy.testing.adversarial import LOOPING_REPLY, adversarial_texts, fuzz_texts, package_patterns
from autoevol_dspy.text import MAX_CHECKED_CHARS, bounded
from autoevol_dspy.timelimit import TimeLimitExceeded, call_with_time_limit

LIMIT = 2.0  # seconds; the linear patterns take well under 0.1 s on 100 KB


class _Overrun(Exception):
    pass


def _cut_at(seconds: float, function: Callable[[], object]) -> float:
    """Seconds ``function`` took, or infinity when a timer had to cut it."""

    def on_alarm(signum, frame):
        raise _Overrun

    previous = signal.signal(signal.SIGALRM, on_alarm)
    start = time.perf_counter()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        function()
        return time.perf_counter() - start
    except _Overrun:
        return float("inf")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _hostile_texts() -> dict[str, str]:
    texts = adversarial_texts(100_000)
    texts.update(fuzz_texts(seed=23, count=60))
    return texts


def _inline_patterns() -> dict[str, regex.Pattern]:
    """Pattern literals passed straight to ``re.search(...)``, ``regex.sub(...)`` and the like in the package."""
    found = {}
    root = Path(autoevol_dspy.__file__).parent
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("re", "regex")
                    and node.func.attr in ("search", "match", "fullmatch", "findall", "finditer", "sub", "split")
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                name = f"{path.relative_to(root.parent)}:{node.lineno}"
                found[name] = regex.compile(node.args[0].value)
    return found


def test_the_hostile_inputs_reach_every_pattern_the_package_compiles():
    patterns = package_patterns()
    assert len(patterns) >= 40  # the detectors, the guard, the parser, redaction, ...
    assert "autoevol_dspy.evolution.detectors.answered._EQUATION" in patterns
    assert any(name.startswith("autoevol_dspy.evolution.parsing._FINAL_PATTERNS[") for name in patterns)
    assert len(_inline_patterns()) >= 3


def test_every_pattern_is_linear_on_hostile_text():
    patterns = {**package_patterns(), **_inline_patterns()}
    slow = []
    for label, text in _hostile_texts().items():
        for name, pattern in patterns.items():
            def run(pattern=pattern, text=text):
                for _ in pattern.finditer(text):
                    pass
                pattern.fullmatch(text)
                pattern.split(text)
            if (took := _cut_at(LIMIT, run)) > LIMIT:
                slow.append(f"{name} on {label}")
    assert not slow, f"patterns that ran past {LIMIT} s: {slow}"


def test_the_reply_that_hung_a_run_is_judged_at_once():
    parent = "A server stores 240 files every 12 hours. How many files does it store in 4 days?"
    case = EvolutionCase(instruction=parent, evolved=LOOPING_REPLY + " / 240 files" * 2_000)
    verdicts: list = []
    assert _cut_at(LIMIT, lambda: verdicts.append(AnsweredInstead().detect(case))) < LIMIT
    assert verdicts[0] is None or isinstance(verdicts[0], Failure)
    # the equation pattern still finds real arithmetic with its result, loops or not
    worked = EvolutionCase(instruction=parent, evolved="Since 2 * 36 = 72, the server holds 72 files.")
    assert AnsweredInstead().detect(worked).category == "answered_instead"


@pytest.mark.parametrize("check", ["detectors", "guard", "parser", "redaction"])
def test_every_built_in_check_ends_promptly_on_hostile_text(check):
    guard = ProposalGuard(check_time_limit=None)
    runs: dict[str, Callable[[str], object]] = {
        "detectors": lambda text: [d.detect(EvolutionCase(instruction=text, evolved=text[::-1], response=text))
                                   for d in default_detectors()],
        "guard": lambda text: guard.check_all(ProposalContext(text=text, incumbent=text[: len(text) // 2],
                                                               trajectory=text, cases=(text,), feedback=text,
                                                               output_fields=("answer",))),
        "parser": lambda text: (parse_rewritten_instruction(text, seed=text[:5_000]), final_instruction(text)),
        "redaction": lambda text: (redact_text(text), scrub(text)),
    }
    slow = [label for label, text in _hostile_texts().items()
            if _cut_at(LIMIT * 2, lambda text=text: runs[check](text)) > LIMIT * 2]
    assert not slow, f"the {check} ran past {LIMIT * 2} s on {slow}"


def test_checks_read_a_bounded_text_with_both_ends():
    text = "Begin here. " + "x " * 50_000 + "End with a question?"
    kept = bounded(text)
    assert len(kept) <= MAX_CHECKED_CHARS + 3
    assert kept.startswith("Begin here.") and kept.endswith("End with a question?")
    assert bounded("short") == "short"
    case = EvolutionCase(instruction=text, evolved=text, response=text)
    assert len(case.instruction) <= MAX_CHECKED_CHARS + 3 and case.response.endswith("?")
    assert len(ProposalContext(text=text, incumbent="Answer.").text) <= MAX_CHECKED_CHARS + 3


def test_parser_and_redaction_keep_their_meaning():
    reply = "Step 1: list methods\nStep 2: plan\n#Finally Rewritten Instruction#: Add a deadline of 3 days."
    assert parse_rewritten_instruction(reply) == "Add a deadline of 3 days."
    assert parse_rewritten_instruction("**Step 3** Rewrite: Make it harder ##") == "Make it harder"
    assert final_instruction("###  Evolved instruction  \n  'Count the cats.' ") == "Count the cats."
    assert redact_text("failed: https://bob:s3cret@db.example:5432/x") == "failed: https://***@db.example:5432/x"
    assert "s3cret" not in redact_text("a postgresql+psycopg://u:s3cret@h/db and ftp://x@y")


class _Stuck:
    """A detector that never answers until released (a user's own detector, or an LM judge that hangs)."""

    name = "stuck"
    needs_response = False

    def __init__(self) -> None:
        self.release = threading.Event()

    def detect(self, case: EvolutionCase) -> Failure | None:
        self.release.wait(30)
        return None


def test_a_detector_that_overruns_fails_its_case_and_never_holds_the_run():
    stuck = _Stuck()
    evolver = Evolver(detectors=[stuck], respond=False, check_time_limit=0.2)
    try:
        failure = evolver._detect(EvolutionCase(instruction="Count.", evolved="Count twice."), after_response=False)
    finally:
        stuck.release.set()
    assert failure.category == "check_timeout"
    assert failure.detector == "stuck" and "0.2 s" in failure.reason


class _StuckCheck:
    def __init__(self) -> None:
        self.release = threading.Event()

    def check(self, proposal: ProposalContext) -> Rejection | None:
        self.release.wait(30)
        return None

    def describe(self) -> dict:
        return {"type": "StuckCheck"}


def test_a_guard_check_that_overruns_refuses_the_proposal():
    stuck = _StuckCheck()
    guard = ProposalGuard(checks=[stuck], check_time_limit=0.2)
    try:
        rejection = guard.check(ProposalContext(text="Answer with a number only.", incumbent="Answer."))
    finally:
        stuck.release.set()
    assert rejection.category == "check_timeout" and rejection.check == "_StuckCheck"


def test_the_time_limit_carries_the_context_and_raises_the_checks_own_errors():
    role: contextvars.ContextVar[str] = contextvars.ContextVar("role", default="none")
    role.set("judge")
    assert call_with_time_limit(role.get, seconds=5) == "judge"
    with dspy.context(adapter=dspy.JSONAdapter()):
        assert isinstance(call_with_time_limit(lambda: dspy.settings.adapter, seconds=5), dspy.JSONAdapter)

    def outage():
        raise ConnectionError("the judge's server is down")

    with pytest.raises(ConnectionError):  # an outage is not a verdict: it propagates
        call_with_time_limit(outage, seconds=5)
    with pytest.raises(TimeLimitExceeded):
        call_with_time_limit(threading.Event().wait, 1, seconds=0.05)


def test_a_users_regex_metric_that_backtracks_fails_the_case_with_its_reason():
    metric = RegexMatch(r"^(a|aa)+$", output_field="answer", timeout=0.2)
    verdict = metric(dspy.Example(question="q"), dspy.Prediction(answer="a" * 60 + "b"))
    assert verdict.score == 0.0 and "ran past 0.2 s" in verdict.feedback
    assert metric(dspy.Example(question="q"), dspy.Prediction(answer="aaaa")).score == 1.0
    assert metric(dspy.Example(question="q"), dspy.Prediction(answer="ab")).score == 0.0
