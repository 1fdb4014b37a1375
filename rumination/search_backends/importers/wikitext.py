"""Wikitext into the plain text a corpus indexes, with mwparserfromhell (rumination[wikidump]).

Kept: running text, the visible text of links, bold and italics, headings (written as
Markdown `##` headings, so passages are titled by their section). Left out: templates
(infoboxes, citations, navigation boxes), references, tables, galleries, comments, links to
files and categories (`[[File:…]]`, `[[Category:…]]`; the English names and their usual
aliases), and the sections after the article's text (References, External links, See also,
Notes, Further reading, Bibliography, Sources).
"""

from __future__ import annotations

import re

import mwparserfromhell
from mwparserfromhell.nodes import (
    Comment,
    ExternalLink,
    Heading,
    HTMLEntity,
    Node,
    Tag,
    Template,
    Text,
    Wikilink,
)

SKIPPED_TAGS = frozenset({"ref", "references", "table", "gallery", "math", "chem", "score",
                          "timeline", "graph", "mapframe", "syntaxhighlight", "imagemap"})
SKIPPED_LINK_PREFIXES = ("file:", "image:", "category:", "media:")
END_SECTIONS = frozenset({"references", "external links", "see also", "notes",
                          "further reading", "bibliography", "sources", "citations",
                          "footnotes", "notes and references"})
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_SPACES = re.compile(r"[ \t\xa0]{2,}")


def plain_text(wikitext: str) -> str:
    """The readable text of an article's wikitext (see the module's docstring)."""
    parts: list[str] = []
    for node in mwparserfromhell.parse(wikitext).nodes:
        if isinstance(node, Heading):
            title = _text_of(node.title).strip()
            if node.level <= 2 and title.casefold() in END_SECTIONS:
                break
            parts.append(f"\n\n{'#' * min(node.level, 6)} {title}\n\n")
        else:
            parts.append(_node_text(node))
    text = _SPACES.sub(" ", "".join(parts))
    return _BLANK_LINES.sub("\n\n", text).strip()


def _node_text(node: Node) -> str:
    if isinstance(node, Text):
        return str(node.value)
    if isinstance(node, Wikilink):
        if str(node.title).strip().casefold().startswith(SKIPPED_LINK_PREFIXES):
            return ""
        return _text_of(node.text if node.text is not None else node.title)
    if isinstance(node, Tag):
        if str(node.tag).strip().casefold() in SKIPPED_TAGS or node.contents is None:
            return ""
        return _text_of(node.contents)
    if isinstance(node, ExternalLink):
        return _text_of(node.title) if node.title is not None else ""
    if isinstance(node, HTMLEntity):
        return str(node.normalize())
    if isinstance(node, (Template, Comment)):
        return ""
    return ""  # arguments, parser functions' leftovers


def _text_of(code: mwparserfromhell.wikicode.Wikicode) -> str:
    return "".join(_node_text(node) for node in code.nodes)
