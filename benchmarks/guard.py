"""The proposal guard's two error rates: good instructions it refuses, garbage it lets through.

A guard that keeps the 135M model's garbage out must not hold back a strong optimizer LM
(issues 18 and 20). This measures both sides with the default checks, no LM:

* **good** (``guard_sets/good*.jsonl``, 80 in three rounds): instructions from outside the
  embedded model that a person would ship, written by hand for this benchmark in the styles of
  paraphrases, hand-written prompts, COPRO, MIPROv2 and GEPA proposals for strong LMs, and
  evolving methods in the Auto Evol-Instruct paper's style, plus the hand-written instructions
  of ``head_to_head.py``, for 33 predictors (``guard_sets/tasks.jsonl``: the incumbent, the
  signature, cases and feedback the guard sees). The ``tests/data`` references (usable rewrites
  of the embedded data set's incumbents, written for issue 15) are reported beside them.
* **garbage**: every refused-worthy proposal of the embedded SmolLM2-135M on record: the 159
  labelled ones of ``tests/data/embedded_proposals.jsonl`` and 19 more quoted in issue 15 and
  ``RESULTS.md`` (``guard_sets/garbage.jsonl``).

Each proposal is checked as the search checks it: against its incumbent, the cases and feedback
the optimizer saw, and the output fields of the predictor's signature, with the words the
signature gives about them (``signature_terms``, where the measured revision has it).
``--baseline-rev REV`` measures the package at REV in a child process beside the working tree.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parent.parent))  # last: --baseline-rev's child puts REV first

import common  # noqa: E402
import dspy  # noqa: E402
import revisions  # noqa: E402

from autoevol_dspy.search.strategies import proposal_guard  # noqa: E402

SECTION = "Proposal guard: false refusals and catches (issues 18, 20)"
SETS = Path(__file__).resolve().parent / "guard_sets"
EMBEDDED = common.REPO_ROOT / "tests" / "data" / "embedded_proposals.jsonl"
#: The signature of each kind of row in tests/data (the incumbent, cases and feedback are the row's own).
EMBEDDED_TASKS = {"program": "gsm8k-number", "prompt": "review-prompt", "evolution": "evolving-method"}
#: The good sets, by the round of changes to the guard they were written before (see guard_sets/README.md).
GOOD = ("good.jsonl", "good_round2.jsonl", "good_round3.jsonl")
GOAL_FALSE_REFUSALS = 0.05
GOAL_CATCHES = 0.95
ROUNDS = (1, 2, 3)
_TYPES: dict[str, Any] = {"str": str, "bool": bool, "int": int, "list[str]": list[str]}


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def signature(task: dict[str, Any]) -> type[dspy.Signature]:
    """The predictor's signature as the task describes it: typed fields with their descriptions."""
    def field(make: Any, desc: str) -> Any:
        return make(desc=desc) if desc else make()

    fields: dict[str, tuple[Any, Any]] = {name: (str, field(dspy.InputField, desc))
                                          for name, desc in task["inputs"].items()}
    for name, spec in task["outputs"].items():
        kind = spec["type"]
        annotation = Literal[tuple(kind)] if isinstance(kind, list) else _TYPES[kind]  # type: ignore[misc]
        fields[name] = (annotation, field(dspy.OutputField, spec.get("desc", "")))
    return dspy.make_signature(fields, task["incumbent"])


def context(row: dict[str, Any], task: dict[str, Any]) -> proposal_guard.ProposalContext:
    """What the guard of this revision sees: the row's own texts where it has them, the task's otherwise."""
    sig = signature(task)
    extra: dict[str, Any] = {}
    if hasattr(proposal_guard, "signature_terms"):  # the revision reads the signature's words about its outputs
        extra["output_terms"] = proposal_guard.signature_terms(sig)
    return proposal_guard.ProposalContext(
        text=row["proposal"], incumbent=row.get("incumbent", task["incumbent"]), trajectory=row.get("trajectory", ""),
        cases=row.get("cases", task["cases"]), feedback=row.get("feedback", task["feedback"]),
        output_fields=tuple(sig.output_fields), **extra)


def rows() -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(set, group, row, task) for every proposal measured."""
    tasks = {task["task"]: task for task in load(SETS / "tasks.jsonl")}
    out = [("good", row["origin"], row, tasks[row["task"]]) for path in GOOD for row in load(SETS / path)]
    for row in load(EMBEDDED):
        task = tasks[EMBEDDED_TASKS[row["kind"]]]
        if row["label"] == "usable":
            out.append(("reference", f"tests/data {row['kind']}", row, task))
        else:
            out.append(("garbage", f"tests/data {row['kind']}", row, task))
    out += [("garbage", "RESULTS.md and issue 15", {**row, "feedback": ""}, tasks[row["task"]])
            for row in load(SETS / "garbage.jsonl")]
    return out


def measure() -> dict[str, Any]:
    """Every check's verdict on every row, and the guard's first refusal (JSON, for a child process too)."""
    guard = proposal_guard.ProposalGuard()
    checks = [type(check).__name__ for check in guard.checks]
    verdicts = []
    for kind, group, row, task in rows():
        proposal = context(row, task)
        refused = {rejection.check: f"{rejection.category}: {rejection.reason}"
                   for rejection in guard.check_all(proposal)}
        first = next((name for name in checks if name in refused), None)
        verdicts.append({"set": kind, "group": group, "id": row.get("id") or f"{row['kind']}-{row['rollout_id']}",
                         "round": row.get("round"), "text": row["proposal"], "refused": refused, "first": first})
    return {"checks": checks, "verdicts": verdicts}


def measure_at(rev: str) -> dict[str, Any]:
    """``measure()`` with the package as it was at ``rev``, in a child process."""
    with revisions.exported(rev) as env:
        done = subprocess.run([sys.executable, __file__, "--measure-json"], env=env, capture_output=True, text=True,
                              check=False, cwd=common.REPO_ROOT)
    if done.returncode != 0:
        raise SystemExit(f"measuring {rev} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def rate(hits: int, total: int) -> str:
    return f"{hits}/{total} ({100 * hits / total:.1f}%)" if total else "0/0"


def counts(result: dict[str, Any], kind: str, check: str | None = None, *, round_: int | None = None
           ) -> tuple[int, int]:
    rows_ = [v for v in result["verdicts"] if v["set"] == kind and round_ in (None, v["round"])]
    hit = sum((v["first"] is not None) if check is None else (check in v["refused"]) for v in rows_)
    return hit, len(rows_)


def totals_table(results: dict[str, dict[str, Any]]) -> str:
    lines = []
    for label, result in results.items():
        lines.append([label, rate(*counts(result, "good")),
                      *(rate(*counts(result, "good", round_=round_)) for round_ in ROUNDS),
                      rate(*counts(result, "reference")), rate(*counts(result, "garbage"))])
    return common.markdown_table(["guard", "good: false refusals", *(f"of them round {r}" for r in ROUNDS),
                                  "tests/data references: false refusals", "garbage: caught"], lines)


def checks_table(results: dict[str, dict[str, Any]]) -> str:
    names = list(dict.fromkeys(name for result in results.values() for name in result["checks"]))
    lines = []
    for name in names:
        line = [name]
        for result in results.values():
            present = name in result["checks"]
            line += [rate(*counts(result, "good", name)) if present else "-",
                     rate(*counts(result, "garbage", name)) if present else "-"]
        lines.append(line)
    headers = ["check (alone)"]
    for label in results:
        headers += [f"{label}: good refused", f"{label}: garbage caught"]
    return common.markdown_table(headers, lines)


def groups_table(results: dict[str, dict[str, Any]], kind: str, *, what: str) -> str:
    groups = list(dict.fromkeys(v["group"] for v in next(iter(results.values()))["verdicts"] if v["set"] == kind))
    lines = []
    for group in groups:
        line = [group]
        for result in results.values():
            rows_ = [v for v in result["verdicts"] if v["set"] == kind and v["group"] == group]
            line.append(rate(sum(v["first"] is not None for v in rows_), len(rows_)))
        lines.append(line)
    return common.markdown_table([kind if kind != "good" else "origin", *(f"{label}: {what}" for label in results)],
                                 lines)


def listing(result: dict[str, Any], kind: str, *, refused: bool) -> list[str]:
    out = []
    for v in result["verdicts"]:
        if v["set"] == kind and (v["first"] is not None) == refused:
            text = " ".join(v["text"].split())
            text = text if len(text) <= 140 else text[:139] + "…"
            why = f" - {v['first']}: {v['refused'][v['first']]}" if refused else ""
            where = f"{v['group']}, round {v['round']}" if v["round"] else v["group"]
            out.append(f"- `{v['id']}` ({where}): \"{text}\"{why}")
    return out or ["- none"]


def section(results: dict[str, dict[str, Any]], argv: Sequence[str], info: dict[str, Any]) -> str:
    after = list(results)[-1]
    good_hit, good_n = counts(results[after], "good")
    garbage_hit, garbage_n = counts(results[after], "garbage")
    met = good_hit <= GOAL_FALSE_REFUSALS * good_n and garbage_hit >= GOAL_CATCHES * garbage_n
    parts = [
        f"Command: `{shlex.join(['python', 'benchmarks/guard.py', *argv])}`",
        common.machine_line(info),
        "The default `ProposalGuard` (rule checks, no LM) on every proposal of the sets below, each checked "
        "against its incumbent, the cases and feedback the optimizer saw and the predictor's signature, as the "
        "search checks it. Good: 80 instructions written by hand for this benchmark (paraphrases that name the "
        "output in other words, hand-written, COPRO-, MIPROv2- and GEPA-style proposals for strong LMs, evolving "
        "methods in the paper's style, `head_to_head.py`'s hand-written instructions) for 33 predictors, in three "
        "rounds, each written before the change to the guard that it led to (so they were used to tune it: "
        "round 3 only for the last change, which removed a requirement); garbage: "
        "the embedded SmolLM2-135M's proposals on record (159 labelled in `tests/data/embedded_proposals.jsonl`, "
        "15 quoted in issue 15 and this file). `benchmarks/guard_sets/README.md` says where each comes from.",
        f"Goal (good set: false refusals <= {GOAL_FALSE_REFUSALS:.0%}; garbage: caught >= {GOAL_CATCHES:.0%}) "
        f"with {after}: **{'met' if met else 'not met'}** ({rate(good_hit, good_n)} refused, "
        f"{rate(garbage_hit, garbage_n)} caught).",
        totals_table(results),
        "Each check alone (a proposal may be refused by several):",
        checks_table(results),
        "Good set by origin, refused:",
        groups_table(results, "good", what="refused"),
        "Garbage by source, caught:",
        groups_table(results, "garbage", what="caught"),
    ]
    for label, result in results.items():
        parts += [f"Good instructions refused by {label}:", "\n".join(listing(result, "good", refused=True))]
    parts += [f"Garbage let through by {after}:", "\n".join(listing(results[after], "garbage", refused=False))]
    return "\n\n".join(parts)


def _this_revision() -> str:
    """HEAD's short hash, with "+ changes" when the package differs from it in the working tree."""
    changed = subprocess.run(["git", "status", "--porcelain", "autoevol_dspy"], cwd=common.REPO_ROOT,
                             capture_output=True, text=True, check=False).stdout.strip()
    return revisions.short_hash("HEAD") + (" + changes" if changed else "")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-rev", default=None, help="also measure the package at this git revision")
    parser.add_argument("--results", type=Path, default=common.DEFAULT_RESULTS, help="the RESULTS.md to update")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    parser.add_argument("--smoke", action="store_true", help="the same run (it takes seconds); for CI")
    parser.add_argument("--measure-json", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.measure_json:
        print(json.dumps(measure()))
        return 0
    info = common.machine_info()
    results: dict[str, dict[str, Any]] = {}
    if args.baseline_rev:
        results[f"before ({revisions.short_hash(args.baseline_rev)})"] = measure_at(args.baseline_rev)
    results[f"after ({_this_revision()})" if args.baseline_rev else f"this revision ({_this_revision()})"] = measure()
    shown = [a for i, a in enumerate(argv) if not (a.startswith("--results") or argv[i - 1:i] == ["--results"])]
    body = section(results, shown, info)
    print(body)
    if not args.no_write:
        common.write_section(args.results, SECTION, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
