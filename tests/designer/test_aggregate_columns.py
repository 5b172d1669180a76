"""What the example scripts read through the aggregator: any ``log.csv`` column as learning curves, the trials of
one sweep run, figures with chosen panels, seeds and reference lines, and the tax designers' rates per bracket as
training metrics (``train/rate_<b>``)."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from designer import TrainConfig, Trainer
from designer.experiments import aggregate
from designer.experiments.aggregate import (
    METRICS,
    learning_curves,
    load_trials,
    machine_info,
    plot_task_curves,
    spread,
    sweep_records,
)
from designer.experiments.spec import Sweep
from designer.experiments.sweep import SweepSummary, run_sweep
from designer.tasks import make_task
from designer.tasks.gather_trade_build import TaxMetaGradDesigner, schedule_of, tax_report
from designer.tasks.gather_trade_build.designers import economy_metric_names, economy_metrics, rate_metrics
from incentive_envs.economics import US_FEDERAL_2018_RATES


def _ipd_sweep(seeds: tuple[int, ...]) -> Sweep:
    return Sweep("cols", tasks=["ipd"], algorithms=["metagrad"], seeds=seeds,
                 train={"episodes": 6, "eval_period": 2, "eval_episodes": 2})


def test_sweep_records_are_the_trials_of_that_run_and_curves_read_any_column(tmp_path: Path):
    first = sweep_records(run_sweep(_ipd_sweep((1, 0)), tmp_path))
    assert [r.seed for r in first] == [0, 1] and all(r.status == "ok" for r in first)
    only = sweep_records(run_sweep(_ipd_sweep((2,)), tmp_path))  # the same folder now holds three trials
    assert len(load_trials(tmp_path)) == 3 and [r.seed for r in only] == [2]

    x, default = learning_curves(first)
    assert tuple(default) == METRICS and x.tolist() == [0, 2, 4, 6] and default["welfare"].shape == (2, 4)
    x, values = learning_curves(first, columns=iter(["net", "train/outer_loss"]))  # any iterable of columns
    assert list(values) == ["net", "train/outer_loss"] and np.array_equal(values["net"], default["net"])
    with (first[1].path / "log.csv").open(newline="") as fh:
        by_hand = [float(row["train/outer_loss"]) for row in csv.DictReader(fh)]
    assert math.isnan(by_hand[0]) and math.isnan(values["train/outer_loss"][1, 0])  # no iteration before episode 0
    assert values["train/outer_loss"][1, 1:].tolist() == by_hand[1:]
    with pytest.raises(ValueError, match=r"lacks columns \['info/nothing'\]"):
        learning_curves(first, columns=["welfare", "info/nothing"])


def test_sweep_records_refuse_a_run_with_failed_trials(tmp_path: Path):
    summary = SweepSummary(tmp_path, {"cols__ipd__default__seed0": None}, ())
    with pytest.raises(RuntimeError, match=r"(?s)missing.*failed trials \['cols__ipd__default__seed0'\]"):
        sweep_records(summary)


def _drawn(monkeypatch: pytest.MonkeyPatch, **kwargs):
    """The figure plot_task_curves would save, kept open to be inspected."""
    figures = []
    monkeypatch.setattr(aggregate, "save_figure", lambda fig, path, dpi=120: figures.append(fig) or Path(path))
    x = np.array([0.0, 10.0, 20.0])
    curves = {"a": (x, {"welfare": np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]]), "incentives": np.zeros((2, 3)),
                        "net": np.ones((2, 3)), "rate": np.array([[0.1, 0.2, 0.3], [0.3, 0.4, 0.5]])})}
    plot_task_curves(curves, "unused.png", **kwargs)
    return figures[0]


def test_plot_task_curves_default_is_welfare_incentives_net_with_bands(monkeypatch: pytest.MonkeyPatch):
    fig = _drawn(monkeypatch, optimum=4.0, title="t")
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == [aggregate._TITLES[m] for m in METRICS]
    assert [len(ax.collections) for ax in axes] == [1, 1, 1]  # one ± std band per group
    assert axes[0].lines[0].get_ydata().tolist() == [2.0, 3.0, 4.0]  # the mean over seeds
    assert [[ln.get_ydata()[0] for ln in ax.lines[1:]] for ax in axes] == [[4.0], [], [4.0]]  # optimum: welfare, net
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["a (2 seeds)", "optimum"]
    assert fig.get_suptitle() == "t (mean ± std over seeds)"


def test_plot_task_curves_draws_chosen_metrics_each_seed_and_reference_lines(monkeypatch: pytest.MonkeyPatch):
    fig = _drawn(monkeypatch, metrics=("welfare", "rate"), titles={"welfare": "apples"}, per_seed=True,
                 references={"welfare": [(5.0, "scripted"), (4.5, "90%")], "net": [(9.0, "not drawn")]})
    left, right = fig.axes
    assert (left.get_title(), right.get_title()) == ("apples", "rate")  # unknown metrics are titled by name
    np.testing.assert_allclose([ln.get_ydata() for ln in right.lines], [[0.2, 0.3, 0.4], [0.1, 0.2, 0.3],
                                                                       [0.3, 0.4, 0.5]])  # the mean, then each seed
    assert not left.collections and not right.collections  # seeds, no band
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["a (mean of 2 seeds)", "scripted", "90%"]
    assert [ln.get_linestyle() for ln in left.lines[-2:]] == ["--", ":"]


def test_spread_uses_the_population_std_and_machine_info_names_the_machine():
    assert spread(np.array([1.0, 2.0, 6.0])) == {"mean": 3.0, "std": pytest.approx(math.sqrt(14 / 3)),
                                                 "per_seed": [1.0, 2.0, 6.0]}
    assert spread([2.5]) == {"mean": 2.5, "std": 0.0, "per_seed": [2.5]}
    info = machine_info()
    assert set(info) == {"platform", "python", "logical_cpus", "load_average"} and len(info["load_average"]) == 3


# --------------------------------------------------------------------- the tax designers' rates per bracket
def _gtb(tmp_path: Path, algorithm: str, **kwargs) -> tuple[Trainer, list[dict[str, str]]]:
    """Three training episodes of two tax periods each, evaluated after every episode; the trainer and log rows."""
    task_kwargs = {"max_cycles": 20, **kwargs}
    task = make_task("gather_trade_build", **task_kwargs)
    designer = replace(task.designer, algorithm=algorithm, hidden=(8,), critic_hidden=(8,), dual_hidden=(8,),
                       fixed_values=(0.5,) * 7 if algorithm == "fixed" else ())
    cfg = TrainConfig(task="gather_trade_build", task_kwargs=task_kwargs, episodes=3, eval_period=1, eval_episodes=1,
                      out_dir=str(tmp_path / algorithm))
    trainer = Trainer(cfg, designer=designer, learner=replace(task.learner, hidden=(8,), critic_hidden=(8,)))
    trainer.train()
    with (tmp_path / algorithm / "log.csv").open(newline="") as fh:
        return trainer, list(csv.DictReader(fh))


RATES = [f"train/rate_{b}" for b in range(7)]


@pytest.mark.parametrize(("algorithm", "kwargs", "expected"), [
    ("fixed", {}, (0.5,) * 7),
    ("none", {"tax_model": "us_federal"}, US_FEDERAL_2018_RATES),
    ("none", {}, (0.0,) * 7),
    ("dual_rl", {}, None),
    ("metagrad", {}, None),
])
def test_tax_designers_log_the_mean_enacted_rate_per_bracket(tmp_path: Path, algorithm, kwargs, expected):
    trainer, rows = _gtb(tmp_path, algorithm, **kwargs)
    names = trainer.designer.metric_names
    assert names[-7 - len(economy_metric_names(trainer.task.schema)):][:7] == tuple(k.removeprefix("train/")
                                                                                   for k in RATES)
    assert [row["episode"] for row in rows] == ["0", "1", "2", "3"]
    assert all(row[k] == "nan" for k in RATES for row in rows[:2])  # no iteration yet at episodes 0 and 1
    logged = np.array([[float(row[k]) for k in RATES] for row in rows[2:]])
    assert np.isfinite(logged).all() and ((logged >= 0) & (logged <= 1)).all()
    if expected is not None:
        np.testing.assert_allclose(logged, np.tile(expected, (2, 1)), atol=1e-6)
    batch = trainer.pending  # a training batch: its metrics are the mean rate per bracket enacted in it
    assert batch is not None
    metrics = rate_metrics(batch, trainer.task.schema)
    assert list(metrics) == [k.removeprefix("train/") for k in RATES]
    assert [metrics[k.removeprefix("train/")] for k in RATES] == pytest.approx(schedule_of(batch, trainer.task.schema)
                                                                              .mean(0).tolist())
    assert rate_metrics(batch.with_(step_mask=torch.zeros_like(batch.step_mask)), trainer.task.schema) == {}
    if isinstance(trainer.designer, TaxMetaGradDesigner):
        assert 0.0 < trainer.designer.live_units(batch.state) <= 1.0


def test_tax_designers_log_the_economy_of_their_training_episodes(tmp_path: Path):
    """Productivity, equality and, per skill rank, income, labour, houses built and trades of each training
    batch are ``train/`` columns of log.csv: the behaviour over training."""
    trainer, rows = _gtb(tmp_path, "none", tax_model="us_federal")
    schema = trainer.task.schema
    names = economy_metric_names(schema)
    assert len(names) == 3 + 4 * schema.n_agents and "houses_built_skill3" in names and "trades_skill0" in names
    assert all(np.isfinite(float(row[f"train/{k}"])) for k in names for row in rows[2:])
    batch = trainer.pending
    assert batch is not None
    metrics, report = economy_metrics(batch, schema), tax_report(batch, schema)
    assert list(metrics) == list(names)
    assert metrics["equality_times_productivity"] == pytest.approx(np.mean(report["equality_times_productivity"]))
    for s in range(schema.n_agents):
        for key in ("income", "labour", "houses_built", "trades"):
            assert metrics[f"{key}_skill{s}"] == pytest.approx(report[f"{key}_by_skill"][s])
    assert (report["houses_built_by_skill"] >= 0).all() and (report["labour_by_skill"] > 0).all()
