"""bench/extraction.py: the F1 measure, and the script end to end on synthetic pages."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from conftest import load_bench

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "extraction_synthetic"


def bench() -> ModuleType:
    return load_bench("extraction")


def test_token_f1_on_a_hand_computed_example() -> None:
    f1 = bench().token_f1
    # expected 4 words, got 3 of them plus 2 extra: precision 3/5, recall 3/4 -> F1 2/3
    assert f1("Kelp grows very fast", "kelp grows fast, menu login") == pytest.approx(2 / 3)
    assert f1("a a b", "a b b") == pytest.approx(2 / 3)  # multisets: 2 of 3 either way
    assert f1("", "") == 1.0 and f1("kelp", "") == 0.0


def test_the_script_prints_every_system_on_synthetic_pages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench().main(["--data", str(FIXTURE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("3 pages")
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == {"rumination", "trafilatura", "bs4"}
    ours, soup = float(rows["rumination"][1]), float(rows["bs4"][2])
    assert ours > soup  # the navigation and footer cost get_text its precision


def test_missing_data_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench().main(["--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "article-extraction-benchmark" in err
