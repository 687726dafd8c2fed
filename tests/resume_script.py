"""Run a small optimization against a SQLite study; optionally SIGKILL itself midway (for resume tests).

Usage: python resume_script.py RUN_DIR OUT_JSON [KILL_AFTER_EVOLUTION_CALLS]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from autoevol_dspy import AutoEvolInstruct, EvolInstruct  # noqa: E402
from autoevol_dspy.search.strategies import NoImprovement  # noqa: E402
from world import World, kill_after_evolutions, method, seeds  # noqa: E402


def main() -> None:
    run_dir, out_path = Path(sys.argv[1]), Path(sys.argv[2])
    kill_after = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    world = World({60: [method(50), method(20), method(40)], 20: [method(25), method(10)]})
    kill_after_evolutions(world, kill_after)
    data = seeds(40)
    optimizer = AutoEvolInstruct(
        lm=world.lm, optimizer_lm=world.lm, num_candidates=3, batch_sampler=4, dev_size=20, max_steps=2,
        stopper=NoImprovement(patience=2), num_threads=2, run_dir=run_dir, progress=False,
    )
    compiled = optimizer.compile(EvolInstruct(method(60)), trainset=data)
    result = optimizer.result
    out_path.write_text(json.dumps({
        "method": compiled.method,
        "trials": [[t.step, t.candidate_key, t.status] for t in result.trials],
        "rates": result.failure_rate_by_step,
        "evolution_calls_this_process": world.engine.count("evolution"),
    }))


if __name__ == "__main__":
    main()
