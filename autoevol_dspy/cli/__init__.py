"""The ``autoevol`` command line."""

from autoevol_dspy.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
