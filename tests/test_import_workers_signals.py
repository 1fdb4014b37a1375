"""`rumination index DUMP` with its conversion worker processes, stopped by SIGTERM or by
Ctrl-C's SIGINT to the whole process group: one line, exit 4, no worker left behind, and
the next run resumes after the last commit."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mwparserfromhell")

HEAD = ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11">\n'
        "  <siteinfo><base>https://en.wikipedia.org/wiki/Main_Page</base></siteinfo>\n")
BOLD = "'" * 3


def article(n: int) -> str:
    """A page of wikitext with the templates, links and references a converter works on."""
    sentence = ("The [[ice]] of glacier {n} moved {k} metres, as the [[valley|Alpine valley]] "
                "shows.&lt;ref&gt;{{{{cite|y={k}}}}}&lt;/ref&gt; ")
    sections = "\n".join(f"== Section {k} ==\n" + sentence.format(n=n, k=k) * 6
                         for k in range(12))
    text = (f"{{{{Infobox glacier|name=G{n}}}}}\n{BOLD}Glacier {n}{BOLD} is a [[glacier]].\n"
            f"{sections}\n== References ==\n{{{{reflist}}}}\n[[Category:Glaciers]]")
    return (f"  <page>\n    <title>Glacier {n}</title>\n    <ns>0</ns>\n    <id>{n}</id>\n"
            f'    <revision><id>{n}</id><text xml:space="preserve">{text}</text></revision>\n'
            "  </page>\n")


def write_dump(path: Path, articles: int) -> None:
    pages = "".join(article(n) for n in range(1, articles + 1))
    path.write_text(HEAD + pages + "</mediawiki>\n", encoding="utf-8")


def first_commit_done(db: Path) -> bool:
    """Whether the import has committed its first batch (its place is in the meta table)."""
    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=0.1) as connection:
            return connection.execute(
                "SELECT count(*) FROM meta WHERE key LIKE 'import:%'").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def group_members(group: int) -> list[int]:
    """Processes still in process group `group` (field 5 of /proc/PID/stat)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            members.append(int(stat.parent.name))
    return members


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one CPU: no worker processes")
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGINT to the group"])
def test_a_stopped_import_leaves_no_worker_and_resumes(tmp_path: Path, stop: str) -> None:
    dump = tmp_path / "enwiki-pages-articles.xml"
    write_dump(dump, 3000)
    db = tmp_path / "corpus.db"
    command = [sys.executable, "-m", "rumination", "index", str(dump), "--db", str(db)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + 60
    while not first_commit_done(db):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    if stop == "SIGTERM":
        process.terminate()
    else:
        os.killpg(process.pid, signal.SIGINT)
    output = process.communicate(timeout=60)[0].decode().replace("\r", "\n")
    assert process.returncode == 4
    lines = [line for line in output.splitlines() if line and not line.startswith("imported")]
    assert lines == ["error: interrupted"]
    deadline = time.monotonic() + 10
    while group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert group_members(process.pid) == []
    again = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stderr
    assert "3000 documents" in again.stdout and "resumed after 2,000 records" in again.stdout


IDLE_WORKERS = """
import os, signal, time
from rumination.search_backends.importers.converting import converted_ahead

def upper(text):
    return text.upper()

def items():
    yield "a"
    time.sleep(1.5)  # the import is busy elsewhere: the workers wait for work
    os.killpg(0, signal.SIGINT)  # Ctrl-C, to the whole group
    time.sleep(2)
    yield "b"

if __name__ == "__main__":
    try:
        for item, converted in converted_ahead(items(), lambda _, text: (upper, text), 2):
            pass
    except KeyboardInterrupt:
        print("interrupted")
"""


def test_ctrl_c_with_idle_workers_prints_no_worker_traceback(tmp_path: Path) -> None:
    script = tmp_path / "idle_workers.py"
    script.write_text(IDLE_WORKERS, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, start_new_session=True, preexec_fn=default_sigint,
                          check=False)
    assert done.stdout.strip() == "interrupted"
    assert "Traceback" not in done.stderr, done.stderr
