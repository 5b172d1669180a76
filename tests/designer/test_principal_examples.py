"""The README's "The designer as an environment" runs as written, and ``examples/compare_principals.py`` writes its
CSVs and table at a tiny budget."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _section_code() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("### The designer as an environment")
    end = text.index("\n### ", start + 1)
    blocks = re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


@pytest.mark.slow
def test_readme_section_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_section_code(), "README.md", "exec"), {"__name__": "readme"})
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(" 10")  # one step costs episodes_per_step agent episodes
    with (tmp_path / "runs" / "principals" / "ucb.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10 and rows[-1]["total_agent_episodes"] == "100"
    assert {r["param/pay_0"] for r in rows} == {"0.0", "2.0"}  # the 2-level grid's values


def test_compare_principals_writes_runs_summary_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("compare_principals", ROOT / "examples" / "compare_principals.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "compare_principals", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    principals = ["ucb", "thompson", "scripted_llm"] + (["bo"] if importlib.util.find_spec("optuna") else [])
    folder = module.main(["--task-kwargs", '{"n_agents": 2, "min_at_lever": 1}', "--budget", "12",
                          "--episodes-per-step", "4", "--seeds", "0", "1", "--principals", *principals,
                          "--out", str(tmp_path)])
    assert folder == tmp_path / "escape_room"
    with (folder / "summary.csv").open() as fh:
        summary = list(csv.DictReader(fh))
    assert [(r["principal"], r["seed"]) for r in summary] == [(p, s) for p in principals for s in ("0", "1")]
    assert all(r["rounds"] == "3" and r["agent_episodes"] == "12" for r in summary)
    for p in principals:
        assert (folder / p / "seed1" / "rounds.csv").read_text().count("\n") == 4  # header + 3 rounds
    table = (folder / "results.md").read_text()
    assert table in capsys.readouterr().out.replace("\r", "")
    assert [line.split(" | ")[0].strip("| ") for line in table.splitlines()[4:]] == principals
