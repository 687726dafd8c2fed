"""Fault injection: the command line against a loopback stub that answers 429, 500, an empty body, invalid JSON,
garbage content, or hangs past the timeout, at a given rate.

For each fault: the run either absorbs it (retries, the adapter's JSON fallback) or stops with
one clear line; nothing an outage produced is saved as a result; and a rerun against the
healed stub ends with the same method, rates and trials as a run that never saw a fault.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoevol_dspy.cli.errors import EXIT_LM
from autoevol_dspy.testing import FAULT_KINDS, Fault, StubServer
from faulty_world import (
    SEEDS,
    assert_no_outage_saved_as_a_result,
    assert_one_line_error,
    final_state,
    initial_method_file,
    optimize_args,
    quality_of,
    respond,
    run_cli,
    study_records,
    write_prompt_files,
)
from world import bucket, method

#: The share of requests that get the fault in the runs that stop on it.
RATE = 0.2
#: Client timeout for the hang: a hang holds a request for HANG_S, well past it.
TIMEOUT = ["--timeout", "1"]
HANG_S = 5.0
#: How a reply that stays unreadable is recorded: the evolution did not parse, or the answer came back empty.
UNREADABLE = ("unparseable_evolution", "empty_response")


def _fault(kind: str, rate: float) -> Fault:
    return Fault(kind, rate=rate, hang_s=HANG_S)


@pytest.fixture(scope="module")
def never_faulted(tmp_path_factory) -> dict:
    """The run that never saw a fault: what every faulted run must end with."""
    directory = tmp_path_factory.mktemp("reference")
    with StubServer(respond) as stub:
        done = run_cli(*optimize_args(stub.base_url, directory / "run", initial_method_file(directory)),
                       env={"DSPY_CACHEDIR": str(directory / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    state = final_state(directory / "run")
    assert quality_of(state["method"]) == 10  # two accepted steps: 90 -> 50 -> 10
    return state


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_without_retries_a_fault_stops_the_run_cleanly_and_the_rerun_matches(kind, never_faulted, tmp_path):
    out, env = tmp_path / "run", {"DSPY_CACHEDIR": str(tmp_path / "cache")}
    args = optimize_args("BASE", out, initial_method_file(tmp_path), "--retries", "0", *TIMEOUT)
    with StubServer(respond, faults=[_fault(kind, RATE)], seed=3) as stub:
        args[args.index("BASE")] = stub.base_url
        faulted = run_cli(*args, env=env)
        injected = stub.stats()["faults"].get(kind, 0)
        assert injected, "the fault never fired"
        if kind == "garbage":
            # A 200 with unreadable content is the LM's answer, not an outage: DSPy's adapter asks again in
            # JSON, and a reply that still does not parse is that case's failure. The run finishes.
            assert faulted.returncode == 0, faulted.stderr[-3000:]
        else:
            assert_one_line_error(faulted, "an LM call failed", "rerun", code=EXIT_LM)
            assert not (out / "method.txt").exists() and not (out / "result.json").exists()
        assert_no_outage_saved_as_a_result(out)

        stub.set_faults([])  # the server is healthy again
        rerun = run_cli(*args, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_no_outage_saved_as_a_result(out)
    assert final_state(out) == never_faulted


def test_with_retries_every_fault_at_once_is_absorbed(never_faulted, tmp_path):
    """All six faults together on an eighth of the requests: retried (or re-asked); the run ends as if healthy."""
    faults = [_fault(kind, 0.125 / len(FAULT_KINDS)) for kind in FAULT_KINDS]
    out = tmp_path / "run"
    with StubServer(respond, faults=faults, seed=5) as stub:
        done = run_cli(*optimize_args(stub.base_url, out, initial_method_file(tmp_path), "--retries", "4", *TIMEOUT),
                       env={"DSPY_CACHEDIR": str(tmp_path / "cache")})
        stats = stub.stats()
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(stats["faults"]) >= 3 and sum(stats["faults"].values()) >= 5, stats
    assert_no_outage_saved_as_a_result(out)
    assert final_state(out) == never_faulted


# Whole-dataset evolution ---------------------------------------------------------------------------


def _evolve_args(api_base: str, method_file: Path, out: Path, *extra: str) -> list[str]:
    return ["evolve", str(SEEDS), "--method", str(method_file), "--out", str(out), "--rounds", "2", "--lm",
            "openai/stub", "--api-base", api_base, "--threads", "2", "--no-progress", *extra]


def _rows(path: Path) -> list[tuple]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return sorted((r["seed_id"], r["round"], r["evolved_instruction"], r["response"], r["failure"]) for r in rows)


@pytest.fixture(scope="module")
def evolved_without_faults(tmp_path_factory) -> list[tuple]:
    directory = tmp_path_factory.mktemp("evolve-reference")
    method_file = directory / "method.txt"
    method_file.write_text(method(30), encoding="utf-8")
    with StubServer(respond) as stub:
        done = run_cli(*_evolve_args(stub.base_url, method_file, directory / "out.jsonl"),
                       env={"DSPY_CACHEDIR": str(directory / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    return _rows(directory / "out.jsonl")


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_an_evolution_that_ends_incomplete_says_so_and_the_rerun_completes_it(kind, evolved_without_faults,
                                                                              tmp_path):
    method_file = tmp_path / "method.txt"
    method_file.write_text(method(30), encoding="utf-8")
    out, env = tmp_path / "out.jsonl", {"DSPY_CACHEDIR": str(tmp_path / "cache")}
    args = _evolve_args("BASE", method_file, out, "--retries", "0", *TIMEOUT)
    with StubServer(respond, faults=[_fault(kind, RATE)], seed=3) as stub:
        args[args.index("BASE")] = stub.base_url
        faulted = run_cli(*args, env=env)
        assert stub.stats()["faults"].get(kind), "the fault never fired"
        if kind == "garbage":
            assert faulted.returncode == 0, faulted.stderr[-3000:]
        else:
            line = assert_one_line_error(faulted, "rerun", code=EXIT_LM)
            assert "incomplete" in line or "LM errors" in line
            done = {(row[0], row[1]) for row in _rows(out)}
            assert done < {(row[0], row[1]) for row in evolved_without_faults}, "no row was missing"
        stub.set_faults([])
        rerun = run_cli(*args, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    if kind != "garbage":
        assert _rows(out) == evolved_without_faults
        return
    # Garbage that stayed unreadable after the adapter's JSON re-ask is that row's failure (an unparseable
    # evolution, or an empty answer; its chain ends there), recorded as such; every other row is the
    # fault-free run's.
    rows = _rows(out)
    unreadable = {row[0]: row[1] for row in rows if row[4] in UNREADABLE}
    expected = [row for row in evolved_without_faults if row[0] not in unreadable or row[1] < unreadable[row[0]]]
    assert [row for row in rows if row[4] not in UNREADABLE] == expected


# The prompt command ---------------------------------------------------------------------------------


def _prompt_run(api_base: str, directory: Path, out: Path, *extra: str):
    return run_cli("prompt", *write_prompt_files(directory), "--out", str(out), "--lm", "openai/stub",
                   "--api-base", api_base, *extra, env={"DSPY_CACHEDIR": str(out.parent / f"{out.name}-cache")})


def test_an_outage_during_the_held_out_check_is_not_a_result(tmp_path):
    """The held-out measurement fails: no "1.000 -> 1.000", no prompt_result.json, one line; the rerun finishes it."""
    with StubServer(respond) as stub:
        healthy = _prompt_run(stub.base_url, tmp_path, tmp_path / "healthy")
        total = stub.stats()["requests"]
    assert healthy.returncode == 0, healthy.stderr[-3000:]
    reference = json.loads((tmp_path / "healthy" / "prompt_result.json").read_text(encoding="utf-8"))
    held_out_calls = sum(role["calls"] for role in reference["holdout_usage"]["by_role"].values())
    assert held_out_calls > 0 and "1.000 -> 0.000" in healthy.stdout

    out = tmp_path / "faulted"
    down_for_the_check = Fault("server_error", rate=1.0, after=total - held_out_calls)
    with StubServer(respond, faults=[down_for_the_check]) as stub:
        faulted = _prompt_run(stub.base_url, tmp_path, out, "--retries", "0")
        assert stub.stats()["faults"]["server_error"] >= 1
        assert_one_line_error(faulted, "an LM call failed", "rerun", code=EXIT_LM)
        assert "1.000 -> 1.000" not in faulted.stdout and "held-out failure rate" not in faulted.stdout
        assert not (out / "prompt_result.json").exists() and not (out / "prompt.txt").exists()

        stub.set_faults([])
        stub.reset()
        rerun = _prompt_run(stub.base_url, tmp_path, out, "--retries", "0")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert stub.stats()["requests"] <= held_out_calls  # only the held-out check was left to do
    result = json.loads((out / "prompt_result.json").read_text(encoding="utf-8"))
    for key in ("prompt", "holdout_failure_rate_before", "holdout_failure_rate_after", "holdout_size"):
        assert result[key] == reference[key], key
    assert "1.000 -> 0.000" in rerun.stdout


@pytest.mark.parametrize("calls", [("analysis", "rewrite"), ("evolution",)], ids=["optimizer", "evolution"])
def test_when_every_call_of_one_role_fails_no_step_is_saved_from_it(calls, never_faulted, tmp_path):
    """The optimizer LM (or the evol LM) is down from the first step on: no empty plan, no outcome, no
    failed trial counted as a result; exit 3 in one line; the rerun on a healthy server ends as if nothing failed."""
    out, env = tmp_path / "run", {"DSPY_CACHEDIR": str(tmp_path / "cache")}
    args = optimize_args("BASE", out, initial_method_file(tmp_path), "--retries", "0")
    after = 5 if calls == ("evolution",) else 0  # the evol LM fails half-way through the baseline's 10 cases
    with StubServer(respond, faults=[Fault("server_error", rate=1.0, after=after, only=calls)]) as stub:
        args[args.index("BASE")] = stub.base_url
        faulted = run_cli(*args, env=env)
        assert_one_line_error(faulted, "an LM call failed", "rerun", code=EXIT_LM)
        assert_no_outage_saved_as_a_result(out)
        tracker = study_records(out)
        assert tracker.plans() == [] and tracker.outcomes() == []
        finished = [trial for trial in tracker.trials() if trial.status != "failed"]
        # Only the baseline, which needs no optimizer call, may have finished.
        assert [trial.step for trial in finished] == ([0] if calls != ("evolution",) else [])
        stub.set_faults([])
        rerun = run_cli(*args, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert final_state(out) == never_faulted


# A server that answers 200 with garbage --------------------------------------------------------------

#: Garbage content in 200 replies: on every request, on the optimizer LM's alone, from the middle of the run on.
GARBAGE = {
    "every request": Fault("garbage", rate=1.0),
    "the optimizer's requests": Fault("garbage", rate=1.0, only=("analysis", "rewrite")),
    "after 31 healthy requests": Fault("garbage", rate=1.0, after=31),  # from step 2 on
}
#: The one line a run that met such a server ends with.
GARBAGE_LINE = ("the LM hosted_vllm/stub answers with text that does not parse", "rerun")


@pytest.mark.parametrize("name", list(GARBAGE))
def test_a_server_that_answers_garbage_stops_optimize_and_none_of_it_is_a_result(name, never_faulted, tmp_path):
    """Not "dev failure rate 1.000" and exit 0: one line naming the LM, no trial or plan made of garbage, and the
    rerun against the healed server (which asks again instead of replaying the garbage) ends as if it never was."""
    out, env = tmp_path / "run", {"DSPY_CACHEDIR": str(tmp_path / "cache")}
    args = optimize_args("BASE", out, initial_method_file(tmp_path), "--retries", "0")
    with StubServer(respond, faults=[GARBAGE[name]]) as stub:
        args[args.index("BASE")] = stub.base_url
        faulted = run_cli(*args, env=env)
        assert stub.stats()["faults"]["garbage"]
        assert_one_line_error(faulted, *GARBAGE_LINE, code=3)
        assert not (out / "method.txt").exists() and not (out / "result.json").exists()
        assert_no_outage_saved_as_a_result(out)
        for trial in study_records(out).trials():  # a finished trial holds no garbage (a failed one may)
            assert trial.status == "failed" or not set(trial.failures_by_category) & set(UNREADABLE), trial
        stub.set_faults([])
        rerun = run_cli(*args, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert final_state(out) == never_faulted


@pytest.mark.parametrize("name", ["every request", "the answers", "after 40 healthy requests"])
def test_a_server_that_answers_garbage_stops_evolve_and_no_row_of_it_is_saved(name, evolved_without_faults,
                                                                              tmp_path):
    fault = {"every request": Fault("garbage", rate=1.0),
             "the answers": Fault("garbage", rate=1.0, only=("response",)),
             "after 40 healthy requests": Fault("garbage", rate=1.0, after=40)}[name]
    method_file = tmp_path / "method.txt"
    method_file.write_text(method(30), encoding="utf-8")
    out, env = tmp_path / "out.jsonl", {"DSPY_CACHEDIR": str(tmp_path / "cache")}
    args = _evolve_args("BASE", method_file, out, "--retries", "0")
    with StubServer(respond, faults=[fault]) as stub:
        args[args.index("BASE")] = stub.base_url
        faulted = run_cli(*args, env=env)
        assert stub.stats()["faults"]["garbage"] >= 8
        assert_one_line_error(faulted, *GARBAGE_LINE, code=3)
        rows = _rows(out) if out.exists() else []
        assert not [row for row in rows if row[4] in UNREADABLE], "a garbage reply was saved as a failure"
        assert set(rows) < set(evolved_without_faults)  # what was saved is what a healthy server gives
        stub.set_faults([])
        rerun = run_cli(*args, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert _rows(out) == evolved_without_faults


def _sometimes_unreadable(call) -> dict | str:
    """A working LM that fails to parse a quarter of its evolutions (the same ones every time)."""
    if call.kind == "evolution" and bucket(call.inputs["instruction"]) < 25:
        return "Sure! Here is a harder version, I think, of what you asked, but in no format at all."
    return respond(call)


def test_an_lm_whose_replies_fail_to_parse_now_and_then_keeps_those_failures_as_results(tmp_path):
    """The other side: replies that do not parse while most do are that case's failure, saved as a row."""
    method_file = tmp_path / "method.txt"
    method_file.write_text(method(30), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with StubServer(_sometimes_unreadable) as stub:
        done = run_cli(*_evolve_args(stub.base_url, method_file, out, "--retries", "0"),
                       env={"DSPY_CACHEDIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _rows(out)
    unreadable = [row for row in rows if row[4] == "unparseable_evolution"]
    assert unreadable and len(rows) > len(unreadable)
    assert {row[0] for row in rows} == {json.loads(line)["id"] for line in SEEDS.read_text(encoding="utf-8").splitlines()}


def test_a_server_that_answers_garbage_stops_the_prompt_command(tmp_path):
    out = tmp_path / "run"
    with StubServer(respond, faults=[Fault("garbage", rate=1.0)]) as stub:
        faulted = _prompt_run(stub.base_url, tmp_path, out, "--retries", "0")
    assert_one_line_error(faulted, *GARBAGE_LINE, code=3)
    assert "held-out failure rate" not in faulted.stdout
    assert not (out / "prompt_result.json").exists() and not (out / "prompt.txt").exists()
