"""The wheel takes no generic top-level name: a user's own prompts.py, reports.py or
search_backends.py in the working directory must not shadow the package's folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
from rumination.templates import render
from rumination.search_backends.local import demo_corpus_path
from rumination.reports import report_schema
assert render("no_results", query="q")
assert demo_corpus_path().exists()
assert report_schema()["title"]
print("ok")
"""


def test_user_modules_named_like_our_folders_do_not_break_us(tmp_path: Path) -> None:
    for name in ("prompts", "reports", "search_backends"):
        (tmp_path / f"{name}.py").write_text("raise SystemExit('user module imported')\n")
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
