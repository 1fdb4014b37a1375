"""Render a Report as one standalone HTML page: inline CSS, no script, no external asset.

The answer's Markdown is rendered by markdown-it-py with raw HTML disabled (the text comes
from a model and from web pages) and images disabled (no external requests); every other
value goes through the template's autoescaping. Citation references `[k]` become links to
the source list that show the source's title on hover; a checked citation also carries its
support verdict, and its evidence span shows on hover and on keyboard focus (CSS only).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date
from functools import cache
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from markupsafe import Markup

from rumination.citation_marks import REFERENCE
from rumination.cjk import has_cjk
from rumination.errors import UsageError
from rumination.models import CheckedStatement, Report
from rumination.reports.labels import changes_lines, provenance_label
from rumination.templates import render

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.rules_inline import StateInline
    from markdown_it.token import Token

HTML_EXTRA = "html"
_LINKABLE_SCHEMES = ("http", "https", "file")  # file: a local corpus document
_LEADING_H1 = re.compile(r"\A\s*#[ \t]+(.+?)[ \t#]*(?:\n|\Z)")


def require_markdown() -> None:
    """Raise a one-line UsageError naming the extra when markdown-it-py is missing."""
    try:
        import markdown_it  # noqa: F401
    except ImportError:
        raise UsageError(
            "--format html needs markdown-it-py: pip install 'rumination[html]'"
        ) from None


def _citation_rule(state: StateInline, silent: bool) -> bool:
    match = REFERENCE.match(state.src, state.pos, state.posMax)
    if match is None or int(match.group(1)) not in state.env.get("citation_titles", {}):
        return False
    if not silent:
        token = state.push("citation", "", 0)
        token.meta = {"number": int(match.group(1))}
    state.pos = match.end()
    return True


_VERDICT_LABELS = {
    "supported": "supported by the source",
    "unsupported": "NOT supported by the source",
    "unsure": "support unsure",
}


def _render_citation(
    self: Any, tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]
) -> str:
    number = tokens[idx].meta["number"]
    title = escape(env["citation_titles"][number], quote=True)
    link = f'<a class="citation" href="#source-{number}" title="{title}"'
    occurrence = env["occurrence"] = env.get("occurrence", -1) + 1
    checked: CheckedStatement | None = env.get("checked", {}).get(occurrence)
    if checked is None:
        return f"{link}>[{number}]</a>"
    tip = f"evidence-{occurrence}"
    flagged = " flagged" if checked.action == "flagged" else ""
    classes = f"cite verdict-{checked.verdict}{flagged}"
    label = f"{_VERDICT_LABELS[checked.verdict]} ({checked.score:.2f}, {checked.judge})"
    quote = f": “{escape(checked.evidence)}”" if checked.evidence else ""
    return (
        f'<span class="{classes}">{link} aria-describedby="{tip}">[{number}]</a>'
        f'<span class="evidence" role="tooltip" id="{tip}">{escape(label)}{quote}</span></span>'
    )


@cache
def _parser() -> MarkdownIt:
    require_markdown()
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"]).disable("image")
    md.inline.ruler.before("link", "citation", _citation_rule)
    md.add_render_rule("citation", _render_citation)
    return md


def _answer_env(report: Report) -> dict[str, Any]:
    titles = {c.number: c.title for c in report.citations}
    checked = {s.occurrence: s for s in report.statements if s.occurrence is not None}
    return {"citation_titles": titles, "checked": checked}


def answer_html(report: Report) -> Markup:
    """The answer's Markdown as HTML (raw HTML in it is escaped, never passed through)."""
    answer = _without_repeated_question(report.answer_markdown, report.question)
    return Markup(_parser().render(answer, _answer_env(report)))


def answer_tokens(report: Report) -> list[Token]:
    """The answer's Markdown as markdown-it block tokens; citation references `[k]` are
    inline tokens of type "citation" with meta {"number": k} (for the Word report)."""
    answer = _without_repeated_question(report.answer_markdown, report.question)
    return _parser().parse(answer, _answer_env(report))


def _without_repeated_question(answer: str, question: str) -> str:
    """The answer without its leading `# heading` when that only repeats the question (the
    page's header shows the question already)."""
    heading = _LEADING_H1.match(answer)
    if heading and _words(heading.group(1)) == _words(question):
        return answer[heading.end() :]
    return answer


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def linkable(url: str) -> bool:
    """Whether a source URL can be a live link (web pages and local corpus files)."""
    return urlsplit(url).scheme.lower() in _LINKABLE_SCHEMES


def render_html(report: Report) -> str:
    fetched = {s.source_id: s.fetched_at.date().isoformat() for s in report.sources if s.fetched_at}
    cited = {c.source_id for c in report.citations}
    return render(
        "report.html", package="rumination.reports",
        report=report,
        answer=answer_html(report),
        lang="zh" if has_cjk(report.question) else "en",
        today=date.today().isoformat(),
        accessed=fetched,
        uncited=[s for s in report.sources if s.source_id not in cited],
        flagged=[s for s in report.statements if s.action == "flagged"],
        dropped=[s for s in report.statements if s.action == "dropped"],
        linkable=linkable,
        simulated=report.simulated,
        label=provenance_label(report),
        changes_lines=changes_lines(report.changes),
    ) + "\n"
