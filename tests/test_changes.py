"""What changed since the last run of the same job: the same job run twice over a corpus
changed in between (a document moved to a new file, one added, one removed) names exactly
those sources; statements are matched as normalised sentences; `runs diff`, `research
--changes`, schedules (on by default) and the API's compare_to."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rumination.cli import app
from rumination.jobs.outdir import OutDir
from rumination.jobs.schedule import Scheduler
from rumination.models import Citation, Report, ReportFigures
from rumination.reports.render import render_report
from rumination.search_backends.corpus import Corpus
from rumination.store.run_store import RunStore
from rumination.support.changes import compare_reports
from rumination.testing import SimulatorConfig, SimulatorServer, simulate

runner = CliRunner()
QUESTION = "How do sea otters affect kelp forests?"
DOCS = {
    "kelp.md": "Sea otters protect kelp forests by eating the urchins that graze on kelp. Kelp "
    "forests grow in cold coastal water and shelter many fish.",
    "urchins.md": "Where sea otters vanish, urchins multiply and graze kelp forests down to bare "
    "rock called urchin barrens.",
    "hunting.md": "Sea otters were hunted almost to extinction for their fur, and kelp forests "
    "declined along the coast.",
}
SEAGRASS = ("Sea otters also help seagrass meadows and kelp forests by keeping crabs and urchins "
            "in check.")


def write_doc(folder: Path, name: str, text: str) -> None:
    title = name.removesuffix(".md").capitalize()
    (folder / name).write_text(f"---\ntitle: {title}\n---\n# {title}\n\n{text}\n",
                               encoding="utf-8")


class Corpus3:
    """Three documents about otters, indexed; `change()` moves one, removes one, adds one."""

    def __init__(self, root: Path) -> None:
        self.docs, self.db = root / "docs", root / "corpus.db"
        self.docs.mkdir()
        for name, text in DOCS.items():
            write_doc(self.docs, name, text)
        self.index()

    def index(self) -> None:
        corpus = Corpus(self.db, create=True)
        corpus.index_folder(self.docs)
        corpus.close()

    def url(self, name: str) -> str:
        return (self.docs / name).resolve().as_uri()

    def change(self) -> None:
        (self.docs / "forests").mkdir()
        shutil.move(self.docs / "kelp.md", self.docs / "forests" / "kelp.md")
        (self.docs / "urchins.md").unlink()
        write_doc(self.docs, "seagrass.md", SEAGRASS)
        self.index()


@pytest.fixture
def corpus(tmp_path: Path) -> Corpus3:
    return Corpus3(tmp_path)


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(simulate, SimulatorConfig(model="sim")) as server:
        yield server


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "runs.db"
    monkeypatch.setenv("RUMINATION_RUN_STORE", str(path))
    return path


def urls(sources: list[dict[str, str]]) -> set[str]:
    return {s["url"] for s in sources}


def assert_the_corpus_change(changes: dict[str, Any], corpus: Corpus3) -> None:
    assert urls(changes["new_sources"]) == {corpus.url("forests/kelp.md"),
                                            corpus.url("seagrass.md")}
    assert urls(changes["dropped_sources"]) == {corpus.url("kelp.md"), corpus.url("urchins.md")}
    # the moved document says what it said: no statement of it is new or gone
    assert changes["new_statements"] == [SEAGRASS]
    assert changes["removed_statements"] == [DOCS["urchins.md"]]
    assert changes["figures"]["sources_cited"] == {"before": 3, "after": 3}


def test_a_batch_job_run_again_says_which_sources_and_statements_changed(
    tmp_path: Path, corpus: Corpus3, sim: SimulatorServer, store: Path
) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(f"- name: otters\n  question: {QUESTION}\n  corpus: {corpus.db}\n",
                    encoding="utf-8")

    def batch(out: str) -> dict[str, Any]:
        result = runner.invoke(app, ["batch", str(jobs), "--out-dir", str(tmp_path / out),
                                     "--llm-url", sim.url, "--model", "sim", "--format",
                                     "json", "--changes"])  # fmt: skip
        assert result.exit_code == 0, result.stderr
        report: dict[str, Any] = json.loads((tmp_path / out / "otters.json").read_text())
        return report

    first = batch("week1")
    assert first["changes"] is None  # nothing to compare with yet
    assert urls(first["citations"]) == {corpus.url(n) for n in DOCS}
    corpus.change()
    second = batch("week2")
    changes = second["changes"]
    assert changes["since_run"] == first["run_id"]
    assert_the_corpus_change(changes, corpus)
    # what the reader got is what the store keeps (runs export shows the same section)
    stored = RunStore(store, read_only=True).report(second["run_id"])
    assert stored is not None and stored.changes is not None
    markdown = render_report(stored, "md")
    assert markdown.startswith(f"## Changes since {changes['since'][:10]}")
    assert f"[Seagrass]({corpus.url('seagrass.md')})" in markdown

    diff = runner.invoke(app, ["runs", "diff", first["run_id"], second["run_id"], "--json"])
    assert diff.exit_code == 0, diff.stderr
    assert json.loads(diff.stdout) == changes
    lines = runner.invoke(app, ["runs", "diff", first["run_id"], second["run_id"]]).stdout
    assert f"+ source  Seagrass  {corpus.url('seagrass.md')}" in lines
    assert f"- source  Urchins  {corpus.url('urchins.md')}" in lines
    assert f"+ statement  {SEAGRASS}" in lines


def test_research_changes_compares_with_the_last_run_of_the_same_question(
    corpus: Corpus3, sim: SimulatorServer, store: Path, tmp_path: Path
) -> None:
    args = ["research", QUESTION, "--llm-url", sim.url, "--model", "sim", "--corpus",
            str(corpus.db), "--changes"]  # fmt: skip
    first = runner.invoke(app, [*args, "--out", str(tmp_path / "1.json")])
    assert first.exit_code == 0, first.stderr
    assert json.loads((tmp_path / "1.json").read_text())["changes"] is None
    other = runner.invoke(app, ["research", "What are urchin barrens?", "--llm-url", sim.url,
                                "--model", "sim", "--corpus", str(corpus.db)])  # fmt: skip
    assert other.exit_code == 0  # another question: not "the last run" of this one
    corpus.change()
    second = runner.invoke(app, [*args, "--out", str(tmp_path / "2.json")])
    assert second.exit_code == 0, second.stderr
    changes = json.loads((tmp_path / "2.json").read_text())["changes"]
    assert changes["since_run"] == json.loads((tmp_path / "1.json").read_text())["run_id"]
    assert_the_corpus_change(changes, corpus)


def test_changes_without_a_run_store_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUMINATION_KEEP_RUNS", "false")
    result = runner.invoke(app, ["research", "q", "--changes"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --changes compares") and "keep_runs" in result.stderr


def test_schedule_reports_say_what_changed_by_default(
    tmp_path: Path, corpus: Corpus3, sim: SimulatorServer, store: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "jobs.yaml").write_text(
        f"- name: otters\n  question: {QUESTION}\n  corpus: {corpus.db}\n  format: json\n",
        encoding="utf-8")
    (tmp_path / "schedules.yaml").write_text(
        "schedules:\n  - name: weekly\n    cron: '0 6 * * MON'\n    jobs: jobs.yaml\n"
        "    out_dir: out\n", encoding="utf-8")

    async def two_firings(self: Scheduler, max_firings: int | None = None) -> None:
        for week in ("week1", "week2"):
            if week == "week2":
                corpus.change()
            await self.run_batch(self.schedules[0], OutDir.open(tmp_path / "out" / week))

    monkeypatch.setattr(Scheduler, "run_forever", two_firings)
    result = runner.invoke(app, ["schedule", str(tmp_path / "schedules.yaml"), "--llm-url",
                                 sim.url, "--model", "sim"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "out" / "week2" / "otters.json").read_text())
    assert_the_corpus_change(report["changes"], corpus)


def report(answer: str, urls_: list[str], accuracy: float | None = None) -> Report:
    return Report(
        question="q", answer_markdown=answer, run_id="r", model="m",
        citations=[Citation(number=i + 1, source_id=i, url=u, title=f"t{i}")
                   for i, u in enumerate(urls_)],
        figures=ReportFigures(citation_accuracy=accuracy),
    )  # fmt: skip


def test_small_edits_of_wording_are_no_change_and_urls_compare_canonically() -> None:
    before = report(
        "# Otters\n\nSea otters eat the urchins that graze kelp [1]. Kelp forests shelter "
        "many fish species along cold coasts [2].\n\nOtters were hunted for fur.",
        ["https://Example.org/kelp#passage-1", "https://example.org/fish"], accuracy=0.5,
    )
    after = report(
        "# Otters today\n\nSea otters eat urchins that graze the kelp[1]! Kelp forests "
        "shelter many fish species along the cold coasts [2].\n\nOtters now number over "
        "three thousand in California [3].",
        ["https://example.org:443/kelp#passage-2", "https://example.org/fish",
         "https://example.org/count"], accuracy=1.0,
    )
    changes = compare_reports(before, after, "2026-01-05T06:00:00+00:00")
    assert [s.url for s in changes.new_sources] == ["https://example.org/count"]
    assert changes.dropped_sources == []
    assert changes.new_statements == ["Otters now number over three thousand in California."]
    assert changes.removed_statements == ["Otters were hunted for fur."]
    assert changes.figures["citation_accuracy"].model_dump() == {"before": 0.5, "after": 1.0}


def test_the_api_compares_a_run_with_the_previous_one_of_its_question(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    import httpx
    from servicekit import running_api, service_settings, simulator, wait_status

    with simulator() as server, running_api(service_settings(tmp_path, server.url)) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        def run(**extra: str) -> dict[str, Any]:
            started = client.post("/runs", json={"question": QUESTION, "max_turns": 6, **extra})
            assert started.status_code == 202, started.text
            run_id = started.json()["run_id"]
            wait_status(client, run_id, {"finished"})
            body: dict[str, Any] = client.get(f"/runs/{run_id}/report",
                                              params={"format": "json"}).json()
            return body

        first = run()
        assert first["changes"] is None
        second = run(compare_to="previous")
        assert second["changes"]["since_run"] == first["run_id"]
        assert second["changes"]["new_sources"] == []  # the same corpus, the same sources
        third = run(compare_to=first["run_id"])
        assert third["changes"]["since_run"] == first["run_id"]
        unknown = client.post("/runs", json={"question": QUESTION, "compare_to": "nosuchrun"})
        assert unknown.status_code == 400 and "nosuchrun" in unknown.json()["error"]


def test_every_format_opens_with_the_changes_section() -> None:
    pytest.importorskip("weasyprint")
    import io

    import docx
    import pypdf

    from rumination.models import ChangedSource, FigureChange, ReportChanges
    from rumination.reports.render import report_bytes

    before = report("Otters were hunted for fur in the Pacific.", ["https://example.org/fur"])
    changed = report("Otters now number over three thousand in California [1].",
                     ["https://example.org/count"], accuracy=1.0).model_copy(update={
        "changes": ReportChanges(
            since_run="abc123", since="2026-11-30T06:00:00+00:00",
            new_sources=[ChangedSource(url="https://example.org/count", title="Otter count")],
            dropped_sources=[ChangedSource(url="https://example.org/fur", title="Fur [trade]")],
            new_statements=["Otters now number over three thousand in California."],
            removed_statements=["Otters were hunted for fur in the Pacific."],
            figures={"citation_accuracy": FigureChange(before=0.5, after=1.0),
                     "sources_cited": FigureChange(before=1, after=1)},
        )})  # fmt: skip
    assert before.changes is None

    markdown = render_report(changed, "md")
    assert markdown.startswith("## Changes since 2026-11-30\n")
    assert "- [Fur \\[trade\\]](https://example.org/fur)" in markdown
    assert "- Citation accuracy: 50.0% → 100.0%" in markdown
    html = render_report(changed, "html")
    assert html.index('id="changes"') < html.index('class="answer"')
    assert '<a href="https://example.org/count" rel="noopener noreferrer">Otter count</a>' in html
    data = json.loads(render_report(changed, "json"))
    assert data["changes"]["figures"]["sources_cited"] == {"before": 1, "after": 1}

    pdf = pypdf.PdfReader(io.BytesIO(report_bytes(changed, "pdf")))
    text = pdf.pages[0].extract_text()
    assert text.index("Changes since 2026-11-30") < text.index("California [1]")
    assert "Statements gone" in text and "Citation accuracy: 50.0% → 100.0%" in text
    word = docx.Document(io.BytesIO(report_bytes(changed, "docx")))
    headings = [p.text for p in word.paragraphs if p.style.name.startswith("Heading")]
    assert headings[:3] == ["Changes since 2026-11-30", "New sources", "No longer cited"]
    links = [(link.url, link.text) for p in word.paragraphs for link in p.hyperlinks]
    assert ("https://example.org/count", "Otter count") in links


def test_the_previous_run_is_the_last_finished_one_of_the_same_job_or_question(
    store_url: str,
) -> None:
    from rumination.store.run_store import FAILED, FINISHED

    runs = RunStore(store_url)

    def stored(run_id: str, question: str, job: str | None, status: str = FINISHED) -> None:
        runs.create_run(run_id, question, "m", "local", "rumination", "{}")
        if job is not None:
            runs.set_job(run_id, job)
        finished = report("An answer of several words.", []).model_copy(update={"run_id": run_id})
        runs.set_status(run_id, status, finished if status == FINISHED else None)

    stored("a1", "otters?", "weekly")
    stored("b1", "otters?", None)
    stored("a2", "otters, again?", "weekly")  # the job's question was edited: still the job
    stored("a3", "otters?", "weekly", FAILED)
    stored("a4", "otters?", "weekly")
    stored("b2", "otters?", None)
    previous = {run_id: (p.run_id if (p := runs.previous_run(run_id)) else None)
                for run_id in ("a1", "a2", "a4", "b1", "b2")}
    assert previous == {"a1": None, "a2": "a1", "a4": "a2", "b1": "a1", "b2": "a4"}
    runs.close()
