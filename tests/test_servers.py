"""Knowing the server: the probe, the route, the roles, errors and usage per server, against
the answers each server gives (shapes taken from the servers' source; the real llama-server
and llama-cpp-python are in tests/model_servers/)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from rumination.errors import ContextLengthExceeded, LLMUnavailable, ServerRefused
from rumination.llm.chat_template import (
    RUMINATION_TEMPLATE,
    is_rumination_template,
    render_chat_prompt,
    template_source,
)
from rumination.llm.client import LLMClient
from rumination.llm.servers import KNOWN, ServerProfile
from rumination.llm.wire import SlotAffinity, chat_messages, choose_route
from rumination.models import Message

BASE = "http://server.test/v1"
CONVERSATION = [
    Message(role="system", content="ignored by the template"),
    Message(role="user", content="What limits heat pumps?"),
    Message(role="assistant", content='<think>Search.</think>{"name": "search", "arguments": '
            '{"query": "heat pump"}}'),
    Message(role="observation", content="【0†Heat pumps†https://example.org】\nThey work."),
]
Routes = dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]]


def answer(body: Any, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body)


def server(routes: Routes, seen: list[httpx.Request] | None = None) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        route = routes.get((request.method, request.url.path))
        return route(request) if route else httpx.Response(404, json={"detail": "Not Found"})

    return httpx.MockTransport(handle)


def models(owned_by: str, model: str = "m", **extra: Any) -> Any:
    return answer({"object": "list", "data": [{"id": model, "object": "model",
                                               "owned_by": owned_by, **extra}]})


def probe(routes: Routes, model: str = "m") -> ServerProfile:
    async def go() -> ServerProfile:
        client = LLMClient(BASE, model, transport=server(routes), template=RUMINATION_TEMPLATE,
                           retries=0)
        try:
            return await client.server()
        finally:
            await client.aclose()

    return asyncio.run(go())


LLAMA_PROPS = {"default_generation_settings": {"n_ctx": 4096}, "total_slots": 2,
               "chat_template": template_source(), "build_info": "b6000-abc"}  # fmt: skip


def test_each_server_is_told_apart_with_what_it_offers() -> None:
    vllm = probe({("GET", "/v1/models"): models("vllm", max_model_len=131072),
                  ("GET", "/version"): answer({"version": "0.11.2"})})
    assert (vllm.kind, vllm.version, vllm.window, vllm.tokenizer) == (
        "vllm", "0.11.2", 131072, "messages")
    llama = probe({("GET", "/v1/models"): models("llamacpp", meta={"n_ctx_train": 8192}),
                   ("GET", "/props"): answer(LLAMA_PROPS)})
    assert (llama.kind, llama.version, llama.window, llama.slots) == (
        "llama-server", "b6000-abc", 4096, 2)
    assert is_rumination_template(llama.template) and llama.custom_roles
    other = probe({("GET", "/v1/models"): models("llamacpp"),
                   ("GET", "/props"): answer({**LLAMA_PROPS, "chat_template": "{{ messages }}"})})
    assert not other.custom_roles  # a GGUF's own template: the completions wire
    lcp = probe({("GET", "/v1/models"): models("me"),
                 ("GET", "/openapi.json"): answer({"info": {"title": "🦙 llama.cpp Python API",
                                                            "version": "0.3.36"}})})
    assert (lcp.kind, lcp.version, lcp.window, lcp.custom_roles) == (
        "llama-cpp-python", "0.3.36", None, False)
    sglang = probe({("GET", "/v1/models"): models("sglang"),
                    ("GET", "/get_model_info"): answer({"context_length": 32768}),
                    ("GET", "/get_server_info"): answer({"version": "0.5.1"})})
    assert (sglang.kind, sglang.version, sglang.window) == ("sglang", "0.5.1", 32768)
    ollama = probe({("GET", "/v1/models"): models("library"),
                    ("GET", "/api/version"): answer({"version": "0.12.0"}),
                    ("POST", "/api/show"): answer({"parameters": "num_ctx 16384\nstop x",
                                                   "model_info": {"glm4.context_length": 32768}})})
    assert (ollama.kind, ollama.version, ollama.window) == ("ollama", "0.12.0", 16384)
    lms = probe({("GET", "/v1/models"): models("organization_owner"),
                 ("GET", "/api/v0/models/m"): answer({"loaded_context_length": 8192})})
    assert (lms.kind, lms.window) == ("lmstudio", 8192)


def test_a_server_found_by_its_routes_when_owned_by_says_nothing() -> None:
    assert probe({("GET", "/v1/models"): models("someone"),
                  ("GET", "/props"): answer(LLAMA_PROPS)}).kind == "llama-server"
    assert probe({("GET", "/v1/models"): models("someone"),
                  ("GET", "/api/version"): answer({"version": "0.9"})}).kind == "ollama"
    unknown = probe({("GET", "/v1/models"): models("someone")})
    assert unknown.kind == "openai-compatible" and unknown.window is None
    # a server without a model list is the generic kind, not an error
    assert probe({}).kind == "openai-compatible"


def test_ollama_without_num_ctx_runs_its_default_window() -> None:
    ollama = probe({("GET", "/v1/models"): models("library"),
                    ("GET", "/api/version"): answer({"version": "0.12.0"}),
                    ("POST", "/api/show"): answer({"model_info": {"glm4.context_length": 32768}})})
    assert ollama.window == 4096


@pytest.mark.parametrize(("profile", "template", "setting", "route"), [
    (KNOWN["vllm"], RUMINATION_TEMPLATE, "auto", "chat"),
    (KNOWN["simulator"], RUMINATION_TEMPLATE, "auto", "chat"),
    (KNOWN["llama-cpp-python"], RUMINATION_TEMPLATE, "auto", "completions"),
    (KNOWN["sglang"], RUMINATION_TEMPLATE, "auto", "completions"),
    (KNOWN["ollama"], RUMINATION_TEMPLATE, "auto", "completions"),
    (KNOWN["llama-server"], RUMINATION_TEMPLATE, "auto", "completions"),  # template unknown
    (ServerProfile("llama-server", template=template_source(), custom_roles=True),
     RUMINATION_TEMPLATE, "auto", "chat"),
    (KNOWN["openai-compatible"], RUMINATION_TEMPLATE, "auto", "chat"),
    (KNOWN["llama-cpp-python"], None, "auto", "chat"),  # write mode: any chat model
    (KNOWN["vllm"], RUMINATION_TEMPLATE, "completions", "completions"),
    (KNOWN["llama-cpp-python"], RUMINATION_TEMPLATE, "chat", "chat"),
])  # fmt: skip
def test_the_route_follows_the_server_and_the_setting(
    profile: ServerProfile, template: str | None, setting: Any, route: str
) -> None:
    assert choose_route(setting, profile, template) == route


def test_observations_go_as_user_messages_only_where_the_role_is_refused() -> None:
    assert chat_messages(CONVERSATION, KNOWN["vllm"]) is CONVERSATION
    mapped = chat_messages(CONVERSATION, KNOWN["llama-cpp-python"])
    assert [m.role for m in mapped] == ["system", "user", "assistant", "user"]
    assert mapped[3].content == CONVERSATION[3].content


def test_the_shipped_template_renders_the_models_prompt() -> None:
    prompt = render_chat_prompt(CONVERSATION)
    assert prompt.startswith("[gMASK]<sop><|system|>\n你是一个专业的深度研究助手")
    assert "ignored by the template" not in prompt  # system messages are dropped
    assert prompt.endswith('<|user|>\nWhat limits heat pumps?<|assistant|>\n{"name": "search", '
                           '"arguments": {"query": "heat pump"}}<|observation|>\n【0†Heat pumps'
                           '†https://example.org】\nThey work.<|assistant|>')
    assert "Search." not in prompt  # old reasoning is never re-fed


def test_slots_are_kept_per_run_and_spread_over_runs() -> None:
    affinity = SlotAffinity()
    assert [affinity.slot(key, 2) for key in ("a", "b", "a", "c", "b")] == [0, 1, 0, 0, 1]
    assert affinity.slot(None, 2) is None and affinity.slot("a", 1) is None


# --- requests on the completions wire ----------------------------------------------------------


def sse(chunks: list[dict[str, Any]]) -> httpx.Response:
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)


def chat_once(routes: Routes, profile: ServerProfile, seen: list[httpx.Request],
              **options: Any) -> Any:
    async def go() -> Any:
        client = LLMClient(BASE, "m", transport=server(routes, seen), profile=profile,
                           template=RUMINATION_TEMPLATE, retries=0, **options)
        try:
            return await client.chat(CONVERSATION, max_tokens=64, affinity="run-1")
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_llama_cpp_python_gets_the_rendered_prompt_and_its_tokens_counted() -> None:
    seen: list[httpx.Request] = []
    text = ['<think>hm</think>{"name": "finish", ', '"arguments": {}}']
    routes: Routes = {
        ("POST", "/v1/completions"): lambda r: sse(
            [{"choices": [{"text": t, "index": 0, "finish_reason": None}]} for t in text]),
        ("POST", "/extras/tokenize/count"): lambda r: httpx.Response(
            200, json={"count": len(json.loads(r.content)["input"]) // 4}),
    }
    completion = chat_once(routes, ServerProfile("llama-cpp-python", tokenizer="text"), seen)
    assert completion.content == "".join(text)
    sent = json.loads(seen[0].content)
    assert sent["prompt"] == render_chat_prompt(CONVERSATION)
    assert sent["stop"] == ["<|observation|>", "<|user|>", "<|endoftext|>"] and sent["stream"]
    assert "messages" not in sent and "id_slot" not in sent
    # no usage in the stream: both sides counted by the server's tokenizer, so not estimated
    assert completion.usage.prompt_tokens == len(sent["prompt"]) // 4
    assert completion.usage.completion_tokens == len("".join(text)) // 4
    assert not completion.usage.estimated


def test_llama_server_requests_keep_the_runs_slot_and_read_cached_tokens() -> None:
    seen: list[httpx.Request] = []
    usage = {"prompt_tokens": 900, "completion_tokens": 3}
    routes: Routes = {("POST", "/v1/completions"): lambda r: sse([
        {"choices": [{"text": "ok", "index": 0, "finish_reason": "stop"}]},
        {"choices": [], "usage": usage, "timings": {"cache_n": 850, "prompt_n": 50}}])}
    profile = ServerProfile("llama-server", tokenizer="text", slots=4)
    completion = chat_once(routes, profile, seen, slot_affinity=True)
    sent = json.loads(seen[0].content)
    assert sent["cache_prompt"] is True and sent["id_slot"] == 0
    chat_once(routes, profile, seen)  # by default llama-server picks the slot itself
    assert "id_slot" not in json.loads(seen[1].content)
    assert completion.usage.cached_prompt_tokens == 850
    assert completion.usage.prompt_tokens == 900 and not completion.usage.estimated


def test_usage_is_estimated_and_marked_where_nothing_can_count() -> None:
    routes: Routes = {("POST", "/v1/completions"): lambda r: sse(
        [{"choices": [{"text": "some answer text", "index": 0, "finish_reason": "stop"}]}])}
    completion = chat_once(routes, KNOWN["ollama"], [])
    assert completion.usage.prompt_tokens > 600  # the fixed research prompt alone is ~500
    assert completion.usage.completion_tokens > 0 and completion.usage.estimated


def test_a_refused_role_is_quoted_with_exit_2_not_called_unreachable() -> None:
    refusal = {"detail": [{"type": "literal_error", "loc": ["body", "messages", 3, "role"],
                           "msg": "Input should be 'system', 'user', 'assistant', 'tool' or "
                           "'function'"}]}  # fmt: skip
    routes: Routes = {("POST", "/v1/chat/completions"): answer(refusal, 500)}
    with pytest.raises(ServerRefused, match="answered HTTP 500: .*Input should be") as caught:
        chat_once(routes, KNOWN["openai-compatible"], [], wire="chat")
    assert caught.value.exit_code == 2


def test_nothing_answering_is_still_unreachable() -> None:
    routes: Routes = {("POST", "/v1/completions"): answer({"error": "loading"}, 503)}
    with pytest.raises(LLMUnavailable) as caught:
        chat_once(routes, KNOWN["llama-cpp-python"], [])
    assert caught.value.exit_code == 3


def test_llama_servers_context_refusal_leads_to_compaction() -> None:
    refusal = {"error": {"code": 400, "message": "the request exceeds the available context "
                         "size, try increasing it", "type": "exceed_context_size_error",
                         "n_prompt_tokens": 1500, "n_ctx": 1024}}  # fmt: skip
    routes: Routes = {("POST", "/v1/completions"): answer(refusal, 400)}
    with pytest.raises(ContextLengthExceeded, match="exceed_context_size_error"):
        chat_once(routes, KNOWN["llama-server"], [])


# --- the protocol on both wires, over HTTP ------------------------------------------------------


def test_research_runs_the_same_on_the_chat_and_the_completions_wire(
    start_simulator: Any, corpus_db: Any, tmp_path: Any
) -> None:
    """The simulator answers both routes from the same conversation: a run on either wire makes
    the same calls, sees the same sources and writes the same report."""
    from rumination import Settings, research
    from rumination.testing import simulate

    reports = {}
    for wire in ("chat", "completions"):
        server = start_simulator(simulate)
        settings = Settings(llm_url=server.url, model=server.config.model, corpus=str(corpus_db),
                            wire=wire, store_url=f"sqlite:///{tmp_path}/{wire}.db")
        reports[wire] = research("How do sea otters help kelp forests?", settings=settings)
        bodies = server.requests
        if wire == "completions":
            assert all("prompt" in b and "messages" not in b for b in bodies)
            assert bodies[-1]["prompt"].startswith("[gMASK]<sop><|system|>")
        else:
            assert all("messages" in b for b in bodies)
    chat, completions = reports["chat"], reports["completions"]
    assert chat.turns == completions.turns > 2
    assert chat.answer_markdown == completions.answer_markdown and chat.citations
    assert [s.url for s in chat.sources] == [s.url for s in completions.sources]
    assert chat.stopped_by == completions.stopped_by
    assert completions.usage.prompt_tokens > 0 and not completions.usage.estimated


# --- launch lines for the other engines --------------------------------------------------------


def test_serve_prints_each_engines_launch_line(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from rumination.cli import app

    def line(*args: str) -> str:
        result = CliRunner().invoke(app, ["serve", "--dry-run", *args])
        assert result.exit_code == 0, result.output
        return result.output

    llama = line("--engine", "llama.cpp", "--model-path", "m.gguf", "--parallel", "2")
    assert "--jinja --chat-template-file " in llama and "--reasoning-format none" in llama
    template = llama.split("--chat-template-file ", 1)[1].split()[0]
    assert Path(template).read_text(encoding="utf-8") == template_source()
    assert "--ctx-size 262144 --parallel 2" in llama  # each slot gets the whole YaRN window
    assert "--rope-scaling yarn --rope-scale 4 --yarn-orig-ctx 32768" in llama
    assert "--rope-scaling" not in line("--engine", "llama.cpp", "--no-yarn")
    sglang = line("--engine", "sglang")
    assert "sglang.launch_server" in sglang and "--context-length 131072" in sglang
    assert '"rope_type": "yarn"' in sglang
    modelfile = line("--engine", "ollama")
    assert 'TEMPLATE """{{ .Prompt }}"""' in modelfile and "PARAMETER num_ctx 32768" in modelfile
    assert 'PARAMETER stop "<|observation|>"' in modelfile


def test_serve_refuses_an_unknown_engine_or_starting_one_it_cannot() -> None:
    from typer.testing import CliRunner

    from rumination.cli import app

    for args in (["--engine", "tgi", "--dry-run"], ["--engine", "ollama"]):
        result = CliRunner().invoke(app, ["serve", *args])
        assert result.exit_code == 2
        assert result.output.startswith("error: ") and len(result.output.splitlines()) == 1
