"""Sweeps: spec expansion and validation, per-seed determinism across runners (sequential, process pool, Ray Tune),
resume after interruption, retries and failure reports, and the aggregator's numbers checked by hand."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from designer import DesignerConfig, LearnerConfig, TrainConfig
from designer.experiments.aggregate import (
    bootstrap_ci,
    iqm,
    learning_curves,
    load_trials,
    markdown_tables,
    summarize,
    write_results,
)
from designer.experiments.checkpoint import load_checkpoint
from designer.experiments.cli import add_aggregate_subcommand, add_sweep_subcommand
from designer.experiments.spec import Sweep, Trial, Variant
from designer.experiments.sweep import TrialResult, read_result, run_sweep, stack_groups
from designer.tasks import make_task

# IPD learns visibly within a few dozen episodes, so variants and seeds give different curves.
TINY = {
    "name": "tiny",
    "tasks": ["ipd"],
    "algorithms": ["metagrad"],
    "variants": [{"label": "base"}, {"label": "fast", "designer": {"lr": 0.1}, "learner": {"lr": 0.05}}],
    "seeds": [3, 4],
    "train": {"episodes": 40, "eval_period": 10, "eval_episodes": 8, "checkpoint_period": 10},
}
ER21 = {"task": "escape_room", "task_kwargs": {"n_agents": 2, "min_at_lever": 1}, "label": "er21"}


def _log_rows(path: Path) -> list[dict[str, str]]:
    """The trial's log.csv without the wall-clock column (the only field that may differ between runs)."""
    with (path / "log.csv").open(newline="") as fh:
        return [{k: v for k, v in row.items() if k != "wall_seconds"} for row in csv.DictReader(fh)]


def _params(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path / "checkpoint.pt")["learner"]["params"]


def _assert_same_trials(a: Path, b: Path, names: list[str], resumed_at: dict[str, str] | None = None) -> None:
    """Identical logs, results and final parameters. ``resumed_at`` maps trials of ``b`` to the episode they were
    resumed at: the trainer's checkpoint does not hold the train/* metrics accumulated since the last evaluation,
    so that one row may log them as NaN (every evaluation column must still match)."""
    for name in names:
        rows_a, rows_b = _log_rows(a / name), _log_rows(b / name)
        assert rows_a and len(rows_a) == len(rows_b), name
        for ra, rb in zip(rows_a, rows_b):
            if ra != rb and (resumed_at or {}).get(name) == rb["episode"]:
                train = [k for k in ra if k.startswith("train/")]
                assert all(rb[k] == "nan" for k in train), (name, rb)
                ra, rb = ({k: v for k, v in r.items() if k not in train} for r in (ra, rb))
            assert ra == rb, (name, ra, rb)
        ra, rb = read_result(a / name), read_result(b / name)
        assert ra is not None and rb is not None and ra.status == rb.status == "ok"
        assert (ra.welfare, ra.incentives, ra.net, ra.episodes) == (rb.welfare, rb.incentives, rb.net, rb.episodes)
        pa, pb = _params(a / name), _params(b / name)
        assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The tiny sweep run trial by trial, uninterrupted: every other runner must reproduce it exactly (the stacked
    local runner within float rounding)."""
    out = tmp_path_factory.mktemp("reference")
    summary = run_sweep(Sweep.from_dict(TINY), out, stack="off")
    assert summary.ok and summary.skipped == ()
    return out


# ------------------------------------------------------------------------------ spec
def test_agents_from_names_each_trials_own_seed():
    """``{seed}`` in ``train.agents_from``: each trial starts from its own seed's phase-1 agents."""
    sweep = Sweep.from_dict({**TINY, "train": {**TINY["train"], "agents_from": "p1/seed{seed}/checkpoint.pt"}})
    assert {t.seed: t.train.agents_from for t in sweep.trials()} == {3: "p1/seed3/checkpoint.pt",
                                                                     4: "p1/seed4/checkpoint.pt"}


def test_spec_expands_to_resolved_trials_and_round_trips():
    """Task defaults, then algorithm overrides, then variant overrides; JSON round trip is lossless."""
    sweep = Sweep.from_dict({
        "name": "grid", "tasks": ["ipd", ER21],
        "algorithms": ["metagrad", {"algorithm": "amd", "designer": {"output": "agent", "lr": 0.5}}],
        "variants": [{"label": "default"}, {"label": "v", "designer": {"lr": 0.25, "hidden": [8]},
                                            "learner": {"entropy_coef": 0.0}, "train": {"eval_period": 7}}],
        "seeds": 3, "train": {"episodes": 30},
    })
    trials = sweep.trials()
    assert len(trials) == 2 * 2 * 2 * 3
    assert len({t.name for t in trials}) == len(trials)
    by_name = {t.name: t for t in trials}
    ipd = make_task("ipd")
    t = by_name["ipd__metagrad__default__seed2"]
    assert t.seed == t.train.seed == 2 and t.train.task == "ipd" and t.train.episodes == 30
    assert t.designer == ipd.designer and t.learner == ipd.learner  # the task's own defaults (scale 4 for IPD)
    t = by_name["er21__amd__v__seed0"]
    assert t.train.task_kwargs == {"n_agents": 2, "min_at_lever": 1} and t.train.eval_period == 7
    assert t.designer.algorithm == "amd" and t.designer.output == "agent"
    assert t.designer.lr == 0.25 and t.designer.hidden == (8,)  # the variant wins over the algorithm
    assert t.learner.entropy_coef == 0.0 and t.train.out_dir is None
    assert Trial.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    again = Sweep.from_dict(json.loads(json.dumps(sweep.to_dict())))
    assert again == sweep and [x.config_hash for x in again.trials()] == [x.config_hash for x in trials]


@pytest.mark.parametrize(
    ("patch", "error", "match"),
    [
        ({"typo": 1}, ValueError, "unknown sweep spec keys"),
        ({"tasks": ["nope"]}, KeyError, "unknown task 'nope'"),
        ({"tasks": "ipd"}, TypeError, "tasks must be a list"),
        ({"algorithms": ["magic"]}, ValueError, "algorithm must be one of"),
        ({"algorithms": ["none", {"algorithm": "none"}]}, ValueError, "repeated: \\['none'\\]"),
        ({"variants": [{"label": "a b"}]}, ValueError, "variant label"),
        ({"variants": [{"label": "x__y"}]}, ValueError, "variant label"),
        ({"variants": [{"designer": {"lrr": 1}}]}, ValueError, "unknown DesignerConfig fields \\['lrr'\\]"),
        ({"variants": [{"designer": {"algorithm": "none"}}]}, ValueError, "cannot be overridden"),
        ({"train": {"seed": 3}}, ValueError, "cannot be overridden"),
        ({"train": {"episodes": 0}}, ValueError, "episodes must be an integer >= 1"),
        ({"variants": [{"label": "neg", "designer": {"lr": -1.0}}]}, ValueError, "variant 'neg'.*lr must be"),
        ({"seeds": [1, 1]}, ValueError, "seeds must be unique"),
        ({"seeds": [-1]}, ValueError, "non-negative"),
        ({"seeds": 0}, ValueError, "count must be >= 1"),
        ({"max_retries": -1}, ValueError, "max_retries must be an integer >= 0"),
        ({"last_k": 0}, ValueError, "last_k must be an integer >= 1"),
        ({"tasks": [{"task": "gather_trade_build", "task_kwargs": {"anneal_cap": math.inf}}]}, ValueError,
         r"task 'gather_trade_build' task_kwargs\.anneal_cap must be a finite number, got inf"),
        ({"variants": [{"label": "v", "learner": {"lr": math.nan}}]}, ValueError,
         r"variant 'v' learner\.lr must be a finite number, got nan"),
        ({"algorithms": [{"algorithm": "fixed", "designer": {"fixed_values": [1.0, -math.inf]}}]}, ValueError,
         r"algorithm 'fixed' designer\.fixed_values\[1\] must be a finite number, got -inf"),
        ({"train": {"episodes": math.inf}}, ValueError, r"sweep train\.episodes must be a finite number, got inf"),
    ],
)
def test_bad_specs_raise_where_they_enter(patch, error, match):
    with pytest.raises(error, match=match):
        Sweep.from_dict({**TINY, **patch}).trials()


def test_spec_file_errors(tmp_path: Path):
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        Sweep.from_json(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        Sweep.from_json(tmp_path / "list.json")
    (tmp_path / "inf.json").write_text(json.dumps(TINY).replace('"eval_period": 10', '"eval_period": Infinity'))
    with pytest.raises(ValueError, match=r"sweep train\.eval_period must be a finite number, got inf"):
        Sweep.from_json(tmp_path / "inf.json")
    with pytest.raises(ValueError, match="runner must be"):
        run_sweep(Sweep.from_dict(TINY), tmp_path / "x", runner="slurm")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs runner='local' and workers=1"):
        run_sweep(Sweep.from_dict(TINY), tmp_path / "x", workers=2, callback=lambda trial, trainer: None)


# --------------------------------------------------------------------- determinism
def test_reference_outputs(reference: Path):
    """Every trial folder holds trial.json (resolved configs), log.csv, checkpoint.pt and an ok result.json."""
    sweep = Sweep.from_dict(TINY)
    assert json.loads((reference / "sweep.json").read_text()) == sweep.to_dict()
    for trial in sweep.trials():
        folder = reference / trial.name
        assert Trial.from_dict(json.loads((folder / "trial.json").read_text())) == trial
        result = read_result(folder)
        assert result is not None and result.status == "ok" and result.attempts == 1 and result.errors == ()
        assert result.episodes == 40 and result.resumed_from is None and result.config_hash == trial.config_hash
        with (folder / "log.csv").open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert [int(float(r["episode"])) for r in rows] == [0, 10, 20, 30, 40]
        assert result.welfare == pytest.approx(np.mean([float(r["welfare"]) for r in rows[-5:]]), abs=1e-12)
        optimum = make_task("ipd").optimum
        reached = [int(float(r["episode"])) for r in rows if optimum and float(r["welfare"]) >= 0.95 * optimum]
        assert result.optimum == optimum and result.episodes_to_95 == (reached[0] if reached else None)
    welfare = {t.name: read_result(reference / t.name).welfare for t in sweep.trials()}  # type: ignore[union-attr]
    assert len(set(welfare.values())) == len(welfare)  # seeds and variants really differ
    summary = json.loads((reference / "summary.json").read_text())
    assert summary["failed"] == [] and set(summary["results"]) == set(welfare)


@pytest.mark.slow  # spawning worker processes that import torch takes ~10 s on 2 shared cores
def test_process_pool_gives_the_same_per_seed_results(reference: Path, tmp_path: Path):
    summary = run_sweep(Sweep.from_dict(TINY), tmp_path, workers=2, stack="off")
    assert summary.ok
    _assert_same_trials(reference, tmp_path, [t.name for t in Sweep.from_dict(TINY).trials()])


@pytest.mark.slow
def test_ray_tune_gives_the_same_per_seed_results(reference: Path, tmp_path: Path):
    """A local Ray instance (2 CPUs, one per trial) runs the grid through Tune with identical per-seed results."""
    pytest.importorskip("ray")
    summary = run_sweep(Sweep.from_dict(TINY), tmp_path, runner="ray", num_cpus=2, stack="off")
    assert summary.ok and summary.skipped == ()
    names = [t.name for t in Sweep.from_dict(TINY).trials()]
    _assert_same_trials(reference, tmp_path, names)
    # Tune's own experiment state lives under _ray/, with one trial folder per grid point, each with the
    # evaluations it reported (5 evaluations + the final summary)
    for name in names:
        results = list((tmp_path / "_ray").glob(f"*/{name}/result.json"))
        assert len(results) == 1, name
        lines = [json.loads(x) for x in results[0].read_text().splitlines()]
        assert [x["final"] for x in lines] == [False] * 5 + [True]
        assert [x["episode"] for x in lines[:5]] == [0, 10, 20, 30, 40]
        assert lines[-1]["status"] == "ok" and lines[-1]["welfare"] == read_result(tmp_path / name).welfare  # type: ignore[union-attr]
    assert load_trials(tmp_path)[0].path.parent == tmp_path.resolve()  # _ray/ is not mistaken for a trial


@pytest.mark.slow
def test_ray_tune_stacks_each_configurations_seeds(reference: Path, tmp_path: Path):
    """By default a Ray task trains a configuration's seeds as one stacked program (one Tune trial per group,
    reporting each trial's result): the same trials as one by one, within float rounding."""
    pytest.importorskip("ray")
    sweep = Sweep.from_dict(TINY)
    summary = run_sweep(sweep, tmp_path, runner="ray", num_cpus=2)
    assert summary.ok
    _assert_close_trials(reference, tmp_path, sweep)
    for group in stack_groups(sweep.trials(), workers=2):
        results = list((tmp_path / "_ray").glob(f"*/{group[0].name}__stack2/result.json"))
        assert len(results) == 1, group[0].name
        lines = [json.loads(x) for x in results[0].read_text().splitlines()]
        assert [x["trial"] for x in lines] == [t.name for t in group] and all(x["final"] for x in lines)
        assert [x["welfare"] for x in lines] == [read_result(tmp_path / t.name).welfare for t in group]  # type: ignore[union-attr]


def _assert_close_trials(reference: Path, out: Path, sweep: Sweep) -> None:
    """The same logs (evaluations within float rounding), final parameters and ok results as the reference."""
    for t in sweep.trials():
        rows, ref = _log_rows(out / t.name), _log_rows(reference / t.name)
        assert [r["episode"] for r in rows] == [r["episode"] for r in ref]
        for r, q in zip(rows, ref):
            for k in ("welfare", "incentives", "net"):
                assert float(r[k]) == pytest.approx(float(q[k]), rel=1e-5, abs=1e-6), (t.name, k)
        pa, pb = _params(out / t.name), _params(reference / t.name)
        for k in pa:
            torch.testing.assert_close(pa[k], pb[k], rtol=1e-4, atol=1e-6)
        assert read_result(out / t.name).status == "ok"  # type: ignore[union-attr]


def test_stacked_sweep_groups_seeds_and_reproduces_the_trials(reference: Path, tmp_path: Path):
    """By default the local runner trains each variant's seeds as one stacked program: the same trials (every
    evaluation within float rounding, the same result files), two groups of two seeds."""
    sweep = Sweep.from_dict(TINY)
    groups = stack_groups(sweep.trials())
    assert [[t.name for t in g] for g in groups] == [
        ["ipd__metagrad__base__seed3", "ipd__metagrad__base__seed4"],
        ["ipd__metagrad__fast__seed3", "ipd__metagrad__fast__seed4"]]
    assert [len(g) for g in stack_groups(sweep.trials(), workers=4)] == [1, 1, 1, 1]
    summary = run_sweep(sweep, tmp_path)
    assert summary.ok
    _assert_close_trials(reference, tmp_path, sweep)


# -------------------------------------------------------------------------- resume
def test_resume_skips_finished_trials_and_continues_a_checkpoint_exactly(reference: Path, tmp_path: Path):
    """Interrupted in the 3rd trial after its checkpoint at episode 20 (its log already has the row for 20):
    the rerun skips trials 1-2, resumes trial 3 from episode 20 without duplicate log rows, restarts trial 4
    (a stale log.csv in its folder is discarded), and everything equals the uninterrupted run."""
    sweep = Sweep.from_dict(TINY)
    names = [t.name for t in sweep.trials()]

    def interrupt(trial: Trial, trainer) -> None:
        if trial.name == names[2] and trainer.progress.episodes >= 25:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, tmp_path, callback=interrupt)
    assert read_result(tmp_path / names[2]) is None
    assert len(_log_rows(tmp_path / names[2])) == 3  # 0, 10, 20; the checkpoint (episode 20) holds only 0, 10
    assert load_checkpoint(tmp_path / names[2] / "checkpoint.pt")["progress"]["episodes"] == 20
    (tmp_path / names[3] / "log.csv").write_text("episode,welfare\n999,1\n")
    done_before = {n: (tmp_path / n / "result.json").read_text() for n in names[:2]}

    summary = run_sweep(sweep, tmp_path)
    assert summary.ok and summary.skipped == tuple(names[:2])
    assert {n: (tmp_path / n / "result.json").read_text() for n in names[:2]} == done_before
    assert summary.results[names[2]].resumed_from == 20  # type: ignore[union-attr]
    assert summary.results[names[3]].resumed_from is None  # type: ignore[union-attr]
    _assert_same_trials(reference, tmp_path, names, resumed_at={names[2]: "20"})

    again = run_sweep(sweep, tmp_path)
    assert again.skipped == tuple(names)


def test_changed_configs_in_the_same_folder_are_refused_but_extensions_are_fine(reference: Path, tmp_path: Path):
    sweep = Sweep.from_dict({**TINY, "variants": TINY["variants"][:1], "seeds": [3]})
    run_sweep(sweep, tmp_path)
    changed = Sweep.from_dict({**TINY, "variants": TINY["variants"][:1], "seeds": [3],
                               "train": {**TINY["train"], "episodes": 50}})
    with pytest.raises(ValueError, match=r"different configs.*train\.episodes: 40 -> 50"):
        run_sweep(changed, tmp_path)
    extended = run_sweep(Sweep.from_dict(TINY), tmp_path, stack="off")  # more seeds, variants: old trial kept
    assert extended.ok and extended.skipped == ("ipd__metagrad__base__seed3",)
    _assert_same_trials(reference, tmp_path, [t.name for t in Sweep.from_dict(TINY).trials()])


# ------------------------------------------------------------------------- failure
def test_failing_trial_is_retried_reported_and_listed(tmp_path: Path, capsys):
    """A variant whose designer output the task cannot pay (ER has no action types) fails at build time in every
    attempt: retried max_retries times, recorded with its tracebacks, listed as failed by the summary, the CLI
    (exit code 1) and the tables; the other trial is unaffected, and a rerun retries the failed one."""
    spec = {"name": "fails", "tasks": [ER21], "algorithms": ["metagrad"],
            "variants": [{"label": "ok"}, {"label": "bad", "designer": {"output": "action_type"}}],
            "seeds": [0], "max_retries": 2, "train": {"episodes": 20, "eval_period": 10, "eval_episodes": 2}}
    sweep = Sweep.from_dict(spec)
    summary = run_sweep(sweep, tmp_path)
    bad, good = "er21__metagrad__bad__seed0", "er21__metagrad__ok__seed0"
    assert summary.failed == [bad] and not summary.ok
    result = read_result(tmp_path / bad)
    assert result is not None and result.status == "failed" and result.attempts == 3
    assert result.welfare is None and len(result.errors) == 3
    assert all("no slot rule for output 'action_type'" in e for e in result.errors)
    log = (tmp_path / bad / "error.txt").read_text()
    assert log.count("Traceback (most recent call last)") == 3 and "attempt 3/3" in log
    assert read_result(tmp_path / good).status == "ok"  # type: ignore[union-attr]
    assert "| er21__metagrad__bad__seed0 | failed (ValueError: task 'escape_room' has no slot rule" in summary.table()
    assert json.loads((tmp_path / "summary.json").read_text())["failed"] == [bad]

    parser = argparse.ArgumentParser()
    add_sweep_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sweep", str(tmp_path), "--max-retries", "0"])
    assert args.func(args) == 1  # the folder resumes: the good trial is skipped, the bad one retried once more
    out = capsys.readouterr().out
    assert "skipped (done)" in out and f"1 trial(s) failed: {bad}" in out
    assert read_result(tmp_path / bad).attempts == 1  # type: ignore[union-attr]
    assert (tmp_path / bad / "error.txt").read_text().count("Traceback") == 4  # appended, never lost
    table = (tmp_path / "results" / "results.md").read_text()
    assert "| bad | 0 (1 failed) | — |" in table and f"Failed trials (see their error.txt): {bad}" in table


# ------------------------------------------------------------------------- the CLI
def test_cli_runs_a_spec_file_then_aggregates(tmp_path: Path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**TINY, "variants": TINY["variants"][:1], "seeds": [3]}))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_sweep_subcommand(sub)
    add_aggregate_subcommand(sub)
    args = parser.parse_args(["sweep", str(spec), "--out", str(tmp_path / "sw"), "--no-aggregate"])
    assert args.func(args) == 0
    assert "| ipd__metagrad__base__seed3 | ok | 1 |" in capsys.readouterr().out
    assert not (tmp_path / "sw" / "results").exists()
    args = parser.parse_args(["aggregate", str(tmp_path / "sw"), "--no-plots", "--reps", "100"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "### ipd" in out and "| metagrad | 1 |" in out
    assert not list((tmp_path / "sw" / "results").glob("*.png"))
    with pytest.raises(SystemExit, match=r"without sweep\.json"):
        args = parser.parse_args(["sweep", str(tmp_path)])
        args.func(args)


# ---------------------------------------------------------------------- aggregator
def test_iqm_and_bootstrap_by_hand():
    assert iqm([1, 2, 3, 10]) == 2.5  # drop 1 and 10
    assert iqm([100, 1, 3, 2, 4]) == 3.0  # floor(5/4) = 1 from each end: mean(2, 3, 4)
    assert iqm([7]) == 7.0
    assert iqm(list(range(8))) == 3.5  # drop 0, 1 and 6, 7
    x = np.array([0.5, 1.0, 4.0, 2.0, 8.0, 3.0])
    lo, hi = bootstrap_ci(x, reps=500, seed=11)
    # the same resamples drawn by hand, one at a time
    rng = np.random.default_rng(11)
    idx = rng.integers(0, x.size, size=(500, x.size))
    stats = [iqm(x[row]) for row in idx]
    assert (lo, hi) == (float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5)))
    assert lo <= iqm(x) <= hi and x.min() <= lo < hi <= x.max()
    assert bootstrap_ci(x, reps=500, seed=11) == (lo, hi)
    assert bootstrap_ci(x, reps=500, seed=12) != (lo, hi)
    assert bootstrap_ci([2.0, 2.0], reps=50) == (2.0, 2.0)
    with pytest.raises(FloatingPointError, match="finite"):
        iqm([1.0, math.nan])
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([], reps=10)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0], confidence=1.5)


def _synthetic_trial(root: Path, task: str, algo: str, seed: int, *, welfare: float | None, to95: int | None = None,
                     optimum: float | None = 9.0, log: list[tuple[int, float]] | None = None) -> None:
    name = f"{task}__{algo}__default__seed{seed}"
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "trial.json").write_text(json.dumps({"name": name, "task_label": task, "algorithm_label": algo,
                                                   "variant_label": "default", "seed": seed}))
    if welfare is None:
        return  # pending: no result yet
    result = TrialResult(trial=name, status="ok", attempts=1, wall_seconds=1.0, episodes=100, last_k=5,
                         welfare=welfare, incentives=welfare / 2, net=welfare / 2, episodes_to_95=to95,
                         optimum=optimum, resumed_from=None, config_hash="x")
    (folder / "result.json").write_text(json.dumps(result.to_dict()))
    with (folder / "log.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["episode", "welfare", "welfare_std", "incentives", "net", "steps"])
        for ep, val in log or [(0, 0.0), (50, welfare / 2), (100, welfare)]:
            w.writerow([ep, val, 0.0, val / 2, val / 2, 1.0])


def test_aggregate_numbers_by_hand(tmp_path: Path):
    """Four finished seeds (welfare 1, 2, 3, 10 vs optimum 9), one pending seed, one failed seed; a second
    algorithm with one seed. Every number in the table and CSV is checked against the hand-computed value."""
    for seed, (w, to95) in enumerate([(1.0, None), (2.0, None), (3.0, None), (10.0, 60)]):
        log = [(0, 0.0), (50, w), (100, w)] if seed else [(0, 0.0), (25, 5.0), (50, w), (100, w)]
        _synthetic_trial(tmp_path, "er", "metagrad", seed, welfare=w, to95=to95, log=log)
    _synthetic_trial(tmp_path, "er", "metagrad", 4, welfare=None)
    _synthetic_trial(tmp_path, "er", "metagrad", 5, welfare=1.0)
    failed = TrialResult(trial="er__metagrad__default__seed5", status="failed", attempts=2, wall_seconds=0.1,
                         episodes=0, last_k=5, welfare=None, incentives=None, net=None, episodes_to_95=None,
                         optimum=None, resumed_from=None, config_hash="x", errors=("ValueError: boom",) * 2)
    (tmp_path / "er__metagrad__default__seed5" / "result.json").write_text(json.dumps(failed.to_dict()))
    _synthetic_trial(tmp_path, "er", "none", 0, welfare=8.6, to95=80)

    groups = summarize(tmp_path, reps=2000, seed=0)
    assert [(g.algorithm_label, g.seeds) for g in groups] == [("metagrad", (0, 1, 2, 3)), ("none", (0,))]
    g = groups[0]
    assert g.failed == ("er__metagrad__default__seed5",) and g.pending == ("er__metagrad__default__seed4",)
    w = g.metrics["welfare"]
    assert w.n == 4 and w.mean == 4.0 and w.std == pytest.approx(math.sqrt(50 / 3)) and w.iqm == 2.5
    assert w.ci_low <= 2.5 <= w.ci_high and w.ci_low >= 1.0 and w.ci_high <= 10.0
    assert (w.ci_low, w.ci_high) == bootstrap_ci([1.0, 2.0, 3.0, 10.0], reps=2000, seed=0)
    assert g.metrics["incentives"].mean == 2.0 and g.metrics["net"].iqm == 1.25
    assert g.percent_of_optimum == pytest.approx(100 * 4 / 9)
    assert g.final_95 == 1 and g.reached_95 == 1 and g.episodes_to_95 == (60.0, None)
    one = groups[1]
    assert one.metrics["welfare"].std is None and one.final_95 == 1  # 8.6 >= 0.95 * 9 = 8.55
    assert summarize(tmp_path, reps=2000, seed=0) == groups  # deterministic

    table = markdown_tables(groups)
    assert "### er (optimum welfare 9)" in table
    ci = f"[{w.ci_low:.2f}, {w.ci_high:.2f}]"
    assert (f"| metagrad | 4 (1 failed, 1 pending) | 4.00 ± 4.08 | 2.50 {ci} | 44.4% | 2.00 ± 2.04 |" in table)
    assert "| 1/4 | 60 (1/4 reached) |" in table and "| none | 1 | 8.60 | 8.60 [8.60, 8.60] | 95.6% |" in table
    assert "Failed trials (see their error.txt): er__metagrad__default__seed5" in table
    assert "Pending trials (not finished): er__metagrad__default__seed4" in table

    written = write_results(tmp_path, reps=2000)
    assert set(written) == {"table", "csv", "trials", "plot:er"}
    assert written["plot:er"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with written["csv"].open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["welfare_mean"] == "4.0" and float(rows[0]["welfare_std"]) == pytest.approx(math.sqrt(50 / 3))
    assert rows[0]["welfare_iqm"] == "2.5" and rows[0]["seeds_failed"] == "1" and rows[0]["seeds_pending"] == "1"
    assert rows[0]["episodes_to_95_mean"] == "60.0" and rows[0]["episodes_to_95_std"] == ""
    with written["trials"].open(newline="") as fh:
        trials = {r["trial"]: r for r in csv.DictReader(fh)}
    assert trials["er__metagrad__default__seed5"]["last_error"] == "ValueError: boom"
    assert trials["er__metagrad__default__seed4"]["status"] == "pending"

    # learning curves: the evaluations every seed has (seed 0 has an extra one at 25), mean over seeds by hand
    x, values = learning_curves([r for r in load_trials(tmp_path) if r.group == ("er", "metagrad", "default")])
    assert x.tolist() == [0.0, 50.0, 100.0]
    assert values["welfare"].shape == (4, 3)
    assert values["welfare"].mean(0).tolist() == [0.0, 4.0, 4.0]
    assert values["net"][:, 1].tolist() == [0.5, 1.0, 1.5, 5.0]


def test_aggregate_input_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="no sweep folder"):
        load_trials(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no trials"):
        load_trials(tmp_path)


def test_variant_defaults():
    """A Variant needs no overrides; configs it builds compare equal to hand-built ones."""
    v = Variant()
    assert (v.label, v.designer, v.learner, v.train) == ("default", {}, {}, {})
    trial = Sweep(name="s", tasks=["ipd"], algorithms=["none"], train={"episodes": 5}).trials()[0]
    task = make_task("ipd")
    assert trial.designer == DesignerConfig(**{**vars(task.designer), "algorithm": "none"})
    assert trial.learner == LearnerConfig(**vars(task.learner))
    assert trial.train == TrainConfig(task="ipd", episodes=5, seed=0)
