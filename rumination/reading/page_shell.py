"""Does a fetched HTML page look like a script shell: an app whose text only JavaScript writes?

Signs, any of which is enough when the page has scripts:
- little visible text (under `SHELL_TEXT_CHARS` characters outside script, style, noscript
  and template elements);
- a `<noscript>` asking for JavaScript, with not much more text than a shell would have;
- an empty app root (`#root`, `#app`, `#__next`, `<app-root>`, …), likewise.

`browser = auto` renders such pages; bench/browser.py counts how often it renders a page that
did not need it.
"""

from __future__ import annotations

import copy
import re

import lxml.etree
import lxml.html

SHELL_TEXT_CHARS = 200
"""Visible characters below which a page with scripts is taken for a shell."""
HINTED_TEXT_CHARS = 1000
"""Visible characters below which a `<noscript>` plea or an empty app root marks a shell."""
APP_ROOT_IDS = frozenset({"root", "app", "__next", "__nuxt", "___gatsby", "svelte", "main-app"})
APP_ROOT_TAGS = frozenset({"app-root"})
_ASKS_FOR_JS = re.compile(r"javascript|enable\s+js|\bjs\b", re.I)
_HIDDEN = ("script", "style", "noscript", "template")


def looks_like_script_shell(html: str) -> bool:
    """True when the page's text is most likely written by its scripts."""
    try:
        tree = lxml.html.document_fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return False
    if next(tree.iter("script"), None) is None:
        return False
    visible = _visible_chars(tree)
    if visible < SHELL_TEXT_CHARS:
        return True
    if visible >= HINTED_TEXT_CHARS:
        return False
    return _noscript_asks_for_js(tree) or _has_empty_app_root(tree)


def _visible_chars(tree: lxml.html.HtmlElement) -> int:
    """Non-space characters of the body's text outside hidden elements (noscript is counted
    apart: its plea is read by `_noscript_asks_for_js`). Hidden elements are taken out of a
    copy; their tails stay."""
    body = tree.find("body")
    if body is None:
        return 0
    body = copy.deepcopy(body)
    for element in list(body.iter(*_HIDDEN)):
        if element.getparent() is not None:
            element.drop_tree()
    return len("".join(body.text_content().split()))


def _noscript_asks_for_js(tree: lxml.html.HtmlElement) -> bool:
    return any(_ASKS_FOR_JS.search(e.text_content()) for e in tree.iter("noscript"))


def _has_empty_app_root(tree: lxml.html.HtmlElement) -> bool:
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        is_root = element.tag in APP_ROOT_TAGS or element.get("id") in APP_ROOT_IDS
        if is_root and not element.text_content().strip():
            return True
    return False
