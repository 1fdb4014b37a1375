"""The lexical support judge on a labeled set: accuracy, precision and recall of
`unsupported`, and statements per second.

The set (`bench/support_set.jsonl`, written for this project from the bundled demo corpus)
pairs statements with a demo document: supported paraphrases of a sentence of that document,
and unsupported ones made from them by changing a number, swapping a named entity, negating,
or citing the wrong page (the same paraphrase against another document). Each document is
shown to the judge exactly as the model sees a clicked page (rendered page window, read back
through rumination.support.evidence). Targets: accuracy >= 0.9, precision of `unsupported` >= 0.9,
>= 500 statements/s on one core (timed in CPU seconds of this process, so other load on the
machine does not distort it). `unsure` counts as wrong for accuracy and as "not
unsupported" for precision and recall.

`bench/support_heldout.jsonl` (61 pairs of the same kinds, from other sentences) was written
after the judge was tuned on the main set and has not been used to change it: run it with
`--set bench/support_heldout.jsonl` for an estimate on statements the judge was not fitted to.

    python bench/support.py [--set bench/support_set.jsonl] [--repeat 5] [--show-errors]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from rumination.agent.browser import page_window
from rumination.models import Support
from rumination.support.evidence import evidence_by_source
from rumination.support.lexical import LexicalJudge, prepare_evidence

HERE = Path(__file__).parent


def shown_document(name: str) -> str:
    """The demo document `name` as the model sees it after clicking it, as evidence."""
    raw = (files("rumination.search_backends") / "demo_corpus" / f"{name}.md").read_text("utf-8")
    _, front, body = raw.split("---", 2)
    meta = dict(line.split(": ", 1) for line in front.strip().splitlines())
    url = meta.get("url") or f"corpus://demo/{name}"  # demo files name no url of their own
    observation, _ = page_window(0, meta["title"], url, body.strip(), 0, 100_000)
    return evidence_by_source([observation])[0]


@dataclass
class Scores:
    pairs: int
    accuracy: float
    precision: float
    recall: float
    verdicts: list[Support]


def score(rows: list[dict[str, str]], judge: LexicalJudge) -> Scores:
    """Judge every labeled pair; `unsure` is wrong for accuracy, not `unsupported` for the
    precision and recall of `unsupported`."""
    evidence = {name: shown_document(name) for name in {r["source"] for r in rows}}
    verdicts = [judge.judge(r["statement"], evidence[r["source"]]) for r in rows]
    correct = sum(v.verdict == r["label"] for v, r in zip(verdicts, rows, strict=True))
    said = [v.verdict == "unsupported" for v in verdicts]
    truth = [r["label"] == "unsupported" for r in rows]
    hits = sum(s and t for s, t in zip(said, truth, strict=True))
    return Scores(len(rows), correct / len(rows), hits / max(1, sum(said)),
                  hits / max(1, sum(truth)), verdicts)


def load_set(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--set", type=Path, default=HERE / "support_set.jsonl")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes over the set")
    parser.add_argument("--show-errors", action="store_true")
    args = parser.parse_args()
    rows = load_set(args.set)
    judge = LexicalJudge()
    result = score(rows, judge)
    evidence = {name: shown_document(name) for name in {r["source"] for r in rows}}
    started = time.process_time()
    for _ in range(args.repeat):
        for r in rows:
            judge.judge(r["statement"], evidence[r["source"]])
    warm = time.process_time() - started
    prepare_evidence.cache_clear()
    started = time.process_time()
    for r in rows:
        judge.judge(r["statement"], evidence[r["source"]])
    cold = time.process_time() - started

    print(f"labeled pairs: {len(rows)} ({dict(Counter(r['kind'] for r in rows))})")
    print(f"verdicts: {dict(Counter(v.verdict for v in result.verdicts))}")
    print(f"accuracy                 {result.accuracy:.3f}   (target >= 0.9)")
    print(f"precision (unsupported)  {result.precision:.3f}   (target >= 0.9)")
    print(f"recall (unsupported)     {result.recall:.3f}")
    by_kind: dict[str, list[bool]] = {}
    for v, r in zip(result.verdicts, rows, strict=True):
        by_kind.setdefault(r["kind"], []).append(v.verdict == r["label"])
    for kind, right in sorted(by_kind.items()):
        print(f"  {kind:16} {sum(right)}/{len(right)} right")
    print(f"statements per CPU second {len(rows) * args.repeat / warm:,.0f}   (target >= 500 on "
          "one core; source text prepared once per document and reused)")
    print(f"  with a cold cache       {len(rows) / cold:,.0f}   (each document prepared on "
          "first use)")
    if args.show_errors:
        for v, r in zip(result.verdicts, rows, strict=True):
            if v.verdict != r["label"]:
                print(f"- {r['id']} [{r['label']} -> {v.verdict} {v.score}] {r['statement']} "
                      f"| {v.reason}")


if __name__ == "__main__":
    main()
