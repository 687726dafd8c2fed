"""The ``autoevol`` command: optimize an evolving method, evolve a dataset, report, optimize a prompt.

Every error ends the command with one line on stderr and an exit code that says whose move it
is (2 the input, 3 the LM, 4 nothing usable came out; see :mod:`.errors`); ``--debug`` adds the
traceback. Nothing printed or logged holds a key or a
URL's password. Rerunning an interrupted command continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoevol_dspy.cli.clean import (
    add_clean_command,
    add_hygiene_options,
    hygiene_options,
    record_in_run,
    training_output_paths,
    write_training_output,
)
from autoevol_dspy.cli.errors import EXIT_CODES, describe_error
from autoevol_dspy.cli.split import fit_split
from autoevol_dspy.cli.lms import add_request_options, command_lm, evolution_task
from autoevol_dspy.cli.options import add_output_options
from autoevol_dspy.cli.prompt import add_prompt_command
from autoevol_dspy.cli.shards import add_shards_command
from autoevol_dspy.cli.worker import add_driver_options, add_worker_command, driver_workers
from autoevol_dspy.errors import (
    ConfigurationError,
    DataError,
    IncompleteRunError,
    NothingUsableError,
    RunConflictError,
)
from autoevol_dspy.files import atomic_write_text, read_json_object, read_text
from autoevol_dspy.logs import TruncationNotes, configure_command_logging
from autoevol_dspy.redact import redact_url, scrub, scrub_log_handlers
from autoevol_dspy.runlock import RunDirLock

if TYPE_CHECKING:  # the configuration (pydantic) loads when a command runs, not for --help
    from autoevol_dspy.cli.config import LMSettings, OptimizeConfig

__all__ = ["build_parser", "main"]

logger = logging.getLogger("autoevol_dspy.cli")

RUN_FILES = ("study.db", "run.json", "method.txt", "result.json", "report.html")


# LM options shared by the subcommands -------------------------------------------------------------


def _add_lm_options(parser: argparse.ArgumentParser, *, optimizer: bool = True) -> None:
    group = parser.add_argument_group("LMs")
    group.add_argument("--lm", help="LM spec that evolves instructions: 'local' (embedded SmolLM2-135M, the "
                       "default), 'local:PATH.gguf', 'openai/MODEL', or any provider/model DSPy accepts")
    if optimizer:
        group.add_argument("--optimizer-lm", help="LM spec that analyses and rewrites the method (default: --lm)")
    group.add_argument("--response-lm", help="LM spec that answers evolved instructions (default: --lm)")
    group.add_argument("--api-base", help="base URL of an OpenAI-compatible server (vLLM, llama.cpp server) "
                       "used by openai/ specs, e.g. http://127.0.0.1:8000/v1; the key comes from OPENAI_API_KEY")
    group.add_argument("--max-tokens", type=int, help="longest evolution reply in tokens (default 384)")
    if optimizer:
        group.add_argument("--optimizer-max-tokens", type=int, help="longest analysis or rewritten method in "
                           "tokens (default: --max-tokens)")
    group.add_argument("--response-max-tokens", type=int, help="longest response in tokens (default 256)")
    group.add_argument("--threads", type=int, help="LM calls in flight at once (default 2); against a server "
                       "hundreds work, and a 429 slows every thread down")
    add_request_options(group)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML or YAML file with these settings; options given here override it")
    add_output_options(parser)


def _make_lm(spec: str, settings: LMSettings, **kwargs: Any):
    return command_lm(spec, api_base=settings.api_base, timeout=settings.timeout, retries=settings.retries, **kwargs)


def _build_lms(settings: LMSettings, *, optimizer: bool = True) -> dict[str, Any]:
    """Evol LM at temperature 0 (as in the paper), optimizer LM at a temperature that makes samples differ."""
    lms = {
        "evol_lm": _make_lm(settings.lm, settings, temperature=0.0, max_tokens=settings.max_tokens),
        "response_lm": _make_lm(settings.response_lm or settings.lm, settings, temperature=0.0,
                                max_tokens=settings.response_max_tokens),
    }
    if optimizer:
        lms["optimizer_lm"] = _make_lm(settings.optimizer_lm or settings.lm, settings,
                                       temperature=settings.optimizer_temperature,
                                       max_tokens=settings.optimizer_max_tokens or settings.max_tokens)
    return lms


def _options(args: argparse.Namespace, names: Sequence[str]) -> dict[str, Any]:
    return {name: getattr(args, name, None) for name in names}


def _flag(args: argparse.Namespace, name: str) -> bool | None:
    return True if getattr(args, name, False) else None


# optimize -------------------------------------------------------------------------------------------


def _read_method(source: str) -> str:
    """A method from a text file, or the best method of an earlier run directory."""
    path = Path(source)
    if path.is_dir():
        path = path / "method.txt"
    if not path.is_file():
        raise DataError(f"method not found: {path} (give a text file or a run directory with method.txt)")
    text = read_text(path, what="method file").strip()
    if not text:
        raise DataError(f"the initial method in {path} is empty")
    return text


#: What ``evolve`` takes from the run directory its method comes from, unless a config file or option says otherwise.
RUN_SETTINGS_FOR_EVOLVE = ("lm", "response_lm", "api_base", "max_tokens", "response_max_tokens", "threads", "style",
                           "timeout", "retries", "column")


def _run_settings(source: str) -> dict[str, Any]:
    """The settings an ``optimize`` run directory was made with that evolving with its method should reuse
    (its LMs, reply lengths, threads and the method's style); empty for a plain method file."""
    run_json = Path(source) / "run.json"
    if not run_json.is_file():
        return {}
    try:
        settings = read_json_object(run_json, what="run file").get("settings") or {}
    except DataError as exc:
        logger.warning("%s; evolving with the default settings", exc)
        return {}
    taken = {key: settings[key] for key in RUN_SETTINGS_FOR_EVOLVE if settings.get(key) is not None}
    if taken:
        logger.info("using the settings of run %s: %s", source, ", ".join(f"{k}={v}" for k, v in taken.items()))
    return taken


def _prepare_run_dir(out: Path, config: OptimizeConfig, *, restart: bool) -> None:
    """Refuse to mix runs: an existing run directory must have been made with the same settings."""
    run_json = out / "run.json"
    if restart:
        if config.storage:
            _delete_own_study(config.storage, config.study_name or out.name, out)
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        return
    if not run_json.is_file():
        return
    try:
        stored = read_json_object(run_json, what="run file").get("result_settings", {})
    except DataError as exc:  # the study still checks the settings; run.json is rewritten at the end
        logger.warning("%s; ignoring it, this run rewrites it", exc)
        return
    current = config.result_settings()
    differing = sorted(key for key in set(stored) | set(current) if stored.get(key) != current.get(key))
    if differing:
        details = ", ".join(f"{key}: {stored.get(key)!r} -> {current.get(key)!r}" for key in differing)
        raise RunConflictError(
            f"{out} holds a run made with different settings ({details}); rerun with --restart to start over"
        )


def _delete_own_study(storage: str, study_name: str, out: Path) -> None:
    """Delete this run's study from a shared storage; refuse to touch a study another run directory made."""
    import optuna

    from autoevol_dspy.search.tracking import identity_of

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return
    owner = (identity_of(study) or {}).get("run_dir")
    if owner is not None and owner != out.name:
        raise RunConflictError(f"study {study_name!r} in the storage belongs to the run directory {owner!r}, not "
                               f"{out.name!r}: --restart leaves it alone; pass --study-name to name this run's study")
    optuna.delete_study(study_name=study_name, storage=storage)


def _write_run_json(out: Path, config: OptimizeConfig, seeds: str, study_name: str, result: Any | None) -> None:
    """RUN_DIR/run.json: the command's settings (no secrets) and, once the run ended, its summary."""
    settings = config.model_dump()
    settings["api_base"] = redact_url(config.api_base)
    settings["storage"] = redact_url(config.storage)
    payload = {
        "command": "optimize",
        "seeds": seeds,
        "study_name": study_name,
        "storage": redact_url(config.storage) or "study.db",
        "settings": settings,
        "result_settings": config.result_settings(),
        "summary": None if result is None else {
            "initial_failure_rate": result.initial_failure_rate,
            "best_failure_rate": result.best_failure_rate,
            "failure_rate_by_step": result.failure_rate_by_step,
            "stop_reason": result.stop_reason,
            "best_trial": result.best_trial,
            "holdout": result.holdout.model_dump(mode="json", exclude={"initial": {"losses"}, "best": {"losses"}})
            if result.holdout is not None else None,
            "lm_calls": result.usage.calls,
            "lm_calls_cached": result.cached_calls,
            "tokens": result.usage.tokens,
        },
        "updated": datetime.now().isoformat(timespec="seconds"),
    }
    atomic_write_text(out / "run.json", json.dumps(payload, indent=2))


def _default_style(lm: Any) -> str:
    from autoevol_dspy.evolution.method import default_style

    return default_style(lm)


def run_optimize(args: argparse.Namespace) -> int:
    """``autoevol optimize``: find a better evolving method for a seed set."""
    from autoevol_dspy.cli.config import OptimizeConfig, load_config_file, merge_config
    from autoevol_dspy.data.seeds import load_instructions

    file_values = load_config_file(args.config) if args.config else {}
    options = _options(args, ["column", "lm", "optimizer_lm", "response_lm", "api_base", "max_tokens",
                              "optimizer_max_tokens", "response_max_tokens", "threads", "steps", "candidates",
                              "batch_size", "dev_size", "holdout", "rounds", "style", "proposal_style", "patience",
                              "seed", "max_lm_calls", "storage", "study_name", "initial_method", "timeout",
                              "retries", "dev_file"])
    options["judge"] = _flag(args, "judge")
    config = merge_config(OptimizeConfig, file_values, options, source=args.config)
    out = Path(args.out)
    lms = _build_lms(config)  # first: a bad spec or a missing key fails before any work
    if config.style is None:  # the evolving step that suits the evol LM, recorded in run.json as chosen
        config = config.model_copy(update={"style": _default_style(lms["evol_lm"])})
    loaded = load_instructions(args.seeds, column=config.column)
    dev = load_instructions(config.dev_file, column=config.column) if config.dev_file else None
    explicit = {key for key, value in options.items() if value is not None} | set(file_values)
    config = fit_split(config, seeds=len(loaded), dev_file=dev is not None, explicit=explicit)
    initial = _read_method(config.initial_method) if config.initial_method else None
    with RunDirLock(out):  # one process per run directory
        return _optimize_in(out, args, config, lms, loaded, initial, dev)


def _optimize_in(out: Path, args: argparse.Namespace, config: OptimizeConfig, lms: dict[str, Any], loaded: Any,
                 initial: str | None, dev: Any = None) -> int:
    """The locked part of ``optimize``: the run directory is this process's."""
    from autoevol_dspy.evolution.method import EvolInstruct
    from autoevol_dspy.report.html import write_report
    from autoevol_dspy.search.strategies import stop_when
    from autoevol_dspy.teleprompter import AutoEvolInstruct

    _prepare_run_dir(out, config, restart=args.restart)
    task = evolution_task(lms["evol_lm"], lms["response_lm"], rounds=config.rounds, judge=config.judge)
    optimizer = AutoEvolInstruct(
        task=task,
        lm=lms["evol_lm"],
        optimizer_lm=lms["optimizer_lm"],
        num_candidates=config.candidates,
        batch_sampler=config.batch_size,
        dev_size=config.dev_size,
        holdout=int(config.holdout) if config.holdout >= 1 else config.holdout,
        max_steps=config.steps,
        stopper=stop_when(patience=config.patience, max_lm_calls=config.max_lm_calls),
        optimizer_temperature=config.optimizer_temperature,
        proposal_style=config.proposal_style,
        num_threads=config.threads,
        seed=config.seed,
        storage=config.storage,
        study_name=config.study_name,
        run_dir=out,
        progress=False if args.no_progress else None,
        workers=driver_workers(args, config, lms),
        report=False,  # written here, once, after run.json: the report shows the command's settings
    )
    compiled = optimizer.compile(EvolInstruct(initial, style=config.style), trainset=loaded.examples(),
                                 valset=dev.examples() if dev is not None else None)
    result = optimizer.result
    atomic_write_text(out / "method.txt", compiled.method + "\n")
    _write_run_json(out, config, args.seeds, result.study_name, result)
    report = write_report(out, storage=config.storage, study_name=result.study_name)
    print(result.describe())
    print(f"best method: {out / 'method.txt'}")
    print(f"report:      {report}")
    return 0


# evolve ---------------------------------------------------------------------------------------------


def run_evolve(args: argparse.Namespace) -> int:
    """``autoevol evolve``: evolve a whole dataset with a method, with lineage, resumable."""
    from autoevol_dspy.data.evolve import evolve_dataset
    from autoevol_dspy.cli.config import EvolveConfig, load_config_file, merge_config
    from autoevol_dspy.data.seed_file import scan_instructions

    file_values = _evolve_settings(load_config_file(args.config), args.config) if args.config else {}
    if file_values:
        merge_config(EvolveConfig, file_values, {}, source=args.config)  # the file's own values, checked alone
    file_values = {**_run_settings(args.method), **file_values}
    options = _options(args, ["column", "lm", "optimizer_lm", "response_lm", "api_base", "max_tokens",
                              "response_max_tokens", "threads", "rounds", "style", "timeout", "retries"])
    options["drop_failures"] = _flag(args, "drop_failures")
    options["no_response"] = _flag(args, "no_response")
    config = merge_config(EvolveConfig, file_values, options,
                          source=args.config or Path(args.method) / "run.json")
    if config.no_response and args.format != "lineage":
        raise ConfigurationError(f"--format {args.format} needs a response for each row (the assistant turn): drop "
                                 "--no-response, or write --format lineage")
    hygiene = hygiene_options(args)
    out, store = training_output_paths(args.out, format=args.format, hygiene=hygiene)
    if hygiene is not None:
        hygiene.check()  # a bad benchmark file fails now, not after the evolution
    lms = _build_lms(config, optimizer=False)
    method = _read_method(args.method)
    seeds = scan_instructions(args.seeds, column=config.column)  # streamed: a file of millions is never held
    summary = evolve_dataset(
        seeds,
        method=method,
        style=config.style or _default_style(lms["evol_lm"]),
        out_path=store,
        rounds=config.rounds,
        evol_lm=lms["evol_lm"],
        response_lm=lms["response_lm"],
        with_response=not config.no_response,
        drop_failures=config.drop_failures,
        num_threads=config.threads,
        overwrite=args.restart,
        shard=_parse_shard(args.shard),
        progress=False if args.no_progress else None,
    )
    print(f"evolved {summary.rows} rows ({summary.new_rows} new, {summary.resumed_rows} from an earlier run) "
          f"of {summary.seeds} seeds x {summary.rounds} round(s)")
    print(f"failures: {summary.failures} ({summary.failure_rate:.1%}) {summary.failures_by_category}")
    print(f"rows:     {summary.out_path} ({summary.kept} rows kept, {summary.dropped} dropped)")
    if not summary.complete:
        raise IncompleteRunError(f"incomplete: {summary.errors} seed(s) stopped on LM errors and have no rows yet; "
                                 "the finished rows are saved: rerun the same command to retry them")
    if summary.rows and summary.failures == summary.rows:
        categories = ", ".join(f"{name} {count}" for name, count in sorted(summary.failures_by_category.items()))
        raise NothingUsableError(f"every one of the {summary.rows} evolutions failed ({categories}); the rows and "
                                 f"their failures are in {summary.dropped_path or summary.out_path}: try another "
                                 "method (autoevol optimize) or a stronger --lm")
    cleaned = None
    if out != store:
        line, cleaned = write_training_output(store, out, format=args.format, hygiene=hygiene)
        print(line)
    if Path(args.method).is_dir():  # the run's report shows what its method made
        print(record_in_run(Path(args.method), store=store, out=out, format=args.format, summary=cleaned))
    return 0


def _evolve_settings(values: dict[str, Any], path: str) -> dict[str, Any]:
    """The settings of a config file that ``evolve`` uses; an ``optimize`` file's search-only keys are noted and
    ignored, so one file serves both commands."""
    from autoevol_dspy.cli.config import EvolveConfig, OptimizeConfig, merge_config

    search_only = sorted(set(values) - set(EvolveConfig.model_fields) & set(OptimizeConfig.model_fields))
    if search_only:
        merge_config(OptimizeConfig, {key: values[key] for key in search_only}, {}, source=path)  # still valid ones
        logger.warning("%s: ignoring settings that only optimize uses: %s", path, ", ".join(search_only))
    return {key: value for key, value in values.items() if key not in search_only}


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    index, slash, count = text.partition("/")
    if not (slash and index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise ConfigurationError(f"--shard takes INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/4; got {text!r}")
    return int(index), int(count)


# report ---------------------------------------------------------------------------------------------


def run_report(args: argparse.Namespace) -> int:
    """``autoevol report``: write RUN_DIR/report.html from the run's study."""
    from autoevol_dspy.report.html import write_report

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run directory not found: {run_dir}")
    storage = args.storage
    if storage is None and (run_dir / "run.json").is_file():
        try:
            stored = read_json_object(run_dir / "run.json", what="run file").get("settings", {})
        except DataError as exc:
            logger.warning("%s; reading the run from %s instead", exc, run_dir / "study.db")
            stored = {}
        storage = stored.get("storage") if stored.get("storage") and "***" not in stored["storage"] else None
    if storage is None and not (run_dir / "study.db").is_file():
        raise DataError(f"{run_dir} holds no study.db; pass --storage URL if the run used another storage")
    path = write_report(run_dir, storage=storage, study_name=args.study_name)
    print(f"report: {path}")
    return 0


# the parser -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoevol",
        description="Auto Evol-Instruct for DSPy: let an LLM optimize instructions from their failures.",
        epilog="exit codes: " + "; ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES.items()),
        allow_abbrev=False,
    )
    from autoevol_dspy import __version__

    parser.add_argument("--version", action="version", version=f"autoevol-dspy {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    optimize = commands.add_parser(
        "optimize", help="optimize the evolving method on a seed set",
        description="Optimize the evolving method on seed instructions; rerunning the same command resumes.",
    )
    optimize.add_argument("seeds", help="seed instructions: a JSONL, JSON, CSV or Parquet file")
    optimize.add_argument("--column", help="the column that holds the instructions (default: instruction)")
    optimize.add_argument("--out", required=True, help="run directory: study.db, method.txt, run.json, report.html")
    optimize.add_argument("--steps", type=int, help="most optimization steps (default 10)")
    optimize.add_argument("--candidates", type=int, help="rewrites of the method per step, m (default 5)")
    optimize.add_argument("--batch-size", type=int, help="seed instructions in each step's trajectory (default 10)")
    optimize.add_argument("--dev-size", type=int, help="instructions in the fixed dev set, drawn from SEEDS (default "
                          "50, or what the seeds leave after the held-out share and one mini-batch)")
    optimize.add_argument("--dev-file", "--valset", dest="dev_file", metavar="FILE", help="the dev set as a file of "
                          "its own (as SEEDS: JSONL, JSON, CSV or Parquet); SEEDS then only train and hold out")
    optimize.add_argument("--holdout", type=float, help="seeds kept out of the search for the held-out check: "
                          "a share below 1 or a count (default 0.2; 0 for none)")
    optimize.add_argument("--rounds", type=int, help="evolution rounds in a trajectory, l (default 1)")
    optimize.add_argument("--proposal-style", choices=["rewrite", "amend", "mixed"], help="rewrite: the optimizer "
                          "LM rewrites the whole method (the paper); amend: it writes one rule to append; mixed: rules "
                          "from the failures, general edits and one rule the LM writes from worked examples, which "
                          "small optimizer LMs can drive (default: mixed for the embedded model, rewrite otherwise)")
    optimize.add_argument("--style", choices=["rewrite", "extend"], help="rewrite: the LM writes the whole evolved "
                          "instruction (the paper); extend: it writes only an addition, which small models manage "
                          "far more often (default: extend for an in-process model, rewrite otherwise)")
    optimize.add_argument("--patience", type=int, help="steps without improvement before stopping (default 1)")
    optimize.add_argument("--storage", help="Optuna storage URL (default: sqlite in the run directory), "
                          "e.g. postgresql+psycopg://user@host/db to share a run between machines")
    optimize.add_argument("--study-name", help="the run's study in the storage (default: the --out folder's name)")
    optimize.add_argument("--seed", type=int, help="seed of the dev split and the mini-batches (default 0)")
    optimize.add_argument("--max-lm-calls", type=int, help="stop once this many LM calls were made")
    optimize.add_argument("--initial-method", help="start from this method: a text file, or an earlier run "
                          "directory (its method.txt) to warm-start")
    optimize.add_argument("--judge", action="store_true", help="also ask the evol LM whether each evolution "
                          "gained information (one more call per instruction)")
    optimize.add_argument("--restart", action="store_true", help="discard the run in --out and start over")
    _add_lm_options(optimize)
    _add_common_options(optimize)
    add_driver_options(optimize)
    optimize.set_defaults(handler=run_optimize)

    evolve = commands.add_parser(
        "evolve", help="evolve a whole dataset with a method",
        description="Evolve every instruction with a method, writing one JSONL row per seed and round with "
        "lineage; rerunning the same command continues where it stopped.",
    )
    evolve.add_argument("seeds", help="instructions: a JSONL, JSON, CSV or Parquet file")
    evolve.add_argument("--method", required=True, help="a run directory (its method.txt, and the run's LMs, reply "
                        "lengths, threads and style unless given here) or a method text file")
    evolve.add_argument("--column", help="the column that holds the instructions (default: instruction)")
    evolve.add_argument("--out", required=True, help="output file, .jsonl or .parquet; the rows with lineage "
                        "live in OUT itself (lineage .jsonl) or beside it in NAME.rows.jsonl, which a rerun resumes")
    evolve.add_argument("--format", choices=["lineage", "sft", "prompt-completion"], default="lineage",
                        help="lineage: every row with its seed, parent and failure (default); sft: TRL's "
                        "conversational 'messages'; prompt-completion: TRL's 'prompt'/'completion'; failures "
                        "are left out of the training formats, rounds mixed")
    evolve.add_argument("--rounds", type=int, help="rounds of evolution; round i evolves round i-1 (default 1)")
    evolve.add_argument("--drop-failures", action="store_true", help="leave failed evolutions out of the output")
    evolve.add_argument("--no-response", action="store_true", help="do not answer evolved instructions")
    evolve.add_argument("--style", choices=["rewrite", "extend"], help="the method's style (default: the one "
                        "--method's run directory was optimized in, else extend for an in-process model and rewrite otherwise)")
    evolve.add_argument("--shard", help="INDEX/COUNT: evolve only every COUNT-th seed starting at INDEX, to split "
                        "a large dataset across machines (give each shard its own --out)")
    evolve.add_argument("--restart", action="store_true", help="discard the existing output and start over")
    _add_lm_options(evolve, optimizer=False)
    _add_common_options(evolve)
    add_hygiene_options(evolve)
    evolve.set_defaults(handler=run_evolve)

    report = commands.add_parser("report", help="write RUN_DIR/report.html",
                                 description="Write a self-contained HTML report of a run.")
    report.add_argument("run_dir", help="the run directory given to optimize --out")
    report.add_argument("--storage", help="Optuna storage URL if the run did not use RUN_DIR/study.db")
    report.add_argument("--study-name", help="the study (default: the one run.json names, else the folder's name)")
    add_output_options(report)
    report.set_defaults(handler=run_report)

    add_prompt_command(commands)
    add_worker_command(commands)
    add_shards_command(commands)
    add_clean_command(commands)
    for command in commands.choices.values():  # --step is not --steps: an option is spelled out or refused
        command.allow_abbrev = False
    return parser


def _configure_logging(debug: bool, *, verbose: bool = False, quiet: bool = False) -> TruncationNotes:
    notes = configure_command_logging(debug=debug, verbose=verbose, quiet=quiet)
    scrub_log_handlers()
    return notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    notes = _configure_logging(debug, verbose=bool(getattr(args, "verbose", False)),
                               quiet=bool(getattr(args, "quiet", False)))
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        try:
            return handler(args)
        finally:
            if notes.summary():
                logger.warning("%s", notes.summary())
    except KeyboardInterrupt:
        print("autoevol: interrupted; rerun the same command to continue where it stopped", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every error ends as one line; --debug adds the traceback
        message, code = describe_error(exc)
        if debug:
            sys.stderr.write(scrub(traceback.format_exc()))
        print(f"autoevol: error: {scrub(message)}", file=sys.stderr)
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
