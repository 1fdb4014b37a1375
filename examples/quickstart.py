"""Quickstart: research a question from Python.

With no arguments it runs offline on the bundled demo corpus with the protocol SIMULATOR
standing in for the model. Give --llm-url and --model to use a real vLLM server.

    python examples/quickstart.py
    python examples/quickstart.py --llm-url http://HOST:8000/v1 --model glm-z1-rumination
"""

from __future__ import annotations

import argparse
import asyncio

from rumination import Settings, research
from rumination.events import Event
from rumination.jobs.demo import DEMO_QUESTION, run_demo
from rumination.reports.render import render_report


def show(event: Event) -> None:
    if event.kind == "tool_called":
        print(f"  turn {event.data['index'] + 1}: {event.data['name']} {event.data['arguments']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("question", nargs="?", default=DEMO_QUESTION)
    parser.add_argument("--llm-url")
    parser.add_argument("--model")
    parser.add_argument("--corpus", help="corpus built with `rumination index` (default: demo)")
    args = parser.parse_args()
    if args.llm_url:
        report = research(
            args.question, llm_url=args.llm_url, model=args.model, corpus=args.corpus,
            on_event=show,
        )
    else:
        print("No --llm-url: using the protocol SIMULATOR (not a model) on the demo corpus.")
        report = asyncio.run(run_demo(args.question, Settings.load(), on_event=show))
    print(render_report(report, "md"))


if __name__ == "__main__":
    main()
