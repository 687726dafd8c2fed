"""Nothing reaches the network unless an LM spec points there.

The command line runs with an audit hook that refuses (and records) every name lookup and
connection outside loopback, as on a machine with no network; the LMs point at a stub on
127.0.0.1. DSPy would otherwise fetch LiteLLM's model price map from GitHub on first use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from autoevol_dspy.testing import StubServer
from faulty_world import SEEDS, initial_method_file, optimize_args, respond

#: Runs the CLI (or a snippet) after installing the hook; attempts go to NET_LOG, one JSON line each.
GUARD = r'''
import json, os, sys

LOOPBACK = {"127.0.0.1", "::1", "localhost", None}
log = os.environ["NET_LOG"]

def refuse(event, target):
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"event": event, "target": repr(target)}) + "\n")
    raise OSError(101, "Network is unreachable (test guard)")

def hook(event, args):
    if event == "socket.getaddrinfo":
        host = args[0].decode() if isinstance(args[0], bytes) else args[0]
        if host not in LOOPBACK:
            refuse(event, host)
    elif event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            refuse(event, address)

sys.addaudithook(hook)
if sys.argv[1] == "-c":
    exec(sys.argv[2])
else:
    from autoevol_dspy.cli.main import main
    sys.exit(main(sys.argv[1:]))
'''


def _guarded(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    log = tmp_path / "network.jsonl"
    env = {key: value for key, value in os.environ.items()
           if key not in ("OPENAI_API_KEY", "LITELLM_LOCAL_MODEL_COST_MAP", "LITELLM_MODEL_COST_MAP_URL")}
    env.update(NET_LOG=str(log), DSPY_CACHEDIR=str(tmp_path / "cache"))
    done = subprocess.run([sys.executable, "-c", GUARD, *args], capture_output=True, text=True, timeout=300, env=env)
    attempts = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, attempts


def test_the_commands_make_no_connection_outside_loopback(tmp_path):
    with StubServer(respond) as stub:
        run = tmp_path / "run"
        optimize, tried = _guarded(tmp_path, *optimize_args(stub.base_url, run, initial_method_file(tmp_path)))
        assert optimize.returncode == 0, optimize.stderr[-3000:]
        report, tried_report = _guarded(tmp_path, "report", str(run))
        evolve, tried_evolve = _guarded(tmp_path, "evolve", str(SEEDS), "--method", str(run), "--out",
                                        str(tmp_path / "evolved.jsonl"), "--lm", "openai/stub", "--api-base",
                                        stub.base_url, "--no-progress")
        assert stub.stats()["total"] > 0  # the LM traffic went to the loopback stub
    assert report.returncode == 0 and evolve.returncode == 0, report.stderr[-2000:] + evolve.stderr[-2000:]
    assert tried + tried_report + tried_evolve == []
    assert "refresh failed" not in optimize.stderr  # DSPy never tried to fetch its price map


def test_the_python_api_uses_the_packaged_price_map(tmp_path):
    snippet = (
        "import json, autoevol_dspy\n"
        "from dspy.clients.model_metadata import source_info, model_info\n"
        "model_info('openai', 'gpt-4o-mini')\n"
        "print(json.dumps(source_info()))\n"
    )
    done, tried = _guarded(tmp_path, "-c", snippet)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    assert info["is_env_forced"] is True and info["source"] == "local"
    assert tried == []
