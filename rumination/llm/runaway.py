"""Runaway generations, cut while they stream: a text that repeats itself, or a turn that runs
past its token cap on a server that does not stop at `max_tokens`.

`RunawayGuard.feed` takes each streamed piece and raises `GenerationCut` once the text has
degenerated; the client stops reading and closes the stream (the server then stops
generating). `cut.kept` is the text before the loop; the loop keeps only a note of the turn in
the conversation, and the whole text in the run store. `settle` checks what the stream's last
pieces added (or, unstreamed, the whole answer) once the generation is over.

Repetition is checked every `CHECK_EVERY` characters on the last `WINDOW` characters: the
nearest earlier occurrence of the text's last `PROBE` characters gives a candidate period p,
and a binary search of slice comparisons (done in C) finds how far back the text equals
itself shifted by p. A loop is at least `MIN_REPEATS` periods covering `MIN_SPAN` characters;
so a table or a list with repeated words is not one, and the cost per character stays small.
"""

from __future__ import annotations

from rumination.llm.client import Completion
from rumination.llm.tokens import estimate_tokens
from rumination.models import Usage

WINDOW = 8192
CHECK_EVERY = 128
PROBE = 24
MAX_PERIOD = 600
MIN_REPEATS = 6
MIN_SPAN = 480
# A server that ignores max_tokens is cut past it: the estimate overcounts (by up to a third
# on Chinese text), so a turn the server ends at its cap is never cut for length here.
CAP_SLACK = 1.5


class GenerationCut(Exception):  # noqa: N818 (a signal, not an error)
    """Raised from the stream's delta callback: stop reading, keep `kept`."""

    def __init__(self, reason: str, kept: str, generated: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason  # "repetition" or "token_cap"
        self.kept = kept
        self.generated = generated
        self.detail = detail


def loop_start(text: str) -> tuple[int, int] | None:
    """(where the repetition at the end of `text` starts, its period), or None."""
    tail_start = max(0, len(text) - WINDOW)
    tail = text[tail_start:]
    if len(tail) < MIN_SPAN:
        return None
    probe = tail[-PROBE:]
    earlier = tail.rfind(probe, 0, len(tail) - 1)
    if earlier < 0:
        return None
    period = len(tail) - PROBE - earlier
    if not 0 < period <= MAX_PERIOD:
        return None
    lo, hi = 0, len(tail) - period  # largest k with tail[-k:] equal to the text p before it
    while lo < hi:
        k = (lo + hi + 1) // 2
        if tail[len(tail) - k :] == tail[len(tail) - k - period : len(tail) - period]:
            lo = k
        else:
            hi = k - 1
    span = lo + period
    if span < MIN_SPAN or span < MIN_REPEATS * period:
        return None
    return tail_start + len(tail) - span, period


class RunawayGuard:
    """Watches one generation; `feed` raises GenerationCut when it runs away."""

    def __init__(self, max_tokens: int | None = None) -> None:
        self.max_tokens = max_tokens
        self._pieces: list[str] = []
        self._chars = 0
        self._checked = 0
        self.tokens = 0

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    def settle(self, completion: Completion) -> Completion:
        """The finished generation, marked cut when it ends in a loop or ran past its cap on a
        server that ignored it. Only what `feed` has not checked yet is looked at again."""
        if self._chars == 0:  # not streamed: the whole answer at once
            self._pieces, self._chars = [completion.content], len(completion.content)
            self.tokens = estimate_tokens(completion.content)
        text = self.text
        found = loop_start(text) if self._chars > self._checked else None
        if found is not None:
            completion.cut = repetition(text, *found)
        elif (self.max_tokens is not None and completion.finish_reason != "length"
              and self.tokens > self.max_tokens * CAP_SLACK):
            completion.cut = f"past the cap of {self.max_tokens} tokens"  # the server ignored it
        if completion.cut:
            completion.finish_reason = "cut"
        return completion

    def feed(self, piece: str) -> None:
        self._pieces.append(piece)
        self._chars += len(piece)
        self.tokens += estimate_tokens(piece)
        if self.max_tokens is not None and self.tokens > self.max_tokens * CAP_SLACK:
            text = self.text
            raise GenerationCut("token_cap", text, text, f"past the cap of {self.max_tokens} "
                                f"tokens (about {self.tokens} generated)")
        if self._chars - self._checked < CHECK_EVERY:
            return
        self._checked = self._chars
        text = self.text
        self._pieces = [text]
        found = loop_start(text)
        if found is not None:
            start, period = found
            raise GenerationCut("repetition", text[: start + period], text,
                                repetition(text, start, period))


def cut_completion(cut: GenerationCut, prompt_tokens: int) -> Completion:
    """The completion of a stream cut short: its whole text (the store keeps it), usage
    estimated (a closed stream sends none)."""
    usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=estimate_tokens(cut.generated),
                  estimated=True)
    return Completion(content=cut.generated, reasoning=None, usage=usage, finish_reason="cut",
                      cut=cut.detail)


def repetition(text: str, start: int, period: int) -> str:
    unit = " ".join(text[start : start + period].split())
    return f"it repeated {unit[:80]!r} {(len(text) - start) // period} times"
