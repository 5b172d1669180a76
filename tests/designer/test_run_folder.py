"""What a run folder guarantees (issue #16, "no lost runs"): resume writes where the checkpoint is, one writer per
folder, no new run over an old one without ``overwrite``, checksummed checkpoints, strict loading with named
keys and shapes, CLI budgets > 0, and NaN errors that name the training iteration."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from designer import DesignerConfig, LearnerConfig, Trainer, load_incentive
from designer.experiments.checkpoint import load_checkpoint, save_checkpoint
from designer.experiments.cli import build_parser, main
from tests.designer.test_trainer import _cfg


def _episodes(folder: Path) -> list[int]:
    with (folder / "log.csv").open(newline="") as fh:
        return [int(float(r["episode"])) for r in csv.DictReader(fh)]


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (the lock file aside) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "run.lock"}


# ------------------------------------------------------------------ 1. resume writes where the checkpoint is
def test_resume_of_a_moved_copy_writes_into_the_copy_and_leaves_the_original_alone(tmp_path: Path):
    """The issue's case: a copy made at episode 40 is resumed (through the CLI) to 50 while the original has gone
    on to 60: the copy continues in its own folder, the original keeps its checkpoint and every log row."""
    orig, moved = tmp_path / "orig", tmp_path / "moved"
    Trainer(_cfg(episodes=40, out_dir=str(orig))).train()
    moved.mkdir()
    for name in ("checkpoint.pt", "log.csv"):
        (moved / name).write_bytes((orig / name).read_bytes())
    Trainer.resume(orig / "checkpoint.pt", episodes=60).train()
    before = _snapshot(orig)
    assert main(["resume", str(moved / "checkpoint.pt"), "--episodes", "50", "--no-progress"]) == 0
    assert _snapshot(orig) == before and _episodes(orig) == [0, 20, 40, 60]
    assert _episodes(moved) == [0, 20, 40, 50]
    state = load_checkpoint(moved / "checkpoint.pt")
    assert state["progress"]["episodes"] == 50 and state["train_config"]["out_dir"] == str(moved.resolve())


def test_resume_refuses_other_folders_and_rolling_back_a_run(tmp_path: Path):
    run = tmp_path / "run"
    Trainer(_cfg(episodes=40, out_dir=str(run))).train()
    with pytest.raises(ValueError, match=r"writes into its checkpoint's folder .*copy checkpoint\.pt into"):
        Trainer.resume(run / "checkpoint.pt", out_dir=str(tmp_path / "elsewhere"))
    assert not (tmp_path / "elsewhere").exists()
    old = run / "old.pt"
    old.write_bytes((run / "checkpoint.pt").read_bytes())
    Trainer.resume(run / "checkpoint.pt", episodes=60).train()
    before = _snapshot(run)
    with pytest.raises(FileExistsError, match=r"resuming old\.pt would replace .*checkpoint\.pt.*overwrite"):
        Trainer.resume(old, episodes=50).train()
    assert _snapshot(run) == before
    Trainer.resume(old, episodes=50, overwrite=True).train()  # the explicit roll-back
    assert _episodes(run) == [0, 20, 40, 50]


def test_load_incentive_writes_nothing_and_ignores_the_stored_folder(tmp_path: Path):
    run = tmp_path / "run"
    Trainer(_cfg(episodes=20, out_dir=str(run))).train()
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes())
    before = _snapshot(tmp_path)
    from designer.experiments.runfolder import RunLock

    with RunLock(moved):  # a writer holds the folder: reading its checkpoint is still fine
        assert load_incentive(moved / "checkpoint.pt") is not None
    assert _snapshot(tmp_path) == before


# ------------------------------------------------------------------------ 2. one writer per run folder
def test_a_second_writer_of_a_run_folder_fails_at_once_naming_the_holder(tmp_path: Path):
    """Two runs with the same folder: the second raises while the first runs; the log holds every episode once."""
    errors: list[str] = []

    def second_writer(_: Trainer) -> None:
        if not errors:
            with pytest.raises(RuntimeError, match=rf"{tmp_path}.*pid {os.getpid()}") as err:
                Trainer(_cfg(episodes=40, out_dir=str(tmp_path))).train()
            errors.append(str(err.value))

    Trainer(_cfg(episodes=40, out_dir=str(tmp_path))).train(callback=second_writer)
    assert errors and _episodes(tmp_path) == [0, 20, 40]


def test_the_lock_of_a_killed_writer_is_released(tmp_path: Path):
    """The lock lives as long as its holder's process: another process holding it blocks a run (named by pid);
    once that process is killed, the folder is free again without any clean-up."""
    code = ("import sys, time\nfrom designer.experiments.runfolder import RunLock\n"
            "lock = RunLock(sys.argv[1]).acquire()\nprint('held', flush=True)\ntime.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RuntimeError, match=rf"pid {holder.pid} on "):
            Trainer(_cfg(episodes=20, out_dir=str(tmp_path))).train()
    finally:
        holder.kill()
        holder.wait()
    Trainer(_cfg(episodes=20, out_dir=str(tmp_path))).train()
    assert _episodes(tmp_path) == [0, 20]


def test_a_new_run_never_destroys_an_old_runs_files_without_overwrite(tmp_path: Path):
    Trainer(_cfg(episodes=40, out_dir=str(tmp_path))).train()
    before = _snapshot(tmp_path)
    with pytest.raises(FileExistsError, match=r"already holds a run \(checkpoint\.pt, log\.csv\).*overwrite"):
        Trainer(_cfg(episodes=20, out_dir=str(tmp_path))).train()
    assert _snapshot(tmp_path) == before
    Trainer(_cfg(episodes=20, out_dir=str(tmp_path)), overwrite=True).train()
    assert _episodes(tmp_path) == [0, 20]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["progress"]["episodes"] == 20


def test_cli_refuses_an_old_run_folder_before_training_unless_overwrite(tmp_path: Path, capsys):
    argv = ["train", "--task", "escape_room", "--n-agents", "2", "--min-at-lever", "1", "--episodes", "4",
            "--eval-period", "2", "--eval-episodes", "1", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    run = tmp_path / "er_n2_m1" / "metagrad" / "seed0"
    before = _snapshot(run)
    with pytest.raises(SystemExit, match=r"already holds a run.*--overwrite"):
        main([*argv, "--seeds", "1", "0"])  # seed 1 is new, seed 0 is not: nothing trains
    assert _snapshot(run) == before and not (tmp_path / "er_n2_m1" / "metagrad" / "seed1").exists()
    assert main([*argv, "--episodes", "2", "--overwrite"]) == 0
    assert _episodes(run) == [0, 2]


# --------------------------------------------------------------------------------- 3. checksums
def test_flipped_bytes_in_tensor_data_are_caught_by_the_checksum(tmp_path: Path):
    t = Trainer(_cfg(episodes=20))
    t.train()
    path = t.save(tmp_path / "c.pt")
    envelope = torch.load(path, weights_only=True)
    assert envelope["format_version"] == 3 and envelope["compression"] == "zlib"
    envelope["payload"][envelope["payload"].numel() // 2] ^= 0x5A  # one byte of the stored (compressed) payload
    torch.save(envelope, path)
    with pytest.raises(ValueError, match=rf"{path}.*sha256"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="sha256"):
        Trainer.resume(path)


def test_previous_format_is_read_with_a_warning_and_new_saves_are_checksummed(tmp_path: Path):
    """Format 1 (no checksum) still loads, since ``weights_only`` runs no code, but says it cannot be verified."""
    t = Trainer(_cfg(episodes=20))
    t.train()
    old = tmp_path / "v1.pt"
    torch.save({"format_version": 1, "library_version": "0.1", **t.state_dict()}, old)
    with pytest.warns(UserWarning, match=rf"{old}.*format 1.*no checksum"):
        resumed = Trainer.resume(old, episodes=40)
    assert resumed.progress.episodes == 20
    new = resumed.save(tmp_path / "v3.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_checkpoint(new)["format_version"] == 3


def test_uncompressed_format_2_still_loads_exactly(tmp_path: Path):
    """Checkpoints of the previous version (format 2: the same envelope without compression) load as before and
    resume to the same run as the compressed checkpoint of the same state."""
    import hashlib
    import io

    t = Trainer(_cfg(episodes=20))
    t.train()
    buffer = io.BytesIO()
    torch.save({"format_version": 2, "library_version": "0.1", **t.state_dict()}, buffer)
    raw = buffer.getvalue()
    old = tmp_path / "v2.pt"
    torch.save({"format_version": 2, "library_version": "0.1", "sha256": hashlib.sha256(raw).hexdigest(),
                "payload": torch.frombuffer(bytearray(raw), dtype=torch.uint8)}, old)
    new = t.save(tmp_path / "v3.pt")
    a, b = Trainer.resume(old, episodes=40, out_dir=None), Trainer.resume(new, episodes=40, out_dir=None)
    a.train()
    b.train()
    assert [h.welfare for h in a.progress.history] == [h.welfare for h in b.progress.history]
    assert all(torch.equal(a.learner.params[k], b.learner.params[k]) for k in a.learner.params)


# ------------------------------------------------------------------------ 4. CLI budgets
@pytest.mark.parametrize("argv", [["train", "--episodes", "0"], ["compare", "--episodes", "-5"],
                                  ["resume", "x.pt", "--episodes", "0"]])
def test_non_positive_budgets_are_refused_by_argparse_naming_the_flag(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2 and "--episodes" in capsys.readouterr().err
    assert build_parser().parse_args(argv[:-2]).episodes is None  # not given: the default budget


# --------------------------------------------------------------------- 5. strict, named mismatches
def test_checkpoint_mismatches_name_missing_and_unexpected_keys_and_shapes(tmp_path: Path):
    t = Trainer(_cfg(episodes=20))
    t.train()
    data = load_checkpoint(t.save(tmp_path / "c.pt"))
    broken = {k: v for k, v in data.items() if k != "learner"}
    broken["extra"] = 1
    with pytest.raises(ValueError, match=r"missing \['learner'\].*unexpected \['extra'\]"):
        Trainer(_cfg(episodes=20)).load_state_dict(broken)
    save_checkpoint(tmp_path / "no_learner.pt", {k: v for k, v in data.items() if k != "learner"})
    with pytest.raises(ValueError, match=r"no_learner\.pt.*missing \['learner'\]"):
        Trainer.resume(tmp_path / "no_learner.pt")
    wider = Trainer(_cfg(episodes=20), designer=replace(DesignerConfig(), hidden=(8,)))
    with pytest.raises(ValueError, match=r"designer\.net\.\S+: checkpoint shape \(64, \d+\), model \(8, \d+\)"):
        wider.load_state_dict(data)
    critic = Trainer(_cfg(episodes=20), learner=replace(LearnerConfig(), kind="actor_critic"))
    with pytest.raises(ValueError, match=r"learner: missing \['critic', 'critic_opt', 'critic_target'\]"):
        critic.load_state_dict(data)
    with pytest.raises(ValueError, match=r"algorithm 'metagrad'.*'dual_rl'"):
        Trainer(_cfg(episodes=20), designer=replace(DesignerConfig(), algorithm="dual_rl")).load_state_dict(data)


# ---------------------------------------------------------------- 7. NaN errors name the iteration
def test_a_nan_incentive_names_the_training_iteration_and_episode():
    """The designer's net turns NaN after iteration 3: iteration 4 fails, and the error says so (and where)."""
    poisoned_at: list[int] = []

    def poison(trainer: Trainer) -> None:
        if trainer.progress.iterations == 3 and not poisoned_at:
            poisoned_at.append(trainer.progress.episodes)
            with torch.no_grad():
                for p in trainer.designer.net.parameters():
                    p.fill_(float("nan"))

    with pytest.raises(FloatingPointError, match=r"training iteration 4 \(from episode (\d+)\)") as err:
        Trainer(_cfg(episodes=60, eval_period=1000)).train(callback=poison)
    assert f"training iteration 4 (from episode {poisoned_at[0]})" in str(err.value)
    assert "is nan" in str(err.value) or "not finite" in str(err.value)  # the original cause is kept
