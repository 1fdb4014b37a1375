from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rumination.testing import SimulatorConfig, SimulatorServer, no_network
from rumination.testing.postgres import LocalPostgres, PostgresMissing


@pytest.fixture(autouse=True)
def _no_network() -> Iterator[None]:
    """Every test runs with real network access blocked; loopback stays open."""
    with no_network():
        yield


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No test reads the user's config or writes to the user's cache."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    for name in ("RUMINATION_CONFIG", "RUMINATION_LLM_URL", "RUMINATION_MODEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    docs = {
        "kelp.md": "---\ntitle: Kelp forests\nurl: corpus://t/kelp\n---\n# Kelp forests\n\n"
        "Kelp forests grow in cold, nutrient-rich coastal water. Sea otters protect kelp by "
        "eating urchins. Kelp can grow half a metre a day in good conditions.",
        "urchins.md": "---\ntitle: Sea urchin barrens\nurl: corpus://t/urchins\n---\n"
        "# Sea urchin barrens\n\nWhen urchins multiply they graze kelp down to bare rock, "
        "leaving urchin barrens. Barrens can persist for decades after otters vanish.",
        "otters.txt": "Sea otters were hunted almost to extinction for their fur. Their return "
        "to the coast of California let kelp forests recover in many places.",
    }
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def corpus_db(tmp_path: Path, corpus_dir: Path) -> Path:
    from rumination.search_backends.corpus import Corpus

    db = tmp_path / "corpus.db"
    corpus = Corpus(db, create=True)
    corpus.index_folder(corpus_dir)
    corpus.close()
    return db


def committed_turns(store: Path | str) -> int:
    """Turns another process has committed to a run store (0 while it is being created)."""
    if isinstance(store, Path) or "://" not in store:
        try:
            with sqlite3.connect(store) as db:
                return int(db.execute("SELECT count(*) FROM turns").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
    import psycopg

    try:
        with psycopg.connect(store) as db:
            row = db.execute("SELECT count(*) FROM turns").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return 0


def wait_for_turns(store: Path | str, turns: int, proc: subprocess.Popen[Any],
                   limit_s: float = 60) -> None:
    """Until `proc` has committed `turns` turns to its run store (failing if it ends first)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and proc.poll() is None:
        if committed_turns(store) >= turns:  # read with sqlite: the store is migrating
            return
        time.sleep(0.05)
    raise AssertionError(f"the run did not reach {turns} turns (exit code {proc.poll()})")


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """One PostgreSQL server for the session (Debian's, installed by .ci/run)."""
    try:
        import psycopg  # noqa: F401

        server = LocalPostgres()
    except (ImportError, PostgresMissing) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL tests cannot run in CI: {exc} (.ci/run installs both)")
        pytest.skip(f"no PostgreSQL here: {exc}")
    with server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty run store of each kind: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    server: LocalPostgres = request.getfixturevalue("postgres")
    return server.create_database()


SigkillAfterTurns = Callable[[list[str], dict[str, str], Path | str, int], None]


@pytest.fixture
def sigkill_after_turns() -> SigkillAfterTurns:
    """Runs `rumination ARGS` in a subprocess and SIGKILLs it once `turns` turns are
    committed to the run store at `store_path` (failing if it ends first)."""

    def run(args: list[str], env: dict[str, str], store_path: Path | str, turns: int) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rumination", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while (
                committed_turns(store_path) < turns
                and time.monotonic() < deadline
                and proc.poll() is None
            ):
                time.sleep(0.05)
            assert proc.poll() is None, "the process ended before it could be killed"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=10)

    return run


Route = Callable[[BaseHTTPRequestHandler], None]


class LocalWeb:
    """A real HTTP server on 127.0.0.1 with pages set up by the test.

    `requests` logs (path, Host header) of every request; `closing` is set when the test
    ends, so slow handlers stop early.
    """

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str]] = []
        self.closing = threading.Event()
        web = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                web.requests.append((self.path, self.headers.get("host", "")))
                route = web.routes.get(self.path)
                if route is None:
                    web.send(self, b"not found", "text/plain", status=404)
                else:
                    route(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @staticmethod
    def send(
        handler: BaseHTTPRequestHandler,
        body: bytes,
        content_type: str | None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        handler.send_response(status)
        if content_type is not None:
            handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def page(
        self,
        path: str,
        body: bytes | str,
        content_type: str | None = "text/html; charset=utf-8",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> str:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = lambda h: self.send(h, data, content_type, status, headers)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        return self.page(path, b"", None, status, {"Location": location})

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def local_web() -> Iterator[LocalWeb]:
    web = LocalWeb()
    yield web
    web.close()


def make_pdf(pages: list[list[str]], title: str) -> bytes:
    """A small PDF: each page a list of text lines in Helvetica, and a document title."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", "",
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines in pages:
        stream = "BT /F1 10 Tf 12 TL 40 760 Td " + " ".join(f"({x}) Tj T*" for x in lines) + " ET"
        kids.append(f"{len(objects) + 1} 0 R")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents "
                       f"{len(objects) + 2} 0 R /Resources << /Font << /F1 3 0 R >> >> >>")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    objects.append(f"<< /Title ({title}) >>")
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {len(objects)} 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return out


StartSimulator = Callable[..., SimulatorServer]


@pytest.fixture
def start_simulator() -> Iterator[StartSimulator]:
    """`start_simulator(responder, **config)`: a simulator on loopback, stopped after the test."""
    servers: list[SimulatorServer] = []

    def start(responder: Callable[[list[dict[str, Any]]], str], **config: Any) -> SimulatorServer:
        server = SimulatorServer(responder, SimulatorConfig(**config)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def load_bench(name: str) -> ModuleType:
    """The script bench/NAME.py as a module (the bench folder is not a package)."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module
