"""Trainer behaviour: reproducibility, bit-exact resume, logs, config validation, baselines and the CLI."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from designer import DesignerConfig, LearnerConfig, TrainConfig, Trainer, load_incentive
from designer.experiments.checkpoint import load_checkpoint

ER21 = {"n_agents": 2, "min_at_lever": 1}


def _cfg(**kw) -> TrainConfig:
    base = {"task": "escape_room", "task_kwargs": ER21, "episodes": 60, "eval_period": 20, "eval_episodes": 4,
            "seed": 5}
    return TrainConfig(**{**base, **kw})


def _params(t: Trainer) -> dict[str, torch.Tensor]:
    out = {f"agent/{k}": v.detach() for k, v in t.learner.params.items()}
    for name in ("net", "policy"):
        module = getattr(t.designer, name, None)
        if module is not None:
            out.update({f"designer/{k}": v.detach() for k, v in module.state_dict().items()})
    return out


@pytest.mark.parametrize("algorithm", ["metagrad", "metagrad_m2", "dual_rl", "amd", "none"])
def test_same_seed_same_learning_curve(algorithm):
    """Two runs with the same seed give bit-identical evaluations and parameters, for every algorithm."""
    designer = replace(DesignerConfig(), algorithm=algorithm, output="agent" if algorithm == "amd" else "action")
    runs = [Trainer(_cfg(), designer=designer) for _ in range(2)]
    hist = [r.train() for r in runs]
    assert hist[0] == hist[1]
    p0, p1 = _params(runs[0]), _params(runs[1])
    assert p0.keys() == p1.keys()
    for k in p0:
        assert torch.equal(p0[k], p1[k]), k


def test_different_seeds_differ():
    a = Trainer(_cfg(seed=1)).train()
    b = Trainer(_cfg(seed=2)).train()
    assert a != b


@pytest.mark.parametrize("algorithm", ["metagrad", "dual_rl"])
def test_resume_is_bit_exact(tmp_path: Path, algorithm):
    """Train N+M episodes == train N, save, load, train M (parameters, optimizer states and curves)."""
    designer = replace(DesignerConfig(), algorithm=algorithm)
    full = Trainer(_cfg(episodes=80), designer=designer)
    full.train()
    part = Trainer(_cfg(episodes=40), designer=designer)
    part.train()
    ckpt = part.save(tmp_path / "ckpt.pt")
    resumed = Trainer.resume(ckpt, episodes=80)
    resumed.train()
    p_full, p_res = _params(full), _params(resumed)
    for k in p_full:
        assert torch.equal(p_full[k], p_res[k]), k
    # evaluations after the resume point match the uninterrupted run
    tail_full = [h for h in full.progress.history if h.episode > 40]
    tail_res = [h for h in resumed.progress.history if h.episode > 40]
    assert tail_full == tail_res


def test_checkpoint_contents_and_strict_loading(tmp_path: Path):
    t = Trainer(_cfg(episodes=20))
    t.train()
    path = t.save(tmp_path / "c.pt")
    data = load_checkpoint(path)
    assert data["format_version"] == 3 and "library_version" in data
    assert data["designer_config"]["algorithm"] == "metagrad"
    assert isinstance(data["rng"]["action"], torch.Tensor)
    # a checkpoint for a different architecture is refused with the mismatching key named
    other = Trainer(_cfg(episodes=20), learner=replace(LearnerConfig(), hidden=(8,)))
    mismatch = r"learner\.params\.head\.0\.weight: checkpoint shape \(2, \d+, 64\), model \(2, \d+, 8\)"
    with pytest.raises(ValueError, match=mismatch):
        other.load_state_dict(data)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an incentive-design checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_logs_csv_tensorboard_and_frozen_incentive(tmp_path: Path):
    """A run writes a plottable CSV (one row per evaluation), TensorBoard events, and a loadable incentive."""
    t = Trainer(_cfg(episodes=40, out_dir=str(tmp_path), tensorboard=True))
    t.train()
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [int(float(r["episode"])) for r in rows] == [0, 20, 40]
    for key in ("welfare", "incentives", "net", "env_return/agent_0", "train/meta_grad_norm"):
        assert key in rows[-1]
    assert math.isfinite(float(rows[-1]["train/meta_grad_norm"]))
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    fn = load_incentive(str(tmp_path / "checkpoint.pt"))
    from incentive_envs.escape_room import EscapeRoomEnv
    from wrappers import IncentiveWrapper

    env = IncentiveWrapper(EscapeRoomEnv(**ER21), fn)
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({"agent_0": 0, "agent_1": 2})
    for a in rewards:
        assert 0.0 < infos[a]["incentive"] < 2.0  # 2 * sigmoid, never exactly 0
        assert rewards[a] == pytest.approx(infos[a]["env_reward"] + infos[a]["incentive"])


def test_log_restarts_for_a_new_run_and_drops_rows_past_the_checkpoint_on_resume(tmp_path: Path):
    """A new run in an old run's folder (with ``overwrite``) writes a new log.csv; a resumed run replaces the rows
    written after its checkpoint (here: by a longer run that crashed before saving) instead of logging them twice."""
    def episodes() -> list[int]:
        return [int(float(r["episode"])) for r in csv.DictReader((tmp_path / "log.csv").open())]

    Trainer(_cfg(episodes=60, out_dir=str(tmp_path))).train()
    assert episodes() == [0, 20, 40, 60]
    Trainer(_cfg(episodes=40, out_dir=str(tmp_path)), overwrite=True).train()  # new run, same folder
    assert episodes() == [0, 20, 40]
    with (tmp_path / "log.csv").open("a") as fh:  # rows logged after the checkpoint at 40, then a crash
        fh.write("60" + ",0" * (len(next(csv.reader((tmp_path / "log.csv").open()))) - 1) + "\n")
    Trainer.resume(tmp_path / "checkpoint.pt", episodes=80).train()
    assert episodes() == [0, 20, 40, 60, 80]


@pytest.mark.parametrize(
    "kwargs",
    [{"lr": float("nan")}, {"lr": -1.0}, {"gamma": 1.5}, {"algorithm": "magic"}, {"cost": "free"},
     {"algorithm": "fixed"}, {"max_grad_norm": 0.0}, {"cost_weight": float("inf")}],
)
def test_designer_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        DesignerConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs", [{"lr": float("nan")}, {"kind": "dqn"}, {"reduction": "max"}, {"epsilon_start": 2.0},
               {"ppo_clip": 1.5}, {"epsilon_iters": 0}]
)
def test_learner_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        LearnerConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [{"episodes": 0}, {"batch_episodes": -1}, {"seed": -3}, {"eval_period": 0}])
def test_train_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_unknown_task_and_output_are_named():
    with pytest.raises(KeyError, match="known tasks"):
        Trainer(TrainConfig(task="nope"))
    with pytest.raises(ValueError, match="action_type"):
        Trainer(_cfg(), designer=DesignerConfig(output="action_type"))


def test_fixed_designer_pays_its_table():
    """The fixed baseline pays exactly its table by action (lever 1.5, start 0, door 0)."""
    t = Trainer(_cfg(episodes=10), designer=DesignerConfig(algorithm="fixed", fixed_values=(1.5, 0.0, 0.0)))
    batch, _ = t.collect(t.learner.params)
    lever = (batch.actions == 0).float() * batch.mask
    torch.testing.assert_close(batch.paid, 1.5 * lever)


def test_batched_rollouts_pad_and_mask():
    """B episodes of different lengths are padded with zero masks; welfare sums match the env's books."""
    t = Trainer(_cfg(batch_episodes=6, episodes=12))
    batch, stats = t.collect(t.learner.params)
    assert batch.actions.shape[:2] == (6, int(batch.step_mask.sum(1).max()))
    for b, s in enumerate(stats):
        assert int(batch.step_mask[b].sum()) == s.steps
        assert float(batch.env_rewards[b].sum()) == pytest.approx(s.welfare)
        assert float(batch.paid[b].sum()) == pytest.approx(s.incentives, rel=1e-5)
        assert float(batch.mask[b, s.steps:].sum()) == 0.0


def test_cli_train_writes_table_plot_and_checkpoint(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-m", "designer", "compare", "--task", "escape_room", "--n-agents", "2", "--min-at-lever",
         "1", "--episodes", "40", "--eval-period", "20", "--eval-episodes", "2", "--seeds", "0", "1",
         "--algorithms", "metagrad", "none", "--out", str(tmp_path), "--no-progress"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "| metagrad |" in out.stdout and "| none |" in out.stdout
    run = tmp_path / "er_n2_m1"
    assert (run / "results.md").exists() and (run / "comparison.png").stat().st_size > 10_000
    assert (run / "metagrad" / "seed1" / "checkpoint.pt").exists()
    bad = subprocess.run([sys.executable, "-m", "designer", "train", "--algorithm", "fixed", "--episodes", "5",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "fixed_values" in bad.stderr


def test_cli_config_overrides_reach_the_run_and_unknown_fields_are_named(tmp_path: Path):
    base = [sys.executable, "-m", "designer", "train", "--task", "escape_room", "--n-agents", "2", "--min-at-lever",
            "1", "--episodes", "4", "--eval-period", "2", "--eval-episodes", "1", "--out", str(tmp_path),
            "--no-progress", "--checkpoint-period", "4"]
    ok = subprocess.run([*base, "--learner-json", '{"lr": 0.0123, "hidden": [7]}', "--designer-json", '{"lr": 0.0042}'],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    state = load_checkpoint(tmp_path / "er_n2_m1" / "metagrad" / "seed0" / "checkpoint.pt")
    assert state["learner_config"]["lr"] == 0.0123 and tuple(state["learner_config"]["hidden"]) == (7,)
    assert state["designer_config"]["lr"] == 0.0042
    bad = subprocess.run([*base, "--learner-json", '{"learning_rate": 0.1}'], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode != 0 and "learning_rate" in bad.stderr and "LearnerConfig" in bad.stderr


def test_continuous_dual_rl_pays_scaled_sigmoids_and_learns_from_its_samples():
    """Continuous dual-RL: payments are 2*sigmoid(u) of a Gaussian sample u logged with the step; its update
    moves the policy mean toward samples that earned designer reward."""
    designer_cfg = DesignerConfig(algorithm="dual_rl", dual_mode="continuous")
    t = Trainer(_cfg(episodes=8, batch_episodes=4), designer=designer_cfg)
    batch, _ = t.collect(t.learner.params)
    d = t.designer
    u = batch.features[..., -3:]
    expected = 2.0 * torch.sigmoid(u).gather(-1, batch.slots) * batch.mask
    torch.testing.assert_close(batch.paid, expected, rtol=1e-5, atol=1e-6)
    x = batch.features[..., :-3]
    before = d.policy(x).detach()
    target = before + 1.0  # pretend every sample was 1 above the mean and rewarded
    logged = batch.with_(features=torch.cat([x, target], -1), designer_reward=torch.ones_like(batch.designer_reward),
                         paid=torch.zeros_like(batch.paid))
    for _ in range(20):
        d.update(logged)
    after = d.policy(x).detach()
    assert float(((after - before) * batch.step_mask.unsqueeze(-1)).sum()) > 0


@pytest.mark.parametrize("cost", ["paid", "none"])
def test_dual_rl_subtracts_payments_unless_cost_is_none(cost: str):
    """Dual-RL's reward is welfare minus incentives paid; with ``cost="none"`` (the paper's Cleanup) payments do
    not enter it, so an update on a batch equals the update on the same batch with the payments zeroed."""
    def updated(zero_paid: bool) -> dict[str, torch.Tensor]:
        t = Trainer(_cfg(episodes=8, batch_episodes=4), designer=DesignerConfig(algorithm="dual_rl", cost=cost))
        batch, _ = t.collect(t.learner.params)
        batch = batch.with_(paid=torch.full_like(batch.paid, 0.0 if zero_paid else 1.5) * batch.mask)
        t.designer.update(batch)
        return {k: v.detach().clone() for k, v in t.designer.policy.state_dict().items()}

    same = all(torch.equal(a, b) for a, b in zip(updated(False).values(), updated(True).values()))
    assert same == (cost == "none")


def test_log_gains_columns_a_resumed_run_adds_without_shifting_cells(tmp_path: Path):
    """A run resumed by a version that logs more columns: the header grows, older rows read NaN there, and no
    cell moves under another column's name (as it would if rows were appended under the old header)."""
    from designer.experiments.records import append_log_row

    path = tmp_path / "log.csv"
    append_log_row(path, {"episode": 0, "welfare": 1.5})
    append_log_row(path, {"episode": 10, "welfare": 2.5, "train/houses_skill0": 3.0})
    append_log_row(path, {"episode": 20, "train/houses_skill0": 4.0})  # a column the row lacks: NaN
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["episode", "welfare", "train/houses_skill0"]
    assert [(r["episode"], r["welfare"], r["train/houses_skill0"]) for r in rows] == [
        ("0", "1.5", "nan"), ("10", "2.5", "3.0"), ("20", "nan", "4.0")]
    assert not (tmp_path / "log.csv.tmp").exists()
