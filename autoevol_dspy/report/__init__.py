"""The self-contained HTML report of a run."""

from autoevol_dspy.report.html import RunView, load_run, render_report, write_report

__all__ = ["RunView", "load_run", "render_report", "write_report"]
