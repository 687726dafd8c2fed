"""``autoevol prompt``: optimize one structured prompt file from an examples file and a metric.

Writes OUT_DIR/prompt.txt (the improved prompt), OUT_DIR/result.json (the run),
OUT_DIR/prompt_result.json (held-out failure rates before and after, and the run),
OUT_DIR/study.db (the Optuna study) and OUT_DIR/report.html.
Rerunning the same command continues the study where it stopped.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoevol_dspy.cli.lms import add_request_options, command_lm
from autoevol_dspy.cli.options import add_output_options
from autoevol_dspy.errors import ConfigurationError, DataError
from autoevol_dspy.prompt.settings import DEFAULT_HOLDOUT_SHARE, METRIC_NAMES, PROMPT_DEFAULTS
from autoevol_dspy.runlock import RunDirLock

if TYPE_CHECKING:
    import dspy

    from autoevol_dspy.prompt.optimize import PromptResult

__all__ = ["add_prompt_command", "build_lms", "run_prompt_command"]

logger = logging.getLogger(__name__)

#: Files a prompt run writes into OUT_DIR; ``--restart`` removes them.
PROMPT_RUN_FILES = ("study.db", "result.json", "prompt.txt", "prompt_result.json", "report.html")
#: Settings of the command and the AutoEvolInstruct argument each one sets.
_OPTIMIZER_OPTIONS = {"steps": "max_steps", "candidates": "num_candidates", "batch_size": "batch_size",
                      "dev_size": "dev_size", "threads": "num_threads", "seed": "seed", "max_lm_calls": "max_lm_calls"}


def add_prompt_command(subparsers: Any) -> None:
    """Register ``prompt`` on the ``autoevol`` subcommand parsers (``argparse`` subparsers action)."""
    parser = subparsers.add_parser(
        "prompt", help="optimize one structured prompt from examples and a metric",
        description="Optimize a prompt (role, skills, rules, output format) as the instructions of a "
        "one-step program; report the failure rate on held-out examples before and after. "
        "Rerunning the same command continues where it stopped.",
    )
    parser.add_argument("prompt_file", metavar="PROMPT_FILE", help="the prompt: a plain-text or Markdown file")
    parser.add_argument("--examples", required=True, metavar="FILE", help="examples: a JSONL, JSON, CSV or Parquet file (optionally .gz)")
    parser.add_argument("--out", required=True, metavar="OUT_DIR",
                        help="run directory: prompt.txt, result.json, prompt_result.json, study.db, report")
    parser.add_argument("--input", action="append", metavar="FIELD",
                        help="an input field of the examples (repeat for several; default: every column but the "
                        "output and an id)")
    parser.add_argument("--output", metavar="FIELD", help="the output field the prompt produces (default: the "
                        f"column named {', '.join(OUTPUT_COLUMNS)}, the first that exists)")
    parser.add_argument("--metric", metavar="NAME", help=f"how a case is judged: {METRIC_NAMES} (default: exact)")
    lms = parser.add_argument_group("LMs")
    lms.add_argument("--lm", metavar="SPEC", help="LM that answers with the prompt: 'local' "
                     "(embedded SmolLM2-135M, the default), 'local:PATH.gguf', 'openai/MODEL', or any provider/model")
    lms.add_argument("--optimizer-lm", metavar="SPEC", help="LM that analyses failures, rewrites the prompt and "
                     "judges for judge: metrics (default: --lm)")
    lms.add_argument("--api-base", metavar="URL", help="base URL of an OpenAI-compatible server for openai/ specs")
    lms.add_argument("--max-tokens", type=int, metavar="N", help="longest answer in tokens (256)")
    lms.add_argument("--optimizer-max-tokens", type=int, metavar="N",
                     help="longest analysis or rewritten prompt in tokens (1024)")
    add_request_options(lms)
    lms.add_argument("--local-threads", type=int, metavar="N", help="llama.cpp threads per context for local "
                     "specs (default: one single-thread context per usable core)")
    run = parser.add_argument_group("optimization")
    run.add_argument("--steps", type=int, metavar="N", help=f"most steps ({PROMPT_DEFAULTS['max_steps']})")
    run.add_argument("--candidates", type=int, metavar="N",
                     help=f"rewrites of the prompt per step ({PROMPT_DEFAULTS['num_candidates']})")
    run.add_argument("--batch-size", type=int, metavar="N",
                     help=f"examples in each step's trajectory ({PROMPT_DEFAULTS['batch_size']})")
    run.add_argument("--dev-size", type=int, metavar="N",
                     help=f"examples in the fixed dev set ({PROMPT_DEFAULTS['dev_size']})")
    run.add_argument("--holdout", type=int, metavar="N", help="examples held out for the before/after "
                     f"comparison (default: {DEFAULT_HOLDOUT_SHARE * 100:.0f}%% of them)")
    run.add_argument("--threads", type=int, metavar="N", help="LM calls in flight at once (2)")
    run.add_argument("--seed", type=int, metavar="N", help="seed of the splits and mini-batches (0)")
    run.add_argument("--max-lm-calls", type=int, metavar="N", help="stop optimizing after this many LM calls")
    parser.add_argument("--config", metavar="FILE", help="TOML or YAML file with these settings (names as the "
                        "options, dashes or underscores); options given here override it")
    parser.add_argument("--restart", action="store_true", help="discard the run in OUT_DIR and start over")
    add_output_options(parser)
    parser.set_defaults(handler=run_prompt_command)


def _make_lm(spec: str, args: argparse.Namespace, **kwargs: Any) -> dspy.LM:
    return command_lm(spec, api_base=args.api_base, n_threads=args.local_threads, timeout=args.timeout,
                      retries=args.retries, **kwargs)


def _adapter(*lms: dspy.LM) -> dspy.Adapter | None:
    """JSON for in-process models: llama.cpp then decodes only JSON that parses, so no call is spent on a retry."""
    import dspy

    local = any(str(getattr(lm, "model", "")).startswith("local/") for lm in lms)
    return dspy.JSONAdapter() if local else None


def build_lms(args: argparse.Namespace) -> tuple[dspy.LM, dspy.LM]:
    """The LM that answers (temperature 0) and the optimizer LM (its samples get their temperature per call)."""
    lm = _make_lm(args.lm, args, temperature=0.0, max_tokens=args.max_tokens)
    optimizer_lm = _make_lm(args.optimizer_lm or args.lm, args, temperature=0.0, max_tokens=args.optimizer_max_tokens)
    return lm, optimizer_lm


def _optimizer_settings(args: argparse.Namespace) -> dict[str, Any]:
    settings = {target: getattr(args, option) for option, target in _OPTIMIZER_OPTIONS.items()
                if getattr(args, option, None) is not None}
    settings["progress"] = False if args.no_progress else None
    return settings


def _clear_run(out: Path) -> None:
    for name in PROMPT_RUN_FILES:
        (out / name).unlink(missing_ok=True)


def _summary(result: PromptResult, out: Path, report: Path | None) -> str:
    run = result.run
    lines = [
        f"held-out failure rate: {result.holdout_failure_rate_before:.3f} -> {result.holdout_failure_rate_after:.3f}"
        f"  ({result.holdout_failures_before}/{result.holdout_size} -> "
        f"{result.holdout_failures_after}/{result.holdout_size} held-out examples failed)",
        f"dev failure rate:      {run.initial_failure_rate:.3f} -> {run.best_failure_rate:.3f}"
        f"  (stopped: {run.stop_reason}, {run.usage.calls} LM calls)",
        f"improved prompt: {out / 'prompt.txt'}" + ("" if result.changed else " (unchanged: no rewrite did better)"),
    ]
    if report is not None:
        lines.append(f"report:          {report}")
    return "\n".join(lines)


#: Options of ``prompt`` a config file may set, with their defaults when neither sets them.
_DEFAULTS: dict[str, Any] = {"lm": "local", "max_tokens": 256, "optimizer_max_tokens": 1024, "threads": 2,
                             "optimizer_lm": None, "api_base": None, "local_threads": None, "steps": None,
                             "candidates": None, "batch_size": None, "dev_size": None, "holdout": None, "seed": None,
                             "max_lm_calls": None, "input": None, "output": None, "metric": None}
#: Columns taken as the expected output when ``--output`` is not given, in order.
OUTPUT_COLUMNS = ("answer", "label", "output", "target")


def apply_config(args: argparse.Namespace) -> None:
    """Fill the options not given on the command line from ``--config``, then from the defaults."""
    from autoevol_dspy.cli.config import PromptFileSettings, load_config_file, merge_config

    values = load_config_file(args.config) if args.config else {}
    unknown = sorted(set(values) - set(_DEFAULTS) - {"timeout", "retries"})
    if unknown:
        raise ConfigurationError(f"{args.config}: unknown setting(s) for prompt: {', '.join(unknown)}")
    if values:  # every value of the file is checked, also those an option overrides
        checked = merge_config(PromptFileSettings, values, {}, source=args.config)
        values = checked.model_dump(include=set(values))
    for name, default in _DEFAULTS.items():
        if getattr(args, name, None) is None:
            value = values.get(name, default)
            setattr(args, name, [value] if name == "input" and isinstance(value, str) else value)
    for name in ("timeout", "retries"):
        if name in values and getattr(args, name, None) is None:
            setattr(args, name, values[name])


def infer_fields(args: argparse.Namespace) -> None:
    """Choose the output, inputs and metric the examples make obvious, and say what was chosen."""
    if args.output and args.input and args.metric:
        return
    from autoevol_dspy.data.io import read_records

    columns = list(dict.fromkeys(key for row in read_records(Path(args.examples)) if isinstance(row, dict)
                                 for key in row))
    chosen = []
    if not args.output:
        args.output = next((name for name in OUTPUT_COLUMNS if name in columns), None)
        if args.output is None:
            raise DataError(f"cannot tell which column of {args.examples} is the output (none is named "
                            f"{', '.join(OUTPUT_COLUMNS)}); name it with --output (columns: {', '.join(columns)})")
        chosen.append(f"output {args.output!r}")
    if not args.input:
        args.input = [name for name in columns if name not in (args.output, "id")]
        chosen.append(f"inputs {', '.join(repr(name) for name in args.input)}")
    if not args.metric:
        args.metric = "exact"
        chosen.append("metric 'exact'")
    logger.warning("chose %s from %s (name them with --input/--output/--metric)", "; ".join(chosen), args.examples)


def run_prompt_command(args: argparse.Namespace) -> int:
    """``autoevol prompt``: load the prompt and examples, optimize, write OUT_DIR, print the before/after rates."""
    import dspy

    from autoevol_dspy.prompt.metrics import metric_from_name
    from autoevol_dspy.prompt.optimize import load_examples, load_prompt, optimize_prompt

    apply_config(args)
    infer_fields(args)
    out = Path(args.out)
    text = load_prompt(args.prompt_file)
    metric = metric_from_name(args.metric, output_field=args.output)
    examples = load_examples(args.examples, input_fields=args.input, output_field=args.output,
                             require_output=metric.needs_expected)
    lm, optimizer_lm = build_lms(args)
    with RunDirLock(out):  # one process per run directory
        if args.restart:
            _clear_run(out)
        with dspy.context(adapter=_adapter(lm, optimizer_lm)):
            result = optimize_prompt(
                text, examples, metric, input_fields=args.input, output_field=args.output,
                holdout=args.holdout if args.holdout is not None else DEFAULT_HOLDOUT_SHARE,
                lm=lm, optimizer_lm=optimizer_lm, run_dir=out, **_optimizer_settings(args),
            )
    report = out / "report.html"  # written by the run, when it ended
    print(_summary(result, out, report if report.is_file() else None))
    return 0
