"""An inline SVG chart of a run: the incumbent's failure rate per step and every candidate as a point.

Plain SVG written from Python, no scripts and no external resources, so a report stays one
self-contained file. Hovering a point shows its native SVG ``<title>`` tooltip.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from html import escape

__all__ = ["COLORS", "PlotPoint", "failure_rate_svg", "format_rate", "holdout_svg"]

#: Colors of the chart's series; the report's CSS uses the same ones.
COLORS = {
    "incumbent": "#2563eb",
    "complete": "#059669",
    "pruned": "#d97706",
    "failed": "#dc2626",
    "grid": "#e5e7eb",
    "axis": "#6b7280",
    "text": "#374151",
}

_WIDTH, _HEIGHT = 880, 380
_LEFT, _RIGHT, _TOP, _BOTTOM = 72, 16, 24, 84
_FAILED_BAND = 30  # a strip above the plot area for failed trials, which have no failure rate
_MAX_TAGS = 60  # above this many points, trial numbers would clutter the chart: tooltips only


@dataclass(frozen=True)
class PlotPoint:
    """One trial on the chart: ``value`` is its failure rate (a lower bound when pruned, None when failed)."""

    step: int
    value: float | None
    status: str
    label: str
    tag: str = ""


def format_rate(rate: float) -> str:
    """A failure rate as a percentage with one decimal."""
    return f"{rate * 100:.1f}%"


_TICK_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.25)


def _y_scale(values: list[float]) -> tuple[float, float]:
    """The top of the y axis and the tick spacing: round numbers, at most six intervals."""
    top = min(1.0, max(values, default=0.0))
    tick = next((t for t in _TICK_STEPS if top / t <= 6), 0.25)
    ceiling = max(tick, math.ceil(top / tick - 1e-9) * tick)
    return min(1.0, ceiling), tick


class _Frame:
    """Maps steps and failure rates to SVG coordinates."""

    def __init__(self, last_step: int, values: list[float], *, failed_band: bool) -> None:
        self.last_step = max(last_step, 1)
        self.top, self.tick = _y_scale(values)
        self.failed_band = failed_band
        self.x0, self.x1 = _LEFT, _WIDTH - _RIGHT
        self.y0, self.y1 = _HEIGHT - _BOTTOM, _TOP + (_FAILED_BAND if failed_band else 0)

    @property
    def step_width(self) -> float:
        return (self.x1 - self.x0) / (self.last_step + 1)

    def x(self, step: float) -> float:
        return self.x0 + (step + 0.5) * self.step_width

    def y(self, rate: float) -> float:
        return self.y0 - (rate / self.top) * (self.y0 - self.y1)

    @property
    def failed_y(self) -> float:
        return _TOP + _FAILED_BAND / 2


def _ticks(frame: _Frame) -> list[str]:
    """Horizontal grid lines with percentages, and the step numbers under the x axis."""
    parts = []
    for i in range(round(frame.top / frame.tick) + 1):
        rate = i * frame.tick
        y = frame.y(rate)
        parts.append(f'<line x1="{frame.x0}" y1="{y:.1f}" x2="{frame.x1}" y2="{y:.1f}" stroke="{COLORS["grid"]}"/>')
        parts.append(_text(frame.x0 - 8, y + 4, f"{rate * 100:.0f}%", anchor="end"))
    every = max(1, math.ceil((frame.last_step + 1) / 20))
    for step in range(0, frame.last_step + 1, every):
        parts.append(_text(frame.x(step), frame.y0 + 18, "initial" if step == 0 else str(step)))
    return parts


def _axes(frame: _Frame) -> list[str]:
    """Axis lines and titles, and the band where failed trials go when there are any."""
    axis = COLORS["axis"]
    parts = [
        f'<line x1="{frame.x0}" y1="{frame.y0}" x2="{frame.x1}" y2="{frame.y0}" stroke="{axis}"/>',
        f'<line x1="{frame.x0}" y1="{frame.y1}" x2="{frame.x0}" y2="{frame.y0}" stroke="{axis}"/>',
        _text((frame.x0 + frame.x1) / 2, frame.y0 + 40, "optimization step", weight="600"),
    ]
    if frame.failed_band:
        parts.append(_text(frame.x0 - 8, frame.failed_y + 4, "failed", anchor="end", color=COLORS["failed"]))
        parts.append(f'<rect x="{frame.x0}" y="{_TOP}" width="{frame.x1 - frame.x0}" height="{_FAILED_BAND - 6}" '
                     f'fill="{COLORS["failed"]}" fill-opacity="0.06"/>')
    middle = (frame.y0 + frame.y1) / 2
    parts.append(
        f'<text x="16" y="{middle:.1f}" transform="rotate(-90 16 {middle:.1f})" text-anchor="middle" '
        f'font-size="13" font-weight="600" fill="{COLORS["text"]}">failure rate on the dev set</text>'
    )
    return parts


def _text(
    x: float, y: float, text: str, *,
    anchor: str = "middle", color: str | None = None, weight: str = "400", size: int = 12,
) -> str:
    """An SVG text element; ``text`` is escaped."""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" font-weight="{weight}" '
        f'fill="{color or COLORS["text"]}">{escape(text)}</text>'
    )


def _incumbent_line(frame: _Frame, incumbent: list[tuple[int, float]]) -> list[str]:
    """The incumbent's failure rate as a step line: one level across each step's column."""
    color = COLORS["incumbent"]
    half = frame.step_width / 2
    parts = []
    for index, (step, rate) in enumerate(incumbent):
        x, y = frame.x(step), frame.y(rate)
        if index:
            previous = frame.y(incumbent[index - 1][1])
            parts.append(f'<line x1="{x - half:.1f}" y1="{previous:.1f}" x2="{x - half:.1f}" y2="{y:.1f}" '
                         f'stroke="{color}" stroke-width="3"/>')
        tip = f"{'initial' if step == 0 else f'after step {step}'}: incumbent failure rate {format_rate(rate)}"
        parts.append(f'<line x1="{x - half:.1f}" y1="{y:.1f}" x2="{x + half:.1f}" y2="{y:.1f}" stroke="{color}" '
                     f'stroke-width="3" stroke-linecap="square"><title>{escape(tip)}</title></line>')
    return parts


def _pending(frame: _Frame, incumbent: list[tuple[int, float]], step: int | None) -> list[str]:
    """A dashed continuation of the incumbent over a step that has no decision yet."""
    if step is None or not incumbent:
        return []
    half, y = frame.step_width / 2, frame.y(incumbent[-1][1])
    tip = f"step {step} not decided yet: incumbent so far {format_rate(incumbent[-1][1])}"
    return [f'<line x1="{frame.x(step) - half:.1f}" y1="{y:.1f}" x2="{frame.x(step) + half:.1f}" y2="{y:.1f}" '
            f'stroke="{COLORS["incumbent"]}" stroke-width="2" stroke-dasharray="6 5">'
            f"<title>{escape(tip)}</title></line>"]


def _marker(status: str, x: float, y: float, tip: str) -> str:
    """A trial's marker: filled circle (complete), hollow triangle (pruned, a lower bound), cross (failed)."""
    title = f"<title>{escape(tip)}</title>"
    color = COLORS.get(status, COLORS["axis"])
    if status == "pruned":
        points = f"{x:.1f},{y - 6:.1f} {x - 6:.1f},{y + 5:.1f} {x + 6:.1f},{y + 5:.1f}"
        return f'<polygon points="{points}" fill="white" stroke="{color}" stroke-width="2">{title}</polygon>'
    if status == "failed":
        path = f"M{x - 5:.1f},{y - 5:.1f}L{x + 5:.1f},{y + 5:.1f}M{x - 5:.1f},{y + 5:.1f}L{x + 5:.1f},{y - 5:.1f}"
        return f'<path d="{path}" stroke="{color}" stroke-width="2.5">{title}</path>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}">{title}</circle>'


def _points(frame: _Frame, points: list[PlotPoint]) -> list[str]:
    """Trials spread side by side within their step, in the order they were recorded."""
    by_step: dict[int, list[PlotPoint]] = defaultdict(list)
    for point in points:
        by_step[point.step].append(point)
    parts = []
    tagged = len(points) <= _MAX_TAGS
    for step, group in by_step.items():
        spread = frame.step_width * 0.5
        for index, point in enumerate(group):
            x = frame.x(step) + (0.0 if len(group) == 1 else spread * (index / (len(group) - 1) - 0.5))
            y = frame.failed_y if point.value is None else frame.y(point.value)
            parts.append(_marker(point.status, x, y, point.label))
            if tagged and point.tag:
                parts.append(_text(x, y - 10, point.tag, color=COLORS["axis"], size=10))
    return parts


def _legend() -> list[str]:
    """One row under the x axis naming each series."""
    entries = [
        ("incumbent", "incumbent (best so far)"),
        ("complete", "candidate, complete"),
        ("pruned", "candidate, pruned (≥ lower bound)"),
        ("failed", "candidate, failed"),
    ]
    parts, x, y = [], _LEFT + 8, _HEIGHT - 14
    for status, label in entries:
        if status == "incumbent":
            parts.append(f'<line x1="{x - 8}" y1="{y - 4}" x2="{x + 8}" y2="{y - 4}" '
                         f'stroke="{COLORS[status]}" stroke-width="3"/>')
        else:
            parts.append(_marker(status, x, y - 4, label))
        parts.append(_text(x + 14, y, label, anchor="start"))
        x += 28 + 7 * len(label)
    return parts


def failure_rate_svg(
    incumbent: list[tuple[int, float]], points: list[PlotPoint], *, pending_step: int | None = None
) -> str:
    """The chart as an ``<svg>`` element: ``incumbent`` is (step, failure rate) from the initial instructions on;
    ``pending_step`` is a step whose candidates are (being) evaluated but which has no decision yet."""
    steps = [step for step, _ in incumbent] + [point.step for point in points] + [pending_step or 0]
    values = [rate for _, rate in incumbent] + [p.value for p in points if p.value is not None]
    failed = any(point.value is None for point in points)
    frame = _Frame(max(steps, default=1), values, failed_band=failed)
    lines = [*_incumbent_line(frame, incumbent), *_pending(frame, incumbent, pending_step)]
    body = [*_ticks(frame), *_axes(frame), *lines, *_points(frame, points), *_legend()]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_WIDTH} {_HEIGHT}" width="100%" '
        f'role="img" aria-label="failure rate per step" font-family="system-ui, sans-serif">'
        + "".join(body)
        + "</svg>"
    )


def holdout_svg(bars: list[tuple[str, float, tuple[float, float]]], *, dev: list[float | None] | None = None) -> str:
    """Failure rates with 95% intervals as horizontal bars with whiskers: (label, rate, (low, high)) each.

    ``dev`` gives each bar's dev-set rate, drawn as a hollow marker, so the flattering dev
    figure and the honest held-out one sit side by side.
    """
    width, row, left, right = 640, 44, 150, 40
    height = row * len(bars) + 40
    scale = (width - left - right)
    parts = [_text(left + scale * t, height - 8, f"{t:.0%}") for t in (0, 0.25, 0.5, 0.75, 1.0)]
    parts += [f'<line x1="{left + scale * t:.1f}" y1="10" x2="{left + scale * t:.1f}" y2="{height - 24}" '
              f'stroke="#e5e7eb"/>' for t in (0, 0.25, 0.5, 0.75, 1.0)]
    for index, (label, rate, (low, high)) in enumerate(bars):
        y = 18 + index * row
        color = COLORS["incumbent"] if index else COLORS["pruned"]
        parts.append(_text(left - 8, y + 14, label, anchor="end"))
        parts.append(f'<rect x="{left}" y="{y}" width="{scale * rate:.1f}" height="20" fill="{color}" '
                     f'opacity="0.75"><title>{escape(label)}: {format_rate(rate)} '
                     f'(95% interval {format_rate(low)} to {format_rate(high)})</title></rect>')
        parts.append(f'<line x1="{left + scale * low:.1f}" y1="{y + 10}" x2="{left + scale * high:.1f}" '
                     f'y2="{y + 10}" stroke="#111827" stroke-width="1.5"/>')
        for end in (low, high):
            parts.append(f'<line x1="{left + scale * end:.1f}" y1="{y + 4}" x2="{left + scale * end:.1f}" '
                         f'y2="{y + 16}" stroke="#111827" stroke-width="1.5"/>')
        if dev and index < len(dev) and dev[index] is not None:
            parts.append(f'<circle cx="{left + scale * dev[index]:.1f}" cy="{y + 10}" r="5" fill="white" '
                         f'stroke="#111827" stroke-width="1.5"><title>dev-set rate {format_rate(dev[index])}'
                         f'</title></circle>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
            f'aria-label="held-out failure rates with 95% intervals" font-family="system-ui, sans-serif">'
            + "".join(parts) + "</svg>")
