"""A small shared-study optimization whose driver evaluates too; optionally SIGKILLed midway (resume tests).

Usage: python shared_resume_script.py STORAGE_URL|none OUT_JSON [KILL_AFTER_EVOLUTION_CALLS]
(``none``: the same run in one process, without a shared study).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from autoevol_dspy import AutoEvolInstruct, EvolInstruct, SharedStudy  # noqa: E402
from autoevol_dspy.search.strategies import NoImprovement  # noqa: E402
from world import World, kill_after_evolutions, method, seeds  # noqa: E402


def main() -> None:
    storage, out_path = sys.argv[1], Path(sys.argv[2])
    kill_after = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    world = World({60: [method(50), method(20), method(40)], 20: [method(25), method(10)]})
    kill_after_evolutions(world, kill_after)
    shared = storage != "none"
    optimizer = AutoEvolInstruct(
        lm=world.lm, optimizer_lm=world.lm, num_candidates=3, batch_sampler=4, dev_size=20, max_steps=2,
        stopper=NoImprovement(patience=2), num_threads=2, progress=False, storage=storage if shared else None,
        workers=SharedStudy(heartbeat_s=1, grace_s=2, poll_s=0.05) if shared else None,
    )
    compiled = optimizer.compile(EvolInstruct(method(60)), trainset=seeds(40))
    out_path.write_text(json.dumps({"method": compiled.method, "rates": optimizer.result.failure_rate_by_step}))


if __name__ == "__main__":
    main()
