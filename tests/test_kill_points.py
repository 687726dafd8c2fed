"""Kill at chosen points (``AUTOEVOL_KILL_AT``, SIGKILL): every rerun resumes and ends like an uninterrupted run.

The points: half-way through writing ``run.json``; right after the study is created and
right after its identity (settings and data fingerprints, one write) is saved; right after a
step plan is saved; just before a step outcome is saved. A damaged ``run.json`` (cut short
by something other than this package) is rebuilt by the next run and skipped by ``report``.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from autoevol_dspy.files import TEMPORARY_SUFFIX
from autoevol_dspy.killpoints import ENV
from autoevol_dspy.testing import StubServer
from faulty_world import (
    assert_no_outage_saved_as_a_result,
    final_state,
    initial_method_file,
    optimize_args,
    respond,
    run_cli,
)

KILLED = -signal.SIGKILL


@pytest.fixture(scope="module")
def stub():
    with StubServer(respond) as server:
        yield server


@pytest.fixture(scope="module")
def uninterrupted(stub, tmp_path_factory) -> dict:
    directory = tmp_path_factory.mktemp("uninterrupted")
    done = run_cli(*optimize_args(stub.base_url, directory / "run", initial_method_file(directory)),
                   env={"DSPY_CACHEDIR": str(directory / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    return final_state(directory / "run")


def _run(stub: StubServer, tmp_path: Path, kill_at: str | None = None):
    env = {"DSPY_CACHEDIR": str(tmp_path / "cache")}
    if kill_at:
        env[ENV] = kill_at
    return run_cli(*optimize_args(stub.base_url, tmp_path / "run", initial_method_file(tmp_path)), env=env)


@pytest.mark.parametrize("point", ["study-created", "study-identity-saved", "plan-saved", "outcome-unsaved",
                                   "half-written:run.json"])
def test_a_kill_at_this_point_resumes_to_the_same_end(point, stub, uninterrupted, tmp_path):
    killed = _run(stub, tmp_path, kill_at=point)
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    run_dir = tmp_path / "run"
    if point == "half-written:run.json":
        # Killed with half of run.json written: only a temporary file holds it, run.json never existed.
        assert not (run_dir / "run.json").exists()
        assert list(run_dir.glob(f".run.json.*{TEMPORARY_SUFFIX}"))
    requests = stub.stats()["requests"]
    resumed = _run(stub, tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "data changed" not in resumed.stderr and "different settings" not in resumed.stderr
    assert_no_outage_saved_as_a_result(run_dir)
    assert final_state(run_dir) == uninterrupted  # same method, rates, and one trial per (step, candidate)
    assert not list(run_dir.glob(f".*{TEMPORARY_SUFFIX}")), "a temporary file was left behind"
    if point == "half-written:run.json":
        assert stub.stats()["requests"] == requests, "the finished search was recomputed"


def test_a_kill_while_rewriting_run_json_keeps_the_old_one(stub, uninterrupted, tmp_path):
    assert _run(stub, tmp_path).returncode == 0
    before = (tmp_path / "run" / "run.json").read_text(encoding="utf-8")
    killed = _run(stub, tmp_path, kill_at="half-written:run.json")
    assert killed.returncode == KILLED
    assert (tmp_path / "run" / "run.json").read_text(encoding="utf-8") == before  # whole, and still the old one
    assert _run(stub, tmp_path).returncode == 0
    assert final_state(tmp_path / "run") == uninterrupted


def test_a_damaged_run_json_is_rebuilt_by_optimize_and_skipped_by_report(stub, uninterrupted, tmp_path):
    assert _run(stub, tmp_path).returncode == 0
    run_json = tmp_path / "run" / "run.json"
    text = run_json.read_text(encoding="utf-8")
    run_json.write_text(text[: len(text) // 2], encoding="utf-8")  # cut short by a non-atomic copy, a full disk

    report = run_cli("report", str(tmp_path / "run"))
    assert report.returncode == 0, report.stderr[-3000:]
    assert "Traceback" not in report.stderr and "is not valid JSON" in report.stderr

    again = _run(stub, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Traceback" not in again.stderr and "is not valid JSON" in again.stderr
    assert json.loads(run_json.read_text(encoding="utf-8"))["summary"]  # rebuilt from the study
    assert final_state(tmp_path / "run") == uninterrupted
