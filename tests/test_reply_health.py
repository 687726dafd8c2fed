"""The rule that tells a server answering garbage from an LM whose replies fail now and then (lm/health.py).

Both sides: an LM whose replies never parse is stopped after a few of them, one that turns to
garbage in the middle of a run soon after; an LM that fails to parse a reply now and then (a
small model's bad day, an adapter re-ask that also failed) is never stopped and its failures
stay results. In-process, no LM: replies are noted as parsed or not, as the watched calls do.
"""

from __future__ import annotations

import random

import dspy
import pytest
from dspy.utils.exceptions import AdapterParseError

from autoevol_dspy.lm.errors import is_lm_error
from autoevol_dspy.lm.health import (
    BROKEN_MIN,
    CONFIRM,
    STREAK,
    WINDOW,
    LMGarbageError,
    ReplyHealth,
    unparsed_replies,
    watched_reply,
    watching_replies,
)


class _LM:
    model = "openai/broken"
    callbacks: list = []


def _replay(health: ReplyHealth, lm: object, outcomes: list[bool]) -> int | None:
    """Note the outcomes in order; the position of the one that raised, or None."""
    for position, parsed in enumerate(outcomes):
        try:
            health.note(lm, parsed=parsed)
        except LMGarbageError:
            return position
    return None


def test_an_lm_that_never_parses_is_stopped_at_its_eighth_reply_naming_it():
    health = ReplyHealth()
    lm = _LM()
    with pytest.raises(LMGarbageError, match=r"the LM openai/broken answers with text that does not parse \(8 of its "
                                             r"last 8 replies") as raised:
        for _ in range(BROKEN_MIN):
            health.note(lm, parsed=False)
    assert is_lm_error(raised.value)  # handled as an outage: the run stops, nothing is saved from it


def test_an_lm_that_turns_to_garbage_is_stopped_once_most_of_its_window_is_garbage():
    health = ReplyHealth()
    stopped_at = _replay(health, _LM(), [True] * 100 + [False] * 100)
    assert stopped_at == 100 + round(WINDOW * 0.8) - 1  # 16 of the last 20 replies


@pytest.mark.parametrize("share", [0.05, 0.25, 0.33])
def test_an_lm_that_fails_to_parse_now_and_then_is_never_stopped(share):
    draw = random.Random(7)
    health = ReplyHealth()
    lm = _LM()
    assert _replay(health, lm, [draw.random() >= share for _ in range(5000)]) is None


def test_a_result_with_an_unparsed_reply_waits_until_its_lm_parses_again():
    health = ReplyHealth()
    lm, other = _LM(), _LM()
    health.note(lm, parsed=True)
    with unparsed_replies() as found:
        health.note(lm, parsed=False)
    assert len(found) == 1 and health.doubt() is None  # one in two: not in doubt, but not yet confirmed
    for _ in range(CONFIRM - 1):
        health.note(lm, parsed=True)
        health.note(other, parsed=True)  # another LM's replies confirm nothing about this one
    assert not health.confirmed(found)
    health.note(lm, parsed=True)
    assert health.confirmed(found)


def test_a_streak_of_unparsed_replies_puts_an_lm_in_doubt_without_stopping_it():
    health = ReplyHealth()
    lm = _LM()
    _replay(health, lm, [True] * WINDOW)
    assert _replay(health, lm, [False] * (STREAK - 1)) is None and health.doubt() is None
    assert _replay(health, lm, [False]) is None
    assert "the last 8 in a row" in health.doubt()


def test_a_watched_call_notes_its_reply_and_raises_the_lm_error_once_broken():
    lm = dspy.LM("openai/broken", cache=False)

    def failing_call():
        with watched_reply(lm):
            raise AdapterParseError(adapter_name="JSONAdapter", signature=dspy.Signature("a -> b"),
                                    lm_response="~~ lorem ipsum ~~")

    with watching_replies() as health:
        for _ in range(BROKEN_MIN - 1):
            with pytest.raises(AdapterParseError):
                failing_call()
        with pytest.raises(LMGarbageError):
            failing_call()
    assert health.doubt() is not None
    with pytest.raises(AdapterParseError):  # outside a watched run nothing is noted: the case's own failure
        failing_call()


def test_a_reply_that_did_not_parse_leaves_the_cache_and_is_asked_again(tmp_path, monkeypatch):
    """The rerun against a healed server must not replay the garbage DSPy cached; a reply that parsed stays cached."""
    from autoevol_dspy.testing import scripted_lm

    monkeypatch.setattr(dspy, "cache", dspy.clients.cache.Cache(enable_disk_cache=True, enable_memory_cache=True,
                                                                 disk_cache_dir=str(tmp_path / "cache")))
    garbage = {"on": True}

    def responder(call):
        return "~~ lorem ipsum ]] ## [[ {not: an answer ~~" if garbage["on"] else {"answer": "4"}

    lm, engine = scripted_lm(responder, cache=True)
    predict = dspy.Predict("question -> answer")

    def ask() -> str | None:
        try:
            with dspy.context(lm=lm), watching_replies(), watched_reply():
                return predict(question="2 + 2?").answer
        except AdapterParseError:
            return None

    assert ask() is None
    sent = len(engine.calls)
    garbage["on"] = False  # the server is healed
    assert ask() == "4" and len(engine.calls) > sent  # asked again, not replayed
    sent = len(engine.calls)
    assert ask() == "4" and len(engine.calls) == sent  # a reply that parsed is replayed from the cache
