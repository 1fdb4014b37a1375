"""The harness against real third-party model servers serving a real (small) model.

SmolLM2-135M cannot do the research protocol, so these check what any model must get right:
the server recognised, the route, the prompt the model's template makes, tokens counted, the
window, errors quoted, a context refusal recovered, generation stopped when a run is cancelled,
and each run's prefix kept cached on its own llama-server slot.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from rumination import Settings, research
from rumination.agent.context import ContextBudget
from rumination.errors import ContextLengthExceeded
from rumination.llm.chat_template import RUMINATION_TEMPLATE, render_chat_prompt
from rumination.llm.client import LLMClient
from rumination.llm.doctor import diagnose
from rumination.models import Message
from rumination.testing.real_servers import RunningServer, llama_server

pytestmark = pytest.mark.model_servers

PAGE = ("【{n}†Heat pumps {n}†https://example.org/hp{n}】\nVisible: 0% - 100%\n"
        + "Cold-climate heat pumps keep working well below freezing. " * 60)
CONVERSATION = [
    Message(role="user", content="What limits heat pump adoption in cold climates?"),
    Message(role="assistant", content='<think>Search.</think>{"name": "search", "arguments": '
            '{"query": "heat pump cold"}}'),
    Message(role="observation", content="【0†Heat pumps†https://example.org/hp】\nThey work."),
]


def client(server: RunningServer, **options: object) -> LLMClient:
    # retries as research has them: a kept-alive connection the server closed is sent again
    return LLMClient(server.url, server.model, retries=2, timeout_s=120,
                     template=RUMINATION_TEMPLATE, **options)  # type: ignore[arg-type]


def settings(server: RunningServer, tmp_path: Path, **values: object) -> Settings:
    return Settings(llm_url=server.url, model=server.model, max_turns=2, max_tokens=48,
                    answer_max_tokens=48, temperature=0.0, store_url=f"sqlite:///{tmp_path}/r.db",
                    judge="lexical", prefetch=False, **values)  # type: ignore[arg-type]


# --- knowing the server -----------------------------------------------------------------------


def test_llama_server_is_recognised_with_its_window_slots_and_template(
    llama_server_2slots: RunningServer,
) -> None:
    async def go() -> None:
        c = client(llama_server_2slots)
        try:
            profile = await c.server()
            assert profile.kind == "llama-server" and profile.version
            assert profile.window == 4096  # --ctx-size 8192 over 2 slots: each slot's window
            assert profile.slots == 2
            assert await c.route() == "chat"  # it renders the model's own template
        finally:
            await c.aclose()

    asyncio.run(go())


def test_llama_cpp_python_is_recognised_and_takes_the_completions_wire(
    llama_cpp_python: RunningServer,
) -> None:
    async def go() -> None:
        c = client(llama_cpp_python)
        try:
            profile = await c.server()
            assert profile.kind == "llama-cpp-python" and profile.version
            assert profile.window is None and not profile.custom_roles
            assert await c.route() == "completions"
        finally:
            await c.aclose()

    asyncio.run(go())


def test_one_conversation_renders_the_same_prompt_on_both_wires(
    llama_server_2slots: RunningServer,
) -> None:
    """llama-server renders the shipped template (chat wire); rumination renders it for the
    completions wire: the prompt text is the same."""
    messages = [m.model_dump() for m in CONVERSATION]
    response = httpx.post(f"{llama_server_2slots.root}/apply-template", json={"messages": messages},
                          timeout=30)  # fmt: skip
    response.raise_for_status()
    assert response.json()["prompt"] == render_chat_prompt(CONVERSATION)


# --- doctor -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["llama_server_2slots", "llama_cpp_python"])
def test_doctor_fails_nothing_but_the_real_turn(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server: RunningServer = request.getfixturevalue(fixture)
    diagnosis = diagnose(server.url, server.model, turn_tokens=32, timeout_s=120)
    failed = [c.name for c in diagnosis.checks if c.status == "fail"]
    assert set(failed) <= {"one real turn"}, diagnosis.checks
    assert diagnosis.server and diagnosis.server.startswith(
        "llama.cpp" if fixture == "llama_server_2slots" else "llama-cpp-python")
    # and as a user runs it: a subprocess, its own folders, no traceback
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
           "XDG_CACHE_HOME": str(tmp_path)}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "rumination", "doctor", "--llm-url", server.url,
                           "--model", server.model, "--skip-turn", "--json"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True


# --- research in both modes ----------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["llama_server_2slots", "llama_cpp_python"])
@pytest.mark.parametrize("mode", ["rumination", "write"])
def test_research_reaches_a_report_with_counted_tokens(
    fixture: str, mode: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    server: RunningServer = request.getfixturevalue(fixture)
    report = research("What limits heat pump adoption in cold climates?",
                      settings=settings(server, tmp_path, mode=mode, context_window=4096))
    assert report.usage.prompt_tokens > 0 and report.usage.completion_tokens > 0
    # llama-server reports usage in its streams; llama-cpp-python does not, and its chat
    # prompt cannot be counted exactly: write mode there is estimated, and says so. A turn
    # cut in its stream (SmolLM2 loops) sends no usage either: estimated too.
    cut = report.figures is not None and report.figures.tokens_cut > 0
    assert report.usage.estimated == ((fixture == "llama_cpp_python" and mode == "write") or cut)


def test_write_mode_sends_its_sources_to_a_server_without_the_observation_role(
    llama_cpp_python: RunningServer, tmp_path: Path
) -> None:
    """Unstreamed, the server's own usage counts the prompt it read: the sources are in it."""
    question = "What limits heat pump adoption in cold climates?"
    report = research(question, settings=settings(llama_cpp_python, tmp_path, mode="write",
                                                  stream=False, context_window=4096))
    assert report.sources, "the demo corpus has pages on heat pumps"
    assert not report.usage.estimated
    question_only = LLMClient(llama_cpp_python.url, llama_cpp_python.model)

    async def count() -> int:
        try:
            return await question_only.count_text(question)
        finally:
            await question_only.aclose()

    assert report.usage.prompt_tokens > asyncio.run(count()) + 300


# --- errors, window, cancellation ----------------------------------------------------------------


def test_a_context_refusal_is_recognised_and_compaction_recovers(
    llama_server_parts: tuple[str, Path], tmp_path: Path,
) -> None:
    binary, gguf = llama_server_parts
    with llama_server(binary, gguf, tmp_path / "small.log", ctx=2048, slots=1) as server:
        messages = list(CONVERSATION) + [
            m for n in (1, 2, 3) for m in (
                Message(role="assistant", content=f'{{"name": "click", "arguments": '
                        f'{{"link_id": {n}}}}}'),
                Message(role="observation", content=PAGE.format(n=n)))]  # fmt: skip

        async def go() -> None:
            c = client(server)
            try:
                with pytest.raises(ContextLengthExceeded):
                    await c.chat(messages, max_tokens=16)
                budget = ContextBudget(8192, c)  # a wrong window, as a user might set it
                assert await budget.compact_all(messages, keep_last=0) == 3
                completion = await c.chat(messages, max_tokens=16)
                assert completion.usage.prompt_tokens > 0
            finally:
                await c.aclose()

        asyncio.run(go())


def test_a_cancelled_run_stops_the_servers_generation(llama_server_2slots: RunningServer) -> None:
    async def go() -> None:
        c = client(llama_server_2slots, wire="completions")
        started_text = asyncio.Event()
        task = asyncio.create_task(c.chat(CONVERSATION, max_tokens=3000,
                                          on_delta=lambda _: started_text.set()))
        try:
            await asyncio.wait_for(started_text.wait(), 60)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await c.aclose()

    asyncio.run(go())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        slots = httpx.get(f"{llama_server_2slots.root}/slots", timeout=5).json()
        if not any(slot.get("is_processing") for slot in slots):
            return
        time.sleep(0.2)
    pytest.fail("llama-server still generating 10 s after the run was cancelled")


def test_each_run_keeps_to_its_slot_and_finds_its_prefix_cached(
    llama_server_2slots: RunningServer,
) -> None:
    """Two runs take turns on a 2-slot server; each second turn reuses its own first."""

    async def go() -> dict[str, list[int]]:
        c = client(llama_server_2slots, wire="completions", slot_affinity=True)
        cached: dict[str, list[int]] = {"a": [], "b": []}
        conversations = {key: [Message(role="user", content=f"Run {key}: " + "tell me about "
                                       f"topic {key} " * 60)] for key in cached}  # fmt: skip
        try:
            for _ in range(2):
                for key, messages in conversations.items():
                    completion = await c.chat(messages, max_tokens=8, affinity=key)
                    cached[key].append(completion.usage.cached_prompt_tokens)
                    messages += [Message(role="assistant", content=completion.content),
                                 Message(role="observation", content="noted " * 20)]
        finally:
            await c.aclose()
        return cached

    cached = asyncio.run(go())
    for key, counts in cached.items():
        assert counts[1] > 100, f"run {key}'s second turn found only {counts[1]} tokens cached"
