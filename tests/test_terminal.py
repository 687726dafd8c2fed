"""What a person sees on stderr (issue 20): log lines that never cut through a progress bar, no
``datasets`` bars, DSPy's truncation warnings collapsed, and a line before every long wait."""

from __future__ import annotations

import logging
import sys

import datasets
from tqdm import tqdm

from autoevol_dspy.data.export import export_evolved
from autoevol_dspy.evolution.method import EvolInstruct
from autoevol_dspy.logs import TRUNCATION_LOGGER, BarSafeStream, TruncationNotes, configure_command_logging
from autoevol_dspy.teleprompter import AutoEvolInstruct
from world import World, method, seeds

SCRIPT = {60: [method(50), method(20)]}


def test_a_log_line_written_while_a_bar_is_drawn_starts_on_a_line_of_its_own(capsys):
    log = logging.getLogger("autoevol_dspy.test_terminal")
    handler = logging.StreamHandler(BarSafeStream())
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    log.addHandler(handler)
    log.propagate = False
    try:
        bar = tqdm(total=10, file=sys.stderr, desc="cases", ascii=True)
        bar.update(3)
        log.warning("a line between two bar updates")
        bar.update(3)
        bar.close()
    finally:
        log.removeHandler(handler)
    err = capsys.readouterr().err
    at = err.index("LOG a line between")
    assert err[at - 1] in "\r\n"  # the bar was cleared first: the line does not share the bar's line
    assert err[at:].split("\n", 1)[0] == "LOG a line between two bar updates"
    assert "cases:" in err[at:]  # and the bar is drawn again after it


def test_the_command_makes_dspys_own_log_handler_bar_safe():
    configure_command_logging(debug=False)
    streams = [h.stream for h in logging.getLogger("dspy").handlers if isinstance(h, logging.StreamHandler)]
    assert streams and all(isinstance(stream, BarSafeStream) for stream in streams)


def test_dspys_truncation_warnings_are_one_explained_line_and_a_count(caplog):
    notes = TruncationNotes()
    log = logging.getLogger(TRUNCATION_LOGGER)  # DSPy's loggers do not propagate: listen on it directly
    earlier, log.filters = log.filters, [notes]  # a command run earlier in this process installed its own
    log.addHandler(caplog.handler)
    try:
        for _ in range(27):
            log.warning("LM response was truncated; increase max_tokens or inspect history.")
        log.warning("something else DSPy says")
    finally:
        log.filters = earlier
        log.removeHandler(caplog.handler)
    shown = [r.getMessage() for r in caplog.records]
    assert len(shown) == 2 and "raise --max-tokens" in shown[0] and shown[1] == "something else DSPy says"
    assert notes.summary().startswith("27 LM replies were truncated")
    assert TruncationNotes().summary() is None


def test_exporting_draws_no_datasets_bar_and_leaves_the_callers_setting(tmp_path, capfd):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(
        '{"seed_id": "s%d", "round": 1, "seed_instruction": "Do %d.", "context": null, "parent_instruction": '
        '"Do %d.", "evolved_instruction": "Do %d twice.", "response": "Done.", "failure": null, '
        '"failure_reason": null, "method_id": "m"}\n' % (i, i, i, i) for i in range(5)), encoding="utf-8")
    datasets.enable_progress_bars()
    capfd.readouterr()
    export_evolved(rows, tmp_path / "train.parquet", format="sft")
    export_evolved(rows, tmp_path / "lineage.parquet", format="lineage")
    err = capfd.readouterr().err
    assert "Casting" not in err and "Creating parquet" not in err and "%|" not in err
    assert not datasets.are_progress_bars_disabled()  # the caller's setting, back as it was


def test_the_log_says_what_happens_before_each_long_wait(caplog):
    world = World(dict(SCRIPT))
    opt = AutoEvolInstruct(lm=world.lm, optimizer_lm=world.lm, num_candidates=2, batch_sampler=4, dev_size=8,
                           max_steps=1, num_threads=1, holdout=5, progress=False)
    with caplog.at_level(logging.INFO, logger="autoevol_dspy"):
        opt.compile(EvolInstruct(method(60)), trainset=seeds(40))
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("autoevol_dspy.search")]
    baseline = next(i for i, line in enumerate(lines) if line.startswith("initial instructions: evaluating on 8"))
    first_trial = next(i for i, line in enumerate(lines) if line.startswith("trial "))
    step = next(i for i, line in enumerate(lines) if line.startswith("step 1: running the incumbent on 4"))
    assert baseline < first_trial < step
    assert any(line.startswith("held-out check: initial instructions: evaluating on 5") for line in lines)
