"""The README's "The designer as an environment" runs as written (``examples/compare_principals.py`` is tested in
``tests/test_principal_sweep.py``)."""

from __future__ import annotations

import contextlib
import csv
import io
import re
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
