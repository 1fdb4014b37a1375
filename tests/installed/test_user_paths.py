"""What a user does after `pip install .`: the demo, research against a served model (the
simulator), batches, from the clone's root and from an empty folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .installkit import ROOT, SIMULATOR_MODEL, Install, Simulator, one_line_error

QUESTION = "How do sea otters help kelp forests?"


def _report_urls(report: Path) -> list[str]:
    return [source["url"] for source in json.loads(report.read_text())["sources"]]


@pytest.mark.parametrize("where", ["empty folder", "clone root"])
def test_demo_runs_wherever_the_user_stands(
    install: Install, user_env: dict[str, str], empty_dir: Path, tmp_path: Path, where: str
) -> None:
    cwd = empty_dir if where == "empty folder" else ROOT
    out = tmp_path / "demo.json"
    done = install.run(["rumination", "demo", "--out", str(out)], cwd=cwd, env=user_env)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["simulated"] is True
    assert report["citations"], "the demo report cites nothing"
    assert "SIMULATOR" in done.stderr


def test_python_m_rumination_from_the_clone_root_imports_every_part(
    install: Install, user_env: dict[str, str], tmp_path: Path
) -> None:
    """From the clone's root the source tree shadows the install: it must be whole."""
    probe = ("import rumination, rumination.reports, rumination.prompts, "
             "rumination.search_backends.local; print(rumination.__file__)")
    done = install.run(["python", "-c", probe], cwd=ROOT, env=user_env)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent == ROOT / "rumination"

    out = tmp_path / "demo.md"
    done = install.run(["python", "-m", "rumination", "demo", "--out", str(out)], cwd=ROOT,
                       env=user_env)
    assert done.returncode == 0, done.stderr
    assert "SIMULATED" in out.read_text()
    assert not (ROOT / "demo-report.md").exists()


def test_research_against_a_served_model(
    install: Install, user_env: dict[str, str], empty_dir: Path, simulator: Simulator
) -> None:
    done = install.run(
        ["rumination", "research", QUESTION, "--llm-url", simulator.url, "--model",
         SIMULATOR_MODEL, "--out", "report.json"], cwd=empty_dir, env=user_env)
    assert done.returncode == 0, done.stderr
    report = json.loads((empty_dir / "report.json").read_text())
    assert report["model"] == SIMULATOR_MODEL
    assert report["citations"]
    assert all(url.startswith("file://") for url in _report_urls(empty_dir / "report.json"))
    listed = install.run(["rumination", "runs", "list"], cwd=empty_dir, env=user_env)
    assert report["run_id"] in listed.stdout and "finished" in listed.stdout


def test_a_bad_report_extension_is_one_line(
    install: Install, user_env: dict[str, str], empty_dir: Path
) -> None:
    done = install.run(["rumination", "demo", "--out", "r.txt"], cwd=empty_dir, env=user_env)
    assert done.returncode == 2
    assert "reports are md, html, json, pdf, docx, not .txt" in one_line_error(done.stderr)
    assert not (empty_dir / "r.txt").exists()


@pytest.mark.parametrize(("name", "extra"), [("r.pdf", "pdf"), ("r.docx", "docx")])
def test_a_pdf_or_word_report_without_its_extra_is_one_line_naming_it(
    install: Install, user_env: dict[str, str], empty_dir: Path, name: str, extra: str
) -> None:
    """This install has the api and mcp extras only (installkit)."""
    done = install.run(["rumination", "demo", "--out", name], cwd=empty_dir, env=user_env)
    assert done.returncode == 2
    assert f"pip install 'rumination[{extra}]'" in one_line_error(done.stderr)
    assert not (empty_dir / name).exists()


def _jobs_file(folder: Path, names: list[str]) -> Path:
    jobs = folder / "jobs.jsonl"
    jobs.write_text("".join(
        json.dumps({"name": name, "question": f"{QUESTION} ({name})", "format": "json"}) + "\n"
        for name in names))
    return jobs


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_batch_from_the_clone_root(
    install: Install, user_env: dict[str, str], tmp_path: Path, simulator: Simulator,
    executor: str,
) -> None:
    if executor == "ray" and not install.has_ray:
        pytest.skip("Ray is not installed here (CI installs it)")
    jobs = _jobs_file(tmp_path, ["otters", "kelp", "urchins"])
    out_dir = tmp_path / "out"
    options = ["--workers", "1", "--concurrency", "3"] if executor == "ray" else []
    done = install.run(
        ["rumination", "batch", str(jobs), "--out-dir", str(out_dir), "--executor", executor,
         *options, "--llm-url", simulator.url, "--model", SIMULATOR_MODEL],
        cwd=ROOT, env=user_env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 of 3 jobs done" in done.stderr
    for name in ("otters", "kelp", "urchins"):
        assert json.loads((out_dir / f"{name}.json").read_text())["citations"]


@pytest.mark.parametrize("name", ["../escape", "ABSOLUTE", "a/b"])
def test_batch_refuses_a_job_name_that_leaves_the_output_folder(
    install: Install, user_env: dict[str, str], tmp_path: Path, simulator: Simulator, name: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    if name == "ABSOLUTE":
        name = str(tmp_path / "escape")
    jobs = _jobs_file(work, ["fine", name])
    done = install.run(
        ["rumination", "batch", str(jobs), "--out-dir", "out", "--llm-url", simulator.url,
         "--model", SIMULATOR_MODEL], cwd=work, env=user_env)
    assert done.returncode == 2
    assert "jobs.jsonl:2:" in one_line_error(done.stderr)
    assert [p.name for p in work.iterdir()] == ["jobs.jsonl"]
    assert not list(tmp_path.glob("escape*"))


def test_research_on_the_completions_wire_with_the_shipped_template(
    install: Install, user_env: dict[str, str], empty_dir: Path, simulator: Simulator
) -> None:
    """The model's chat template ships in the wheel: the completions wire renders it."""
    done = install.run(
        ["rumination", "research", QUESTION, "--llm-url", simulator.url, "--model",
         SIMULATOR_MODEL, "--wire", "completions", "--out", "report.json"],
        cwd=empty_dir, env=user_env)
    assert done.returncode == 0, done.stderr
    report = json.loads((empty_dir / "report.json").read_text())
    assert report["citations"] and report["usage"]["estimated"] is False
    line = install.run(["rumination", "serve", "--engine", "llama.cpp", "--dry-run",
                        "--model-path", "m.gguf"], cwd=empty_dir, env=user_env)
    assert line.returncode == 0, line.stderr
    template = line.stdout.split("--chat-template-file ", 1)[1].split()[0]
    assert Path(template).is_file() and str(install.bin.parent) in template
    assert Path(template).read_text(encoding="utf-8").startswith("[gMASK]<sop><|system|>")


@pytest.mark.parametrize("misbehaviour", ["no-search", "same-call"])
def test_a_run_without_a_cited_answer_writes_its_report_and_exits_1(
    install: Install, user_env: dict[str, str], empty_dir: Path, misbehaviour: str
) -> None:
    sim = Simulator(install, user_env, "--misbehave", misbehaviour)
    try:
        done = install.run(
            ["rumination", "research", QUESTION, "--llm-url", sim.url, "--model",
             SIMULATOR_MODEL, "--out", "report.json"], cwd=empty_dir, env=user_env)
    finally:
        sim.stop()
    assert done.returncode == 1, done.stderr
    assert "no cited answer" in done.stderr and "Traceback" not in done.stderr
    report = json.loads((empty_dir / "report.json").read_text())
    assert any(w.startswith("no cited answer") for w in report["warnings"])
    if misbehaviour == "same-call":
        assert report["stopped_by"] == "no_progress"
        assert report["figures"]["repeated_calls"] == 3
