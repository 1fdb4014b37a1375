"""Bad input named in one line before any work (issue 21, items 7, 8, 10): an `--out` file
name no report format writes, a port that is no port or is taken, a config file named in
RUMINATION_CONFIG that is not there."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rumination import defaults
from rumination.agent.researcher import Researcher
from rumination.cli import app
from rumination.errors import CannotListen, ConfigError, RuminationError, UsageError
from rumination.jobs.output import report_format
from rumination.settings import Settings
from rumination.store.run_store import RunStore
from rumination.testing import SimulatorModel

runner = CliRunner()


def rumination(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command as a user starts it, in the test's environment (its own XDG folders)."""
    return subprocess.run([sys.executable, "-m", "rumination", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_one_error_line(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# item 7: --out's extension


@pytest.mark.parametrize(("name", "implied"), [
    ("r.md", "md"), ("r.MARKDOWN", "md"), ("r.html", "html"), ("r.htm", "html"),
    ("r.json", "json"), ("r.pdf", "pdf"), ("r.DOCX", "docx"),
    ("report", "json"),  # no extension: the configured format
])
def test_report_file_names_that_name_a_format(name: str, implied: str) -> None:
    assert report_format(Path(name), None, "json") == implied


@pytest.mark.parametrize("name", ["r.txt", "r.doc", "r.odt", "report.v2"])
def test_an_extension_no_format_writes_is_refused(name: str) -> None:
    with pytest.raises(UsageError, match=r"reports are md, html, json, pdf, docx, not \.\w+; "
                       r"end the file name in \.md, \.markdown, \.html, \.htm, \.json, "
                       r"\.pdf, \.docx"):
        report_format(Path(name), "md", "md")  # an explicit --format does not make r.txt fine


@pytest.fixture
def stored_run(tmp_path: Path, corpus_db: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RUMINATION_RUN_STORE", str(tmp_path / "runs.db"))
    settings = Settings(corpus=str(corpus_db), max_turns=4)
    report = asyncio.run(Researcher(settings, llm=SimulatorModel(),
                                    store=RunStore(tmp_path / "runs.db")).run("otters?"))
    (tmp_path / "report.json").write_text(report.model_dump_json(), encoding="utf-8")
    return report.run_id


@pytest.mark.parametrize("command", ["research", "demo", "runs export", "verify"])
def test_out_r_txt_is_exit_2_before_any_work(
    command: str, stored_run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "r.txt"
    unreachable = f"http://127.0.0.1:{closed_port()}/v1"  # checked first: exit 2, not 3
    args = {
        "research": ["research", "otters?", "--llm-url", unreachable],
        "demo": ["demo"],
        "runs export": ["runs", "export", stored_run, "--report", "md"],
        "verify": ["verify", str(tmp_path / "report.json")],
    }[command]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert_one_error_line(result.stderr,
                          f"--out {out}: reports are md, html, json, pdf, docx, not .txt")
    assert not out.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["batch", "jobs.yaml", "--out-dir", "out", "--format", "txt"],
     "invalid setting format: Input should be 'md', 'html', 'json', 'pdf' or 'docx'"),
    (["batch", "txt-jobs.yaml", "--out-dir", "out"],
     "job 1: field `format`: Input should be 'md', 'html', 'json', 'pdf' or 'docx'"),
])
def test_batch_formats_are_listed_when_refused(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("jobs.yaml").write_text("- question: otters?\n  name: a\n", encoding="utf-8")
    Path("txt-jobs.yaml").write_text("- question: otters?\n  format: txt\n", encoding="utf-8")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert_one_error_line(result.stderr, message)
    assert not Path("out").exists()


def test_out_r_txt_as_users_run_it(tmp_path: Path) -> None:
    done = rumination("demo", "--out", str(tmp_path / "r.txt"))
    assert done.returncode == 2
    assert_one_error_line(done.stderr, "reports are md, html, json, pdf, docx, not .txt")
    assert not (tmp_path / "r.txt").exists()


# item 8: ports


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


SERVERS = [["api"], ["mcp", "--transport", "http"]]


@pytest.mark.parametrize("server", SERVERS, ids=["api", "mcp"])
@pytest.mark.parametrize("port", ["99999", "-5", "65536"])
def test_a_port_that_is_no_port_is_exit_2(server: list[str], port: str) -> None:
    pytest.importorskip("uvicorn")
    result = runner.invoke(app, [*server, "--port", port])
    assert result.exit_code == 2, result.output
    assert_one_error_line(result.stderr, f"--port {port} is not a port: give 1 to 65535")


@pytest.mark.parametrize("server", SERVERS, ids=["api", "mcp"])
def test_a_port_in_use_is_exit_5_naming_the_address(server: list[str], taken_port: int) -> None:
    pytest.importorskip("uvicorn")
    result = runner.invoke(app, [*server, "--port", str(taken_port)])
    assert result.exit_code == CannotListen.exit_code == 5, result.output
    assert_one_error_line(result.stderr, f"cannot listen on 127.0.0.1:{taken_port}: ")


def test_ports_as_users_run_them(taken_port: int) -> None:
    pytest.importorskip("uvicorn")
    bad = rumination("api", "--port", "99999")
    assert bad.returncode == 2
    assert_one_error_line(bad.stderr, "--port 99999 is not a port")
    taken = rumination("mcp", "--transport", "http", "--port", str(taken_port))
    assert taken.returncode == 5
    assert_one_error_line(taken.stderr, f"cannot listen on 127.0.0.1:{taken_port}")


def test_uvicorns_own_startup_failure_is_one_error_not_its_exit_code() -> None:
    pytest.importorskip("uvicorn")
    from rumination.service.server import listening_socket, run_uvicorn

    async def failing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "cannot start"})

    with listening_socket("127.0.0.1", 0) as listener:
        port = listener.getsockname()[1]
        with pytest.raises(RuminationError, match=f"the server on 127.0.0.1:{port} did not "
                           "start") as raised:
            run_uvicorn(failing_app, listener, "127.0.0.1")
    assert raised.value.exit_code == 1  # not uvicorn's 3, which means "LLM unreachable" here


def test_the_api_opens_its_run_store_before_serving(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi")
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("RUMINATION_RUN_STORE", str(blocker / "runs.db"))
    result = runner.invoke(app, ["api", "--port", "0"])
    assert result.exit_code == 2, result.output
    assert_one_error_line(result.stderr, f"cannot open run store {blocker / 'runs.db'}")


# item 10: RUMINATION_CONFIG


def test_a_missing_config_file_named_in_the_environment_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUMINATION_CONFIG", "nosuch.toml")
    result = runner.invoke(app, ["research", "otters?", "--llm-url",
                                 f"http://127.0.0.1:{closed_port()}/v1"])
    assert result.exit_code == 2, result.output
    assert_one_error_line(result.stderr,
                          "config file nosuch.toml not found (named by RUMINATION_CONFIG)")


def test_config_files_named_and_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.load().max_turns == defaults.MAX_TURNS  # the default place: may be absent
    with pytest.raises(ConfigError, match="named by config_file"):
        Settings.load(config_file=tmp_path / "missing.toml")
    monkeypatch.setenv("RUMINATION_CONFIG", str(tmp_path))
    with pytest.raises(ConfigError, match=f"config file {tmp_path} is not a file"):
        Settings.load()
    (tmp_path / "c.toml").write_text("max_turns = 7\n", encoding="utf-8")
    monkeypatch.setenv("RUMINATION_CONFIG", str(tmp_path / "c.toml"))
    assert Settings.load().max_turns == 7


def test_a_missing_config_file_as_users_run_it(tmp_path: Path) -> None:
    done = rumination("runs", "list", RUMINATION_CONFIG=str(tmp_path / "nosuch.toml"))
    assert done.returncode == 2 and done.stdout == ""
    assert_one_error_line(done.stderr, f"config file {tmp_path / 'nosuch.toml'} not found")
