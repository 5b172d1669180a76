"""Black-box principals as sweep trials (issue #18, item 4): same results as run_principal, the trainer trials'
files, skip and re-run, one aggregate table with trainer trials, clear errors."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from designer.experiments.aggregate import learning_curves, markdown_tables, summarize_records, sweep_records
from designer.experiments.spec import AlgorithmSpec, Sweep
from designer.experiments.sweep import read_result, run_sweep
from designer.principal import UCB, DesignerEnv, DesignerEnvConfig, run_principal
from designer.principal.function import hill_climb

ER = {"task": "escape_room", "task_kwargs": {"n_agents": 2, "min_at_lever": 1}, "label": "er21"}
UCB_SPEC = AlgorithmSpec("principal", principal={"name": "ucb", "options": {"levels": 2}, "episodes_per_step": 10})
TRAIN = {"episodes": 60, "eval_period": 20, "eval_episodes": 5}
INTERRUPT_AT: list[int] = []  # the scripted policy raises KeyboardInterrupt at this round (when set)


def interrupting_policy(summary: str) -> list[float]:
    """hill_climb, interrupted (as by Ctrl-C) at round ``INTERRUPT_AT[0]`` when set."""
    if INTERRUPT_AT and len(json.loads(summary)["rounds"]) == INTERRUPT_AT[0]:
        raise KeyboardInterrupt
    return hill_climb(summary)


def _sweep(algorithms: list[Any], seeds: int = 1) -> Sweep:
    return Sweep("p", tasks=[ER], algorithms=algorithms, seeds=seeds, train=TRAIN)


def _rows(path: Path, drop: tuple[str, ...] = ("wall_seconds",)) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(fh)]


def test_principal_trial_equals_run_principal(tmp_path: Path) -> None:
    summary = run_sweep(_sweep([UCB_SPEC], seeds=2), tmp_path)
    assert summary.ok
    for seed in (0, 1):
        folder = tmp_path / f"er21__ucb__default__seed{seed}"
        assert {"trial.json", "result.json", "log.csv", "rounds.csv"} <= {p.name for p in folder.iterdir()}
        env = DesignerEnv(DesignerEnvConfig(task="escape_room", task_kwargs=ER["task_kwargs"], episodes_per_step=10,
                                            horizon=6))
        direct = run_principal(env, UCB(levels=2), 60, seed=seed)
        env.close()
        logged = _rows(folder / "rounds.csv")
        assert [float(r["reward"]) for r in logged] == [r.reward for r in direct]
        assert [(float(r["param/pay_0"]), float(r["param/pay_1"]), float(r["param/pay_2"])) for r in logged] == \
            [r.parameters for r in direct]
        log = _rows(folder / "log.csv")
        assert [int(r["episode"]) for r in log] == [0, 20, 40, 60]  # agent episodes consumed at each evaluation
        assert float(log[-1]["reward"]) == direct[-1].reward
        result = read_result(folder)
        assert result is not None and result.status == "ok" and result.episodes == 60
        assert result.welfare == pytest.approx(sum(float(r["welfare"]) for r in log[-5:]) / len(log[-5:]))


def test_finished_skipped_and_interrupted_rerun_from_start(tmp_path: Path) -> None:
    spec = AlgorithmSpec("principal", principal={
        "name": "callable", "options": {"policy": f"{__name__}:interrupting_policy"}, "episodes_per_step": 10},
        label="scripted")
    sweep = _sweep([spec])
    folder = tmp_path / "er21__scripted__default__seed0"
    run_sweep(sweep, tmp_path)
    full_log, full_rounds = _rows(folder / "log.csv"), _rows(folder / "rounds.csv")
    mtime = (folder / "log.csv").stat().st_mtime_ns
    again = run_sweep(sweep, tmp_path)  # finished: skipped, nothing rewritten
    assert again.skipped == (folder.name,) and (folder / "log.csv").stat().st_mtime_ns == mtime

    INTERRUPT_AT.append(3)
    try:
        (folder / "result.json").unlink()  # a trial the next run must do (as after a crash)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(sweep, tmp_path)
    finally:
        INTERRUPT_AT.clear()
    assert read_result(folder) is None and len(_rows(folder / "rounds.csv")) == 3  # stopped part-way
    resumed = run_sweep(sweep, tmp_path)  # re-run from the start: the same rounds and evaluations
    assert resumed.ok and resumed.skipped == ()
    assert _rows(folder / "log.csv") == full_log and _rows(folder / "rounds.csv") == full_rounds


def test_aggregate_reads_principal_and_trainer_trials(tmp_path: Path) -> None:
    records = sweep_records(run_sweep(_sweep(["none", UCB_SPEC], seeds=2), tmp_path))
    groups = summarize_records(records, reps=50)
    assert [g.algorithm_label for g in groups] == ["none", "ucb"] and all(g.seeds == (0, 1) for g in groups)
    table = markdown_tables(groups)
    assert "| none | 2 |" in table and "| ucb | 2 |" in table
    for algo in ("none", "ucb"):
        episodes, values = learning_curves([r for r in records if r.algorithm_label == algo])
        assert episodes.tolist() == [0, 20, 40, 60] and values["net"].shape == (2, 4)


def test_principal_spec_round_trips_and_trainer_hash_is_unchanged() -> None:
    sweep = _sweep(["metagrad", UCB_SPEC])
    assert Sweep.from_dict(json.loads(json.dumps(sweep.to_dict()))) == sweep
    trainer_trial, principal_trial = sweep.trials()
    assert set(trainer_trial.configs()) == {"train", "designer", "learner"}  # old trials keep their config hash
    assert principal_trial.principal == {"name": "ucb", "options": {"levels": 2}, "episodes_per_step": 10,
                                         "objective": "net"}
    assert principal_trial.designer.algorithm == "none" and principal_trial.algorithm_label == "ucb"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"principal": {"name": "nope"}}, "unknown principal 'nope'; principals: \\['callable', 'epsilon_greedy'"),
    ({"principal": {"name": "ucb", "options": {"arms_per_level": 2}}}, "does not take options"),
    ({"principal": {"name": "ucb", "rounds": 3}}, "unknown principal settings \\['rounds'\\]"),
    ({"principal": {}}, "need a 'name'"),
    ({"principal": {"name": "ucb", "objective": "apples"}}, "objective must be one of"),
])
def test_bad_principal_is_a_clear_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlgorithmSpec("principal", **kwargs)
    with pytest.raises(ValueError, match=message):  # the same from a JSON spec
        Sweep.from_dict({"name": "p", "tasks": [ER], "algorithms": [{"algorithm": "principal", **kwargs}]})


def test_changed_principal_settings_in_a_sweep_folder_are_refused(tmp_path: Path) -> None:
    from designer.experiments.sweep import prepare_sweep

    prepare_sweep(_sweep([UCB_SPEC]), tmp_path)
    changed = AlgorithmSpec("principal", principal={"name": "ucb", "options": {"levels": 3}, "episodes_per_step": 10})
    with pytest.raises(ValueError, match=r"principal\.options\.levels: 2 -> 3"):
        prepare_sweep(_sweep([changed]), tmp_path)


def test_principal_settings_need_the_principal_algorithm() -> None:
    with pytest.raises(ValueError, match="principal settings need algorithm 'principal'"):
        AlgorithmSpec("metagrad", principal={"name": "ucb"})


def test_compare_principals_example_writes_tables_plots_and_reuses_trials(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "compare_principals.py"
    spec = importlib.util.spec_from_file_location("compare_principals", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare_principals"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        argv = ["--games", "er52", "--episodes", "100", "--seeds", "0", "1", "--designers", "none", "ucb",
                "scripted_llm", "--eval-episodes", "2", "--out", str(tmp_path)]
        assert module.main(argv) == tmp_path
        summary = json.loads((tmp_path / "summary.json").read_text())["games"]["er52"]
        assert list(summary["final"]) == ["none", "ucb", "scripted_llm"] and summary["reused"] == []
        assert len(summary["final"]["ucb"]["net"]["per_seed"]) == 2 and summary["command"].endswith(str(tmp_path))
        table = (tmp_path / "er52" / "results.md").read_text()
        assert "| ucb | 2 |" in table and "| scripted_llm |" in table and "IQM" in table
        assert (tmp_path / "er52" / "curves.png").stat().st_size > 10_000
        assert (tmp_path / "results.md").read_text().startswith("## er52")
        module.main(argv)  # again: every trial is reused
        assert len(json.loads((tmp_path / "summary.json").read_text())["games"]["er52"]["reused"]) == 6
    finally:
        sys.modules.pop("compare_principals", None)
