"""A run as one self-contained HTML page: progress chart, trials, failures, analyses, diff, usage.

The report reads the run's Optuna study, not ``result.json``, so it also shows a run that
is still going or was killed. Every text that came from an LM is escaped; the page holds
no scripts and loads nothing (its Content-Security-Policy forbids both).
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import optuna

from autoevol_dspy.data.evolutions import EvolvedDataset, read_evolutions
from autoevol_dspy.errors import AutoEvolError
from autoevol_dspy.files import atomic_write_text
from autoevol_dspy.report.evolved import evolved_section
from autoevol_dspy.report.plot import (
    COLORS,
    PlotPoint,
    failure_rate_svg,
    format_rate,
    holdout_svg,
)
from autoevol_dspy.search.holdout import HoldoutComparison
from autoevol_dspy.search.records import RunResult, RunSummary, StepOutcome, StepPlan, TrialRecord, by_source
from autoevol_dspy.search.tracking import RunTracker
from autoevol_dspy.tasks.base import CaseResult

__all__ = ["RunView", "load_run", "render_report", "write_report"]

logger = logging.getLogger(__name__)

_SECRET_KEY = re.compile(r"key|secret|token|password|auth", re.IGNORECASE)


# Reading a run ------------------------------------------------------------------------------------


@dataclass
class RunView:
    """Everything the report shows: the run's summary read from its study, its settings, and ``result.json``
    when it describes the same run. ``cli_record`` is the command line's ``run.json`` (its settings are shown)."""

    study_name: str
    config: dict[str, Any]
    summary: RunSummary
    result: RunResult | None = None
    created: str | None = None
    cli_record: dict[str, Any] = field(default_factory=dict)
    evolved: list[EvolvedDataset] = field(default_factory=list)
    run_dir: Path | None = None
    wall_seconds: float | None = None

    @property
    def trials(self) -> list[TrialRecord]:
        return self.summary.trials

    @property
    def plans(self) -> list[StepPlan]:
        return self.summary.plans

    @property
    def outcomes(self) -> list[StepOutcome]:
        return self.summary.outcomes

    @property
    def baseline(self) -> TrialRecord | None:
        return self.summary.baseline

    @property
    def best(self) -> TrialRecord | None:
        """The incumbent at the end of the last decided step (the run's answer so far)."""
        return self.summary.best

    @property
    def finished(self) -> bool:
        """Whether ``result.json`` describes exactly the trials and steps in the study."""
        result = self.result
        return result is not None and len(result.trials) == len(self.trials) and len(result.steps) == len(self.outcomes)

    @property
    def dev_size(self) -> int | None:
        sizes = [t.dev_size for t in self.trials if t.dev_size]
        return sizes[0] if sizes else self.config.get("dev_size")

    @property
    def status(self) -> str:
        """A one-line account of where the run stands."""
        if self.finished:
            return f"finished: {self.stop_reason_text}"
        if not self.trials:
            return "not started: no trial recorded yet"
        step = self.open_step
        if step is not None:
            plan = next(p for p in self.plans if p.step == step)
            evaluated = sum(1 for c in plan.candidates if self.trial_for(step, c.key) is not None)
            return (
                f"unfinished: step {step} interrupted or running "
                f"({evaluated} of {len(plan.candidates)} candidates evaluated)"
            )
        return f"unfinished: running or stopped after step {max((o.step for o in self.outcomes), default=0)}"

    @property
    def stop_reason_text(self) -> str:
        """Why a finished run stopped, in words that fit what happened (patience without any gain is no plateau)."""
        reason = self.result.stop_reason if self.result is not None else ""
        if reason == "patience" and not any(o.accepted for o in self.outcomes):
            return "no candidate lowered the failure rate (patience)"
        return _STOP_REASONS.get(reason, reason)

    @property
    def open_step(self) -> int | None:
        """The last planned step that has no outcome yet (interrupted, or running now)."""
        done = {o.step for o in self.outcomes}
        steps = [p.step for p in self.plans if p.step not in done]
        return max(steps) if steps else None

    def trial_for(self, step: int, key: str) -> TrialRecord | None:
        """A candidate's trial in a step: the finished one if a resume re-ran a failed evaluation."""
        matches = [t for t in self.trials if t.step == step and t.candidate_key == key]
        return next((t for t in reversed(matches) if t.finished), matches[-1] if matches else None)


_STOP_REASONS = {
    "max_steps": "reached the step limit",
    "patience": "the failure rate stopped decreasing (patience)",
    "budget": "the LM call budget ran out",
}


def _default_storage(run_dir: Path) -> str:
    database = run_dir / "study.db"
    if not database.is_file():
        raise AutoEvolError(f"no study database at {database}: pass the run directory of a run, or its storage")
    return f"sqlite:///{database.as_posix()}"


def _study_name_of(run_dir: Path, storage: str | optuna.storages.BaseStorage) -> str:
    """The run's study: the one its run.json or result.json names, the storage's only one, or the folder's name."""
    for name in ("run.json", "result.json"):
        recorded = (_read_json(run_dir / name) or {}).get("study_name")
        if isinstance(recorded, str) and recorded:
            return recorded
    try:
        names = optuna.get_all_study_names(storage)
    except Exception:  # noqa: BLE001 - an unreadable storage is reported by _load_study, in one line
        names = []
    return names[0] if len(names) == 1 else run_dir.name


def _load_study(storage: str | optuna.storages.BaseStorage, study_name: str) -> optuna.Study:
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        held = ", ".join(names) or "none"
        raise AutoEvolError(f"no study {study_name!r} in the storage (it holds: {held})") from None


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None when it is absent or unreadable (a report never fails on it)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
        return None
    return payload if isinstance(payload, dict) else None


def _read_result(run_dir: Path, study_name: str) -> RunResult | None:
    payload = _read_json(run_dir / "result.json")
    if payload is None or payload.get("study_name") != study_name:
        return None
    try:
        return RunResult.model_validate(payload)
    except ValueError as exc:
        logger.warning("ignoring result.json that does not match this version: %s", exc)
        return None


def load_run(
    run_dir: str | Path, *, storage: str | optuna.storages.BaseStorage | None = None, study_name: str | None = None
) -> RunView:
    """Read a run, finished or not, from its study (default storage: ``RUN_DIR/study.db``)."""
    run_dir = Path(run_dir)
    storage = storage if storage is not None else _default_storage(run_dir)
    study_name = study_name or _study_name_of(run_dir, storage)
    study = _load_study(storage, study_name)
    tracker = RunTracker(study)
    identity = tracker.identity()
    return RunView(
        study_name=study_name,
        config=dict(identity.get("settings") or {}),
        summary=tracker.summary(),
        result=_read_result(run_dir, study_name),
        created=identity.get("created"),
        cli_record=_read_json(run_dir / "run.json") or {},
        evolved=read_evolutions(run_dir),
        run_dir=run_dir,
        wall_seconds=_wall_seconds(study),
    )


def _wall_seconds(study: optuna.Study) -> float | None:
    """From the first trial's start to the last trial's end (pauses between resumes included), or None."""
    starts = [t.datetime_start for t in study.trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in study.trials if t.datetime_complete is not None]
    if not starts or not ends:
        return None
    return max(0.0, (max(ends) - min(starts)).total_seconds())


def _duration(seconds: float) -> str:
    """``2 h 05 min``, ``4 min 12 s`` or ``9.3 s``."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{seconds:.1f} s"


# HTML pieces --------------------------------------------------------------------------------------


def _rate(trial: TrialRecord | None) -> str:
    """A trial's failure rate; a lower bound for a pruned trial; a dash when there is none."""
    if trial is None:
        return "—"
    if trial.status == "complete" and trial.failure_rate is not None:
        return format_rate(trial.failure_rate)
    if trial.status == "pruned" and trial.dev_size:
        return f"≥ {format_rate(trial.failures / trial.dev_size)}"
    return "—"


def _rate_detail(trial: TrialRecord) -> str:
    if trial.status == "failed":
        return f"failed after {trial.evaluated} of {trial.dev_size} cases"
    if trial.status == "pruned":
        return f"{trial.failures:g} failures after {trial.evaluated} of {trial.dev_size} cases: it could not win any more"
    return f"{trial.failures:g} of {trial.dev_size} cases failed"


def _table(
    headers: list[str], rows: list[list[str]], *, classes: list[str] | None = None,
    numeric: set[int] = frozenset(), compact: bool = False,
) -> str:
    """An HTML table from already escaped cells; ``numeric`` column indexes are right-aligned."""
    head = "".join(f'<th class="num">{h}</th>' if i in numeric else f"<th>{h}</th>" for i, h in enumerate(headers))
    body = []
    for index, row in enumerate(rows):
        css = f' class="{classes[index]}"' if classes and classes[index] else ""
        cells = "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f"<tr{css}>{cells}</tr>")
    css = ' class="compact"' if compact else ""
    return f'<table{css}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _badge(status: str) -> str:
    return f'<span class="badge {escape(status)}">{escape(status)}</span>'


def _categories_inline(counts: dict[str, int]) -> str:
    items = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    cells = [f"{escape(name)}&nbsp;<b>{count}</b>" for name, count in items]
    return "<br>".join(cells) or '<span class="muted">none</span>'


def _section(anchor: str, title: str, body: str, note: str = "") -> str:
    hint = f'<p class="muted">{note}</p>' if note else ""
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>{hint}{body}</section>'


# Header -------------------------------------------------------------------------------------------


def _tile(label: str, value: str, sub: str = "", *, wide: bool = False, text: bool = False) -> str:
    """A header tile; ``text`` values (a task's name) wrap instead of being cut at the tile's edge."""
    small = f'<div class="sub">{sub}</div>' if sub else ""
    css = "tile wide" if wide else "tile"
    value_css = "value text" if text else "value"
    return (f'<div class="{css}"><div class="label">{escape(label)}</div><div class="{value_css}">{value}</div>'
            f"{small}</div>")


def _task_name(settings: dict[str, Any]) -> str:
    """What the run optimized, in words, from its settings."""
    task = settings.get("task")
    if not isinstance(task, dict):
        return str(task or "?")
    names = {"EvolutionTask": "instruction evolution", "ProgramTask": "program"}
    name = names.get(str(task.get("type")), str(task.get("type", "?")))
    return f"{name} (metric {task['metric']})" if task.get("metric") else name


def _holdout_tile(check: HoldoutComparison | None) -> str:
    if check is None:
        return _tile("Held-out", "—", "not measured yet")
    value = f"{format_rate(check.initial.failure_rate)} → {format_rate(check.best.failure_rate)}"
    return _tile("Held-out: initial → best", value, escape(f"{check.verdict}, {check.size} cases"), wide=True)


def _header(view: RunView, nav: str) -> str:
    baseline, best, usage = view.baseline, view.best, view.summary.usage
    change = ""
    if baseline is not None and best is not None and baseline.failure_rate and best.failure_rate is not None:
        drop = (baseline.failure_rate - best.failure_rate) / baseline.failure_rate
        change = f"{drop * 100:.0f}% fewer failures" if drop > 0 else "no improvement yet"
    best_value = f"trial {best.number}" if best is not None else "—"
    best_sub = "" if best is None else ("initial instructions" if best.step == 0 else f"from step {best.step}")
    tiles = [
        _tile("Task", escape(_task_name(view.config)), text=True),
        _tile("Dev size", escape(str(view.dev_size if view.dev_size is not None else "?"))),
        _tile("Dev failure rate: initial → best", f"{_rate(baseline)} → {_rate(best)}", escape(change), wide=True),
        _holdout_tile(view.summary.holdout),
        _tile("Best", escape(best_value), escape(best_sub)),
        _tile("LM calls", f"{usage.calls:,}", f"{usage.tokens:,} tokens" + (
            f"; {view.result.cached_calls:,} more answered from DSPy's cache"
            if view.finished and view.result.cached_calls else "")),
        _tile("Trials", str(len(view.trials)), f"{len(view.outcomes)} step(s) finished"),
    ]
    if view.wall_seconds is not None:
        tiles.append(_tile("Run time", escape(_duration(view.wall_seconds)), "first trial to last, pauses included"))
    state = "finished" if view.finished else "unfinished"
    created = f" · created {escape(view.created)}" if view.created else ""
    return (
        f"<header><h1>Auto Evol-Instruct run <code>{escape(view.study_name)}</code></h1>"
        f'<p class="status {state}">{escape(view.status)}</p>'
        f'<p class="muted">report written {datetime.now().isoformat(timespec="seconds")}{created}</p>'
        f'<div class="tiles">{"".join(tiles)}</div>{_next_command(view)}{nav}</header>'
    )


def _next_command(view: RunView) -> str:
    """What to run next with a finished method: evolve the whole dataset with it (instruction evolution only)."""
    task = view.config.get("task")
    if not view.finished or not isinstance(task, dict) or task.get("type") != "EvolutionTask":
        return ""
    seeds = view.cli_record.get("seeds") or "SEEDS"
    run_dir = str(view.run_dir) if view.run_dir is not None else "RUN_DIR"
    command = f"autoevol evolve {_shell_word(seeds)} --method {_shell_word(run_dir)} --out train.parquet --format sft"
    return f'<p class="next">Next: evolve the whole dataset with the best method: <code>{escape(command)}</code></p>'


def _shell_word(text: str) -> str:
    """``text`` as one shell word (quoted only when it needs to be)."""
    import shlex

    return shlex.quote(text)


# Chart --------------------------------------------------------------------------------------------


def _incumbent_series(view: RunView) -> list[tuple[int, float]]:
    return list(zip([0, *(o.step for o in view.outcomes)], view.summary.failure_rate_by_step))


def _plot_point(trial: TrialRecord) -> PlotPoint:
    value = None
    if trial.status == "complete":
        value = trial.failure_rate
    elif trial.status == "pruned" and trial.dev_size:
        value = trial.failures / trial.dev_size
    label = f"trial {trial.number} ({trial.kind}, step {trial.step}): {trial.status}, {_rate(trial)}"
    if trial.error:
        label += f" - {trial.error}"
    return PlotPoint(step=trial.step, value=value, status=trial.status, label=label, tag=f"#{trial.number}")


def _chart(view: RunView) -> str:
    points = [_plot_point(t) for t in view.trials if t.kind != "baseline"]
    svg = failure_rate_svg(_incumbent_series(view), points, pending_step=view.open_step)
    note = (
        "The line is the incumbent (the best instructions so far) after each step; each point is one candidate "
        "evaluated on the same dev set, labelled with its trial number. Hover a point for details."
    )
    return _section("progress", "Failure rate per step", f'<div class="chart">{svg}</div>', note)


# Trials -------------------------------------------------------------------------------------------


def _trial_row(trial: TrialRecord) -> list[str]:
    rate = f'<span title="{escape(_rate_detail(trial))}">{escape(_rate(trial))}</span>'
    return [
        str(trial.number),
        str(trial.step),
        escape(trial.kind),
        _badge(trial.status),
        rate,
        f"{trial.failures:g}/{trial.evaluated}",
        _categories_inline(trial.failures_by_category),
        f"{trial.usage.calls:,}",
        f"{trial.seconds:.1f}",
        "—" if trial.parent_trial is None else str(trial.parent_trial),
        escape(trial.error or ""),
    ]


def _trials(view: RunView) -> str:
    if not view.trials:
        return _section("trials", "Trials", '<p class="muted">No trial has been recorded yet.</p>')
    best = view.best
    classes = ["best" if best is not None and t.number == best.number else "" for t in view.trials]
    headers = ["#", "step", "kind", "status", "failure rate", "failed / run", "failures by category",
               "LM calls", "seconds", "parent", "error"]
    table = _table(headers, [_trial_row(t) for t in view.trials], classes=classes, numeric={0, 1, 4, 5, 7, 8, 9})
    note = ("A pruned candidate stopped early once it could no longer beat the best; its rate is a lower bound. "
            "The best trial is highlighted.")
    return _section("trials", "Trials", f'<div class="scroll">{table}</div>', note)


# Failure categories -------------------------------------------------------------------------------


def _sources(view: RunView) -> str:
    """Where the candidates came from: per proposal source, drafts, refusals, candidates, acceptances, dev gain."""
    rows = by_source(view.plans, view.trials, view.outcomes)
    if not rows:
        return _section("sources", "Proposals by source", '<p class="muted">no step has proposed anything yet</p>')
    cells = [[escape(r.source), str(r.drafted), str(r.refused), str(r.candidates), str(r.accepted),
              "-" if r.mean_dev_gain is None else f"{100 * r.mean_dev_gain:+.1f}"] for r in rows]
    table = _table(["source", "drafted", "refused by the guard", "candidates", "accepted", "mean dev gain, points"],
                   cells, numeric={1, 2, 3, 4, 5})
    return _section("sources", "Proposals by source", table,
                    "Each step deals its samples to the proposal sources in turn; the gain is the parent's dev "
                    "failure rate minus the candidate's, over completed candidates.")


def _bar(count: int, total: int, css: str) -> str:
    width = 0 if not total else 100 * count / total
    return f'<div class="bar"><span class="{css}" style="width:{width:.1f}%"></span><b>{count}</b></div>'


def _categories(view: RunView) -> str:
    baseline, best = view.baseline, view.best
    if baseline is None:
        return _section("categories", "Failures by category", '<p class="muted">No baseline yet.</p>')
    before, after = baseline.failures_by_category, best.failures_by_category if best else {}
    names = sorted(set(before) | set(after), key=lambda name: (-before.get(name, 0), -after.get(name, 0), name))
    total = max([*before.values(), *after.values(), 1])
    rows = [[escape(n), _bar(before.get(n, 0), total, "before"), _bar(after.get(n, 0), total, "after"),
             f"{after.get(n, 0) - before.get(n, 0):+d}"] for n in names]
    rows.append(["<b>all failures</b>", f"<b>{baseline.failures:g}</b>", f"<b>{best.failures:g}</b>",
                 f"<b>{best.failures - baseline.failures:+g}</b>"])
    headers = ["category", f"initial (trial {baseline.number})", f"best (trial {best.number})", "change"]
    return _section("categories", "Failures by category", _table(headers, rows, numeric={3}),
                    f"Counts over the {view.dev_size} dev cases.")


# Optimizer analyses -------------------------------------------------------------------------------


def _outcome_line(view: RunView, plan: StepPlan) -> str:
    outcome = next((o for o in view.outcomes if o.step == plan.step), None)
    if outcome is None:
        return '<p class="outcome open">Step not finished: no decision recorded.</p>'
    cut = (" The run stopped inside this step: its finished candidates decided it, and a rerun with a higher "
           "limit finishes the step." if outcome.cut_short else "")
    if outcome.accepted:
        return (f'<p class="outcome accepted">Accepted trial {outcome.incumbent_after}: the incumbent failure rate '
                f"is now {format_rate(outcome.incumbent_failure_rate)}.{cut}</p>")
    return (f'<p class="outcome kept">No candidate beat the incumbent: trial {outcome.incumbent_after} '
            f"stays, at {format_rate(outcome.incumbent_failure_rate)}.{cut}</p>")


def _candidate(view: RunView, plan: StepPlan, index: int) -> str:
    candidate = plan.candidates[index]
    trial = view.trial_for(plan.step, candidate.key)
    state = (f"trial {trial.number} · {_badge(trial.status)} {escape(_rate(trial))}" if trial
             else '<span class="muted">not evaluated</span>')
    samples = ", ".join(str(s) for s in candidate.samples)
    incumbent = next((t for t in view.trials if t.number == plan.incumbent_trial), None)
    before = incumbent.instructions.get(plan.predictor, "") if incumbent else ""
    proposed = candidate.instructions.get(plan.predictor, "")
    return (
        f'<div class="candidate"><div class="cand-head">Candidate {index + 1} · '
        f'{"samples" if len(candidate.samples) > 1 else "sample"} {escape(samples)} · {state}</div>'
        f'<div class="label">Analysis (feedback)</div><div class="feedback">{escape(candidate.feedback)}</div>'
        f"<details><summary>Proposed instructions for <code>{escape(plan.predictor)}</code>, "
        f"compared with the incumbent's</summary>{_diff_block(before, proposed)}</details></div>"
    )


def _step(view: RunView, plan: StepPlan) -> str:
    discarded = ""
    if plan.discarded:
        texts = plan.discarded_texts if len(plan.discarded_texts) == len(plan.discarded) else [""] * len(plan.discarded)
        items = "".join(f"<li>{escape(d)}" + (f'<blockquote class="refused">{escape(t)}</blockquote>' if t else "")
                        + "</li>" for d, t in zip(plan.discarded, texts))
        discarded = f'<div class="label">Discarded samples</div><ul class="discarded">{items}</ul>'
    candidates = "".join(_candidate(view, plan, i) for i in range(len(plan.candidates)))
    outcome = next((o for o in view.outcomes if o.step == plan.step), None)
    took = f" The step took {outcome.seconds:.0f} s." if outcome is not None and outcome.seconds else ""
    counts: dict[str, int] = {}
    for candidate in plan.candidates:
        trial = view.trial_for(plan.step, candidate.key)
        for name, count in (trial.failures_by_category.items() if trial else ()):
            counts[name] = counts.get(name, 0) + count
    categories = (f'<p class="muted">Failures of this step\'s candidates by category: '
                  f"{_categories_inline(counts)}</p>" if counts else "")
    return (
        f'<article class="step"><h3>Step {plan.step}: rewrote <code>{escape(plan.predictor)}</code></h3>'
        f"<p>Incumbent trial {plan.incumbent_trial}; on the mini-batch of {plan.trajectory_size} training cases "
        f"{plan.trajectory_failures} failed. {len(plan.candidates)} distinct candidate(s), "
        f"{len(plan.discarded)} discarded; {plan.usage.calls:,} LM calls for the analysis and rewrites.{took}</p>"
        f"{_outcome_line(view, plan)}{categories}{candidates}{discarded}</article>"
    )


def _analyses(view: RunView) -> str:
    if not view.plans:
        return _section("steps", "The optimizer's analyses", '<p class="muted">No step has been planned yet.</p>')
    return _section("steps", "The optimizer's analyses", "".join(_step(view, p) for p in view.plans))


# Instruction diff ---------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.split(r"(\s+)", text)


def _word_diff(old: str, new: str) -> tuple[str, str]:
    """Two lines with the words that differ marked, for a changed line pair."""
    a, b = _words(old), _words(new)
    left, right = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        removed, added = escape("".join(a[i1:i2])), escape("".join(b[j1:j2]))
        if op == "equal":
            left.append(removed)
            right.append(added)
            continue
        if removed:
            left.append(f'<span class="wd">{removed}</span>')
        if added:
            right.append(f'<span class="wi">{added}</span>')
    return "".join(left), "".join(right)


def _diff_line(css: str, sign: str, html_text: str) -> str:
    return f'<div class="dl {css}"><span class="sign">{sign}</span>{html_text or "&nbsp;"}</div>'


def _diff_block(old: str, new: str) -> str:
    """A line diff of two instruction texts; replaced lines also show which words changed."""
    a, b = old.splitlines() or [""], new.splitlines() or [""]
    lines = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            lines += [_diff_line("same", " ", escape(line)) for line in a[i1:i2]]
            continue
        pairs = min(i2 - i1, j2 - j1) if op == "replace" else 0
        marked = [_word_diff(a[i1 + k], b[j1 + k]) for k in range(pairs)]
        lines += [_diff_line("del", "−", left) for left, _ in marked]
        lines += [_diff_line("del", "−", escape(line)) for line in a[i1 + pairs:i2]]
        lines += [_diff_line("ins", "+", right) for _, right in marked]
        lines += [_diff_line("ins", "+", escape(line)) for line in b[j1 + pairs:j2]]
    return f'<div class="diff">{"".join(lines)}</div>'


def _diffs(view: RunView) -> str:
    baseline, best = view.baseline, view.best
    if baseline is None or best is None:
        return _section("diff", "Instructions: initial → best", '<p class="muted">No baseline yet.</p>')
    parts = []
    for name, old in baseline.instructions.items():
        new = best.instructions.get(name, "")
        if old == new:
            parts.append(f'<h3><code>{escape(name)}</code></h3><p class="muted">unchanged</p>')
        else:
            parts.append(f"<h3><code>{escape(name)}</code></h3>{_diff_block(old, new)}")
    note = f"Removed text in red, added text in green (trial {baseline.number} → trial {best.number})."
    return _section("diff", "Instructions: initial → best", "".join(parts), note)


# Usage and settings -------------------------------------------------------------------------------


def _holdout(view: RunView) -> str:
    """The held-out check: both rates with 95% intervals beside their dev rates, the test and its verdict."""
    check = view.summary.holdout
    if check is None:
        size = view.result.holdout_size if view.result is not None else 0
        note = ("This run kept no held-out cases (holdout=0): its gain is not confirmed on unseen data."
                if view.finished and not size else "The held-out check runs when the search ends.")
        return _section("holdout", "Held-out check", f'<p class="muted">{note}</p>')
    baseline, best = view.baseline, view.best
    bars = [("initial", check.initial.failure_rate, check.initial.interval)]
    dev = [baseline.failure_rate if baseline else None]
    if check.verdict != "unchanged":
        bars.append(("best", check.best.failure_rate, check.best.interval))
        dev.append(best.failure_rate if best else None)
    rows = [[escape(label), format_rate(rate), f"{format_rate(low)} – {format_rate(high)}",
             format_rate(d) if d is not None else "—"] for (label, rate, (low, high)), d in zip(bars, dev)]
    table = _table(["instructions", "held-out failure rate", "95% interval", "dev failure rate"], rows,
                   numeric={1, 3}, compact=True)
    css = {"confirmed": "accepted", "unchanged": "kept"}.get(check.verdict, "open")
    body = (f'<div class="chart">{holdout_svg(bars, dev=dev)}</div>{table}'
            f'<p class="outcome {css}">{escape(check.describe())}</p>')
    return _section("holdout", "Held-out check", body, f"{check.size} cases the search never saw; the hollow "
                    "marker is the dev-set rate the instructions were selected on, which flatters the winner.")


def _case_lines(case: CaseResult) -> list[str]:
    """One case as labelled lines, as its task shows it, then the verdict."""
    lines = [f"<dt>{escape(label)}</dt><dd>{escape(text)}</dd>" for label, text in case.shown()]
    verdict = (f"{escape(case.failure.category)}: {escape(case.failure.reason)}" if case.failure else "passed")
    lines.append(f"<dt>verdict</dt><dd class=\"{'bad' if case.failure else 'good'}\">{verdict}</dd>")
    return lines


def _evidence(view: RunView) -> str:
    """A few dev cases of the initial and the best instructions, as they ran."""
    trials = [t for t in (view.baseline, view.best) if t is not None]
    if trials and trials[0].number == trials[-1].number:
        trials = trials[:1]
    blocks = []
    for trial in trials:
        title = "Initial instructions" if trial.kind == "baseline" else f"Best instructions (trial {trial.number})"
        cases = "".join(f'<dl class="case">{"".join(_case_lines(c))}</dl>' for c in trial.examples)
        blocks.append(f"<h3>{title}</h3>{cases or '<p class=muted>no cases recorded</p>'}")
    return _section("evidence", "Example cases", "".join(blocks),
                    "A few failed and passed dev cases of each, recorded with the trial.")


def _usage(view: RunView) -> str:
    usage = view.summary.usage
    roles = sorted(usage.by_role.items(), key=lambda item: -item[1].calls)
    rows = [[escape(role), f"{u.calls:,}", f"{u.input_tokens:,}", f"{u.output_tokens:,}"] for role, u in roles]
    inputs = sum(u.input_tokens for u in usage.by_role.values())
    outputs = sum(u.output_tokens for u in usage.by_role.values())
    rows.append(["<b>total</b>", f"<b>{usage.calls:,}</b>", f"<b>{inputs:,}</b>", f"<b>{outputs:,}</b>"])
    table = _table(["role", "LM calls", "input tokens", "output tokens"], rows, numeric={1, 2, 3}, compact=True)
    return _section("usage", "LM calls and tokens by role", table,
                    "Summed over every trial, every step's analysis and rewrites and the held-out check; "
                    "cache hits are free.")


def _without_secrets(value: Any) -> Any:
    """A copy of a JSON value without any entry whose key looks like a credential."""
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def _settings(view: RunView) -> str:
    """The study's settings, and the command line's (from ``run.json``) when present."""
    cli = view.cli_record.get("settings") if isinstance(view.cli_record.get("settings"), dict) else {}
    merged = _without_secrets({**{f"cli.{k}": v for k, v in cli.items()}, **view.config})
    rows = [[escape(k), escape(json.dumps(v, ensure_ascii=False))] for k, v in sorted(merged.items())]
    table = _table(["setting", "value"], rows, compact=True)
    body = f"<details><summary>Settings of this run</summary>{table}</details>"
    return f'<section id="settings">{body}</section>'


# The page -----------------------------------------------------------------------------------------

_CSS = """
:root { --inc: %(incumbent)s; --ok: %(complete)s; --pruned: %(pruned)s; --bad: %(failed)s; }
* { box-sizing: border-box; }
body { margin: 0; background: #f3f4f6; color: #111827; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
header h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 8px; }
h3 { font-size: 15px; margin: 16px 0 6px; }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; background: #eef2ff; padding: 1px 4px; border-radius: 4px; }
section, header { background: white; border-radius: 10px; padding: 18px 22px; margin-bottom: 18px; box-shadow: 0 1px 2px rgba(0,0,0,.06); }
.muted { color: #6b7280; margin: 0 0 10px; }
.status { font-weight: 600; margin: 4px 0; }
.status.finished { color: var(--ok); }
.status.unfinished { color: var(--pruned); }
.tiles { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 12px; margin-top: 12px; }
.tile { background: #f9fafb; border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 12px; }
.tile .label, .label { font-size: 12px; color: #6b7280; text-transform: uppercase; letter-spacing: .04em; }
.tile.wide { grid-column: span 2; }
.tile .value { font-size: 19px; font-weight: 650; margin-top: 2px; white-space: nowrap; }
.tile .value.text { white-space: normal; overflow-wrap: anywhere; font-size: 16px; }
p.next { margin: 10px 0 0; } p.next code { white-space: pre-wrap; overflow-wrap: anywhere; }
blockquote.refused { margin: 2px 0 6px 12px; color: #374151; white-space: pre-wrap; font-size: 13px; }
.tile .sub { font-size: 12px; color: #4b5563; }
.chart svg { display: block; max-width: 100%%; height: auto; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%%; font-size: 13px; }
table.compact { width: auto; min-width: 50%%; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid #e5e7eb; }
th { background: #f9fafb; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.best td { background: #eff6ff; }
tr.best td:first-child { box-shadow: inset 3px 0 var(--inc); }
.badge { display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 12px; font-weight: 600; color: white; }
.badge.complete { background: var(--ok); }
.badge.pruned { background: var(--pruned); }
.badge.failed { background: var(--bad); }
.bar { position: relative; min-width: 160px; height: 20px; background: #f3f4f6; border-radius: 4px; }
.bar span { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 4px; }
.bar span.before { background: #fca5a5; }
.bar span.after { background: #93c5fd; }
.bar b { position: relative; padding-left: 6px; font-size: 12px; }
.step { border-top: 1px solid #e5e7eb; padding-top: 4px; }
.step:first-of-type { border-top: none; }
.outcome { font-weight: 600; }
.outcome.accepted { color: var(--ok); }
.outcome.kept { color: #4b5563; }
.outcome.open { color: var(--pruned); }
.candidate { border-left: 3px solid #e5e7eb; padding: 4px 0 4px 12px; margin: 10px 0; }
.cand-head { font-weight: 600; margin-bottom: 4px; }
.feedback { white-space: pre-wrap; word-break: break-word; background: #f9fafb; border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 10px; margin: 4px 0 8px; }
summary { cursor: pointer; color: #1d4ed8; }
ul.discarded { margin: 4px 0; color: #991b1b; }
.diff { border: 1px solid #e5e7eb; border-radius: 6px; overflow: hidden; font: 12.5px/1.5 ui-monospace, SFMono-Regular, Menlo, monospace; }
.dl { white-space: pre-wrap; word-break: break-word; padding: 1px 10px 1px 28px; text-indent: -18px; }
.dl .sign { display: inline-block; width: 18px; text-indent: 0; color: #6b7280; }
.dl.del { background: #fef2f2; }
.dl.ins { background: #f0fdf4; }
.wd { background: #fecaca; text-decoration: line-through; }
.wi { background: #bbf7d0; }
nav { margin: 8px 0 0; font-size: 13px; }
nav a { margin-right: 14px; color: #1d4ed8; text-decoration: none; }
dl.case { display: grid; grid-template-columns: 90px 1fr; gap: 2px 10px; margin: 8px 0; padding: 8px 10px; background: #f9fafb; border: 1px solid #e5e7eb; border-radius: 6px; }
dl.case dt { color: #6b7280; font-size: 12px; }
dl.case dd { margin: 0; white-space: pre-wrap; word-break: break-word; }
dl.case dd.bad { color: var(--bad); font-weight: 600; }
dl.case dd.good { color: var(--ok); font-weight: 600; }
""" % COLORS

_NAV = [("progress", "Chart"), ("holdout", "Held-out"), ("evidence", "Examples"), ("trials", "Trials"),
        ("sources", "Sources"), ("categories", "Categories"), ("steps", "Analyses"), ("diff", "Diff"), ("usage", "Usage")]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def render_report(view: RunView) -> str:
    """The whole report as one HTML document (inline CSS and SVG, no scripts, nothing loaded)."""
    links = _NAV + ([("evolved", "Data")] if view.evolved else [])
    nav = "<nav>" + "".join(f'<a href="#{a}">{t}</a>' for a, t in links) + "</nav>"
    sections = [_header(view, nav), _chart(view), _holdout(view), _evidence(view), _trials(view),
                _sources(view), _categories(view), _analyses(view), _diffs(view), _usage(view), evolved_section(view.evolved),
                _settings(view)]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>autoevol report: {escape(view.study_name)}</title><style>{_CSS}</style></head>"
        f'<body><main>{"".join(sections)}</main></body></html>\n'
    )


def write_report(
    run_dir: str | Path, *, storage: str | optuna.storages.BaseStorage | None = None, study_name: str | None = None
) -> Path:
    """Write ``RUN_DIR/report.html`` for a run, finished or not, and return its path."""
    run_dir = Path(run_dir)
    view = load_run(run_dir, storage=storage, study_name=study_name)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "report.html"
    atomic_write_text(path, render_report(view))
    logger.debug("wrote %s (%d trials, %d steps)", path, len(view.trials), len(view.plans))
    return path
