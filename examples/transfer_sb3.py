"""Train stable-baselines3 PPO agents from scratch under a frozen incentive, and without it, on Escape Room.

    python examples/transfer_sb3.py                                   # fixed table: pay the lever action 2
    python examples/transfer_sb3.py --checkpoint runs/er32/designer.pt   # a learned MetaGrad incentive
    python examples/transfer_sb3.py --timesteps 60000 --seeds 0 1 2 --independent

Prints per-seed and mean +- std welfare, incentives paid and designer net return, and saves a PNG of welfare
over training with vs without the incentive.
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import dataclass, field
from pathlib import Path

from designer.sb3 import compare_transfer
from incentive_envs.escape_room import optimal_welfare, parallel_env
from wrappers.incentive import ActionTable


@dataclass
class Args:
    n_agents: int = 3
    """N: agents in the room"""
    min_at_lever: int = 2
    """M: agents needed at the lever to open the door"""
    checkpoint: Path | None = None
    """MetaGrad checkpoint to load as the frozen incentive (default: the fixed table below)"""
    lever_payment: float = 2.0
    """fixed table: payment for choosing the lever (start and door are paid 0)"""
    timesteps: int = 30_000
    """joint env steps per seed"""
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    """training seeds"""
    n_eval_episodes: int = 20
    """evaluation episodes per seed"""
    independent: bool = False
    """one PPO model per agent instead of one shared policy"""
    out: Path = Path("runs/transfer_sb3")
    """where the CSVs and the PNG go"""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Args()
    parser.add_argument("--n-agents", type=int, default=defaults.n_agents)
    parser.add_argument("--min-at-lever", type=int, default=defaults.min_at_lever)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--lever-payment", type=float, default=defaults.lever_payment)
    parser.add_argument("--timesteps", type=int, default=defaults.timesteps)
    parser.add_argument("--seeds", type=int, nargs="+", default=defaults.seeds)
    parser.add_argument("--n-eval-episodes", type=int, default=defaults.n_eval_episodes)
    parser.add_argument("--independent", action="store_true")
    parser.add_argument("--out", type=Path, default=defaults.out)
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    args = parse_args()

    # ENV: Escape Room ER(N, M); the social optimum is 10 (N - M) - M
    env_fn = functools.partial(parallel_env, n_agents=args.n_agents, min_at_lever=args.min_at_lever)

    # FROZEN INCENTIVE: a learned designer, or a table paying the lever action
    if args.checkpoint is not None:
        from designer import load_incentive

        incentive_fn = load_incentive(args.checkpoint)
    else:
        incentive_fn = ActionTable([args.lever_payment, 0.0, 0.0])
    print(f"incentive: {incentive_fn}")

    # TRANSFER: train PPO from scratch with and without the incentive on the same seeds
    result = compare_transfer(
        env_fn,
        incentive_fn,
        total_timesteps=args.timesteps,
        seeds=args.seeds,
        n_eval_episodes=args.n_eval_episodes,
        independent=args.independent,
        log_dir=args.out,
        optimum=optimal_welfare(args.n_agents, args.min_at_lever),
    )

    # REPORT
    print(result.table())
    print(f"\nsocial optimum: {optimal_welfare(args.n_agents, args.min_at_lever):.0f}")
    print(f"plot: {args.out / 'transfer_welfare.png'}")
    print(f"tables: {args.out}/transfer_seeds.csv, transfer_summary.csv, transfer_curves.csv")
