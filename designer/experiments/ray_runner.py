"""The Ray Tune runner of :func:`~designer.experiments.sweep.run_sweep` (``runner="ray"``): one Tune trial per
sweep trial, or per stacked group of seeds, on a local Ray instance or a cluster; the trials write the same run
folders as the local runner. Needs the ``ray`` extra.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from designer.experiments.spec import Sweep, Trial
from designer.experiments.sweep import (
    StackMode,
    TrialResult,
    execute_stacked,
    execute_trial,
    record_lost,
    stack_groups,
)
from designer.experiments.trainer import Trainer

__all__ = ["run_ray"]

_TRAINABLE_CPUS = 1
"""CPUs Tune reserves per trial (a trial or a stacked group runs torch on one thread)."""


def _final_report(result: TrialResult) -> dict[str, Any]:
    """A trial's result as Tune metrics (scalars only)."""
    return {k: v for k, v in result.to_dict().items() if isinstance(v, (int, float, str)) and k != "trial"}


def _tune_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one trial, reporting every new evaluation to Tune; or seeds of one
    configuration as one stacked program (:func:`execute_stacked`), reporting each trial's result at the end."""
    from ray import tune

    trials = [Trial.from_dict(t) for t in config["trials"]]
    if len(trials) > 1:
        for result in execute_stacked(trials, config["sweep_dir"], max_retries=config["max_retries"],
                                      last_k=config["last_k"], stack=config["stack"]):
            tune.report({**_final_report(result), "trial": result.trial, "final": True})
        return
    trial = trials[0]
    reported = {"n": 0}

    def report(trainer: Trainer) -> None:
        history = trainer.progress.history
        # a resumed trial reports its whole history once: each Tune run is a fresh experiment
        for h in history[reported["n"]:]:
            tune.report({"episode": h.episode, "welfare": h.welfare, "incentives": h.incentives, "net": h.net,
                         "final": False})
        reported["n"] = len(history)

    result = execute_trial(trial, config["sweep_dir"], max_retries=config["max_retries"],
                           last_k=config["last_k"], callback=report)
    tune.report({**_final_report(result), "final": True})


def _tune_name(tune_trial: Any) -> str:
    """A Tune trial's name: its sweep trial's, or for a stacked group the first one's and the group's size."""
    names = [t["name"] for t in tune_trial.config["trials"]]
    return str(names[0] if len(names) == 1 else f"{names[0]}__stack{len(names)}")


def run_ray(trials: Sequence[Trial], root: Path, sweep: Sweep, address: str | None, num_cpus: int | None,
            stack: StackMode) -> None:
    """Run ``trials`` (the sweep's pending ones) on Ray Tune; a trial that reported no result is recorded failed."""
    try:
        import ray
        from ray import tune
    except ImportError as err:
        raise ImportError('the Ray runner needs the "ray" extra: pip install "incentive-design[ray]"') from err
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1)) // _TRAINABLE_CPUS
        groups = [[t] for t in trials] if stack == "off" else stack_groups(trials, workers=max(1, cpus))
        tuner = tune.Tuner(
            tune.with_resources(_tune_trainable, {"cpu": _TRAINABLE_CPUS}),
            param_space={
                "trials": tune.grid_search([[t.to_dict() for t in group] for group in groups]),
                "sweep_dir": str(root),
                "max_retries": sweep.max_retries,
                "last_k": sweep.last_k,
                "stack": stack,
            },
            tune_config=tune.TuneConfig(trial_name_creator=_tune_name, trial_dirname_creator=_tune_name),
            run_config=tune.RunConfig(
                name=f"{sweep.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=str(root / "_ray"),
                # retries of Python errors happen inside the trial; Tune's retries cover lost workers/nodes
                failure_config=tune.FailureConfig(max_failures=sweep.max_retries),
                verbose=0,
            ),
        )
        grid = tuner.fit()
        errors = {}
        for i in range(len(grid)):
            res = grid[i]
            if res.error is not None and res.config is not None:
                errors.update({t["name"]: f"Ray Tune: {res.error!r}" for t in res.config["trials"]})
        for trial in trials:
            record_lost(trial, root, sweep, errors.get(trial.name, "Ray Tune: the trial reported no result"))
    finally:
        if started:
            ray.shutdown()
