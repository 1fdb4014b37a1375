"""The model's own chat template, rendered by the harness for servers that cannot.

Servers that refuse the protocol's `observation` role (llama-cpp-python, SGLang) or render
another template (a GGUF's built-in one, Ollama's Go templates) get the prompt text itself on
`/v1/completions`. The template is the model's published `chat_template`, shipped verbatim as
`prompts/glm_z1_rumination.jinja` (where it came from: `prompts/CHAT_TEMPLATE.md`), rendered the
way transformers renders chat templates (so as vLLM does): a sandboxed environment with
`trim_blocks` and `lstrip_blocks`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from importlib.resources import files
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rumination.models import Message

RUMINATION_TEMPLATE = "glm_z1_rumination"
TOOLS = ("search", "click", "open", "finish")


def template_source(name: str = RUMINATION_TEMPLATE) -> str:
    """The shipped template's text (what `rumination serve` hands to llama-server)."""
    return (files("rumination.prompts") / f"{name}.jinja").read_text(encoding="utf-8")


@cache
def _compiled(name: str) -> jinja2.Template:
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(template_source(name))


def render_chat_prompt(
    messages: Sequence[Message], name: str = RUMINATION_TEMPLATE, *,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text the model's template makes of `messages`."""
    dicts = [{"role": m.role, "content": m.content} for m in messages]
    return render_message_dicts(dicts, name, add_generation_prompt=add_generation_prompt)


def render_message_dicts(
    messages: Sequence[Mapping[str, Any]], name: str = RUMINATION_TEMPLATE, *,
    add_generation_prompt: bool = True,
) -> str:
    """The same for messages as a server receives them (dicts with any role)."""
    return _compiled(name).render(messages=list(messages),
                                  add_generation_prompt=add_generation_prompt)


def is_rumination_template(text: str | None) -> bool:
    """Does a server's chat template look like the rumination model's: the `[gMASK]` prefix,
    the observation role and the four tools of its fixed prompt?"""
    if not text:
        return False
    return "[gMASK]" in text and "<|observation|>" in text and all(
        f'"name": "{tool}"' in text for tool in TOOLS
    )
