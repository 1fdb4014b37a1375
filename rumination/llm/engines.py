"""Launch lines for the model servers other than vLLM (`rumination serve --engine …`).

Each serves GLM-Z1-Rumination with what the harness needs: the model's own chat template, its
stop tokens, prefix caching, and YaRN to 131072 tokens where the engine can apply it. Flags as
each engine documents them (sources in docs/model-servers.md):
- SGLang: `python -m sglang.launch_server` with `--context-length` and the YaRN rope scaling
  given through `--json-model-override-args`; its radix cache reuses prefixes by default.
- llama.cpp: `llama-server --jinja --chat-template-file` (the GGUF's built-in GLM-4 template
  lacked `[gMASK]<sop>`, llama.cpp issue 12946), `--reasoning-format none` (thinking stays in
  the text, where the harness splits it), YaRN through `--rope-scaling yarn --rope-scale 4
  --yarn-orig-ctx 32768 -c 131072`. `-c` is shared by the `--parallel` slots.
- Ollama: a Modelfile whose TEMPLATE passes the prompt through untouched, for the completions
  wire (the harness renders the model's template); Ollama has no YaRN setting, so `num_ctx`
  stays at the native 32768.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from typing import Literal

from rumination.llm.chat_template import RUMINATION_TEMPLATE
from rumination.llm.client import STOP_STRINGS

Engine = Literal["vllm", "sglang", "llama.cpp", "ollama"]
ENGINES: tuple[Engine, ...] = ("vllm", "sglang", "llama.cpp", "ollama")
NATIVE_WINDOW = 32768
YARN_WINDOW = 131072
GGUF_PLACEHOLDER = "GLM-Z1-Rumination-32B-0414-Q4_K_M.gguf"


@dataclass(frozen=True)
class EngineLaunch:
    model_path: str
    served_model_name: str
    host: str
    port: int
    yarn: bool = True
    tensor_parallel_size: int = 1
    parallel: int = 1

    @property
    def window(self) -> int:
        return YARN_WINDOW if self.yarn else NATIVE_WINDOW

    @property
    def gguf(self) -> str:
        return self.model_path if self.model_path.endswith(".gguf") else GGUF_PLACEHOLDER


def template_path() -> str:
    """The shipped chat template as a file path (llama-server reads it from disk)."""
    return str(files("rumination.prompts") / f"{RUMINATION_TEMPLATE}.jinja")


def sglang_command(launch: EngineLaunch) -> list[str]:
    command = [
        "python", "-m", "sglang.launch_server", "--model-path", launch.model_path,
        "--served-model-name", launch.served_model_name, "--host", launch.host,
        "--port", str(launch.port), "--tp-size", str(launch.tensor_parallel_size),
        "--context-length", str(launch.window),
    ]  # fmt: skip
    if launch.yarn:
        overrides = {"rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                      "original_max_position_embeddings": NATIVE_WINDOW},
                     "max_position_embeddings": YARN_WINDOW}  # fmt: skip
        command += ["--json-model-override-args", json.dumps(overrides)]
    return command


def llama_server_command(launch: EngineLaunch, executable: str = "llama-server") -> list[str]:
    command = [
        executable, "--model", launch.gguf, "--alias", launch.served_model_name,
        "--host", launch.host, "--port", str(launch.port),
        "--jinja", "--chat-template-file", template_path(), "--reasoning-format", "none",
        "--ctx-size", str(launch.window * launch.parallel), "--parallel", str(launch.parallel),
    ]  # fmt: skip
    if launch.yarn:
        command += ["--rope-scaling", "yarn", "--rope-scale", "4",
                    "--yarn-orig-ctx", str(NATIVE_WINDOW)]  # fmt: skip
    return command


def ollama_modelfile(launch: EngineLaunch) -> str:
    stops = "".join(f'PARAMETER stop "{stop}"\n' for stop in STOP_STRINGS)
    return (
        f"# serve: ollama create {launch.served_model_name} -f Modelfile\n"
        "# then: rumination research QUESTION --llm-url http://127.0.0.1:11434/v1 "
        f"--model {launch.served_model_name} --wire completions\n"
        f"FROM {launch.gguf}\n"
        '# the harness renders the model\'s own template; Ollama passes the prompt through\n'
        'TEMPLATE """{{ .Prompt }}"""\n'
        f"PARAMETER num_ctx {NATIVE_WINDOW}\n"
        "PARAMETER temperature 0.95\nPARAMETER top_p 0.7\n" + stops
    )
