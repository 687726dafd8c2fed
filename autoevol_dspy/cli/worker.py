"""``autoevol worker`` and ``optimize --workers``: one optimization, its evaluations spread over processes and machines.

The driver (``autoevol optimize --workers --storage URL``) writes a recipe into the study:
the LM specs (model names and options, never keys), rounds, style and detectors. A worker
(``autoevol worker --storage URL``) rebuilds the same task from it, with its own key from
its environment and, if it likes, its own ``--api-base`` for the same model.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from autoevol_dspy.cli.lms import add_request_options, command_lm, evolution_task
from autoevol_dspy.cli.options import add_output_options
from autoevol_dspy.errors import ConfigurationError, RunConflictError
from autoevol_dspy.redact import redact_url

__all__ = ["add_driver_options", "add_worker_command", "driver_workers", "run_worker_command"]

logger = logging.getLogger("autoevol_dspy.cli")


def add_driver_options(parser: argparse.ArgumentParser) -> None:
    """``optimize``'s options for sharing its evaluations with ``autoevol worker`` processes."""
    group = parser.add_argument_group("workers (several processes or machines)")
    group.add_argument("--workers", action="store_true", help="let `autoevol worker` processes evaluate the "
                       "candidates through the study (give --storage postgresql+psycopg://... to reach other "
                       "machines); this process evaluates too")
    group.add_argument("--coordinate-only", action="store_true", help="with --workers: this process plans and "
                       "decides the steps, the workers do every evaluation")
    group.add_argument("--heartbeat", type=int, metavar="SECONDS", default=10, help="how often a process "
                       "running a trial says it is alive (default 10)")
    group.add_argument("--grace", type=int, metavar="SECONDS", default=60, help="a trial silent this long is "
                       "given to another worker (default 60)")
    group.add_argument("--max-retry", type=int, metavar="N", default=3, help="how often a candidate whose worker "
                       "died is evaluated again before the run stops (default 3)")


#: The settings of an LM that decide its answers; the rest (address, key, timeout, retries) is each machine's own.
_SAMPLING = ("temperature", "max_tokens", "top_p", "stop", "seed")


def driver_workers(args: argparse.Namespace, config: Any, lms: dict[str, Any]):
    """The ``SharedStudy`` of ``optimize --workers`` (``None`` without it), with the recipe workers rebuild the task from.

    The recipe holds each role's spec and the sampling settings its LM was built with, so a
    worker's LMs answer as the driver's would.
    """
    if not getattr(args, "workers", False):
        return None
    from autoevol_dspy.search.queue import SharedStudy

    def role(spec: str, lm: Any) -> dict[str, Any]:
        return {"spec": spec, "sampling": {k: v for k, v in (lm.kwargs or {}).items() if k in _SAMPLING}}

    recipe = {"command": "optimize", "api_base": redact_url(config.api_base), "rounds": config.rounds,
              "style": config.style, "judge": config.judge,
              "evol_lm": role(config.lm, lms["evol_lm"]),
              "response_lm": role(config.response_lm or config.lm, lms["response_lm"])}
    return SharedStudy(evaluate=not args.coordinate_only, heartbeat_s=args.heartbeat, grace_s=args.grace,
                       max_retry=args.max_retry, recipe=recipe)


def add_worker_command(commands: Any) -> None:
    worker = commands.add_parser(
        "worker", help="evaluate candidates for an optimize --workers run",
        description="Evaluate the candidates that an `autoevol optimize --workers` run puts in its study, until "
        "that run finishes. The LMs, data and settings come from the study; the API key from this machine's "
        "environment (OPENAI_API_KEY).",
    )
    worker.add_argument("--storage", required=True, help="the run's Optuna storage URL, e.g. "
                        "postgresql+psycopg://user@host/db (or sqlite:///RUN_DIR/study.db on the same machine)")
    worker.add_argument("--study", required=True, help="the run's study: the driver's --study-name, by default "
                        "the name of its --out folder")
    worker.add_argument("--api-base", help="this machine's URL of the run's OpenAI-compatible server "
                        "(default: the driver's)")
    worker.add_argument("--threads", type=int, default=4, help="LM calls in flight at once (default 4)")
    worker.add_argument("--wait", type=float, default=600.0, metavar="SECONDS", help="how long to wait for the "
                        "driver to start the study (default 600)")
    worker.add_argument("--idle-timeout", type=float, metavar="SECONDS", help="leave after this long without "
                        "work (default: stay until the run finishes)")
    add_request_options(worker)
    add_output_options(worker)
    worker.set_defaults(handler=run_worker_command)


def run_worker_command(args: argparse.Namespace) -> int:
    """``autoevol worker``: rebuild the driver's task from the study's recipe and evaluate until the run ends."""
    from autoevol_dspy.evolution.method import EvolInstruct
    from autoevol_dspy.search.worker import read_identity, run_worker

    if args.threads < 1:
        raise ConfigurationError(f"--threads must be at least 1, got {args.threads}")
    identity = read_identity(args.storage, args.study, wait_s=args.wait)
    recipe = identity["workers"].get("recipe")
    if not recipe or recipe.get("command") != "optimize":
        raise RunConflictError(f"study {args.study!r} was started from Python, not by autoevol optimize: run its "
                               "workers with autoevol_dspy.run_worker(program, metric, storage=..., study_name=...)")
    api_base = args.api_base or recipe.get("api_base")
    if api_base and "***" in api_base:
        api_base = None  # the driver's URL held credentials, which the study never keeps

    def lm(role: str) -> Any:
        return command_lm(recipe[role]["spec"], api_base=api_base, timeout=args.timeout, retries=args.retries,
                          **recipe[role]["sampling"])

    evol_lm, response_lm = lm("evol_lm"), lm("response_lm")
    task = evolution_task(evol_lm, response_lm, rounds=recipe["rounds"], judge=bool(recipe.get("judge")))
    summary = run_worker(EvolInstruct(style=recipe.get("style") or "rewrite"), task, storage=args.storage,
                         study_name=args.study, lm=evol_lm, num_threads=args.threads, wait_s=args.wait,
                         idle_timeout_s=args.idle_timeout, progress=False if args.no_progress else None)
    print(f"worker done ({summary.reason}): {summary.trials} trial(s), {summary.lm_calls} LM calls, "
          f"{summary.seconds:.1f}s")
    return 0
