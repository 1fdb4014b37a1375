"""One-line explanations of LLM server answers that mean the user pointed at the wrong place:
a server that answers with a web page, a URL missing its /v1, a model name it does not serve.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from rumination.errors import ModelNotServed, NotAnLLMServer

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def is_html(content_type: str, body: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind in ("text/html", "application/xhtml+xml") or (
        not kind.endswith("json") and body.lstrip()[:15].lower().startswith(("<!doctype", "<html"))
    )


def _page_gist(body: str) -> str:
    """The page's title, else the start of its text, short and on one line."""
    found = _TITLE.search(body)
    text = found.group(1) if found else _TAG.sub(" ", body)
    words = " ".join(text.split())
    return words if len(words) <= 60 else words[:60].rsplit(" ", 1)[0] + " …"


def web_page_answer(base_url: str, url: str, status: int, body: str) -> NotAnLLMServer:
    gist = _page_gist(body)
    what = f"a web page ({gist!r})" if gist else "a web page"
    return NotAnLLMServer(f"{url} answered HTTP {status} with {what}, not an OpenAI-compatible "
                          f"LLM API; check --llm-url{v1_hint(base_url)}")


def not_json_answer(base_url: str, url: str, status: int, content_type: str) -> NotAnLLMServer:
    kind = content_type.split(";", 1)[0].strip() or "no content type"
    return NotAnLLMServer(f"{url} answered HTTP {status} with {kind}, not JSON: not an "
                          f"OpenAI-compatible LLM API; check --llm-url{v1_hint(base_url)}")


def v1_hint(base_url: str) -> str:
    """'; did you mean …/v1?' when the base URL does not end in /v1, else ''."""
    path = urlsplit(base_url).path.rstrip("/")
    if path.endswith("/v1"):
        return ""
    return f" (did you mean {base_url.rstrip('/')}/v1?)"


def not_found(base_url: str, route: str) -> NotAnLLMServer:
    return NotAnLLMServer(f"{base_url} answered HTTP 404 for {route}: no OpenAI-compatible "
                          f"API there{v1_hint(base_url)}")


def model_not_served(
    base_url: str, model: str, served: list[str], option: str | None = "--model"
) -> ModelNotServed:
    """The served models named; with `option` (the CLI flag that picks one) as a hint."""
    start = f"model {model!r} is not served at {base_url}"
    listed = ", ".join(served) if served else "none"
    if option is None:
        return ModelNotServed(f"{start}; served models: {listed}")
    if len(served) == 1:
        return ModelNotServed(f"{start}; it serves exactly one model: {option} {served[0]}")
    return ModelNotServed(f"{start}; served models: {listed} (pass one with {option})")


def server_message(body: str) -> str:
    """The server's own words: `error.message` (OpenAI, vLLM, llama.cpp), FastAPI's `detail`
    (llama-cpp-python), else the body's start; the error's type is kept where it says more."""
    try:
        data = json.loads(body)
    except ValueError:
        return _page_gist(body) if is_html("", body) else " ".join(body.split())[:300]
    error = data.get("error", data.get("detail", data)) if isinstance(data, dict) else data
    if isinstance(error, dict):
        message = str(error.get("message", error))
        kind = error.get("type")  # llama-server's say what the message may not: exceed_…_error
        named = isinstance(kind, str) and kind.endswith("_error") and kind not in message
        return f"{message} ({kind})" if named else message
    return str(error)
