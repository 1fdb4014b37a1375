"""Per-turn harness overhead: the time between a model response and the next request.

A vLLM-like simulator runs in a process of its own (bench/simproc.py) and plays `--turns` tool
calls (searches, then clicks on every hit, page after page) at `--ms-per-token`, over a
corpus of `--docs` generated documents. It notes when each chat request arrives and when its
response has been fully written; the gap between one response and the next request is what
the client adds. Two clients run the same session against it, in one run:

- rumination (`Researcher`: parsing, the context budget, the browser, the run store, events);
- a bare reference loop: the standard library (http.client, json, sqlite3) around the same
  corpus searches and reads, with the same durability: each turn is committed to SQLite
  (WAL, synchronous=FULL) before the next request.

Prints each client's median and p90 gap, their ratio (target: at most 2x), the harness's
CPU per turn, and each client's share: the sum of its gaps over the sum of the model's
generation times (request arrival to response end, on the simulator's clock) in the same
sessions, i.e. how much the client adds to the model's time (target for rumination: at most
1.5% at 25 ms/token). `--breakdown` also runs the harness once with timestamps around each step of
the gap (on the simulator's clock) and prints the median of each; `--profile` runs it under
cProfile and prints where its own time goes, by package and by function.

    python bench/turns.py [--turns 40] [--ms-per-token 25] [--docs 40] [--breakdown] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import http.client
import importlib
import inspect
import json
import pstats
import random
import re
import sqlite3
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from simproc import ChatTiming, simulator_process

from rumination import Researcher, Settings
from rumination.search_backends.corpus import Corpus
from rumination.testing import SimulatorConfig
from rumination.testing.simulator import GLACIER_WORDS, long_reader

MODEL = "sim"
QUESTION = "glacier moraine ablation"
WINDOW_CHARS = 12000
SEARCH_LIMIT = 10
ANSWER_TOKENS = 256  # both clients cut the final answer here: its length is not measured


def gaps_ms(timings: Sequence[ChatTiming]) -> list[float]:
    """Milliseconds from each response's end to the next request's arrival."""
    return [1000 * (after.arrived - before.done) for before, after in pairwise(timings)]


def generation_s(timings: Sequence[ChatTiming]) -> float:
    """Seconds the model spent on these requests: each one's arrival to its response's end."""
    return sum(timing.done - timing.arrived for timing in timings)


def percentile(samples: Sequence[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def write_corpus(folder: Path, docs: int, words: int) -> Path:
    """`docs` documents of about `words` words in sentences (the simulator's answer quotes
    two sentences per page it read, so sentences keep that answer short), indexed."""
    folder.mkdir(parents=True)
    for i in range(docs):
        rng = random.Random(i)
        sentences = []
        while sum(len(s.split()) for s in sentences) < words:
            sentences.append(" ".join(rng.choices(GLACIER_WORDS, k=rng.randint(8, 20))) + ".")
        text = " ".join(s.capitalize() for s in sentences)
        (folder / f"doc{i}.md").write_text(f"# Glacier report {i}\n\n{text}", encoding="utf-8")
    corpus = Corpus(folder / "corpus.db", create=True)
    try:
        corpus.index_folder(folder)
    finally:
        corpus.close()
    return folder / "corpus.db"


# ---- the harness -----------------------------------------------------------------------------


def harness_run(url: str, corpus: Path, workdir: Path, turns: int) -> float:
    """One research run; returns the process CPU seconds it used."""
    settings = Settings(llm_url=url, model=MODEL, corpus=str(corpus), max_turns=turns + 5,
                        run_store=str(workdir / "runs.db"), page_window_chars=WINDOW_CHARS,
                        search_limit=SEARCH_LIMIT, answer_max_tokens=ANSWER_TOKENS)
    started = time.process_time()
    asyncio.run(Researcher(settings).run(QUESTION))
    return time.process_time() - started


# ---- the reference loop ----------------------------------------------------------------------

_HEADERS = {"Content-Type": "application/json"}


def _stream(conn: http.client.HTTPConnection, messages: list[dict[str, str]],
            max_tokens: int = 8192) -> str:
    body = json.dumps({"model": MODEL, "messages": messages, "max_tokens": max_tokens,
                       "stream": True, "stream_options": {"include_usage": True}})
    conn.request("POST", "/v1/chat/completions", body, _HEADERS)
    response = conn.getresponse()
    parts: list[str] = []
    for line in response:
        if not line.startswith(b"data: "):
            continue
        data = line[6:].strip()
        if data == b"[DONE]":
            break
        for choice in json.loads(data).get("choices") or []:
            parts.append(choice.get("delta", {}).get("content") or "")
    response.read()
    return "".join(parts)


class Reference:
    """Search and click like the harness (same corpus calls, same observation shapes)."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self.urls: list[tuple[str, str]] = []  # source id -> (url, title)
        self.ids: dict[str, int] = {}
        self.offsets: dict[int, tuple[str, int]] = {}

    def search(self, query: str) -> tuple[str, list[tuple[int, str, str]]]:
        blocks, new = [], []
        for hit in self.corpus.search(query, SEARCH_LIMIT):
            if hit.url not in self.ids:
                self.ids[hit.url] = len(self.urls)
                self.urls.append((hit.url, hit.title))
                new.append((self.ids[hit.url], hit.url, hit.title))
            blocks.append(f"【{self.ids[hit.url]}†{hit.title}†{hit.url}】\n{hit.snippet}")
        return "\n\n".join(blocks), new

    def click(self, link_id: int) -> str:
        url, title = self.urls[link_id]
        text, start = self.offsets.get(link_id) or ("", 0)
        if not text:
            page = self.corpus.get(url)
            text = page.text if page else ""
        if start >= len(text):
            start = 0
        end = min(len(text), start + WINDOW_CHARS)
        if end < len(text):
            cut = text.rfind(" ", start + WINDOW_CHARS // 2, end)
            end = cut + 1 if cut != -1 else end
        self.offsets[link_id] = (text, end)
        first, last = round(100 * start / len(text)), round(100 * end / len(text))
        return f"【{link_id}†{title}†{url}】\nVisible: {first}% - {last}%\n\n{text[start:end]}"


def reference_run(url: str, corpus_path: Path, workdir: Path, turns: int) -> float:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    db = sqlite3.connect(workdir / "reference.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE turns (i INTEGER PRIMARY KEY, text TEXT, call TEXT, observation TEXT)")
    db.execute("CREATE TABLE sources (id INTEGER PRIMARY KEY, url TEXT, title TEXT)")
    corpus = Corpus(corpus_path)
    browser = Reference(corpus)
    messages = [{"role": "user", "content": QUESTION}]
    started = time.process_time()
    try:
        for index in range(turns + 5):
            text = _stream(conn, messages)
            call = json.loads(re.split(r"</think>", text)[-1])
            messages.append({"role": "assistant", "content": text})
            new: list[tuple[int, str, str]] = []
            observation = None
            if call["name"] == "search":
                observation, new = browser.search(call["arguments"]["query"])
            elif call["name"] == "click":
                observation = browser.click(int(call["arguments"]["link_id"]))
            db.execute("BEGIN")
            db.execute("INSERT INTO turns VALUES (?, ?, ?, ?)",
                       (index, text, json.dumps(call), observation))
            db.executemany("INSERT INTO sources VALUES (?, ?, ?)", new)
            db.execute("COMMIT")
            if observation is None:  # finish: one more request for the answer
                _stream(conn, messages, ANSWER_TOKENS)
                break
            messages.append({"role": "observation", "content": observation})
    finally:
        corpus.close()
        db.close()
        conn.close()
    return time.process_time() - started


# ---- the profile -----------------------------------------------------------------------------

_PACKAGES = ("rumination", "httpx", "httpx_sse", "httpcore", "h11", "anyio", "asyncio",
             "pydantic", "jinja2", "tenacity", "json", "sqlite3", "selectors", "socket", "ssl",
             "re", "threading", "concurrent")


def _package(filename: str, function: str) -> str:
    if filename == "~":  # a C function: name it by what it is
        for name in ("sqlite3", "json", "socket", "select", "re", "_asyncio"):
            if name in function:
                return name.strip("_") + " (C)"
        return "other C"
    path = filename.replace("\\", "/")
    for name in _PACKAGES:
        if f"/{name}/" in path or path.endswith(f"/{name}.py"):
            if name == "rumination":
                return "rumination/" + path.rsplit("/", 1)[-1]
            return name
    return "other"


def profile_breakdown(url: str, corpus: Path, workdir: Path, turns: int, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    harness_run(url, corpus, workdir, turns)
    profiler.disable()
    stats = pstats.Stats(profiler)
    by_package: dict[str, float] = defaultdict(float)
    waiting = 0.0
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        if "poll" in function and filename == "~":  # the event loop waiting: not CPU
            waiting += row[2]
        else:
            by_package[_package(filename, function)] += row[2]
    total = sum(by_package.values())
    print(f"\nprofile of one harness run (cProfile, own time by package: {total:.2f} s of CPU;"
          f" {waiting:.1f} s waiting in epoll not counted):")
    for name, seconds in sorted(by_package.items(), key=lambda kv: -kv[1])[:16]:
        print(f"  {name:<28} {seconds:>7.3f} s {100 * seconds / total:>5.1f}%")
    print(f"\ntop {top} functions by cumulative time:")
    stats.sort_stats("cumulative").print_stats(top)


# ---- the gap, step by step ---------------------------------------------------------------------

_STEPS = {  # label: (module, class, method) timed around each call
    "model answer read": ("rumination.llm.client", "LLMClient", "_stream_once"),
    "tool": ("rumination.agent.browser", "Browser", "execute"),
    "checkpoint": ("rumination.agent.loop", "TurnLoop", "_checkpoint"),
    "window fit": ("rumination.agent.context", "ContextBudget", "fit"),
}


def _timed(marks: list[tuple[str, float]], label: str, method: Any) -> Any:
    if inspect.iscoroutinefunction(method):
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            marks.append((label + ">", time.monotonic()))
            try:
                return await method(*args, **kwargs)
            finally:
                marks.append((label + "<", time.monotonic()))
        return timed_async

    def timed(*args: Any, **kwargs: Any) -> Any:
        marks.append((label + ">", time.monotonic()))
        try:
            return method(*args, **kwargs)
        finally:
            marks.append((label + "<", time.monotonic()))
    return timed


def gap_breakdown(url: str, corpus: Path, workdir: Path, turns: int,
                  timings: Callable[[], Sequence[ChatTiming]]) -> None:
    """Medians of each step between a response's end and the next request's arrival."""
    marks: list[tuple[str, float]] = []
    originals = []
    for label, (module, cls, name) in _STEPS.items():
        owner = getattr(importlib.import_module(module), cls)
        originals.append((owner, name, getattr(owner, name)))
        setattr(owner, name, _timed(marks, label, getattr(owner, name)))
    try:
        harness_run(url, corpus, workdir, turns)
    finally:
        for owner, name, method in originals:
            setattr(owner, name, method)
    steps: dict[str, list[float]] = defaultdict(list)
    for before, after in pairwise(timings()):
        first: dict[str, float] = {}
        for label, at in marks:
            if before.done - 0.001 <= at <= after.arrived + 0.001:
                first.setdefault(label, at)
        if {"model answer read<", "model answer read>"} - first.keys():
            continue
        answer_read, next_request = first["model answer read<"], first["model answer read>"]
        steps["response end -> answer read"].append(answer_read - before.done)
        for label in ("tool", "checkpoint", "window fit"):
            if label + ">" in first:
                steps[label].append(first[label + "<"] - first[label + ">"])
        steps["answer read -> next request (all of the above)"].append(next_request - answer_read)
        steps["next request -> at the server"].append(after.arrived - next_request)
        steps["whole gap"].append(after.arrived - before.done)
    print("\nthe harness's gap, step by step (medians, one run):")
    for label, seconds in steps.items():
        print(f"  {label:<48} {1000 * statistics.median(seconds):>6.2f} ms")


# ---- main ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--ms-per-token", type=float, default=25.0)
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--words", type=int, default=600, help="words per document")
    parser.add_argument("--repeat", type=int, default=2,
                        help="sessions per client, alternating (the machine's noise is shared)")
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30, help="functions listed by --profile")
    args = parser.parse_args(argv)
    config = SimulatorConfig(model=MODEL, latency_per_token_s=args.ms_per_token / 1000)
    clients = {"rumination": harness_run, "reference": reference_run}
    gaps: dict[str, list[float]] = defaultdict(list)
    cpu: dict[str, float] = defaultdict(float)
    requests: dict[str, int] = defaultdict(int)
    model_s: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp, "corpus"), args.docs, args.words)
        for round_ in range(args.repeat):
            for name, run in clients.items():
                workdir = Path(tmp, f"{name}-{round_}")
                workdir.mkdir()
                with simulator_process(long_reader, (args.turns,), config) as sim:
                    cpu[name] += run(sim.url, corpus, workdir, args.turns)
                    timings = sim.stop()
                gaps[name] += gaps_ms(timings)
                requests[name] += len(timings)
                model_s[name] += generation_s(timings)
        rows = [(name, requests[name], statistics.median(gaps[name]),
                 percentile(gaps[name], 0.9), 1000 * cpu[name] / requests[name],
                 100 * sum(gaps[name]) / 1000 / model_s[name])
                for name in clients]
        print(f"{args.turns} tool calls at {args.ms_per_token:g} ms/token, {args.docs} documents,"
              f" {args.repeat} sessions per client; gap = response end to next request, as the"
              " simulator saw it")
        print(f"{'client':<12} {'requests':>8} {'gap p50 ms':>11} {'gap p90 ms':>11} "
              f"{'CPU ms/request':>15} {'gaps / model time':>18}")
        for name, requests, p50, p90, cpu_ms, share in rows:
            print(f"{name:<12} {requests:>8} {p50:>11.2f} {p90:>11.2f} {cpu_ms:>15.2f} "
                  f"{share:>17.2f}%")
        ratio = rows[0][2] / rows[1][2]
        print(f"median gap ratio rumination / reference: {ratio:.2f}x (target <= 2x)")
        print(f"harness time between responses: {rows[0][5]:.2f}% of model time at "
              f"{args.ms_per_token:g} ms/token (target <= 1.5%; the bare loop: {rows[1][5]:.2f}%)")
        if args.breakdown:
            workdir = Path(tmp, "timed")
            workdir.mkdir()
            with simulator_process(long_reader, (args.turns,), config) as sim:
                gap_breakdown(sim.url, corpus, workdir, args.turns, sim.stop)
        if args.profile:
            workdir = Path(tmp, "profiled")
            workdir.mkdir()
            with simulator_process(long_reader, (args.turns,), config) as sim:
                profile_breakdown(sim.url, corpus, workdir, args.turns, args.top)
                sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
