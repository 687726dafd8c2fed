"""Options every command shares: how much it says."""

from __future__ import annotations

import argparse

__all__ = ["add_output_options"]


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """-q/-v, --debug and --no-progress: how much a command says."""
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    parser.add_argument("--debug", action="store_true", help="debug logs and, for an error, its traceback")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars (they show only on a "
                        "terminal anyway)")
