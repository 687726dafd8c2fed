"""Shared helpers for the quality and head-to-head benchmarks.

Machine facts, data loading, markdown tables, the RESULTS.md section writer, the
embedded LM as these benchmarks use it, and the shared scripted LM (``autoevol_dspy.testing``)
for the ``--smoke`` forms.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import json
import logging
import os
import platform
import re
import statistics
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import dspy

from autoevol_dspy.testing import Call, generic_answer, scripted_lm

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_RESULTS",
    "REPO_ROOT",
    "StubCall",
    "configure_dspy",
    "embedded_lm",
    "generic_answer",
    "load_jsonl",
    "machine_info",
    "machine_line",
    "markdown_table",
    "median",
    "setup_logging",
    "stub_lm",
    "publish",
    "write_section",
]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data"
DEFAULT_RESULTS = REPO_ROOT / "benchmarks" / "RESULTS.md"


# Machine and environment -----------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    """nproc, CPU model, RAM, load average and versions: what a result line needs to be read."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "nproc": _nproc(),
        "cpu": _cpu_model(),
        "ram_gib": _ram_gib(),
        "load_1min": round(load, 2) if load is not None else None,
        "python": platform.python_version(),
        "dspy": getattr(dspy, "__version__", "?"),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def machine_line(info: dict[str, Any], *, load_at_end: float | None = None) -> str:
    """One markdown line describing the machine and the date of a run."""
    load = f"load average {info['load_1min']} at start" if info.get("load_1min") is not None else "load unknown"
    if load_at_end is not None:
        load += f", {load_at_end:.2f} at end"
    return (
        f"Machine: {info['nproc']} cores ({info['cpu']}), {info['ram_gib']} GiB RAM, {load}; "
        f"Python {info['python']}, DSPy {info['dspy']}. Date: {info['date']}."
    )


def current_load() -> float | None:
    """The 1-minute load average now, or ``None`` where the OS does not tell."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def setup_logging(verbose: bool) -> None:
    """INFO logging for the benchmark, quieter third-party loggers unless ``verbose``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not verbose:
        for name in ("dspy", "LiteLLM", "httpx", "optuna", "gepa", "autoevol_dspy"):
            logging.getLogger(name).setLevel(logging.WARNING)
        optuna_logging = __import__("optuna").logging
        optuna_logging.set_verbosity(optuna_logging.WARNING)


# Data -------------------------------------------------------------------------------------------


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file, gzip-compressed or not; a clear error when it is missing."""
    if not path.is_file():
        raise SystemExit(f"data file not found: {path} (pass --data-dir; see --help for where the sets come from)")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# Tables and RESULTS.md ------------------------------------------------------------------------


def median(values: Iterable[float]) -> float | None:
    """The median of the values, or ``None`` when there are none."""
    items = [v for v in values if v is not None]
    return statistics.median(items) if items else None


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells are converted with ``str``."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _split_sections(text: str) -> list[tuple[str | None, str]]:
    """Split markdown into (level-2 title or None for the preamble, block text) pieces."""
    pieces: list[tuple[str | None, str]] = []
    title: str | None = None
    block: list[str] = []
    in_fence = False
    for line in text.splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and re.match(r"^## (?!#)", line):
            pieces.append((title, "".join(block)))
            title, block = line[3:].strip(), [line]
        else:
            block.append(line)
    pieces.append((title, "".join(block)))
    return pieces


def write_section(path: Path, title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of ``path``, keeping every other section intact.

    The file is re-read right before writing and replaced atomically, so sections other
    benchmarks wrote meanwhile survive.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n\n"
    section = f"## {title}\n\n{body.strip()}\n\n"
    pieces = _split_sections(existing)
    out: list[str] = []
    replaced = False
    for piece_title, block in pieces:
        if piece_title == title and not replaced:
            out.append(section)
            replaced = True
        else:
            out.append(block)
    if not replaced:
        tail = "".join(out)
        if tail and not tail.endswith("\n\n"):
            out.append("\n" if tail.endswith("\n") else "\n\n")
        out.append(section)
    text = "".join(out).rstrip("\n") + "\n"
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".md")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, path)
    logger.info("wrote section %r of %s", title, path)


# LMs ---------------------------------------------------------------------------------------------


def configure_dspy(lm: dspy.LM | None = None) -> None:
    """Memory cache only (each run starts cold) and the JSON adapter (one constrained call per predict)."""
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
    dspy.configure(lm=lm, adapter=dspy.JSONAdapter())


def reset_cache() -> None:
    """Forget cached LM answers, so the next optimizer pays for its own calls."""
    dspy.cache.reset_memory_cache()


def embedded_lm(*, temperature: float, max_tokens: int, n_threads: int = 1, n_ctx: int = 4096) -> dspy.LM:
    """The embedded SmolLM2-135M-Instruct; one llama context per process, shared by all LMs made here."""
    from autoevol_dspy.lm import make_lm

    return make_lm("local", temperature=temperature, max_tokens=max_tokens, n_threads=n_threads, n_ctx=n_ctx)


# Scripted stub LM for --smoke -----------------------------------------------------------------

#: One parsed request (inputs, output fields with their types, ``options``): the shared fake's ``Call``.
StubCall = Call


def stub_lm(responder: Callable[[Call], dict[str, Any] | str], **kwargs: Any) -> dspy.LM:
    """A real ``dspy.LM`` answering from ``responder`` (``autoevol_dspy.testing.scripted_lm``), for ``--smoke``."""
    return scripted_lm(responder, **kwargs)[0]


def publish(body: str, *, section: str, results: Path, write: bool) -> None:
    """Print a benchmark's section and, unless told not to, put it in ``results`` (RESULTS.md)."""
    print(body)
    if write:
        write_section(results, section, body)
