"""Which model server answers, and what it offers: the one place that knows servers apart.

`probe_server` asks a base URL (ending in /v1) a few cheap GET requests and returns a
`ServerProfile`: the server's kind and version, the served context window, how prompts can be
counted exactly, whether its chat route takes the rumination protocol's `observation` role,
whether it reports cached prompt tokens and usage in streams, and (llama.cpp) its slots and
chat template. The client, the token counter, `doctor` and the context budget read the
profile instead of assuming vLLM. The facts per server are in the `KNOWN` table below, each
checked against that server's source or docs (docs/model-servers.md gives the sources).

Kinds are told apart by `owned_by` in /v1/models first (vLLM: "vllm", SGLang: "sglang",
llama-server: "llamacpp", llama-cpp-python: "me", LM Studio: "organization_owner",
rumination's simulator: "rumination-simulator"), then by a route only that server has
(llama-server `/props`, Ollama `/api/version`, llama-cpp-python's `/openapi.json` title).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import httpx

from rumination.llm.chat_template import is_rumination_template

ServerKind = Literal[
    "vllm", "sglang", "llama-server", "llama-cpp-python", "ollama", "lmstudio", "simulator",
    "openai-compatible",
]
# How a prompt is counted exactly: vLLM's /tokenize takes the messages; llama-server's
# /tokenize and llama-cpp-python's /extras/tokenize/count take text (the prompt the harness
# rendered itself); "none": estimated.
Tokenizer = Literal["messages", "text", "none"]

NAMES: dict[str, str] = {
    "vllm": "vLLM", "sglang": "SGLang", "llama-server": "llama.cpp llama-server",
    "llama-cpp-python": "llama-cpp-python server", "ollama": "Ollama", "lmstudio": "LM Studio",
    "simulator": "rumination simulator", "openai-compatible": "an OpenAI-compatible server",
}  # fmt: skip


@dataclass(frozen=True)
class ServerProfile:
    kind: ServerKind
    version: str | None = None
    window: int | None = None
    tokenizer: Tokenizer = "none"
    # The chat route passes the `observation` role to the model's template (vLLM, the
    # simulator); elsewhere the harness renders the template and uses /v1/completions.
    custom_roles: bool = False
    cached_tokens: bool = False
    stream_usage: bool = False
    # llama-server: parallel slots (--parallel) and the chat template it renders (/props)
    slots: int | None = None
    template: str | None = None
    window_source: str | None = None

    @property
    def name(self) -> str:
        return NAMES[self.kind]

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name

    @property
    def is_llama_server(self) -> bool:
        return self.kind == "llama-server"


# What each kind offers before anything is read from the running server.
KNOWN: dict[str, ServerProfile] = {
    "vllm": ServerProfile("vllm", tokenizer="messages", custom_roles=True, cached_tokens=True,
                          stream_usage=True),
    "simulator": ServerProfile("simulator", tokenizer="messages", custom_roles=True,
                               cached_tokens=True, stream_usage=True),
    # SGLang validates chat roles; /v1/completions with the harness's own prompt is safe
    "sglang": ServerProfile("sglang", cached_tokens=True, stream_usage=True),
    "llama-server": ServerProfile("llama-server", tokenizer="text", cached_tokens=True,
                                  stream_usage=True),
    # refuses roles outside system/user/assistant/tool/function (HTTP 500); no stream usage
    "llama-cpp-python": ServerProfile("llama-cpp-python", tokenizer="text"),
    "ollama": ServerProfile("ollama", stream_usage=True),
    "lmstudio": ServerProfile("lmstudio", stream_usage=True),
    "openai-compatible": ServerProfile("openai-compatible"),
}
_OWNERS = {"vllm": "vllm", "sglang": "sglang", "llamacpp": "llama-server",
           "me": "llama-cpp-python", "organization_owner": "lmstudio",
           "rumination-simulator": "simulator", "library": "ollama"}  # fmt: skip

@dataclass
class _Server:
    """The server being probed: its routes answered as JSON, or None when they do not answer."""

    http: httpx.AsyncClient
    root: str
    model: str
    props: Any = None  # llama-server's /props, read once

    async def get(self, path: str) -> Any:
        return await self._json(self.http.get(self.root + path))

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        return await self._json(self.http.post(self.root + path, json=body))

    @staticmethod
    async def _json(request: Awaitable[httpx.Response]) -> Any:
        try:
            response = await request
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        try:
            return response.json()
        except ValueError:
            return None


async def probe_server(
    http: httpx.AsyncClient, base_url: str, model: str, models: list[dict[str, Any]]
) -> ServerProfile:
    """The profile of the server at `base_url`, given its /v1/models entries."""
    server = _Server(http, base_url.rstrip("/").removesuffix("/v1"), model)
    entry = next((m for m in models if m.get("id") == model), models[0] if models else {})
    kind = _OWNERS.get(str(entry.get("owned_by", "")))
    if kind in (None, "llama-server"):
        server.props = await server.get("/props")
    if kind is None:
        kind = await _kind_by_routes(server)
    profile = KNOWN[kind]
    window = entry.get("max_model_len")
    if isinstance(window, int):
        profile = replace(profile, window=window, window_source="/v1/models max_model_len")
    reader = _READERS.get(kind)
    return profile if reader is None else await reader(profile, server)


async def _kind_by_routes(server: _Server) -> ServerKind:
    props = server.props
    if isinstance(props, dict) and ("default_generation_settings" in props or "n_ctx" in props):
        return "llama-server"
    ollama, openapi = await asyncio.gather(server.get("/api/version"),
                                           server.get("/openapi.json"))
    if isinstance(ollama, dict) and "version" in ollama:
        return "ollama"
    info = openapi.get("info") if isinstance(openapi, dict) else None
    title = str(info.get("title", "")).lower() if isinstance(info, dict) else ""
    if "llama.cpp" in title or "llama-cpp" in title:
        return "llama-cpp-python"
    return "openai-compatible"


Reader = Callable[[ServerProfile, _Server], Awaitable[ServerProfile]]


async def _read_vllm(profile: ServerProfile, server: _Server) -> ServerProfile:
    return replace(profile, version=_text(await server.get("/version"), "version"))


async def _read_sglang(profile: ServerProfile, server: _Server) -> ServerProfile:
    info = await server.get("/get_server_info")
    window, source = profile.window, profile.window_source
    if window is None:
        for name, answer in (("/get_model_info", await server.get("/get_model_info")),
                             ("/get_server_info", info)):
            found = answer.get("context_length") if isinstance(answer, dict) else None
            if isinstance(found, int):
                window, source = found, f"{name} context_length"
                break
    return replace(profile, version=_text(info, "version"), window=window, window_source=source)


async def _read_llama_server(profile: ServerProfile, server: _Server) -> ServerProfile:
    props = server.props if isinstance(server.props, dict) else {}
    settings = props.get("default_generation_settings") or {}
    n_ctx = props.get("n_ctx") or settings.get("n_ctx")  # per slot: --ctx-size / --parallel
    slots = props.get("total_slots")
    template = props.get("chat_template") if isinstance(props.get("chat_template"), str) else None
    return replace(
        profile, version=_text(props, "build_info"),
        window=n_ctx if isinstance(n_ctx, int) else profile.window,
        window_source="/props n_ctx" if isinstance(n_ctx, int) else profile.window_source,
        slots=slots if isinstance(slots, int) else None, template=template,
        # its chat route passes any role to the template: right when that is the model's own
        custom_roles=is_rumination_template(template),
    )  # fmt: skip


async def _read_llama_cpp_python(profile: ServerProfile, server: _Server) -> ServerProfile:
    openapi = await server.get("/openapi.json")
    info = openapi.get("info") if isinstance(openapi, dict) else None
    return replace(profile, version=_text(info, "version"))


async def _read_ollama(profile: ServerProfile, server: _Server) -> ServerProfile:
    version = _text(await server.get("/api/version"), "version")
    shown = await server.post("/api/show", {"model": server.model})
    shown = shown if isinstance(shown, dict) else {}
    window = None
    for line in str(shown.get("parameters", "")).splitlines():  # a Modelfile's num_ctx wins
        key, _, value = line.partition(" ")
        if key == "num_ctx" and value.strip().isdigit():
            window = int(value.strip())
    source = "Modelfile num_ctx" if window else None
    if window is None:
        window = _ollama_default_window(shown)
        source = "Ollama's default num_ctx" if window else None
    return replace(profile, version=version, window=window, window_source=source)


def _ollama_default_window(shown: dict[str, Any]) -> int | None:
    """Without num_ctx Ollama runs a model at its default context (4096 through Ollama 0.5),
    whatever the model was trained for: the smaller of the two is what the prompt gets."""
    info = shown.get("model_info")
    trained = next((v for k, v in (info or {}).items() if k.endswith(".context_length")), None)
    return min(4096, trained) if isinstance(trained, int) else None


async def _read_lmstudio(profile: ServerProfile, server: _Server) -> ServerProfile:
    entry = await server.get(f"/api/v0/models/{server.model}")
    if not isinstance(entry, dict):
        return profile
    loaded = entry.get("loaded_context_length") or entry.get("max_context_length")
    return replace(profile, window=loaded if isinstance(loaded, int) else None,
                   window_source="/api/v0/models context length" if loaded else None)


_READERS: dict[str, Reader] = {
    "vllm": _read_vllm, "sglang": _read_sglang, "llama-server": _read_llama_server,
    "llama-cpp-python": _read_llama_cpp_python, "ollama": _read_ollama,
    "lmstudio": _read_lmstudio,
}  # fmt: skip


def text_count_request(
    profile: ServerProfile, model: str, text: str
) -> tuple[str, dict[str, Any], str] | None:
    """(route, JSON body, answer key) that count `text` on this server with special tokens
    parsed and none added; the answer under the key is a count or a token list. None: the
    server cannot count text."""
    if profile.kind == "llama-server":
        return "/tokenize", {"content": text, "add_special": False, "parse_special": True}, \
            "tokens"
    if profile.kind == "llama-cpp-python":
        return "/extras/tokenize/count", {"input": text, "model": model}, "count"
    if profile.tokenizer == "messages":  # vLLM's /tokenize takes a prompt as well
        return "/tokenize", {"model": model, "prompt": text, "add_special_tokens": False}, \
            "count"
    return None


def _text(data: Any, key: str) -> str | None:
    value = data.get(key) if isinstance(data, dict) else None
    return str(value) if value else None
