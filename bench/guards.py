"""What a misbehaving model costs a run, with the guards and without them, side by side.

For each misbehaviour of the simulator (`--misbehave`), one run with the guards as shipped and
one with them off (no stream cut, repeated calls and protocol errors allowed up to the turn
budget), on the demo corpus, in one process. Printed per run: model requests, tokens
generated, tokens cut out of the conversation, prompt tokens sent in all, what ended research
and the wall time.

    python bench/guards.py [--max-turns 40] [--max-tokens 16384]

"Off" is made here, in the bench, by raising the guards' limits past the turn budget and by
replacing the stream guard with one that never cuts: the product has no switch for it.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from unittest import mock

from rumination import Settings, research
from rumination.testing import SimulatorConfig, SimulatorServer
from rumination.testing.misbehaviour import MISBEHAVIOURS, misbehaving


class NeverCut:
    def __init__(self, max_tokens: int | None = None) -> None:
        pass

    def feed(self, piece: str) -> None:
        pass


def one_run(kind: str, guarded: bool, turns: int, tokens: int, folder: Path) -> str:
    server = SimulatorServer(misbehaving(kind), SimulatorConfig()).start()
    limits = {} if guarded else {"max_repeated_calls": 10_000, "max_protocol_errors": 10_000}
    settings = Settings(llm_url=server.url, model=server.config.model, max_turns=turns,
                        max_tokens=tokens, store_url=f"sqlite:///{folder}/{kind}-{guarded}.db",
                        **limits)  # type: ignore[arg-type]
    started = time.perf_counter()
    unguarded = mock.patch("rumination.agent.loop.RunawayGuard", new=NeverCut)
    try:
        with contextlib.nullcontext() if guarded else unguarded:
            report = research("What limits heat pump adoption in cold climates?",
                              settings=settings)
    finally:
        server.stop()
    seconds = time.perf_counter() - started
    cut = report.figures.tokens_cut if report.figures else 0
    return (f"{kind:14} {'guards' if guarded else 'no guards':9} {len(server.requests):4} "
            f"requests {report.usage.completion_tokens:9,} tokens generated {cut:9,} cut "
            f"{report.usage.prompt_tokens:11,} prompt tokens  ended by "
            f"{report.stopped_by or 'the model'}  {seconds:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-turns", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=16384)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    print(f"simulator misbehaving, {args.max_turns} turns of at most {args.max_tokens} tokens")
    for kind in MISBEHAVIOURS:
        for guarded in (False, True):
            print(one_run(kind, guarded, args.max_turns, args.max_tokens, folder), flush=True)


if __name__ == "__main__":
    main()
