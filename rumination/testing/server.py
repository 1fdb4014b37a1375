"""A simulator of vLLM's OpenAI-compatible server, for tests, the demo and the benchmarks.

It speaks vLLM's wire formats over a real socket (routes, JSON shapes, SSE chunks, error
bodies, Prometheus metrics); the assistant text comes from a pluggable responder. It is labeled
a simulator (`x-rumination-simulator: 1`, `owned_by: "rumination-simulator"`) and never claims
to be the model. Token counts are estimates: the client's own (rumination.llm.tokens) applied
to the prompt as `render_prompt` renders it."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rumination.defaults import SIMULATOR_MODEL
from rumination.llm.chat_template import render_message_dicts
from rumination.llm.tokens import estimate_tokens

Responder = Callable[[list[dict[str, Any]]], str]

_WORD = re.compile(r"\s*\S{1,12}|\s+")


def render_prompt(
    messages: list[dict[str, Any]], add_generation_prompt: bool = True, template: str = "rumination"
) -> str:
    """The model's own chat template, as vLLM renders it (DESIGN.md section 1): every message
    is cut up to its last </think> (old reasoning is never re-fed, and any other text before a
    </think> is lost too), system messages are dropped and other roles render nothing. The
    "generic" template stands for a misconfigured server (a plain chat template): no fixed
    research prompt, system messages kept, observations silently dropped."""
    if template != "generic":
        dicts = [{**m, "content": str(m.get("content") or "")} for m in messages]
        return render_message_dicts(dicts, add_generation_prompt=add_generation_prompt)
    parts = ["[gMASK]<sop>"]
    rendered = ("system", "user", "assistant")
    for message in messages:
        role, text = message.get("role"), str(message.get("content") or "")
        if role in rendered:
            parts.append(f"<|{role}|>\n" + text.split("</think>")[-1].strip())
    return "".join(parts) + ("<|assistant|>" if add_generation_prompt else "")


_TURN = re.compile(r"<\|(user|assistant|observation)\|>\n?")


def messages_from_prompt(prompt: str) -> list[dict[str, Any]]:
    """The conversation a prompt rendered with the rumination template holds (the completions
    wire sends text): each `<|role|>` turn after the system part, the generation prompt left
    out. What the template cut (old reasoning, system messages) stays cut."""
    parts = _TURN.split(prompt)
    turns = [{"role": role, "content": text} for role, text in zip(parts[1::2], parts[2::2],
                                                                    strict=True)]
    if turns and turns[-1] == {"role": "assistant", "content": ""}:
        turns.pop()
    return turns


def apply_limits(text: str, stop: list[str], max_tokens: int) -> tuple[str, str, str | None]:
    """Cut at the first stop string, then at max_tokens: (content, finish_reason, stop_reason)."""
    hits = [(text.find(s), s) for s in stop if s and s in text]
    index, stop_reason = min(hits) if hits else (len(text), None)
    text = text[:index]
    if estimate_tokens(text) <= max_tokens:
        return text, "stop", stop_reason
    lo, hi = 0, len(text)  # the estimate grows with the prefix: binary search the cut
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if estimate_tokens(text[:mid]) <= max_tokens else (lo, mid - 1)
    return text[:lo], "length", None


def _common_prefix(a: str, b: str, block: int = 4096) -> int:
    i = 0  # compare whole blocks in C first: prompts of a run share long prefixes
    while a[i : i + block] == b[i : i + block] and i < len(a):
        i += block
    tail = os.path.commonprefix([a[i : i + block], b[i : i + block]])
    return min(len(a), len(b), i + len(tail))


def error_body(message: str, status: int, param: str | None = None) -> dict[str, Any]:
    """vLLM's ErrorResponse; `type` is the status phrase as an error class, `code` the status."""
    words = HTTPStatus(status).phrase.replace("-", " ").title().split()
    kind = "".join(words).removesuffix("Error")
    return {"error": {"message": message, "type": kind + "Error", "param": param, "code": status}}


class _Reject(Exception):
    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.body = status, error_body(message, status, param)


@dataclass
class SimulatorConfig:
    model: str = SIMULATOR_MODEL
    max_model_len: int = 131072
    latency_per_token_s: float = 0.0  # sleep per generated token (to model generation time)
    base_latency_s: float = 0.0  # fixed sleep per request
    # continuous batching: each extra request in flight slows every token by this fraction
    batch_slowdown: float = 0.0
    fail_first: int = 0  # answer the first N chat requests with HTTP 503 (retry tests)
    status_override: int | None = None  # every chat request gets this status and an error body
    prompt_tokens_details: bool = False  # as vLLM's --enable-prompt-tokens-details: cached_tokens
    prefix_caching: bool = True  # False: as vLLM with --no-enable-prefix-caching (no hits)
    template: str = "rumination"  # "generic": a plain chat template (see render_prompt)


class _HTTPServer(ThreadingHTTPServer):
    """Tracks open connections so that stop() can end kept-alive ones: a stopped simulator
    must look dead to clients that still hold a connection (as a killed vLLM does)."""

    daemon_threads = True
    # the standard library's backlog is 5: a batch of a hundred runs connecting at once then
    # waits out dropped SYNs (1 s, 3 s, …) until connects time out; uvicorn (vLLM) listens
    # with 2048
    request_queue_size = 2048

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a connection cut by stop(): quiet
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_now = list(self.connections)
        for conn in open_now:
            with contextlib.suppress(OSError):  # the handler thread sees EOF and ends
                conn.shutdown(socket.SHUT_RDWR)


class SimulatorServer:
    """A vLLM look-alike on a real socket; `url` is the base URL including /v1."""

    def __init__(self, responder: Responder, config: SimulatorConfig | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:  # fmt: skip
        self.responder = responder
        self.config = config or SimulatorConfig()
        self.requests: list[dict[str, Any]] = []  # every chat request body, in order
        self.rejections: list[int] = []  # HTTP status of every refused request
        self._lock = threading.Lock()
        self._recent: deque[str] = deque(maxlen=64)  # rendered prompts, for prefix-cache hits
        self._stats = dict.fromkeys(("prompt", "generation", "queries", "hits", "running"), 0)
        self._kv_tokens = 0
        self._created = int(time.time())
        self._thread: threading.Thread | None = None
        self._httpd = _HTTPServer((host, port))
        self._httpd.sim = self  # type: ignore[attr-defined]  # read by _Handler
        self.url = f"http://{host}:{self._httpd.server_address[1]}/v1"

    def start(self) -> SimulatorServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="simulator")
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve until stop() is called from another thread (blocking; for the command line)."""
        self._httpd.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        """Stop serving: close the listening socket and every open connection."""
        if self._thread is not None:
            self._httpd.shutdown()  # returns once the serving loop has exited
            self._thread = None
        self._httpd.server_close()
        self._httpd.close_connections()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def models_body(self) -> dict[str, Any]:
        permission = {"id": f"modelperm-{uuid.uuid4().hex}", "object": "model_permission",
            "created": self._created, "allow_create_engine": False, "allow_sampling": True,
            "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
            "allow_fine_tuning": False, "organization": "*", "group": None,
            "is_blocking": False}  # fmt: skip
        card = {
            "id": self.config.model, "object": "model", "created": self._created,
            "owned_by": "rumination-simulator", "root": self.config.model, "parent": None,
            "max_model_len": self.config.max_model_len, "permission": [permission],
        }  # fmt: skip
        return {"object": "list", "data": [card]}

    def metrics_text(self) -> str:
        with self._lock:
            stats, kv = dict(self._stats), min(1.0, self._kv_tokens / self.config.max_model_len)
        gauges = {"num_requests_running": stats["running"], "num_requests_waiting": 0,
                  "kv_cache_usage_perc": kv}  # fmt: skip
        counters = {"prompt_tokens": stats["prompt"], "generation_tokens": stats["generation"],
                    "prefix_cache_queries": stats["queries"], "prefix_cache_hits": stats["hits"]}
        label = f'{{engine="0",model_name="{self.config.model}"}}'
        lines = ["# rumination simulator: token counts are estimates, not a real engine"]
        for kind, metrics, suffix in (("gauge", gauges, ""), ("counter", counters, "_total")):
            for name, value in metrics.items():  # as prometheus_client writes them
                lines.append(f"# TYPE vllm:{name} {kind}")
                lines.append(f"vllm:{name}{suffix}{label} {float(value)}")
        return "\n".join(lines) + "\n"

    def tokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check_model(body)
        messages, text = body.get("messages"), body.get("prompt")
        if isinstance(messages, list):
            text = render_prompt(messages, bool(body.get("add_generation_prompt", True)),
                                 self.config.template)
        elif not isinstance(text, str):
            raise _Reject(400, "Either `prompt` (a string) or `messages` (a list) is required.")
        n, data = estimate_tokens(text), text.encode("utf-8")
        step = len(data) / max(n, 1)
        pieces = [data[int(i * step) : int((i + 1) * step)] for i in range(n)]
        ids = [zlib.crc32(piece) % 151552 for piece in pieces]  # fake ids below GLM-4's vocab
        strs = None
        if body.get("return_token_strs"):  # byte pieces, as a byte-level BPE shows them
            strs = [piece.decode("utf-8", "replace") for piece in pieces]
        return {"count": n, "max_model_len": self.config.max_model_len, "tokens": ids,
                "token_strs": strs}  # fmt: skip

    def _check_model(self, body: dict[str, Any]) -> None:
        model = body.get("model")
        if model is not None and model != self.config.model:
            raise _Reject(404, f"The model `{model}` does not exist.", param="model")

    def _validate(self, body: dict[str, Any]) -> tuple[list[Any], str, int, int, list[str]]:
        """Check a chat request like vLLM: (messages, prompt, prompt tokens, max_tokens, stop)."""
        self._check_model(body)
        messages = body.get("messages")
        if isinstance(body.get("prompt"), str) and messages is None:  # /v1/completions
            messages = messages_from_prompt(body["prompt"])
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise _Reject(400, "`messages` must be a list of message objects.", "messages")
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else [str(s) for s in stop]
        prompt = render_prompt(messages, template=self.config.template)
        limit = self.config.max_model_len
        n = estimate_tokens(prompt)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise _Reject(400, f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens")
        max_tokens = max(1, limit - n) if max_tokens is None else max_tokens
        if n + max_tokens > limit:
            raise _Reject(400, f"This model's maximum context length is {limit} tokens. However, "
                          f"you requested {n + max_tokens} tokens ({n} in the messages, "
                          f"{max_tokens} in the completion). Please reduce the length of the "
                          "messages or completion.")  # fmt: skip
        return messages, prompt, n, max_tokens, stop

    def _track(self, kv: int = 0, running: int = 0, generated: int = 0, **prefill: int) -> None:
        with self._lock:
            self._kv_tokens += kv
            for key, value in {"running": running, "generation": generated, **prefill}.items():
                self._stats[key] += value

    def chat(self, body: dict[str, Any]) -> Generator[dict[str, Any] | str, None, None]:
        """Yield one completion object, or a stream's SSE payloads. Errors raise at first next()."""
        with self._lock:
            self.requests.append(body)
            seen = len(self.requests) - 1
        cfg = self.config
        if cfg.status_override is not None:
            raise _Reject(cfg.status_override, "Simulated failure (status_override).")
        if seen < cfg.fail_first:
            raise _Reject(503, f"Simulated failure {seen + 1} of {cfg.fail_first} (fail_first).")
        messages, prompt, n, max_tokens, stop = self._validate(body)
        with self._lock:  # prefix cache: longest prefix shared with a recent prompt
            recent = self._recent if self.config.prefix_caching else ()
            hit = max((_common_prefix(prompt, p) for p in recent), default=0)
            self._recent.append(prompt)
        cached = min(estimate_tokens(prompt[:hit]), n)
        self._track(n, 1, prompt=n, queries=n, hits=cached)
        try:
            time.sleep(cfg.base_latency_s)
            try:
                text = self.responder(messages)
            except Exception as exc:  # a broken responder is a 500, as an engine error is
                raise _Reject(500, f"Simulator responder failed: {exc!r}") from exc
            content, finish, stop_reason = apply_limits(text, stop, max_tokens)
            n_out = estimate_tokens(content)
            usage: dict[str, Any] = {"prompt_tokens": n, "total_tokens": n + n_out,
                                     "completion_tokens": n_out}  # fmt: skip
            details = {"cached_tokens": cached} if cfg.prompt_tokens_details else None
            if details is not None:
                usage["prompt_tokens_details"] = details
            head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()),
                    "model": cfg.model}  # fmt: skip
            text_wire = "prompt" in body  # /v1/completions: `text` where chat has a message
            if body.get("stream"):
                options = body.get("stream_options")  # vLLM: include_usage defaults to true
                with_usage = isinstance(options, dict) and options.get("include_usage", True)
                yield from self._events(head, content, finish, stop_reason, usage, with_usage,
                                        text_wire)
                self._track(generated=n_out)
            else:
                time.sleep(self._token_delay() * n_out)
                self._track(generated=n_out)
                message = {"role": "assistant", "content": content, "reasoning_content": None}
                answer: dict[str, Any] = {"text": content} if text_wire else {
                    "message": {**message, "tool_calls": []}}
                choice = {"index": 0, **answer, "logprobs": None,
                          "finish_reason": finish, "stop_reason": stop_reason}  # fmt: skip
                kind = "text_completion" if text_wire else "chat.completion"
                yield {**head, "object": kind, "choices": [choice],
                       "usage": {**usage, "prompt_tokens_details": details}}  # fmt: skip
        finally:
            self._track(-n, -1)  # KV usage: prompts of the requests being generated

    def _token_delay(self) -> float:
        running = max(1, self._stats["running"])
        return self.config.latency_per_token_s * (1 + self.config.batch_slowdown * (running - 1))

    def _events(self, head: dict[str, Any], content: str, finish: str, stop_reason: str | None,
                usage: dict[str, Any], with_usage: bool,
                text_wire: bool = False) -> Iterator[str]:  # fmt: skip
        kind = "text_completion" if text_wire else "chat.completion.chunk"
        head = {"id": head["id"], "object": kind, **head}
        tail = {"usage": None} if with_usage else {}  # as vLLM marks non-final chunks

        def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
            answer = {"text": delta.get("content", "")} if text_wire else {"delta": delta}
            choice = {"index": 0, **answer, "logprobs": None,
                      "finish_reason": finish_reason, **extra}  # fmt: skip
            return json.dumps({**head, "choices": [choice], **tail})

        yield chunk({"role": "assistant", "content": ""})
        words = _WORD.findall(content)
        for i in range(0, len(words), 3):  # a few words per chunk, paced like generation
            piece = "".join(words[i : i + 3])
            time.sleep(self._token_delay() * estimate_tokens(piece))
            yield chunk({"content": piece})
        yield chunk({}, finish, stop_reason=stop_reason)
        if with_usage:
            yield json.dumps({**head, "choices": [], "usage": usage})
        yield "[DONE]"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version, sys_version = "rumination-simulator", ""

    @property
    def sim(self) -> SimulatorServer:
        return self.server.sim  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        return  # silence the default per-request stderr log

    def _head(self, status: int, ctype: str | None, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("x-rumination-simulator", "1")
        if ctype:
            self.send_header("Content-Type", ctype)
        if status == 429:
            self.send_header("Retry-After", "0")
        if length is None:  # a stream goes out as one HTTP chunk per SSE event
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, status: int, data: Any, ctype: str | None = "application/json") -> None:
        body = data if isinstance(data, bytes) else json.dumps(data).encode("utf-8")
        self._head(status, ctype, len(body))
        self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self._send(200, b"", None)
        elif path == "/v1/models":
            self._send(200, self.sim.models_body())
        elif path == "/metrics":
            self._send(200, self.sim.metrics_text().encode(), "text/plain; version=0.0.4")
        else:
            self._send(404, {"detail": "Not Found"})  # FastAPI's answer

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path not in ("/v1/chat/completions", "/v1/completions", "/tokenize"):
            return self._send(404, {"detail": "Not Found"})
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
        except ValueError as exc:
            return self._send(400, error_body(f"Invalid JSON body: {exc}", 400))
        try:
            if path == "/tokenize":
                return self._send(200, self.sim.tokenize(body))
            results = self.sim.chat(body)
            first = next(results)
        except _Reject as rej:
            self.sim.rejections.append(rej.status)
            return self._send(rej.status, rej.body)
        try:
            if isinstance(first, dict):
                return self._send(200, first)
            self._head(200, "text/event-stream; charset=utf-8")
            for payload in itertools.chain([first], results):
                data = f"data: {payload}\n\n".encode()
                self.wfile.write(b"%x\r\n%b\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-stream
        finally:
            results.close()  # ends the request's accounting whatever happened
