"""`python -m rumination.testing serve --port N [--script FILE]`: the simulator over HTTP."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from pathlib import Path

from rumination.defaults import SIMULATOR_MODEL
from rumination.testing.misbehaviour import MISBEHAVIOURS, misbehaving
from rumination.testing.server import SimulatorConfig, SimulatorServer
from rumination.testing.simulator import scripted, simulate, with_unsupported


def _load_script(path: Path) -> list[str]:
    try:
        texts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SystemExit(f"error: cannot read script {path}: {exc}") from None
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise SystemExit(f"error: {path} must hold a JSON list of assistant texts (strings)")
    return texts


def startup_lines(url: str, model: str, kind: str) -> list[str]:
    """What the simulator says when it starts: what it is, its model name, a line to paste."""
    command = shlex.join(["rumination", "research", "How do sea otters help kelp forests?",
                          "--llm-url", url, "--model", model])
    return [f"rumination SIMULATOR ({kind}; not the model) at {url}, serving model {model!r}",
            f"try: {command}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rumination.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the protocol simulator (not the model)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--script", type=Path, help="JSON list of assistant texts to replay")
    serve.add_argument("--model", default=SIMULATOR_MODEL)
    serve.add_argument("--max-model-len", type=int, default=131072)
    serve.add_argument("--latency-per-token", type=float, default=0.0, metavar="SECONDS")
    # misconfigured states, to see what `rumination doctor` says about them
    serve.add_argument("--template", choices=["rumination", "generic"], default="rumination",
                       help="generic: a plain chat template that drops observations")
    serve.add_argument("--no-prefix-caching", action="store_true")
    serve.add_argument("--prompt-tokens-details", action="store_true",
                       help="report cached prompt tokens, as vLLM's --enable-prompt-tokens-details")
    serve.add_argument("--unsupported", type=int, default=0, metavar="N",
                       help="alter N cited sentences of each answer so their source does not "
                       "support them (tests of the support check)")
    serve.add_argument("--unsure", type=int, default=0, metavar="N",
                       help="then stretch N more cited sentences past what their source says")
    serve.add_argument("--misbehave", choices=MISBEHAVIOURS,
                       help="misbehave as local models do: repeat, same-call, empty, "
                       "endless-think or no-search (rumination.testing.misbehaviour)")
    args = parser.parse_args(argv)
    if args.unsupported < 0 or args.unsure < 0:
        parser.error("--unsupported and --unsure must be 0 or more")
    responder = (
        misbehaving(args.misbehave) if args.misbehave
        else scripted(_load_script(args.script)) if args.script
        else with_unsupported(args.unsupported, args.unsure)
        if args.unsupported or args.unsure else simulate
    )
    config = SimulatorConfig(
        model=args.model,
        max_model_len=args.max_model_len,
        latency_per_token_s=args.latency_per_token,
        template=args.template,
        prefix_caching=not args.no_prefix_caching,
        prompt_tokens_details=args.prompt_tokens_details,
    )
    server = SimulatorServer(responder, config, host=args.host, port=args.port)
    kind = (f"misbehaving ({args.misbehave})" if args.misbehave
            else f"replaying {args.script}" if args.script else "simulating the protocol")
    for line in startup_lines(server.url, args.model, kind):
        print(line, file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
