"""The Escape Room results sweep: ER(2,1), ER(3,2), ER(5,2) x MetaGrad, dual-RL, AMD and no designer x 5 seeds.

Runs locally (sequentially or with ``--workers``) or on Ray (``--runner ray``; ``--address auto`` on a cluster),
resumes when run again, then writes the result tables and learning curves under ``<out>/results/``::

    python examples/sweep_er.py --smoke                # 2 rooms x 2 algorithms x 2 seeds, ~30 s
    python examples/sweep_er.py --workers 2            # the full grid on this machine (hours)
    python examples/sweep_er.py --runner ray --address auto   # the full grid on a Ray cluster
    python examples/sweep_er.py --write-spec er.json   # the grid as a spec for `python -m designer sweep er.json`

On a cluster, ``--out`` must be a folder every node sees (e.g. an NFS mount): each trial writes its logs and
checkpoints there, which is also what lets an interrupted sweep resume.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from designer.experiments.aggregate import write_results
from designer.experiments.spec import AlgorithmSpec, Sweep, TaskSpec
from designer.experiments.sweep import run_sweep

ROOMS = {"er_n2_m1": (2, 1), "er_n3_m2": (3, 2), "er_n5_m2": (5, 2)}


def er_sweep(*, smoke: bool = False) -> Sweep:
    """The ER grid; ``smoke`` shrinks it to two small rooms, two algorithms, two seeds and 300 episodes."""
    rooms = dict(list(ROOMS.items())[:2]) if smoke else ROOMS
    algorithms = [AlgorithmSpec("metagrad"), AlgorithmSpec("none")]
    if not smoke:
        # AMD pays per agent (its planner outputs one incentive per agent, as Baumann et al.)
        algorithms[1:1] = [AlgorithmSpec("dual_rl"), AlgorithmSpec("amd", {"output": "agent"})]
    return Sweep(
        name="er_smoke" if smoke else "er",
        tasks=tuple(TaskSpec("escape_room", {"n_agents": n, "min_at_lever": m}, label)
                    for label, (n, m) in rooms.items()),
        algorithms=tuple(algorithms),
        seeds=tuple(range(2 if smoke else 5)),
        train={"episodes": 300, "eval_period": 50, "eval_episodes": 10, "checkpoint_period": 100} if smoke
        else {"episodes": 20000, "eval_period": 100, "eval_episodes": 10, "checkpoint_period": 1000},
        max_retries=1,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a tiny grid that finishes in seconds")
    parser.add_argument("--out", default=None, help="sweep folder (default: runs/sweeps/<name>)")
    parser.add_argument("--runner", default="local", choices=("local", "ray"))
    parser.add_argument("--workers", type=int, default=1, help="local runner: parallel trial processes")
    parser.add_argument("--address", default=None, help='ray runner: "auto" on a cluster node')
    parser.add_argument("--write-spec", default=None, help="only write the grid as a JSON spec file and exit")
    args = parser.parse_args(argv)
    sweep = er_sweep(smoke=args.smoke)
    if args.write_spec:
        Path(args.write_spec).write_text(json.dumps(sweep.to_dict(), indent=2) + "\n")
        print(f"spec: {args.write_spec}")
        return 0
    out = Path(args.out) if args.out else Path("runs") / "sweeps" / sweep.name
    summary = run_sweep(sweep, out, runner=args.runner, workers=args.workers, address=args.address)
    print(summary.table())
    written = write_results(out)
    print(written["table"].read_text())
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
