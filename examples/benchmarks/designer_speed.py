"""Designer speed: training episodes/s and the cost of a meta-update relative to a plain agent update.

Measures, on fixed logged batches so that rollouts don't blur the comparison:
- plain agent update: the agents' real REINFORCE step (``inner_update`` on detached rewards);
- meta-update: MetaGrad's whole update (payments recomputed with gradients, the differentiable inner step,
  the outer loss on the validation batch, both designer optimizer steps);
and, end to end, training episodes per second for MetaGrad and for agents without a designer.

Run: ``python examples/benchmarks/designer_speed.py [--episodes 2000] [--repeats 300]``; writes
``designer_speed.json`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from designer import DesignerConfig, TrainConfig, Trainer, inner_update
from designer.learners import detach_params


def _timeit(fn, repeats: int) -> float:
    for _ in range(5):
        fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def update_ratio(n: int, m: int, repeats: int) -> dict[str, float]:
    trainer = Trainer(TrainConfig(task="escape_room", task_kwargs={"n_agents": n, "min_at_lever": m}, episodes=1))
    tau, _ = trainer.collect(trainer.learner.params)
    tau2, _ = trainer.collect(trainer.learner.params)
    learner, designer = trainer.learner, trainer.designer
    theta, opt = learner.params, learner.opt_state

    def plain() -> None:
        rewards = tau.env_rewards + tau.paid
        new, _ = inner_update(learner, theta, opt, tau, rewards)
        detach_params(new)

    def meta() -> None:
        designer.iterate(learner, lambda params: (tau2, []), tau)
        learner.params, learner.opt_state = theta, opt  # keep the agents fixed across repeats

    t_plain, t_meta = _timeit(plain, repeats), _timeit(meta, repeats)
    return {"plain_update_ms": 1e3 * t_plain, "meta_update_ms": 1e3 * t_meta, "ratio": t_meta / t_plain}


def episodes_per_second(n: int, m: int, algorithm: str, episodes: int) -> float:
    cfg = TrainConfig(task="escape_room", task_kwargs={"n_agents": n, "min_at_lever": m}, episodes=episodes,
                      eval_period=episodes, eval_episodes=1)
    trainer = Trainer(cfg, designer=DesignerConfig(algorithm=algorithm))
    t0 = time.perf_counter()
    trainer.train()
    return episodes / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for n, m in ((2, 1), (5, 2)):
        ratio = update_ratio(n, m, args.repeats)
        eps_meta = episodes_per_second(n, m, "metagrad", args.episodes)
        eps_none = episodes_per_second(n, m, "none", args.episodes)
        rows.append({"env": f"ER({n},{m})", **ratio, "metagrad_episodes_per_s": eps_meta,
                     "no_designer_episodes_per_s": eps_none})
    header = f"{'env':8} {'plain upd ms':>13} {'meta upd ms':>12} {'ratio':>6} {'MetaGrad ep/s':>14} {'none ep/s':>10}"
    print(header)
    for r in rows:
        print(f"{r['env']:8} {r['plain_update_ms']:13.3f} {r['meta_update_ms']:12.3f} {r['ratio']:6.2f} "
              f"{r['metagrad_episodes_per_s']:14.1f} {r['no_designer_episodes_per_s']:10.1f}")
    machine = {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
               "python": platform.python_version(), "torch": torch.__version__, "torch_threads": 1,
               "load_average": os.getloadavg()}
    out = Path(__file__).with_suffix(".json")
    out.write_text(json.dumps({"machine": machine, "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
