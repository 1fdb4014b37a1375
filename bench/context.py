"""Context-window benchmark: long runs against a simulator that enforces the window.

Prints, for a 32K and a 128K window: requests rejected for length (must be 0), compactions
per run, and the share of prompt tokens that stay a shared prefix between consecutive
requests (what vLLM's prefix cache can reuse; target >= 0.9).

    python bench/context.py [--turns 40] [--docs 12]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from rumination import Researcher, Settings
from rumination.events import Event
from rumination.llm.tokens import estimate_tokens
from rumination.testing import SimulatorConfig, SimulatorServer
from rumination.testing.server import render_prompt
from rumination.testing.simulator import long_corpus, long_reader


def shared_prefix_share(requests: list[dict[str, Any]]) -> float:
    """Sum over consecutive requests of common-prefix tokens / sum of prompt tokens."""
    prompts = [render_prompt(r["messages"]) for r in requests]
    shared = total = 0
    for before, after in zip(prompts, prompts[1:], strict=False):
        n = 0
        limit = min(len(before), len(after))
        while n < limit and before[n] == after[n]:
            n += 1
        shared += estimate_tokens(after[:n])
        total += estimate_tokens(after)
    return shared / total if total else 1.0


def run(window: int, turns: int, corpus: Path) -> dict[str, Any]:
    events: list[Event] = []
    config = SimulatorConfig(model="sim", max_model_len=window)
    with SimulatorServer(long_reader(turns), config) as server:
        settings = Settings(llm_url=server.url, model="sim", corpus=str(corpus),
                            max_turns=turns + 5, answer_max_tokens=8192)
        report = asyncio.run(Researcher(settings).run("glacier moraine", on_event=events.append))
    compactions = max((e.data["compactions"] for e in events if e.kind == "compacted"), default=0)
    return {
        "window": window,
        "turns": report.turns,
        "rejected": len(server.rejections),
        "compactions": compactions,
        "prefix_share": shared_prefix_share(server.requests),
        "citations": len(report.citations),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=40)
    parser.add_argument("--docs", type=int, default=12)
    parser.add_argument("--words", type=int, default=6000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = long_corpus(Path(tmp), args.docs, args.words)
        print(f"{'window':>8} {'turns':>6} {'rejected':>9} {'compactions':>12} "
              f"{'prefix share':>13} {'citations':>10}")
        for window in (32768, 131072):
            r = run(window, args.turns, corpus)
            print(f"{r['window']:>8} {r['turns']:>6} {r['rejected']:>9} {r['compactions']:>12} "
                  f"{r['prefix_share']:>13.3f} {r['citations']:>10}")


if __name__ == "__main__":
    main()
