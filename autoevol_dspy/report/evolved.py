"""The report's evolved-dataset section: each output made with the run's method, its rounds, failures, hygiene."""

from __future__ import annotations

from html import escape
from typing import Any

from autoevol_dspy.data.evolutions import EvolvedDataset

__all__ = ["evolved_section"]

_REASONS = {"exact_duplicate": "exact duplicate", "near_duplicate": "near duplicate", "contaminated": "benchmark leak"}


def _table(headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    """A compact table of escaped cells (``numeric`` columns right-aligned)."""
    def cell(tag: str, index: int, text: str) -> str:
        return f'<{tag} class="num">{text}</{tag}>' if index in numeric else f"<{tag}>{text}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table class="compact"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _rounds(dataset: EvolvedDataset) -> str:
    rows = [[escape(round_), str(count), str(dataset.passed_by_round.get(round_, 0)),
             str(count - dataset.passed_by_round.get(round_, 0))] for round_, count in dataset.rows_by_round.items()]
    return _table(["round", "rows", "passed", "failed"], rows, {1, 2, 3})


def _removal_detail(example: dict[str, Any]) -> str:
    if example.get("contaminated_by"):
        leak = example["contaminated_by"]
        return f"{leak.get('benchmark')} item {leak.get('item')}: “{leak.get('ngram')}”"
    similarity = f" (similarity {example['similarity']:.2f})" if example.get("similarity") is not None else ""
    return f"repeats row {example.get('duplicate_of')}{similarity}"


def _hygiene(dataset: EvolvedDataset) -> str:
    summary = dataset.hygiene
    if summary is None:
        return '<p class="muted">Not cleaned: no --dedup or --decontaminate when it was written.</p>'
    counts = summary.counts
    rows = [["rows in", str(counts.rows_in)], ["exact duplicates", str(counts.exact_duplicates)],
            ["near duplicates", str(counts.near_duplicates)]]
    rows += [[f"leaks of {escape(name)}", str(count)] for name, count in sorted(counts.contaminated.items())]
    rows.append(["rows out", str(counts.rows_out)])
    examples = [[escape(_REASONS.get(str(e.get("reason")), str(e.get("reason")))), escape(_removal_detail(e)),
                 escape(str(e.get("prompt", "")))] for e in summary.examples]
    shown = ("<h3>Removed, a few examples</h3>" + _table(["why", "detail", "prompt"], examples, set())
             if examples else "")
    return (f"<h3>Hygiene</h3><p class=\"muted\">Every removed row is in {escape(summary.removed_path)}.</p>"
            + _table(["", "rows"], rows, {1}) + shown)


def evolved_section(datasets: list[EvolvedDataset]) -> str:
    """The section (empty when the run's method evolved no dataset yet)."""
    if not datasets:
        return ""
    parts = []
    for dataset in datasets:
        failures = ", ".join(f"{escape(name)} {count}" for name, count in dataset.failures_by_category.items())
        parts.append(
            f"<h3>{escape(dataset.out_path)} <span class=\"muted\">({escape(dataset.format)}, "
            f"{escape(dataset.updated)})</span></h3>"
            f"<p>{dataset.rows} rows in the row store {escape(dataset.store)}"
            + (f"; failures: {failures}" if failures else "; no failures") + "</p>"
            + _rounds(dataset) + _hygiene(dataset))
    return ('<section id="evolved"><h2>Evolved datasets</h2><p class="muted">What <code>autoevol evolve</code> wrote '
            "with this run's method.</p>" + "".join(parts) + "</section>")
