"""Table-driven tests for rumination.llm.protocol: one assistant text -> call, answer or error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from rumination.llm.protocol import (
    AnswerTurn,
    CallTurn,
    ProtocolError,
    clean_final_answer,
    parse_turn,
    split_thinking,
)


@dataclass
class Call:
    name: str
    arguments: dict[str, Any]
    thinking: str = ""
    notes: tuple[str, ...] = ()


@dataclass
class Answer:
    answer: str
    thinking: str = ""


@dataclass
class Err:
    mentions: tuple[str, ...]
    thinking: str = ""


def err(*mentions: str, thinking: str = "") -> Err:
    return Err(mentions, thinking)


S = '{"name": "search", "arguments": {"query": "GLM-Z1 rumination"}}'
SEARCH = Call("search", {"query": "GLM-Z1 rumination"})
VALID_TOOLS = ("search", "click", "open", "finish")
EXPECTED_FORM = '{"name": "search", "arguments": {"query": "…"}}'

CASES = [
    # --- think tags -------------------------------------------------------------------------
    pytest.param(
        f"<think>I should look this up.</think>{S}", None,
        Call("search", {"query": "GLM-Z1 rumination"}, "I should look this up."),
        id="think-then-json",
    ),
    pytest.param(
        '<think>\nplan the next step\n</think>\n\n{"name": "click", "arguments": {"link_id": 2}}',
        None, Call("click", {"link_id": 2}, "plan the next step"),
        id="think-newlines-click",
    ),
    pytest.param(
        'Plan first.</think>\n{"name": "open", "arguments": {"url": "https://example.com"}}',
        None, Call("open", {"url": "https://example.com"}, "Plan first."),
        id="missing-open-think",
    ),
    pytest.param(
        '<think>I need data on X.\n{"name": "search", "arguments": {"query": "X data"}}',
        None, Call("search", {"query": "X data"}, "I need data on X."),
        id="missing-close-think",
    ),
    pytest.param(
        '<think>reason\n```json\n{"name": "search", "arguments": {"query": "a"}}\n```',
        None, Call("search", {"query": "a"}, "reason"),
        id="missing-close-think-fenced",
    ),
    pytest.param(
        '<think>Earlier I used {"name": "search", "arguments": {"query": "old"}} but now I '
        'read result 4.\n{"name": "click", "arguments": {"link_id": 4}}',
        None,
        Call(
            "click", {"link_id": 4},
            'Earlier I used {"name": "search", "arguments": {"query": "old"}} '
            "but now I read result 4.",
        ),
        id="missing-close-think-call-quoted-in-reasoning",
    ),
    pytest.param(
        '<think>reason\nsearch\n{"query": "q"}', None, Call("search", {"query": "q"}, "reason"),
        id="missing-close-think-glm4",
    ),
    pytest.param(S, None, SEARCH, id="no-think-tags"),
    # --- reasoning delivered separately -------------------------------------------------------
    pytest.param(
        S, "Because the question asks.",
        Call("search", {"query": "GLM-Z1 rumination"}, "Because the question asks."),
        id="reasoning-field",
    ),
    pytest.param(
        '</think>\n{"name": "finish", "arguments": {}}', "  done researching  ",
        Call("finish", {}, "done researching"),
        id="reasoning-field-stray-close-think",
    ),
    # --- surrounding text and fences --------------------------------------------------------
    pytest.param(f"<think>t</think>\n```\n{S}\n```", None,
                 Call("search", {"query": "GLM-Z1 rumination"}, "t"), id="fenced-plain"),
    pytest.param(f"<think>t</think>\n```json\n{S}\n```\n", None,
                 Call("search", {"query": "GLM-Z1 rumination"}, "t"), id="fenced-json"),
    pytest.param(f"{S}\nI will now read the results.", None, SEARCH, id="trailing-prose"),
    pytest.param(f"<think>t</think>Let me search for it.\n{S}", None,
                 Call("search", {"query": "GLM-Z1 rumination"}, "t"), id="leading-prose"),
    # --- argument forms ---------------------------------------------------------------------
    pytest.param('{"name": "search", "arguments": "{\\"query\\": \\"x\\"}"}', None,
                 Call("search", {"query": "x"}), id="arguments-as-json-string"),
    pytest.param('{"name": "click", "arguments": {"link_id": "3"}}', None,
                 Call("click", {"link_id": 3}), id="link-id-string"),
    pytest.param('{"name": "click", "arguments": {"link_id": 3.0}}', None,
                 Call("click", {"link_id": 3}), id="link-id-float"),
    pytest.param('{"name": "click", "arguments": {"id": 5}}', None,
                 Call("click", {"link_id": 5}), id="click-id-alias"),
    pytest.param('{"name": "search", "arguments": {"q": "x"}}', None,
                 Call("search", {"query": "x"}), id="search-q-alias"),
    pytest.param('{"name": "search", "arguments": {"query": "  padded  "}}', None,
                 Call("search", {"query": "padded"}), id="query-stripped"),
    pytest.param('{"name": "finish"}', None, Call("finish", {}), id="finish-no-arguments"),
    pytest.param('{"name": "open", "parameters": {"url": "arxiv.org"}}', None,
                 Call("open", {"url": "arxiv.org"}), id="parameters-key"),
    pytest.param("finish", None, Call("finish", {}), id="bare-finish-word"),
    # --- GLM-4 form -------------------------------------------------------------------------
    pytest.param('search\n{"query": "x"}', None, Call("search", {"query": "x"}), id="glm4-search"),
    pytest.param('<think>t</think>\nclick\n{"link_id": 1}', None,
                 Call("click", {"link_id": 1}, "t"), id="glm4-click-after-think"),
    pytest.param("finish\n{}", None, Call("finish", {}), id="glm4-finish"),
    # --- errors -----------------------------------------------------------------------------
    pytest.param('<think>t</think>{"name": "browse", "arguments": {"url": "x"}}', None,
                 err("'browse'", *VALID_TOOLS, thinking="t"), id="unknown-tool"),
    pytest.param('lookup\n{"query": "x"}', None, err("'lookup'", *VALID_TOOLS),
                 id="glm4-unknown-tool"),
    pytest.param('{"name": "search", "arguments": {"query": "x"}', None,
                 err("not a valid JSON", EXPECTED_FORM), id="invalid-json-unclosed"),
    pytest.param("{'name': 'search', 'arguments': {'query': 'x'}}", None,
                 err("not a valid JSON", EXPECTED_FORM), id="invalid-json-single-quotes"),
    pytest.param('I call "name": "search" with query x', None,
                 err("not a valid JSON", EXPECTED_FORM), id="invalid-json-name-in-prose"),
    pytest.param('search\n{"query": x}', None, err("not a valid JSON", EXPECTED_FORM),
                 id="glm4-invalid-json"),
    pytest.param('{"query": "x"}', None, err('"name"', EXPECTED_FORM), id="json-without-name"),
    pytest.param('{"name": "search", "arguments": {}}', None,
                 err('"query"', "search needs"), id="search-missing-query"),
    pytest.param('{"name": "search", "arguments": {"query": "   "}}', None,
                 err('"query"', "non-empty"), id="search-blank-query"),
    pytest.param('{"name": "click", "arguments": {"link_id": "abc"}}', None,
                 err('"link_id"', "'abc'", "integer"), id="click-non-integer"),
    pytest.param('{"name": "click", "arguments": {"link_id": 2.5}}', None,
                 err('"link_id"', "2.5"), id="click-fractional"),
    pytest.param('{"name": "click", "arguments": {"link_id": true}}', None,
                 err('"link_id"', "True"), id="click-bool"),
    pytest.param('{"name": "click", "arguments": {}}', None, err('"link_id"', "None"),
                 id="click-missing-link-id"),
    pytest.param('{"name": "open", "arguments": {"link": "https://x.org"}}', None,
                 err('"url"', "open needs"), id="open-missing-url"),
    pytest.param('{"name": "search", "arguments": "{query: x}"}', None,
                 err('"arguments"', "JSON object"), id="arguments-string-not-json"),
    pytest.param('{"name": "search", "arguments": ["x"]}', None,
                 err('"arguments"', "JSON object"), id="arguments-list"),
    pytest.param("", None, err("Empty turn", EXPECTED_FORM), id="empty"),
    pytest.param("  \n ", None, err("Empty turn"), id="whitespace-only"),
    pytest.param("<think>thinking</think>", None,
                 err("no tool call", EXPECTED_FORM, thinking="thinking"), id="think-only"),
    pytest.param("<think>still thinking", None,
                 err("no tool call", thinking="still thinking"), id="unclosed-think-no-call"),
    pytest.param("", "reasoning only", err("no tool call", thinking="reasoning only"),
                 id="reasoning-field-empty-content"),
    # --- several calls ----------------------------------------------------------------------
    pytest.param(
        f'{S}\n{{"name": "search", "arguments": {{"query": "second"}}}}', None,
        Call("search", {"query": "GLM-Z1 rumination"},
             notes=("You made 2 calls in one turn; only the first (search) was executed.",)),
        id="two-json-calls",
    ),
    pytest.param(
        '<think>t</think>{"name": "click", "arguments": {"link_id": 1}}\n'
        '{"name": "click", "arguments": {"link_id": 2}}\n{"name": "finish"}', None,
        Call("click", {"link_id": 1}, "t",
             notes=("You made 3 calls in one turn; only the first (click) was executed.",)),
        id="three-json-calls",
    ),
    pytest.param(
        'search\n{"query": "a"}\nsearch\n{"query": "b"}', None,
        Call("search", {"query": "a"},
             notes=("You made 2 calls in one turn; only the first (search) was executed.",)),
        id="two-glm4-calls",
    ),
    # --- answers ----------------------------------------------------------------------------
    pytest.param("<think>done</think>\n\n# Report\n\nText 【1†source】.\n", None,
                 Answer("# Report\n\nText 【1†source】.", "done"), id="prose-answer"),
    pytest.param("Paris is the capital of France.", None,
                 Answer("Paris is the capital of France."), id="prose-answer-no-tags"),
    pytest.param("The set {1, 2} is small.", "checked",
                 Answer("The set {1, 2} is small.", "checked"), id="prose-with-braces-not-a-call"),
]


@pytest.mark.parametrize(("content", "reasoning", "expected"), CASES)
def test_parse_turn(content: str, reasoning: str | None, expected: Call | Answer | Err) -> None:
    parsed = parse_turn(content, reasoning)
    if isinstance(expected, Call):
        assert isinstance(parsed, CallTurn), parsed
        assert parsed.call.name == expected.name
        assert parsed.call.arguments == expected.arguments
        assert parsed.thinking == expected.thinking
        assert parsed.notes == expected.notes
    elif isinstance(expected, Answer):
        assert isinstance(parsed, AnswerTurn), parsed
        assert parsed.answer == expected.answer
        assert parsed.thinking == expected.thinking
    else:
        assert isinstance(parsed, ProtocolError), parsed
        for needle in expected.mentions:
            assert needle in parsed.message, (needle, parsed.message)
        assert parsed.thinking == expected.thinking
        assert parsed.raw == content


def test_case_table_is_large_enough() -> None:
    assert len(CASES) >= 34


def test_link_id_is_a_real_int() -> None:
    parsed = parse_turn('{"name": "click", "arguments": {"link_id": "7"}}')
    assert isinstance(parsed, CallTurn)
    assert type(parsed.call.arguments["link_id"]) is int


@pytest.mark.parametrize(
    ("content", "reasoning", "expected"),
    [
        pytest.param("<think>a</think>b", None, ("a", "b"), id="tagged"),
        pytest.param(" a \n</think>\n b ", None, ("a", "b"), id="missing-open"),
        pytest.param("<think>a\n" + S, None, ("a", S), id="missing-close-with-call"),
        pytest.param("<think>only reasoning", None, ("only reasoning", ""), id="missing-close"),
        pytest.param("just text", None, ("", "just text"), id="no-tags"),
        pytest.param("</think>" + S, "r", ("r", S), id="reasoning-field-stray-close"),
        pytest.param("<think>b</think>c", "a", ("a\n\nb", "c"), id="reasoning-field-and-tags"),
        pytest.param("<think>x</think>y</think>z", None, ("x", "y</think>z"), id="first-close"),
        pytest.param("", None, ("", ""), id="empty"),
    ],
)
def test_split_thinking(content: str, reasoning: str | None, expected: tuple[str, str]) -> None:
    assert split_thinking(content, reasoning) == expected


FINISH = '{"name": "finish", "arguments": {}}'


@pytest.mark.parametrize(
    ("content", "reasoning", "expected"),
    [
        pytest.param("<think>t</think>\n# Report\nBody.\n", None, "# Report\nBody.",
                     id="thinking-removed"),
        pytest.param(f"{FINISH}\n# Report\nBody.", None, "# Report\nBody.", id="finish-prefix"),
        pytest.param(f"{FINISH}\n\n\n# Report", None, "# Report", id="finish-then-blank-lines"),
        pytest.param(f"```\n{FINISH}\n```\n# Report", None, "# Report", id="fenced-finish"),
        pytest.param(f"```json\n{FINISH}\n```\n\n# Report", None, "# Report",
                     id="json-fenced-finish"),
        pytest.param(f"<think>t</think>{FINISH}# Report", None, "# Report",
                     id="thinking-then-finish"),
        pytest.param(f"</think>\n{FINISH}\nAnswer.", "r", "Answer.", id="reasoning-field"),
        pytest.param('{"name": "finish"}\nAnswer.', None, "Answer.", id="finish-no-arguments"),
        pytest.param("finish\n{}\nAnswer.", None, "Answer.", id="glm4-finish-prefix"),
        pytest.param(f"  {FINISH}  \n", None, "", id="only-finish"),
        pytest.param(f"```json\n{FINISH}\n```", None, "", id="only-fenced-finish"),
        pytest.param('{"a": 1} is JSON.', None, '{"a": 1} is JSON.', id="other-json-kept"),
        pytest.param(f"Intro.\n{FINISH}", None, f"Intro.\n{FINISH}", id="finish-not-leading"),
        pytest.param("  Plain answer.  ", None, "Plain answer.", id="plain"),
    ],
)
def test_clean_final_answer(content: str, reasoning: str | None, expected: str) -> None:
    assert clean_final_answer(content, reasoning) == expected
