"""The package as it was at another git revision, to measure a baseline in the same run as the change.

``exported(rev)`` writes ``autoevol_dspy`` of ``rev`` (``git archive``) into a temporary
directory and yields an environment whose ``PYTHONPATH`` puts it first, so a child process
started with that environment imports the old code while this one keeps the new.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["exported", "short_hash"]

REPO_ROOT = Path(__file__).resolve().parent.parent


def short_hash(rev: str) -> str:
    """The abbreviated commit hash of ``rev``."""
    return subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO_ROOT, check=True, capture_output=True,
                          text=True).stdout.strip()


@contextlib.contextmanager
def exported(rev: str, package: str = "autoevol_dspy") -> Iterator[dict[str, str]]:
    """An environment for child processes that import ``package`` as it was at ``rev``."""
    archive = subprocess.run(["git", "archive", "--format=tar", rev, package], cwd=REPO_ROOT, check=True,
                             capture_output=True).stdout
    with tempfile.TemporaryDirectory(prefix="autoevol-baseline-") as root:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(root, filter="data")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        yield env
