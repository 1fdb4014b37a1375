"""`rumination doctor`: first contact with a live server, checked in a few seconds.

Each check says pass, warn or fail and, when it is not a pass, how to fix it: the served model
names, which server answers (llm/servers.py) and its version, the context window (YaRN), the
route requests take (chat or completions with the model's template rendered here), what the
chat template makes of a sample conversation (the rumination model's fixed prompt, the
observation role, nothing cut), exact token counts, prefix caching, streaming, and one real
turn parsed into a tool call. Every request goes the way research sends it, so a server that
refuses the observation role on its chat route is checked on the completions route.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from typing import Any, Literal

import httpx

from rumination.errors import LLMError, LLMUnavailable, NotAnLLMServer, UsageError
from rumination.llm.chat_template import RUMINATION_TEMPLATE, render_chat_prompt
from rumination.llm.client import LLMClient
from rumination.llm.protocol import CallTurn, parse_turn
from rumination.llm.request_body import JSON_HEADERS
from rumination.llm.server_answers import is_html, not_found, server_message, web_page_answer
from rumination.llm.servers import ServerProfile
from rumination.llm.wire import Route
from rumination.models import Message, Wire
from rumination.settings import check_llm_url
from rumination.templates import render

Status = Literal["pass", "warn", "fail"]
YARN_WINDOW = 131072
NATIVE_WINDOW = 32768
TOOLS = ("search", "click", "open", "finish")
# Unusual words: seen in the rendered prompt, they show that their message survived the template.
USER_MARK, OBSERVATION_MARK = "quillfeather", "marrowlantern"
SAMPLE_QUESTION = "What limits heat pump adoption in cold climates?"
SAMPLE = [
    Message(role="user", content=f"{SAMPLE_QUESTION} ({USER_MARK})"),
    Message(role="assistant", content='<think>Search first.</think>{"name": "search", '
            '"arguments": {"query": "heat pump cold climate"}}'),
    Message(role="observation", content="【0†Cold-climate heat pumps†https://example.org/hp】\n"
            f"Modern units keep working well below freezing ({OBSERVATION_MARK})."),
]
# Byte-level BPE token strings show a space as Ġ and a newline as Ċ.
_BPE_BYTES = str.maketrans({"Ġ": " ", "Ċ": "\n"})


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class Diagnosis:
    url: str
    model: str | None
    checks: list[Check] = field(default_factory=list)
    server: str | None = None

    @property
    def failed(self) -> bool:
        return any(c.status == "fail" for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {"url": self.url, "model": self.model, "server": self.server,
                "ok": not self.failed,
                "checks": [asdict(c) for c in self.checks]}


class Doctor:
    """Runs the checks against one OpenAI-compatible endpoint (base URL ending in /v1)."""

    def __init__(
        self, llm_url: str, model: str | None = None, *, api_key: str | None = None,
        timeout_s: float = 60.0, turn_tokens: int = 4096, skip_turn: bool = False,
        temperature: float = 0.95, top_p: float = 0.7, wire: Wire = "auto",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        try:
            self.base_url = check_llm_url(llm_url.strip()).rstrip("/")
        except ValueError as exc:
            raise UsageError(f"--llm-url {exc}") from None
        self.root = self.base_url.removesuffix("/v1")
        self.model = model
        self.turn_tokens = turn_tokens
        self.skip_turn = skip_turn
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.temperature, self.top_p = temperature, top_p
        self.transport = transport
        self.wire: Wire = wire
        self.route: Route = "chat"
        self.profile: ServerProfile | None = None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout_s, transport=transport)

    async def run(self) -> Diagnosis:
        try:
            served = await self._served_models()
            diagnosis = Diagnosis(self.base_url, self.model)
            entry = self._choose_model(served, diagnosis)
            if entry is None:
                return diagnosis
            diagnosis.model = self.model
            client = self._client(retries=0, temperature=0.0)  # the checks' requests
            try:
                self.profile = profile = await client.server()
                self.route = await client.route()
                diagnosis.server = profile.label
                diagnosis.checks.append(self._server(profile))
                diagnosis.checks.append(self._window(profile))
                diagnosis.checks.append(self._route_check(profile))
                diagnosis.checks.extend(await self._template())
                diagnosis.checks.append(await self._token_counts(client))
                diagnosis.checks.append(await self._prefix_cache(client))
                diagnosis.checks.append(await self._streaming(client))
            finally:
                await client.aclose()
            if not self.skip_turn:
                diagnosis.checks.append(await self._turn())
            return diagnosis
        finally:
            await self._http.aclose()

    def _client(self, **options: Any) -> LLMClient:
        """A client that sends what research sends: the same route, template and sampling."""
        options = {"timeout_s": self.timeout_s, "temperature": self.temperature,
                   "top_p": self.top_p, **options}
        return LLMClient(self.base_url, self.model or "", api_key=self.api_key, wire=self.wire,
                         template=RUMINATION_TEMPLATE, profile=self.profile,
                         transport=self.transport, **options)  # fmt: skip

    def _server(self, profile: ServerProfile) -> Check:
        offers = [f"window {'yes' if profile.window else 'no'}",
                  f"exact tokens {'yes' if profile.tokenizer != 'none' else 'no'}",
                  f"custom roles {'yes' if profile.custom_roles else 'no'}",
                  f"usage in streams {'yes' if profile.stream_usage else 'no'}"]
        if profile.slots:
            offers.append(f"{profile.slots} slots")
        if profile.kind == "openai-compatible":
            return Check("server", "warn", "not recognised: " + ", ".join(offers),
                         "treated as vLLM-like; see docs/model-servers.md")
        return Check("server", "pass", f"{profile.label}: " + ", ".join(offers))

    def _route_check(self, profile: ServerProfile) -> Check:
        if self.route == "chat":
            return Check("wire", "pass", "chat: the server renders the chat template")
        why = ("asked for (--wire completions)" if self.wire == "completions" else
               f"{profile.name} does not render the model's template with its roles")
        return Check("wire", "pass", f"completions: the model's template rendered by "
                     f"rumination ({why})")

    async def _token_counts(self, client: LLMClient) -> Check:
        try:
            n = await client.tokenize(SAMPLE)
        except NotImplementedError as exc:
            return Check("token counts", "warn", f"estimated: {exc}",
                         "budgets and figures use the estimator (reports say 'estimated')")
        except (LLMError, KeyError, TypeError, ValueError) as exc:
            return Check("token counts", "warn", f"estimated: counting failed ({exc})")
        return Check("token counts", "pass", f"exact: the sample prompt is {n} tokens")

    async def _served_models(self) -> list[dict[str, Any]]:
        url = f"{self.base_url}/models"
        try:
            response = await self._http.get(url)
        except httpx.TransportError as exc:
            raise LLMUnavailable(self.base_url, type(exc).__name__) from None
        if response.status_code == 404:
            raise not_found(self.base_url, "/models")
        if response.status_code in (401, 403):
            raise UsageError(f"{url} refused the request (HTTP {response.status_code}): "
                             "set api_key (RUMINATION_API_KEY)")
        content_type = response.headers.get("content-type", "")
        if is_html(content_type, response.text):
            raise web_page_answer(self.base_url, url, response.status_code, response.text)
        try:
            data = response.json()["data"]
        except (ValueError, KeyError, TypeError):
            kind = content_type.split(";")[0] or "no content type"
            raise NotAnLLMServer(f"{url} answered HTTP {response.status_code} with {kind}, not "
                                 "an OpenAI-compatible model list; check --llm-url") from None
        return [m for m in data if isinstance(m, dict)]

    def _choose_model(
        self, served: list[dict[str, Any]], diagnosis: Diagnosis
    ) -> dict[str, Any] | None:
        names = [str(m.get("id")) for m in served]
        listed = ", ".join(names) or "none"
        by_name = {str(m.get("id")): m for m in served}
        if self.model is None and len(names) == 1:
            self.model = names[0]
        if self.model in by_name:
            diagnosis.checks.append(Check("model", "pass", f"serves {listed}",
                                          f"pass --model {self.model} to rumination research"))
            return by_name[self.model]
        if self.model is None:
            fix = "choose one with --model" if names else "load a model in the server"
            diagnosis.checks.append(Check("model", "fail", f"serves {listed}", fix))
        else:
            fix = f"pass --model {names[0]}" if len(names) == 1 else f"pass one of: {listed}"
            diagnosis.checks.append(
                Check("model", "fail", f"{self.model!r} is not served (serves {listed})", fix)
            )
        return None

    def _window(self, profile: ServerProfile) -> Check:
        window = profile.window
        if window is None:
            return Check("context window", "warn", f"{profile.name} does not say its window",
                         "set context_window (RUMINATION_CONTEXT_WINDOW) to the served window; "
                         "until then research assumes 32768")
        if window >= YARN_WINDOW:
            return Check("context window", "pass", f"{window} tokens (YaRN on)")
        engine = {"llama-server": "llama.cpp", "sglang": "sglang", "ollama": "ollama"}.get(
            profile.kind)
        if engine is None:
            fix = ("serve with YaRN x4 for 131072 tokens: rumination serve --served-model-name "
                   f"{self.model} (rumination serve --dry-run prints the vllm line)")
        else:
            fix = (f"serve with YaRN x4 for 131072 tokens: rumination serve --engine {engine} "
                   "--dry-run prints the line")
        if window <= NATIVE_WINDOW:
            return Check("context window", "warn", f"{window} tokens: YaRN is off, long "
                         "research will be compacted early", fix)
        return Check("context window", "warn", f"{window} tokens, below the 131072 YaRN allows",
                     fix)

    async def _tokenize(self, messages: list[Message]) -> dict[str, Any] | None:
        response = await self._http.post(f"{self.root}/tokenize", json={
            "model": self.model, "messages": [m.model_dump() for m in messages],
            "add_generation_prompt": True, "return_token_strs": True,
        })  # fmt: skip
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise LLMError(f"/tokenize answered HTTP {response.status_code}: "
                           f"{response.text[:200]}")
        data: dict[str, Any] = response.json()
        return data

    async def _template(self) -> list[Check]:
        if self.route == "completions":
            checks = _template_from_text(render_chat_prompt(SAMPLE))
            return [replace(c, detail=f"{c.detail} (the shipped template)") for c in checks]
        if self.profile is not None and self.profile.is_llama_server:
            return await self._applied_template()
        try:
            full = await self._tokenize(SAMPLE)
        except (httpx.HTTPError, LLMError, ValueError) as exc:
            return [Check("chat template", "fail", f"/tokenize failed: {exc}")]
        if full is None:
            return [Check("chat template", "warn", "the server has no /tokenize (not vLLM?): "
                          "the template cannot be checked and prompt sizes are estimated")]
        strs = full.get("token_strs")
        if isinstance(strs, list):
            return _template_from_text("".join(str(s) for s in strs).translate(_BPE_BYTES))
        without = await self._tokenize(SAMPLE[:2])  # the same conversation less its observation
        added = int(full["count"]) - int((without or full)["count"])
        if added < 10:
            return [Check("observation role", "fail", f"an observation adds {added} tokens: the "
                          "template drops it", _TEMPLATE_FIX)]
        return [Check("observation role", "pass", f"an observation adds {added} tokens "
                      "(judged by counts: this server returns no token strings)")]

    async def _applied_template(self) -> list[Check]:
        """llama-server renders a conversation with its template at /apply-template."""
        messages = [m.model_dump() for m in SAMPLE]
        try:
            response = await self._http.post(f"{self.root}/apply-template",
                                              json={"messages": messages})
            response.raise_for_status()
            prompt = str(response.json()["prompt"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            return [Check("chat template", "fail", f"/apply-template failed: {exc}")]
        return _template_from_text(prompt)

    async def _chat(self, client: LLMClient, messages: list[Message], max_tokens: int,
                    stream: bool) -> Any:
        """A raw request, built as research builds it (the answer's own fields are read)."""
        url, body, _ = await client.request(messages, max_tokens=max_tokens, stream=stream)
        return self._http.stream("POST", url, content=body, headers=JSON_HEADERS)

    async def _prefix_cache(self, client: LLMClient) -> Check:
        before = await self._prefix_hits()
        cached = None
        try:
            for _ in range(2):
                async with await self._chat(client, SAMPLE, 1, stream=False) as response:
                    await response.aread()
                    response.raise_for_status()
                    answer = response.json()
                    details = (answer.get("usage") or {}).get("prompt_tokens_details")
                    timings = answer.get("timings")  # llama-server
            if isinstance(details, dict):
                cached = details.get("cached_tokens")
            if not cached and isinstance(timings, dict):
                cached = timings.get("cache_n")
        except (httpx.HTTPError, ValueError) as exc:
            return Check("prefix caching", "fail", f"a one-token request failed: "
                         f"{_server_words(exc)}")
        fix = "start vLLM with --enable-prefix-caching (rumination serve does)"
        if isinstance(cached, int):
            if cached > 0:
                return Check("prefix caching", "pass", f"a repeated prompt had {cached} cached "
                             "tokens")
            return Check("prefix caching", "warn", "a repeated prompt had 0 cached tokens: "
                         "every turn re-reads the whole conversation", fix)
        after = await self._prefix_hits()
        if before is None or after is None:
            name = self.profile.name if self.profile else "the server"
            hint = ("start vLLM with --enable-prompt-tokens-details"
                    if self.profile is None or self.profile.kind == "vllm"
                    else f"{name} does not report cached tokens")  # fmt: skip
            return Check("prefix caching", "warn", "cannot tell: no cached-token counts and no "
                         "/metrics", hint)
        if after > before:
            return Check("prefix caching", "pass", f"/metrics counted {after - before:g} "
                         "prefix-cache hit tokens")
        return Check("prefix caching", "warn", "/metrics counted no prefix-cache hits for a "
                     "repeated prompt", fix)

    async def _prefix_hits(self) -> float | None:
        try:
            response = await self._http.get(f"{self.root}/metrics")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        values = [float(line.rsplit(" ", 1)[1]) for line in response.text.splitlines()
                  if line.startswith("vllm:prefix_cache_hits")]
        return sum(values) if values else None

    async def _streaming(self, client: LLMClient) -> Check:
        chunks, done = 0, False
        try:
            async with await self._chat(client, SAMPLE[:1], 16, stream=True) as response:
                if response.status_code >= 400:
                    await response.aread()
                    return Check("streaming", "fail", f"HTTP {response.status_code}: "
                                 f"{response.text[:200]}")
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        done = done or line[5:].strip() == "[DONE]"
                        chunks += not done
        except httpx.HTTPError as exc:
            return Check("streaming", "fail", f"the stream broke: {exc}")
        if chunks and done:
            return Check("streaming", "pass", f"{chunks} server-sent events, then [DONE]")
        end = "seen" if done else "missing"
        return Check("streaming", "fail", f"{chunks} events, [DONE] {end}",
                     "set stream = false (RUMINATION_STREAM=false) to research without it")

    async def _turn(self) -> Check:
        client = self._client(timeout_s=self.timeout_s * 10, retries=0)
        question = render("question", question=SAMPLE_QUESTION, today=date.today().isoformat())
        started = time.monotonic()
        try:
            completion = await client.chat([Message(role="user", content=question)],
                                           max_tokens=self.turn_tokens)
        except LLMError as exc:
            return Check("one real turn", "fail", str(exc))
        finally:
            await client.aclose()
        seconds = time.monotonic() - started
        parsed = parse_turn(completion.content, completion.reasoning)
        tokens = completion.usage.completion_tokens
        if isinstance(parsed, CallTurn):
            call = json.dumps(parsed.call.arguments, ensure_ascii=False)
            return Check("one real turn", "pass",
                         f"{parsed.call.name} {call} after {tokens} tokens in {seconds:.1f} s")
        raw = " ".join(completion.content.split())[:300]
        if completion.finish_reason == "length":
            return Check("one real turn", "warn", f"no tool call within {self.turn_tokens} "
                         f"tokens; it began: {raw!r}", "raise --turn-tokens")
        return Check("one real turn", "fail", f"no tool call; the model wrote: {raw!r}",
                     "check the model and its chat template (see the checks above)")


_TEMPLATE_FIX = ("serve GLM-Z1-Rumination with its own chat template (no --chat-template "
                 "override; rumination serve does this)")


def _template_from_text(prompt: str) -> list[Check]:
    """Checks of the rendered sample conversation (from the server's token strings)."""
    head = prompt.split("<|user|>", 1)[0]
    missing = [t for t in TOOLS if t not in head]
    checks = []
    if "<|system|>" in head and not missing:
        checks.append(Check("research prompt", "pass", "the template adds the fixed research "
                            "prompt with its four tools"))
    else:
        what = f"lacks {', '.join(missing)}" if missing else "has no system part"
        checks.append(Check("research prompt", "fail", f"the rendered prompt {what}: this is not "
                            "the rumination model's template (wrong model?)", _TEMPLATE_FIX))
    if OBSERVATION_MARK in prompt and "<|observation|>" in prompt:
        checks.append(Check("observation role", "pass", "tool results reach the model"))
    else:
        checks.append(Check("observation role", "fail", "the template drops the observation "
                            "message: tool results never reach the model", _TEMPLATE_FIX))
    if USER_MARK in prompt:
        checks.append(Check("nothing cut", "pass", "the question arrives whole"))
    else:
        checks.append(Check("nothing cut", "fail", "the question is missing from the rendered "
                            "prompt", _TEMPLATE_FIX))
    return checks


def _server_words(exc: Exception) -> str:
    """An HTTP error as the server put it: its own message, not httpx's advice."""
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}: {server_message(exc.response.text)}"
    return str(exc)


def render_text(diagnosis: Diagnosis) -> str:
    """The diagnosis as a table for a terminal: status, check, what was seen, and the fix."""
    server = f"  server: {diagnosis.server}" if diagnosis.server else ""
    lines = [f"rumination doctor: {diagnosis.url}  model: {diagnosis.model or '?'}{server}", ""]
    width = max(len(c.name) for c in diagnosis.checks) if diagnosis.checks else 0
    for check in diagnosis.checks:
        lines.append(f"  {check.status.upper():4}  {check.name:{width}}  {check.detail}")
        if check.fix:
            label = "next:" if check.status == "pass" else "fix:"
            lines.append(f"  {'':4}  {'':{width}}  {label} {check.fix}")
    counts = {s: sum(c.status == s for c in diagnosis.checks) for s in ("pass", "warn", "fail")}
    lines += ["", ", ".join(f"{n} {s}" for s, n in counts.items())]
    return "\n".join(lines)


def diagnose(llm_url: str, model: str | None = None, **options: Any) -> Diagnosis:
    """Synchronous `Doctor(...).run()`."""
    return asyncio.run(Doctor(llm_url, model, **options).run())
