"""What may end research before the model finishes: the turn, wall-time, token and cost
budgets and a full context window. Each is checked between turns; when one is reached the
loop asks for the final answer, and the report names it (`Report.stopped_by`)."""

from __future__ import annotations

from dataclasses import dataclass

from rumination.models import StopKind, Usage
from rumination.settings import Settings


@dataclass(frozen=True)
class Stop:
    kind: StopKind
    reason: str  # what the model and the report's warning are told


def run_cost(usage: Usage, settings: Settings) -> float | None:
    """The cost of `usage` at the configured prices; None when no price is set."""
    prompt_price = settings.price_per_1k_prompt_tokens
    completion_price = settings.price_per_1k_completion_tokens
    if prompt_price is None and completion_price is None:
        return None
    return (usage.prompt_tokens * (prompt_price or 0.0)
            + usage.completion_tokens * (completion_price or 0.0)) / 1000


def budget_reached(
    settings: Settings, usage: Usage, elapsed_s: float, answer: Usage | None = None
) -> Stop | None:
    """The first budget that `usage` and `elapsed_s` have reached, or None. `answer` is what
    the final answer will cost (its prompt and its token cap): research stops while the rest
    of a token or cost budget still covers it, so the answer stays inside the budget too."""
    if elapsed_s > settings.max_wall_time_s:
        return Stop("wall_time", f"wall time of {settings.max_wall_time_s:g} s")
    reserve = answer or Usage()
    used = usage.prompt_tokens + usage.completion_tokens
    needed = used + reserve.prompt_tokens + reserve.completion_tokens
    if settings.max_total_tokens is not None and needed >= settings.max_total_tokens:
        return Stop("tokens", f"token budget of {settings.max_total_tokens}: {used} used, "
                    f"{needed - used} kept for the answer")
    if settings.max_cost is not None:  # settings refuse a cost budget without a price
        cost = run_cost(usage, settings) or 0.0
        answer_cost = run_cost(reserve, settings) or 0.0
        if cost + answer_cost >= settings.max_cost:
            return Stop("cost", f"cost budget of {settings.max_cost:g}: {cost:.4g} spent, "
                        f"{answer_cost:.4g} kept for the answer")
    return None


def answer_tokens_left(settings: Settings, usage: Usage, prompt_tokens: int) -> int | None:
    """What a token budget leaves for the answer's generation after its prompt; None: no
    token budget."""
    if settings.max_total_tokens is None:
        return None
    used = usage.prompt_tokens + usage.completion_tokens
    return settings.max_total_tokens - used - prompt_tokens
