"""A newcomer's first run: model names that work, wrong URLs and names explained in one
line (exit 2), the simulator saying what it serves, and its reports labeled SIMULATED.
The examples of the README and of the documentation pages (docs/*.md) run as written."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LocalWeb
from typer.testing import CliRunner

from rumination.cli import app
from rumination.defaults import SIMULATOR_MODEL
from rumination.llm.server_answers import model_not_served
from rumination.settings import Settings
from rumination.testing import SimulatorConfig, SimulatorServer, simulate

runner = CliRunner()
ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]  # the front door, then the site


def documentation() -> dict[str, str]:
    """Every page a reader may copy an example from, by its path in the repository."""
    return {page.relative_to(ROOT).as_posix(): page.read_text(encoding="utf-8")
            for page in PAGES}


def first_match(pattern: str) -> tuple[str, re.Match[str]]:
    """The page holding an example, and the example: wherever the example now lives."""
    for name, text in documentation().items():
        if found := re.search(pattern, text, re.S):
            return name, found
    raise AssertionError(f"no page holds an example matching {pattern!r}")


def fenced_blocks(language: str) -> list[tuple[str, str]]:
    """(page, code) of every ```language block of the README and the docs pages."""
    return [(name, code) for name, text in documentation().items()
            for code in re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)]


@pytest.fixture(autouse=True)
def _no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUMINATION_RETRIES", "0")


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_model_names_in_the_docs_are_names_that_are_served() -> None:
    text = "\n".join(documentation().values())
    text = re.sub(r"```text\n.*?```", "", text, flags=re.S)  # transcripts show wrong names too
    names = set(re.findall(r"--model[ =]([\w.-]+)|model=\"([\w.-]+)\"", text))
    used = {name for pair in names for name in pair if name and not name.isupper()}
    started = set(re.findall(r"(?:rumination\.testing serve|--served-model-name)[^\n]*?"
                             r"--model[ =]([\w.-]+)|--served-model-name[ =]([\w.-]+)", text))
    served = {Settings().model, SIMULATOR_MODEL} | {n for pair in started for n in pair if n}
    assert used and used <= served, used - served


def test_the_simulator_prints_its_model_and_a_line_that_works() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "rumination.testing", "serve", "--port", "0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        first, second = proc.stderr.readline(), proc.stderr.readline()
        assert "SIMULATOR" in first and SIMULATOR_MODEL in first
        assert second.startswith("try: rumination research ")
        args = shlex.split(second.removeprefix("try: "))
        assert args[args.index("--model") + 1] == SIMULATOR_MODEL
        result = runner.invoke(app, [*args[1:], "--format", "json"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["citations"]


def test_an_unknown_model_is_bad_input_naming_the_served_one(corpus_db: Path) -> None:
    with SimulatorServer(simulate) as server:
        result = runner.invoke(app, ["research", "kelp?", "--llm-url", server.url,
                                     "--model", "glm-z1-rumination", "--corpus", str(corpus_db)])
    assert result.exit_code == 2
    line = error_line(result.stderr)
    assert "'glm-z1-rumination' is not served" in line
    assert f"exactly one model: --model {SIMULATOR_MODEL}" in line
    assert "runs resume" not in result.stderr


def test_several_served_models_are_listed() -> None:
    message = str(model_not_served("http://h/v1", "x", ["a", "b"]))
    assert message.endswith("served models: a, b (pass one with --model)")
    assert model_not_served("http://h/v1", "x", ["a", "b"]).exit_code == 2


@pytest.mark.parametrize("url", ["not-a-url", "localhost:8000/v1", "ftp://h/v1"])
def test_a_url_that_is_not_http_is_bad_input(url: str) -> None:
    result = runner.invoke(app, ["research", "q?", "--llm-url", url])
    assert result.exit_code == 2
    assert repr(url) in error_line(result.stderr)


def test_a_url_without_v1_asks_whether_v1_was_meant(corpus_db: Path) -> None:
    with SimulatorServer(simulate) as server:
        root = server.url.removesuffix("/v1")
        result = runner.invoke(app, ["research", "q?", "--llm-url", root, "--model",
                                     SIMULATOR_MODEL, "--corpus", str(corpus_db)])
    assert result.exit_code == 2
    assert f"did you mean {root}/v1?" in error_line(result.stderr)


def test_a_web_server_is_named_in_one_line(local_web: LocalWeb, corpus_db: Path) -> None:
    page = ("<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>"
            + "<p>If you see this page, the nginx web server is working. " * 40 + "</body></html>")
    local_web.page("/v1/models", page)
    url = local_web.url("/v1")
    result = runner.invoke(app, ["research", "q?", "--llm-url", url, "--corpus", str(corpus_db)])
    assert result.exit_code == 2
    line = error_line(result.stderr)
    assert f"{url}/models answered HTTP 200 with a web page ('Welcome to nginx!')" in line
    assert "<" not in line and len(line) < 300


def test_a_server_answering_plain_text_is_named_in_one_line(
    local_web: LocalWeb, corpus_db: Path
) -> None:
    local_web.page("/v1/models", "OK", "text/plain")
    url = local_web.url("/v1")
    result = runner.invoke(app, ["research", "q?", "--llm-url", url, "--corpus", str(corpus_db)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"{url}/models answered HTTP 200 with text/plain, not JSON" in error_line(result.stderr)


@pytest.mark.parametrize("mode", ["rumination", "write"])
def test_reports_from_the_simulator_over_http_are_labeled(
    tmp_path: Path, corpus_db: Path, mode: str
) -> None:
    config = SimulatorConfig(model="any-name-at-all")  # the label does not hang on the name
    texts: dict[str, str] = {}
    with SimulatorServer(simulate, config) as server:
        for fmt in ("md", "html", "json"):
            out = tmp_path / f"r.{fmt}"
            result = runner.invoke(app, ["research", "How do otters help kelp?", "--mode", mode,
                                         "--llm-url", server.url, "--model", config.model,
                                         "--corpus", str(corpus_db), "--out", str(out)])
            assert result.exit_code == 0, result.stderr
            texts[fmt] = out.read_text(encoding="utf-8")
    assert json.loads(texts["json"])["simulated"] is True
    assert 'id="simulated"' in texts["html"]
    assert "SIMULATED" in texts["md"].split("## Warnings", 1)[1]


def test_one_warnings_count_everywhere(tmp_path: Path, corpus_db: Path) -> None:
    out, trace = tmp_path / "r.md", tmp_path / "t.jsonl"
    with SimulatorServer(simulate) as server:
        result = runner.invoke(app, ["research", "How do otters help kelp?", "--llm-url",
                                     server.url, "--model", SIMULATOR_MODEL, "--corpus",
                                     str(corpus_db), "--out", str(out), "--trace", str(trace)])
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    (finished,) = [e for e in events if e["event"] == "finished"]
    warnings = out.read_text().split("## Warnings", 1)[1].count("\n- ")
    assert finished["warnings"] == warnings == 1  # the SIMULATED label
    line = next(x for x in result.stderr.splitlines() if x.startswith("report written"))
    assert line.endswith(f"{finished['citations']} citations of {finished['sources_cited']} "
                         f"sources, {finished['sources']} sources seen, 1 warning")


def as_a_reader_adapts_it(example: str, host: str) -> str:
    """A documented example pointed at the simulator: its host, and the model name the docs
    say to pass for the simulator. An example that names no model cannot be adapted."""
    return example.replace("HOST:8000", host).replace(Settings().model, SIMULATOR_MODEL)


def test_documented_batch_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, jobs = first_match(r"```yaml\n(jobs:\n.*?)```")
    _, line = first_match(r"```bash\n(rumination batch jobs\.yaml --out-dir reports/.*?)\n```")
    (tmp_path / "jobs.yaml").write_text(jobs.group(1), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with SimulatorServer(simulate) as server:
        host = server.url.removeprefix("http://").removesuffix("/v1")
        args = shlex.split(as_a_reader_adapts_it(line.group(1), host).replace("\\\n", " "))
        result = runner.invoke(app, args[1:])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "reports" / "cold-climate.md").is_file()
    assert result.stdout.startswith("finished  cold-climate  ")


# The MCP client example (docs/service.md) needs the MCP SDK's client starting `rumination mcp`
# over stdio; tests/test_service_mcp.py runs that client against the server.
PYTHON_EXAMPLES = [(page, code) for page, code in fenced_blocks("python") if "from mcp" not in code]


def test_the_python_examples_are_found_where_they_live() -> None:
    assert {"README.md", "docs/python-api.md"} <= {page for page, _ in PYTHON_EXAMPLES}


@pytest.mark.parametrize(("page", "code"), PYTHON_EXAMPLES,
                         ids=[f"{page}-{n}" for n, (page, _) in enumerate(PYTHON_EXAMPLES)])
def test_documented_python_examples_run_as_written(
    page: str, code: str, corpus_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with SimulatorServer(simulate) as server:  # serves only the simulator's name
        host = server.url.removeprefix("http://").removesuffix("/v1")
        exec(compile(as_a_reader_adapts_it(code, host).replace("docs.db", str(corpus_db)),
                     page, "exec"), {"__name__": "docs_example"})
        requests = len(server.requests)
    printed = capsys.readouterr().out
    assert printed.strip()
    if "HOST:8000" in code:  # the example's runs went to the server it names
        assert requests > 4
    if "on_event=print" in code:
        assert "Event(kind='finished'" in printed


def test_readme_tour_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tour = README.read_text(encoding="utf-8").split("## A one-minute tour", 1)[1]
    block = tour.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    serve, *steps = [shlex.split(line) for line in block.splitlines()]
    assert serve[:4] == ["python", "-m", "rumination.testing", "serve"] and serve[-1] == "&"
    written_port = serve[serve.index("--port") + 1]
    serve[serve.index("--port") + 1] = "0"
    monkeypatch.chdir(tmp_path)
    proc = subprocess.Popen([sys.executable, *serve[1:-1]], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        started = re.search(r" at http://(127\.0\.0\.1:\d+)/v1", proc.stderr.readline())
        assert started
        results = []
        for step in steps:
            assert step[0] == "rumination"
            args = [a.replace(f"127.0.0.1:{written_port}", started.group(1)) for a in step[1:]]
            results.append(runner.invoke(app, args))
            assert results[-1].exit_code == 0, (step, results[-1].output)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    research, verify, runs_list = results  # what the tour's transcript shows
    assert "2 unsupported" in research.stderr
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    dropped = [s for s in report["statements"] if s["action"] == "dropped"]
    assert len(dropped) == 2 and verify.stderr.startswith("report written to report.json")
    assert runs_list.stdout.startswith(f"{report['run_id']}\tfinished\t")


def test_readme_is_the_front_door() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 400
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)", text))
    pages = {page.name for page in PAGES[1:]}
    assert linked == pages, pages ^ linked  # every page of the site, and nothing else


def test_docs_name_only_files_that_are_in_the_repository() -> None:
    paths: set[str] = set()
    missing = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        assert "DESIGN.md" not in text, page
        named = set(re.findall(r"`((?:prompts|reports|tests|bench|examples|search_backends|"
                               r"rumination|docs)/[\w./-]+)`", text))
        missing += [f"{page.name}: {p}" for p in named if not (ROOT / p.rstrip("/")).exists()]
        paths |= named
        for link in re.findall(r"\]\((?!https?:|#|mailto:)([^)#\s]+)", text):
            if not (page.parent / link).exists():
                missing.append(f"{page.name}: link {link}")
    assert len(paths) >= 10  # the check has something to check
    assert missing == []


def test_docs_give_the_python_version_settings_and_the_jobs_form() -> None:
    text = README.read_text(encoding="utf-8")
    assert "Python 3.11" in text and "python3 -m venv .venv" in text
    everything = "\n".join(documentation().values())
    for setting in ("keep_runs", "max_wall_time_s", "jobs:"):
        assert setting in everything, setting


def test_reports_from_the_in_process_simulator_are_labeled_too(corpus_db: Path) -> None:
    import asyncio

    from rumination import Researcher
    from rumination.testing import SimulatorModel

    settings = Settings(corpus=str(corpus_db), keep_runs=False)
    report = asyncio.run(Researcher(settings, llm=SimulatorModel()).run("How do otters help?"))
    assert report.simulated and report.warnings[0].startswith("SIMULATED")
